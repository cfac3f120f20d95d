/// Reads a fuzzer input front to back: fixed-width fields, then byte ranges.
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ data: UnsafePointer<UInt8>?, _ count: Int) {
        bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : count)
    }

    public var remaining: Int { bytes.count - offset }

    /// A little-endian integer, or `nil` when the input has fewer bytes left.
    public mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard remaining >= MemoryLayout<T>.size, let base = bytes.baseAddress else { return nil }
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The next `count` bytes, or all that is left when fewer remain.
    public mutating func bytes(upTo count: Int) -> [UInt8] {
        let n = min(count, remaining)
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] { bytes(upTo: remaining) }
}

/// Runs `body` on a heap buffer holding exactly `bytes` after `headroom` spare bytes, so
/// that AddressSanitizer reports any access outside it. The pointer is to the first of
/// `bytes`.
public func withExactBuffer<R>(_ bytes: [UInt8], headroom: Int = 0, _ body: (UnsafeMutableRawPointer, Int) -> R) -> R {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(headroom + bytes.count, 1), alignment: 1)
    defer { buffer.deallocate() }
    bytes.withUnsafeBytes { if let base = $0.baseAddress { (buffer + headroom).copyMemory(from: base, byteCount: bytes.count) } }
    return body(buffer + headroom, bytes.count)
}

/// The bytes at `pointer`.
public func bytesAt(_ pointer: UnsafeRawPointer, count: Int) -> [UInt8] {
    Array(UnsafeRawBufferPointer(start: pointer, count: count))
}

/// Stops the run with a message when an invariant does not hold: libFuzzer keeps the
/// input as a crash.
public func expect(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                   file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError(message(), file: file, line: line) }
}
