import Synchronization

/// The state of one ``BinaryCoder`` encoding: a single growing byte buffer shared by every
/// encoder and container of the message, and a stack of open containers.
///
/// Containers are written in place, one after another. A container's header (its tag and entry
/// count) is patched when the container closes: when the value that owns it finishes encoding,
/// or when an enclosing container writes its next entry. Writing to a container after it closed
/// is reported as an error instead of corrupting the output.
final class BinaryWriter {
    struct Frame {
        enum Kind: UInt8 {
            /// Nothing requested yet.
            case pending
            case keyed
            case unkeyed
            /// A single value container was requested; nothing written yet.
            case single
            /// A single value was written.
            case singleDone
        }

        var kind: Kind
        let serial: Int
        /// `path.count` before this frame's key was pushed.
        let pathBase: Int
        /// `path.count` with this frame's key.
        let pathEnd: Int
        /// Where the records of this frame's entries start in ``BinaryWriter/records``.
        let recordBase: Int
        var headerPosition = 0
        var count = 0
        var fingerprinted = false
        var fingerprints = FingerprintSet()
        var fingerprintedEntries = 0
        var namedEntries = 0
        var collision = false

        init(kind: Kind, serial: Int, pathBase: Int, pathEnd: Int, recordBase: Int) {
            self.kind = kind
            self.serial = serial
            self.pathBase = pathBase
            self.pathEnd = pathEnd
            self.recordBase = recordBase
        }
    }

    /// A set of fingerprints (0..<256) in four words.
    struct FingerprintSet {
        var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0

        /// Inserts `fingerprint`; returns whether it was already there.
        @inline(__always)
        mutating func insert(_ fingerprint: UInt8) -> Bool {
            let bit: UInt64 = 1 << UInt64(fingerprint & 63)
            switch fingerprint >> 6 {
            case 0:
                defer { w0 |= bit }
                return w0 & bit != 0
            case 1:
                defer { w1 |= bit }
                return w1 & bit != 0
            case 2:
                defer { w2 |= bit }
                return w2 & bit != 0
            default:
                defer { w3 |= bit }
                return w3 & bit != 0
            }
        }
    }

    // The hot mutable state opts out of dynamic exclusivity checks, which otherwise cost about a
    // quarter of the encoding time. This is safe because a writer is confined to one synchronous
    // `BinaryCoder.encode` call on one thread, and no access to one of these properties is held
    // across a call that touches the same property (each access is a single statement).
    @exclusivity(unchecked) var bytes: [UInt8]
    @exclusivity(unchecked) var frames: [Frame] = []
    /// Two words per entry of an open fingerprinted container: `position << 1 | isFingerprint`
    /// and the key hash. Used to find duplicate keys and to re-salt fingerprints on collision.
    @exclusivity(unchecked) var records: [UInt64] = []
    /// Name ids of key names written so far.
    @exclusivity(unchecked) var names: [String: Int] = [:]
    @exclusivity(unchecked) var path: [any CodingKey] = []
    @exclusivity(unchecked) var fingerprintCount: UInt64 = 0
    @exclusivity(unchecked) var fingerprintSum: UInt32 = 0
    @exclusivity(unchecked) var nextSerial = 0
    /// The first error met where the `Encoder` API cannot throw (for example `nestedContainer`).
    var deferredError: EncodingError?
    /// Whether ``deferredError`` is set; cheaper to test than the optional.
    @exclusivity(unchecked) var hasDeferredError = false
    @exclusivity(unchecked) var fingerprintKeys: Bool
    @exclusivity(unchecked) var maxDepth: Int
    @exclusivity(unchecked) var sendableUserInfo: [CodingUserInfoKey: any Sendable]
    var userInfo: [CodingUserInfoKey: Any] { sendableUserInfo }
    @exclusivity(unchecked) private var probedKeyType: ObjectIdentifier?
    @exclusivity(unchecked) private var probedKeyTypeIsStatic = false
    /// The last type found not to be a ``BinaryEncodingHook``, to skip the dynamic cast.
    @exclusivity(unchecked) private var lastPlainType: ObjectIdentifier?
    /// Whether ``BinaryCodable`` values are written field by field (set by each encoding).
    @exclusivity(unchecked) var fieldByField = true
    /// The last ``BinaryCodable`` type encoded, to skip the dynamic casts.
    @exclusivity(unchecked) private var lastFieldByFieldType: ObjectIdentifier?
    @exclusivity(unchecked) private var lastFieldByFieldMetatype: (any BinaryCodable.Type)?

