import Atomics

/// How long one worker's buffered packets waited, from the miss to the flush: the
/// first-packet delay that resolving ahead of traffic keeps small. Log-linear buckets (four
/// per power of two, so a percentile, read at its bucket's middle, is within 12.5 % of the
/// truth), written by the worker alone and read by telemetry. Values are microseconds.
public struct DelayHistogram: @unchecked Sendable {
    public static let bucketCount = 4 * 40
    @usableFromInline let words: UnsafeMutablePointer<AtomicWord>

    /// The last word holds the maximum.
    public static func allocate() -> DelayHistogram {
        let words = UnsafeMutablePointer<AtomicWord>.allocate(capacity: bucketCount + 1)
        words.initialize(repeating: AtomicWord(0), count: bucketCount + 1)
        return DelayHistogram(words: words)
    }

    public func deallocate() { words.deallocate() }

    static func bucket(of value: UInt64) -> Int {
        guard value >= 4 else { return Int(value) }
        let octave = 63 - value.leadingZeroBitCount
        let subBucket = Int(value >> UInt64(octave - 2)) & 3
        return min(bucketCount - 1, (octave - 1) * 4 + subBucket)
    }

    /// The smallest value that falls into `bucket`.
    static func lowerBound(of bucket: Int) -> UInt64 {
        guard bucket >= 4 else { return UInt64(bucket) }
        let octave = bucket / 4 + 1
        return UInt64(4 | bucket % 4) << UInt64(octave - 2)
    }

    public func record(_ microseconds: UInt64) {
        let b = Self.bucket(of: microseconds)
        let n = AtomicWord.atomicLoad(at: words + b, ordering: .relaxed)
        AtomicWord.atomicStore(n &+ 1, at: words + b, ordering: .relaxed)
        let maxPointer = words + Self.bucketCount
        if microseconds > AtomicWord.atomicLoad(at: maxPointer, ordering: .relaxed) {
            AtomicWord.atomicStore(microseconds, at: maxPointer, ordering: .relaxed)
        }
    }

    /// Sums several workers' histograms into a summary.
    public static func summary(of histograms: [DelayHistogram]) -> DelaySummary {
        var counts = [UInt64](repeating: 0, count: bucketCount)
        var maximum: UInt64 = 0
        for h in histograms {
            for b in 0..<bucketCount { counts[b] &+= AtomicWord.atomicLoad(at: h.words + b, ordering: .relaxed) }
            maximum = max(maximum, AtomicWord.atomicLoad(at: h.words + bucketCount, ordering: .relaxed))
        }
        return DelaySummary(counts: counts, max: maximum)
    }
}

public struct DelaySummary: Sendable, Equatable {
    public let count: UInt64
    public let p50: UInt64
    public let p99: UInt64
    public let max: UInt64

    init(counts: [UInt64], max: UInt64) {
        let total = counts.reduce(0, &+)
        count = total
        self.max = max
        p50 = Self.percentile(50, counts: counts, total: total, max: max)
        p99 = Self.percentile(99, counts: counts, total: total, max: max)
    }

    private static func percentile(_ p: UInt64, counts: [UInt64], total: UInt64, max: UInt64) -> UInt64 {
        guard total > 0 else { return 0 }
        let rank = (total * p + 99) / 100
        var seen: UInt64 = 0
        for (b, n) in counts.enumerated() {
            seen += n
            // The bucket's middle (within 12.5 % of any value in it; its upper end could be
            // 25 % above its lower one), capped by the true maximum.
            if seen >= rank {
                let low = DelayHistogram.lowerBound(of: b), high = DelayHistogram.lowerBound(of: b + 1) &- 1
                return Swift.min(max, low + (high - low) / 2)
            }
        }
        return max
    }
}
