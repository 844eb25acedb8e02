import Caching
import Testing

@Suite struct SHA256Tests {
    @Test func fipsVectors() {
        #expect(SHA256.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        )
        #expect(
            SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        )
    }

    @Test func incrementalEqualsOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var digest = SHA256()
        for chunk in stride(from: 0, to: data.count, by: 77) {
            digest.update(data[chunk..<min(chunk + 77, data.count)])
        }
        #expect(digest.finalize() == SHA256.hash(data))
    }

    @Test func paddingBoundaries() {
        // Lengths around the 55/56/64-byte padding edges must all differ and be 32 bytes.
        var seen = Set<[UInt8]>()
        for length in 50...70 {
            let digest = SHA256.hash([UInt8](repeating: 0x61, count: length))
            #expect(digest.count == 32)
            seen.insert(digest)
        }
        #expect(seen.count == 21)
    }
}