    private init(fingerprintKeys: Bool, maxDepth: Int, userInfo: [CodingUserInfoKey: any Sendable]) {
        self.fingerprintKeys = fingerprintKeys
        self.maxDepth = maxDepth
        self.sendableUserInfo = userInfo
        bytes = []
        start()
    }

    private func start() {
        bytes.reserveCapacity(128)
        bytes.append(BinaryFormat.version)
    }

    // MARK: Reuse

    /// One spare writer, so that consecutive encodings reuse its arrays instead of allocating
    /// them again. Ownership moves through the atomic exchange, so a writer is only ever used by
    /// one encoding at a time.
    /// The spare object's address (an `Unmanaged` +1 reference), or 0.
    private static let spare = Atomic<Int>(0)

    /// A writer ready for a new message: the spare one if there is one, else a new one.
    static func make(fingerprintKeys: Bool, maxDepth: Int, userInfo: [CodingUserInfoKey: any Sendable]) -> BinaryWriter {
        guard let spare = UnsafeMutableRawPointer(bitPattern: spare.exchange(0, ordering: .acquiring)) else {
            return BinaryWriter(fingerprintKeys: fingerprintKeys, maxDepth: maxDepth, userInfo: userInfo)
        }
        let writer = Unmanaged<BinaryWriter>.fromOpaque(spare).takeRetainedValue()
        writer.fingerprintKeys = fingerprintKeys
        writer.maxDepth = maxDepth
        writer.sendableUserInfo = userInfo
        writer.start()
        return writer
    }

    /// Offers a finished writer for reuse. It is kept only if nothing else references it (an
    /// encoder or container that a type kept past its `encode(to:)` must never see it reused)
    /// and if its arrays are small.
    static func recycle(_ writer: inout BinaryWriter) {
        guard isKnownUniquelyReferenced(&writer),
            writer.frames.capacity <= 256, writer.records.capacity <= 1024, writer.names.capacity <= 256,
            writer.path.capacity <= 256
        else { return }
        writer.bytes = []
        writer.frames.removeAll(keepingCapacity: true)
        writer.records.removeAll(keepingCapacity: true)
        writer.names.removeAll(keepingCapacity: true)
        writer.path.removeAll(keepingCapacity: true)
        writer.fingerprintCount = 0
        writer.fingerprintSum = 0
        writer.deferredError = nil
        writer.hasDeferredError = false
        writer.sendableUserInfo = [:]
        let pointer = Unmanaged.passRetained(writer).toOpaque()
        if !spare.compareExchange(expected: 0, desired: Int(bitPattern: pointer), ordering: .releasing).exchanged {
            Unmanaged<BinaryWriter>.fromOpaque(pointer).release()
        }
    }

    // MARK: Finishing

