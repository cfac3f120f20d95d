/// Swift's collections keep their capacity when elements go: a table that once held
/// 10 000 tunnels would hold their memory for good. Tables that shrink at run time give
/// it back once they are three-quarters empty; the copy this costs is paid at most once
/// per halving, so it stays a constant per removal.
extension Dictionary {
    mutating func releaseSpareCapacity() {
        guard capacity > 64, count * 4 < capacity else { return }
        var compact = Dictionary(minimumCapacity: count)
        for (key, value) in self { compact[key] = value }
        self = compact
    }
}

extension Array {
    mutating func releaseSpareCapacity() {
        guard capacity > 64, count * 4 < capacity else { return }
        self = Array(unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = buffer.initialize(fromContentsOf: self)
        }
    }
}
