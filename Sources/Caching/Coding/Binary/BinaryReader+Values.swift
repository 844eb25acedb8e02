/// Decoding values: primitives directly, hooked types specially, everything else through its
/// `init(from:)` in a scope of its own; and the final checks of a whole decoding.
extension BinaryReader {
    // MARK: Values

    /// Reads any value: primitives directly, hooked types (optionals, byte arrays, `Data`,
    /// `UUID`) specially, everything else through its `init(from:)`.
    func readValue<T: Decodable>(_ type: T.Type, at position: Int, key: (any CodingKey)?) throws -> (T, Int) {
        var p = position
        if T.self == String.self {
            let value = try readString(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int.self {
            let value = try readInteger(Int.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Double.self {
            let value = try readDouble(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Bool.self {
            let value = try readBool(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int64.self {
            let value = try readInteger(Int64.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int32.self {
            let value = try readInteger(Int32.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt64.self {
            let value = try readInteger(UInt64.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt.self {
            let value = try readInteger(UInt.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Float.self {
            let value = try readFloat(&p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt8.self {
            let value = try readInteger(UInt8.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt32.self {
            let value = try readInteger(UInt32.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int16.self {
            let value = try readInteger(Int16.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt16.self {
            let value = try readInteger(UInt16.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int8.self {
            let value = try readInteger(Int8.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == Int128.self {
            let value = try readInteger(Int128.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        } else if T.self == UInt128.self {
            let value = try readInteger(UInt128.self, &p)
            return (unsafeBitCast(value, to: T.self), p)
        }
        return try readChild(type, at: position, key: key, useHooks: true)
    }

    /// Decodes `T` through a hook or its `init(from:)`, in a new scope: containers opened by it
    /// are checked and dropped when it returns, and everything it counted is undone if it throws
    /// (a caller may catch the error and try something else).
    func readChild<T: Decodable>(
        _ type: T.Type, at position: Int, key: (any CodingKey)?, useHooks: Bool
    ) throws -> (T, Int) {
        if useHooks, ObjectIdentifier(T.self) != lastPlainType {
            if ObjectIdentifier(T.self) == lastFieldByFieldType, let fast = lastFieldByFieldMetatype {
                var end = 0
                do {
                    let value = try readFieldByField(fast, as: T.self, at: position, end: &end)
                    return (value, end)
                } catch {}  // not laid out field by field: decode through init(from:) below
            } else if let hook = T.self as? any BinaryDecodingHook.Type {
                let (value, end) = try hook.decodeBinary(from: self, at: position, key: key)
                guard let value = value as? T else {
                    throw corrupt("internal error: a decoding hook returned the wrong type", at: position)
                }
                return (value, end)
            } else if let fast = T.self as? any BinaryCodable.Type {
                lastFieldByFieldType = ObjectIdentifier(T.self)
                lastFieldByFieldMetatype = fast
                var end = 0
                do {
                    let value = try readFieldByField(fast, as: T.self, at: position, end: &end)
                    return (value, end)
                } catch {}  // not laid out field by field: decode through init(from:) below
            } else {
                lastPlainType = ObjectIdentifier(T.self)
            }
        }
        guard depth < maxDepth else {
            throw corrupt(
                "values are nested deeper than \(maxDepth) levels; raise BinaryCoder's maxDepth if that is expected",
                at: position
            )
        }
        let mark = frames.count
        let slotMark = slots.count
        let indexMark = index.count
        let pathMark = path.count
        let savedCount = fingerprintCount
        let savedSum = fingerprintSum
        if let key { path.append(key) }
        depth += 1
        defer {
            // `removeSubrange` is a generic replace even when nothing is removed: skip it then.
            if frames.count > mark { frames.removeSubrange(mark...) }
            if slots.count > slotMark { slots.removeSubrange(slotMark...) }
            if index.count > indexMark { index.removeSubrange(indexMark...) }
            if path.count > pathMark { path.removeSubrange(pathMark...) }
            depth -= 1
        }
        do {
            let decoder = BinaryDecoderImpl(reader: self, position: position, mark: mark, pathEnd: path.count)
            let value = try T(from: decoder)
            let end = try endOfValue(at: position, framesFrom: mark)
            var i = mark
            while i < frames.count {
                try verifyAllRead(i)
                i += 1
            }
            return (value, end)
        } catch {
            fingerprintCount = savedCount
            fingerprintSum = savedSum
            throw error
        }
    }

    /// Where the value at `position` ends: known from a container opened on it, or found by
    /// skipping it.
    func endOfValue(at position: Int, framesFrom mark: Int) throws -> Int {
        var i = frames.count - 1
        while i >= mark {
            if frames[i].valuePosition == position { return try end(of: i) }
            i -= 1
        }
        if lastSingleValue.position == position { return lastSingleValue.end }
        return try skipValue(position)
    }

    func end(of frameIndex: Int) throws -> Int {
        if frames[frameIndex].end >= 0 { return frames[frameIndex].end }
        let frame = frames[frameIndex]
        var p = frame.cursorPosition
        if frame.kind == .keyed {
            for _ in frame.cursorIndex..<frame.count {
                _ = try readToken(&p, fingerprinted: frame.fingerprinted)
                p = try skipValue(p)
            }
        } else {
            for _ in frame.cursorIndex..<frame.count {
                p = try skipValue(p)
            }
        }
        frames[frameIndex].end = p
        return p
    }

    // MARK: Finishing

    /// Checks the trailer after the top-level value: nothing but the 32-bit sum of the checks of
    /// the fingerprinted keys written may follow it, and the keys that read them must add up to
    /// the same sum.
    func verifyTrailer(at end: Int) throws {
        if hasDeferredError, let deferredError { throw deferredError }
        var p = end
        switch bytes.count - end {
        case 0:
            guard fingerprintCount == 0 else {
                throw corrupt("the trailer of fingerprinted keys is missing", at: end)
            }
            return
        case 4:
            let sum = try readFixed32(&p)
            guard sum == fingerprintSum else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: [],
                        debugDescription: "the field names the type read differ from the names that were written: "
                            + "the bytes were written by a different type, or the type changed"
                    )
                )
            }
        default:
            throw corrupt("\(bytes.count - end) unexpected bytes follow the value", at: end)
        }
    }

    /// Throws if a fingerprinted container has a fingerprinted entry that was never read: the
    /// type changed (a field was removed or renamed), or its `init(from:)` skips a key that its
    /// `encode(to:)` writes. Only fingerprinted entries must be read; named ones are exact.
    func verifyAllRead(_ frameIndex: Int) throws {
        let frame = frames[frameIndex]
        guard frame.kind == .keyed, frame.fingerprinted else { return }
        // Entries before the cursor were all read in order.
        var firstUnread = frame.cursorIndex
        if frame.indexBase >= 0 { firstUnread = 0 }
        for j in firstUnread..<frame.count where slots[frame.slotBase + j] & Self.matched == 0 {
            try buildIndex(frameIndex)
            var p = index[frames[frameIndex].indexBase + j]
            if case .fingerprint = try readToken(&p, fingerprinted: true) {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: pathPrefix(frame.pathEnd),
                        debugDescription: "field \(j + 1) of \(frame.count) of this container was written but not read: "
                            + "the type changed (a field was removed or renamed), or its init(from:) does not read "
                            + "every key its encode(to:) writes (BinaryCoder(keyEncoding: .named) tolerates that)"
                    )
                )
            }
        }
    }
}