    /// Closes everything and, when any key was fingerprinted, appends the trailer: the 32-bit
    /// sum (little-endian) of the checks of every fingerprinted key.
    func finish() throws -> [UInt8] {
        try closeFrames(downTo: 0)
        if hasDeferredError, let deferredError { throw deferredError }
        if fingerprintCount > 0 {
            withUnsafeBytes(of: fingerprintSum.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    func codingPath(frame: Int, serial: Int) -> [any CodingKey] {
        guard frame >= 0, frame < frames.count, frames[frame].serial == serial else {
            return path
        }
        return Array(path[0..<min(frames[frame].pathEnd, path.count)])
    }

    func error(_ message: String, value: Any = (), path: [any CodingKey]? = nil) -> EncodingError {
        EncodingError.invalidValue(value, .init(codingPath: path ?? self.path, debugDescription: message))
    }

    func deferError(_ error: EncodingError) {
        if !hasDeferredError {
            deferredError = error
            hasDeferredError = true
        }
    }

    // MARK: Frames

    @inline(__always)
    func isTop(_ frame: Int, _ serial: Int) -> Bool {
        frame >= 0 && frames.count == frame &+ 1 && frames[frame].serial == serial
    }

    /// Makes `frame` the innermost open container again by closing the containers opened after
    /// it, or throws if `frame` itself was closed.
    func reopen(_ frame: Int, _ serial: Int) throws {
        guard frame >= 0, frame < frames.count, frames[frame].serial == serial else {
            if hasDeferredError, let deferredError { throw deferredError }
            throw error(
                "a container or encoder was used after the value it belongs to moved on; BinaryCoder writes "
                    + "containers in order, so fill a nested container (or use a super encoder) before writing the "
                    + "next value of its parent, or use JSONCoder"
            )
        }
        try closeFrames(downTo: frame + 1)
    }

    func pushFrame(key: (any CodingKey)?) throws -> (frame: Int, serial: Int) {
        guard frames.count < maxDepth else {
            throw error(
                "the value is nested deeper than \(maxDepth) levels (a reference cycle?); "
                    + "raise BinaryCoder's maxDepth if it really is this deep"
            )
        }
        let serial = nextSerial
        nextSerial &+= 1
        let base = path.count
        if let key { path.append(key) }
        frames.append(
            Frame(kind: .pending, serial: serial, pathBase: base, pathEnd: path.count, recordBase: records.count)
        )
        return (frames.count - 1, serial)
    }

    func closeFrames(downTo index: Int) throws {
        while frames.count > index {
            try closeTop()
        }
    }

    private func closeTop() throws {
        let top = frames.count - 1
        let frame = frames[top]
        switch frame.kind {
        case .pending:
            // The value encoded nothing: write an empty keyed container, as JSONEncoder writes {}.
            bytes.append(BinaryFormat.namedMapFix)
        case .keyed:
            if frame.fingerprinted && frame.fingerprintedEntries > 0 {
                try finishFingerprinted(frame)
            } else {
                writeHeader(
                    at: frame.headerPosition, count: frame.count,
                    fix: BinaryFormat.namedMapFix, long: BinaryFormat.namedMap, flags: nil
                )
            }
        case .unkeyed:
            writeHeader(
                at: frame.headerPosition, count: frame.count,
                fix: BinaryFormat.arrayFix, long: BinaryFormat.array, flags: nil
            )
        case .single:
            deferError(
                error(
                    "a single value container was requested but no value was encoded into it",
                    path: Array(path[0..<min(frame.pathEnd, path.count)])
                )
            )
            bytes.append(BinaryFormat.null)
        case .singleDone:
            break
        }
        records.removeSubrange(frame.recordBase...)
        path.removeSubrange(frame.pathBase...)
        frames.removeLast()
    }

    private func finishFingerprinted(_ frame: Frame) throws {
        var salt: UInt8 = 0
        if frame.collision {
            salt = try findSalt(frame)
        }
        let flags = salt | (frame.namedEntries > 0 ? BinaryFormat.hasNamedFlag : 0)
        if flags == 0 && frame.count <= 15 {
            bytes[frame.headerPosition] = BinaryFormat.fingerprintedMapFix | UInt8(frame.count)
        } else {
            writeHeader(
                at: frame.headerPosition, count: frame.count,
                fix: BinaryFormat.fingerprintedMapFix, long: BinaryFormat.fingerprintedMap, flags: flags
            )
        }
    }

    /// Finds a salt under which the fingerprints of this container's keys are distinct, and
    /// rewrites them in place.
    private func findSalt(_ frame: Frame) throws -> UInt8 {
        for salt in 1...BinaryFormat.maxSalt {
            var seen = FingerprintSet()
            var distinct = true
            var r = frame.recordBase
            while r < records.count {
                if records[r] & 1 == 1, seen.insert(BinaryFormat.fingerprint(records[r + 1], salt: salt)) {
                    distinct = false
                    break
                }
                r += 2
            }
            if distinct {
                var r = frame.recordBase
                while r < records.count {
                    if records[r] & 1 == 1 {
                        bytes[Int(records[r] >> 1)] = BinaryFormat.fingerprint(records[r + 1], salt: salt)
                    }
                    r += 2
                }
                return salt
            }
        }
        // With at most 24 fingerprinted keys the chance of getting here is below 10^-20.
        throw error(
            "could not give the \(frame.fingerprintedEntries) keys of a container distinct fingerprints; "
                + "use BinaryCoder(keyEncoding: .named) for this type",
            path: Array(path[0..<min(frame.pathEnd, path.count)])
        )
    }

    /// Writes a container header at `position`, where one placeholder byte was reserved.
    private func writeHeader(at position: Int, count: Int, fix: UInt8, long: UInt8, flags: UInt8?) {
        if count <= 15 && flags == nil {
            bytes[position] = fix | UInt8(count)
            return
        }
        bytes[position] = long
        var extra: [UInt8] = []
        extra.appendVarint(UInt64(count))
        if let flags { extra.append(flags) }
        bytes.insert(contentsOf: extra, at: position + 1)
    }

    // MARK: Opening containers

    /// Whether `Key` is a fixed set of keys (a `CodingKeys` enum) rather than keys made at run
    /// time (dictionary keys, a `struct DynamicKey`): only the former are fingerprinted, because
    /// only the latter need `allKeys` to give their names back.
    func keysAreStatic<Key: CodingKey>(_ type: Key.Type) -> Bool {
        let id = ObjectIdentifier(type)
        if id == probedKeyType { return probedKeyTypeIsStatic }
        // A small ASCII string, so that comparing it with each case name is cheap.
        let result = Key(stringValue: "\u{1}swift-cache") == nil
        probedKeyType = id
        probedKeyTypeIsStatic = result
        return result
    }

    /// Opens (or, for a second request on the same encoder, rejoins) a keyed container on
    /// `frame`. Returns nil, with a deferred error, when that is not possible.
    func openKeyed<Key: CodingKey>(
        _ frame: Int, _ serial: Int, _ type: Key.Type
    ) -> (fingerprinted: Bool, forceNamed: Bool)? {
        do {
            if !isTop(frame, serial) { try reopen(frame, serial) }
        } catch let error as EncodingError {
            deferError(error)
            return nil
        } catch {
            return nil
        }
        let fingerprint = fingerprintKeys && keysAreStatic(type)
        switch frames[frame].kind {
        case .pending:
            frames[frame].kind = .keyed
            frames[frame].fingerprinted = fingerprint
            frames[frame].headerPosition = bytes.count
            bytes.append(0)
            return (fingerprint, false)
        case .keyed:
            // A second keyed container on one encoder (a class and its superclass sharing the
            // encoder) adds to the same container. Keys of a run-time key type are named.
            let fingerprinted = frames[frame].fingerprinted
            return (fingerprinted && fingerprint, fingerprinted && !fingerprint)
        default:
            deferError(
                error(
                    "a keyed container was requested from an encoder that already encoded "
                        + (frames[frame].kind == .unkeyed ? "an unkeyed container" : "a single value")
                )
            )
            return nil
        }
    }

    func openUnkeyed(_ frame: Int, _ serial: Int) -> Bool {
        do {
            if !isTop(frame, serial) { try reopen(frame, serial) }
        } catch let error as EncodingError {
            deferError(error)
            return false
        } catch {
            return false
        }
        switch frames[frame].kind {
        case .pending:
            frames[frame].kind = .unkeyed
            frames[frame].headerPosition = bytes.count
            bytes.append(0)
            return true
        case .unkeyed:
            return true
        default:
            deferError(
                error(
                    "an unkeyed container was requested from an encoder that already encoded "
                        + (frames[frame].kind == .keyed ? "a keyed container" : "a single value")
                )
            )
            return false
        }
    }

    func openSingle(_ frame: Int, _ serial: Int) -> Bool {
        do {
            if !isTop(frame, serial) { try reopen(frame, serial) }
        } catch let error as EncodingError {
            deferError(error)
            return false
        } catch {
            return false
        }
        switch frames[frame].kind {
        case .pending:
            frames[frame].kind = .single
            return true
        case .single, .singleDone:
            return true
        default:
            deferError(error("a single value container was requested from an encoder that already encoded a container"))
            return false
        }
    }

    /// Called before a single value container writes its value.
    @inline(__always)
    func beginSingle(_ frame: Int, _ serial: Int) throws {
        if !isTop(frame, serial) { try reopen(frame, serial) }
        guard frames[frame].kind == .single else {
            throw error(
                frames[frame].kind == .singleDone
                    ? "a single value container was asked to encode a second value"
                    : "a single value container was used after its encoder encoded a container"
            )
        }
        frames[frame].kind = .singleDone
    }

    /// Called before an unkeyed container writes an element.
    @inline(__always)
    func beginElement(_ frame: Int, _ serial: Int) throws {
        if !isTop(frame, serial) { try reopen(frame, serial) }
        frames[frame].count &+= 1
    }

    /// Called before a keyed container writes an entry's value: writes the key token.
    @inline(__always)
    func beginEntry<Key: CodingKey>(_ key: Key, _ frame: Int, _ serial: Int, named: Bool) throws {
        if !isTop(frame, serial) { try reopen(frame, serial) }
        frames[frame].count &+= 1
        if frames[frame].fingerprinted {
            if !named && frames[frame].fingerprintedEntries < BinaryFormat.maxFingerprintedEntries {
                try writeFingerprint(key.stringValue, frame)
            } else {
                try noteNamedEntry(key.stringValue, frame)
                writeNameToken(key, inNamedContainer: false)
            }
        } else {
            writeNameToken(key, inNamedContainer: true)
        }
    }

    private func writeFingerprint(_ name: String, _ frame: Int) throws {
        let hash = BinaryFormat.keyHash(name)
        let fingerprint = BinaryFormat.fingerprint(hash, salt: 0)
        let seen = frames[frame].fingerprints.insert(fingerprint)
        if seen || frames[frame].namedEntries > 0 {
            try checkDuplicate(hash, name, frame)
            if seen { frames[frame].collision = true }
        }
        records.append(UInt64(bytes.count) << 1 | 1)
        records.append(hash)
        bytes.append(fingerprint)
        frames[frame].fingerprintedEntries &+= 1
        fingerprintCount &+= 1
        fingerprintSum &+= BinaryFormat.check(hash)
    }

    private func noteNamedEntry(_ name: String, _ frame: Int) throws {
        let hash = BinaryFormat.keyHash(name)
        try checkDuplicate(hash, name, frame)
        records.append(UInt64(bytes.count) << 1)
        records.append(hash)
        frames[frame].namedEntries &+= 1
    }

    private func checkDuplicate(_ hash: UInt64, _ name: String, _ frame: Int) throws {
        var r = frames[frame].recordBase
        while r < records.count {
            if records[r + 1] == hash {
                throw error("the key \"\(name)\" was encoded twice in the same keyed container")
            }
            r += 2
        }
    }

    private func writeNameToken<Key: CodingKey>(_ key: Key, inNamedContainer: Bool) {
        let name = key.stringValue
        if let int = key.intValue, name == String(int) {
            bytes.append(BinaryFormat.intKey)
            bytes.appendVarint(BinaryFormat.zigzag(Int64(int)))
            return
        }
        if let id = names[name] {
            if inNamedContainer && id < Int(BinaryFormat.tokenLimit) {
                bytes.append(UInt8(id))
            } else {
                bytes.append(BinaryFormat.nameReference)
                bytes.appendVarint(UInt64(id))
            }
        } else {
            names[name] = names.count
            bytes.append(BinaryFormat.newName)
            bytes.appendVarint(UInt64(name.utf8.count))
            bytes.append(contentsOf: name.utf8)
        }
    }

    // MARK: Values

    @inline(__always)
    func writeNil() {
        bytes.append(BinaryFormat.null)
    }

    @inline(__always)
    func writeBool(_ value: Bool) {
        bytes.append(value ? BinaryFormat.trueValue : BinaryFormat.falseValue)
    }

    /// A signed integer: small values in the tag, other non-negative values as an unsigned
    /// varint (the tag carries the sign, so no bit is spent on it), negative ones as a zigzag varint.
    @inline(__always)
    func writeSigned(_ value: Int64) {
        if value >= 0 {
            writeUnsigned(UInt64(value))
        } else if value >= -32 {
            bytes.append(UInt8(truncatingIfNeeded: value))
        } else {
            bytes.append(BinaryFormat.signed)
            bytes.appendVarint(BinaryFormat.zigzag(value))
        }
    }

    @inline(__always)
    func writeUnsigned(_ value: UInt64) {
        if value <= 127 {
            bytes.append(UInt8(truncatingIfNeeded: value))
        } else {
            bytes.append(BinaryFormat.unsigned)
            bytes.appendVarint(value)
        }
    }

    func writeInt128(_ value: Int128) {
        if let small = Int64(exactly: value) {
            writeSigned(small)
        } else if value > 0 {
            writeUInt128(UInt128(value))
        } else {
            bytes.append(BinaryFormat.signed)
            bytes.appendVarint128(BinaryFormat.zigzag128(value))
        }
    }

    func writeUInt128(_ value: UInt128) {
        if let small = UInt64(exactly: value) {
            writeUnsigned(small)
        } else {
            bytes.append(BinaryFormat.unsigned)
            bytes.appendVarint128(value)
        }
    }

    /// A `Double` in the smallest exact form: a short decimal (`97.25`, `0.1`, `3.0`), a
    /// `Float`, or all 64 bits.
    @inline(__always)
    func writeDouble(_ value: Double) {
        let narrow = Float(value)
        let fitsFloat = Double(narrow).bitPattern == value.bitPattern
        if let (mantissa, exponent) = BinaryFormat.shortDecimal(value) {
            let packed = BinaryFormat.zigzag(mantissa) << 4 | UInt64(exponent)
            if !fitsFloat || BinaryFormat.varintSize(packed) < 4 {
                bytes.append(BinaryFormat.decimal)
                bytes.appendVarint(packed)
                return
            }
        }
        if fitsFloat {
            writeFloat(narrow)
        } else {
            bytes.append(BinaryFormat.float64)
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
    }

    @inline(__always)
    func writeFloat(_ value: Float) {
        bytes.append(BinaryFormat.float32)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    func writeString(_ value: String) {
        let utf8 = value.utf8
        let count = utf8.count
        if count <= BinaryFormat.fixStringMaxLength {
            bytes.append(BinaryFormat.fixString + UInt8(truncatingIfNeeded: count))
        } else {
            bytes.append(BinaryFormat.string)
            bytes.appendVarint(UInt64(count))
        }
        bytes.append(contentsOf: utf8)
    }

    func writeBytes<C: Collection>(_ value: C) where C.Element == UInt8 {
        bytes.append(BinaryFormat.bytes)
        bytes.appendVarint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// Writes any value: primitives directly, a few types (optionals, byte arrays, dictionaries
    /// with sortable keys) through ``BinaryEncodingHook``, everything else through its
    /// `encode(to:)` with a child encoder.
    func writeValue<T: Encodable>(_ value: T, key: (any CodingKey)?) throws {
        if T.self == String.self {
            writeString(unsafeBitCast(value, to: String.self))
        } else if T.self == Int.self {
            writeSigned(Int64(unsafeBitCast(value, to: Int.self)))
        } else if T.self == Double.self {
            writeDouble(unsafeBitCast(value, to: Double.self))
        } else if T.self == Bool.self {
            writeBool(unsafeBitCast(value, to: Bool.self))
        } else if T.self == Int64.self {
            writeSigned(unsafeBitCast(value, to: Int64.self))
        } else if T.self == Int32.self {
            writeSigned(Int64(unsafeBitCast(value, to: Int32.self)))
        } else if T.self == UInt64.self {
            writeUnsigned(unsafeBitCast(value, to: UInt64.self))
        } else if T.self == UInt.self {
            writeUnsigned(UInt64(unsafeBitCast(value, to: UInt.self)))
        } else if T.self == Float.self {
            writeFloat(unsafeBitCast(value, to: Float.self))
        } else if T.self == UInt8.self {
            writeUnsigned(UInt64(unsafeBitCast(value, to: UInt8.self)))
        } else if T.self == UInt32.self {
            writeUnsigned(UInt64(unsafeBitCast(value, to: UInt32.self)))
        } else if T.self == Int16.self {
            writeSigned(Int64(unsafeBitCast(value, to: Int16.self)))
        } else if T.self == UInt16.self {
            writeUnsigned(UInt64(unsafeBitCast(value, to: UInt16.self)))
        } else if T.self == Int8.self {
            writeSigned(Int64(unsafeBitCast(value, to: Int8.self)))
        } else if T.self == Int128.self {
            writeInt128(unsafeBitCast(value, to: Int128.self))
        } else if T.self == UInt128.self {
            writeUInt128(unsafeBitCast(value, to: UInt128.self))
        } else if ObjectIdentifier(T.self) == lastPlainType {
            try writeChild(value, key: key)
        } else if ObjectIdentifier(T.self) == lastFieldByFieldType, let fast = lastFieldByFieldMetatype {
            if try !writeFieldByField(fast, value) { try writeChild(value, key: key) }
        } else if let hook = value as? any BinaryEncodingHook {
            try hook.encodeBinary(into: self, key: key)
        } else if let fast = T.self as? any BinaryCodable.Type {
            lastFieldByFieldType = ObjectIdentifier(T.self)
            lastFieldByFieldMetatype = fast
            if try !writeFieldByField(fast, value) { try writeChild(value, key: key) }
        } else {
            lastPlainType = ObjectIdentifier(T.self)
            try writeChild(value, key: key)
        }
    }

    /// Encodes `value` through its own `encode(to:)`, in a new frame.
    func writeChild<T: Encodable>(_ value: T, key: (any CodingKey)?) throws {
        let (frame, serial) = try pushFrame(key: key)
        try value.encode(to: BinaryEncoderImpl(writer: self, frame: frame, serial: serial))
        try closeFrames(downTo: frame)
    }
}

/// Types that ``BinaryWriter`` encodes specially: optionals (so that `.some(nil)` survives),
/// byte arrays as blobs, dictionaries and sets in a sorted, deterministic order.
protocol BinaryEncodingHook {
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws
}

extension Optional: BinaryEncodingHook where Wrapped: Encodable {
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        switch self {
        case .none:
            writer.writeNil()
        case .some(let wrapped):
            writer.bytes.append(BinaryFormat.some)
            try writer.writeValue(wrapped, key: key)
        }
    }
}

extension Array: BinaryEncodingHook where Element: Encodable {
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        if Element.self == UInt8.self {
            writer.writeBytes(unsafeBitCast(self, to: [UInt8].self))
        } else {
            try writer.writeChild(self, key: key)
        }
    }
}

extension ContiguousArray: BinaryEncodingHook where Element: Encodable {
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        if Element.self == UInt8.self {
            writer.writeBytes(unsafeBitCast(self, to: ContiguousArray<UInt8>.self))
        } else {
            try writer.writeChild(self, key: key)
        }
    }
}

/// Encodes dictionary entries in the given (sorted) order, as `Dictionary.encode(to:)` would
/// for the same keys.
private struct SortedDictionaryEntries<Value: Encodable>: Encodable {
    let entries: [(key: BinaryCodingKey, value: Value)]

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: BinaryCodingKey.self)
        for entry in entries {
            try container.encode(entry.value, forKey: entry.key)
        }
    }
}

extension Dictionary: BinaryEncodingHook where Key: Encodable, Value: Encodable {
    /// Swift randomizes dictionary order per process; sort the keys so that equal dictionaries
    /// give equal bytes. String keys sort by `String` `<`, integer keys numerically, and
    /// `CodingKeyRepresentable` keys by their `stringValue`. Other keys keep the dictionary's order.
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        if Key.self == String.self {
            let entries = self.map { (key: unsafeBitCast($0.key, to: String.self), value: $0.value) }
                .sorted { $0.key < $1.key }
                .map { (key: BinaryCodingKey(stringValue: $0.key), value: $0.value) }
            try writer.writeChild(SortedDictionaryEntries(entries: entries), key: key)
        } else if Key.self == Int.self {
            let entries = self.map { (key: unsafeBitCast($0.key, to: Int.self), value: $0.value) }
                .sorted { $0.key < $1.key }
                .map { (key: BinaryCodingKey(intValue: $0.key), value: $0.value) }
            try writer.writeChild(SortedDictionaryEntries(entries: entries), key: key)
        } else if Key.self is any CodingKeyRepresentable.Type {
            var entries: [(key: BinaryCodingKey, value: Value)] = []
            entries.reserveCapacity(count)
            for (k, v) in self {
                guard let representable = k as? any CodingKeyRepresentable else {
                    return try writer.writeChild(self, key: key)
                }
                let codingKey = representable.codingKey
                entries.append(
                    (key: BinaryCodingKey(stringValue: codingKey.stringValue, intValue: codingKey.intValue), value: v)
                )
            }
            entries.sort { $0.key.stringValue < $1.key.stringValue }
            try writer.writeChild(SortedDictionaryEntries(entries: entries), key: key)
        } else {
            try writer.writeChild(self, key: key)
        }
    }
}

extension Set: BinaryEncodingHook where Element: Encodable {
    /// Sets of strings and integers are written sorted, so that equal sets give equal bytes.
    func encodeBinary(into writer: BinaryWriter, key: (any CodingKey)?) throws {
        if Element.self == String.self {
            try writer.writeChild(self.map { unsafeBitCast($0, to: String.self) }.sorted(), key: key)
        } else if Element.self == Int.self {
            try writer.writeChild(self.map { unsafeBitCast($0, to: Int.self) }.sorted(), key: key)
        } else {
            try writer.writeChild(self, key: key)
        }
    }
}
