import Foundation
import XCTest
@testable import TunnelCore

final class PendingDelayHistogramTests: XCTestCase {
    /// Values around every power of two up to 2^45, plus a dense run of small ones.
    var probeValues: [UInt64] {
        var values = Array(UInt64(0)...300)
        for shift in 2...45 {
            let p = UInt64(1) << UInt64(shift)
            values += [p - 1, p, p + 1, p + p / 4 - 1, p + p / 4, p + p / 2, p + 3 * p / 4, 2 * p - 1]
        }
        return values.sorted()
    }

    func testBucketsAreMonotoneAndConsistentWithTheirLowerBounds() {
        var previous = 0
        for v in probeValues {
            let b = DelayHistogram.bucket(of: v)
            XCTAssertGreaterThanOrEqual(b, previous, "bucket(\(v))")
            XCTAssertTrue((0..<DelayHistogram.bucketCount).contains(b))
            previous = b
            XCTAssertLessThanOrEqual(DelayHistogram.lowerBound(of: b), v, "lowerBound(bucket(\(v)))")
            if b < DelayHistogram.bucketCount - 1 {
                XCTAssertGreaterThan(DelayHistogram.lowerBound(of: b + 1), v, "\(v) belongs below bucket \(b + 1)")
            }
        }
        for b in 0..<DelayHistogram.bucketCount {
            XCTAssertEqual(DelayHistogram.bucket(of: DelayHistogram.lowerBound(of: b)), b)
            XCTAssertLessThan(DelayHistogram.lowerBound(of: b), DelayHistogram.lowerBound(of: b + 1))
        }
        // Small values are exact; above that, four buckets per power of two.
        for v in UInt64(0)..<8 { XCTAssertEqual(DelayHistogram.lowerBound(of: DelayHistogram.bucket(of: v)), v) }
        XCTAssertEqual(DelayHistogram.bucket(of: 1024) + 4, DelayHistogram.bucket(of: 2048))
        XCTAssertEqual(DelayHistogram.bucket(of: .max), DelayHistogram.bucketCount - 1)
    }

    func testBucketWidthIsAtMostAQuarterOfItsLowerBound() {
        for b in 4..<(DelayHistogram.bucketCount - 1) {
            let low = DelayHistogram.lowerBound(of: b)
            let width = DelayHistogram.lowerBound(of: b + 1) - low
            XCTAssertLessThanOrEqual(width * 4, low, "bucket \(b)")
        }
    }

    func summary(_ values: [UInt64], workers: Int = 1) -> DelaySummary {
        let hs = (0..<workers).map { _ in DelayHistogram.allocate() }
        defer { hs.forEach { $0.deallocate() } }
        for (i, v) in values.enumerated() { hs[i % workers].record(v) }
        return DelayHistogram.summary(of: hs)
    }

    func exactPercentile(_ p: Int, _ values: [UInt64]) -> UInt64 {
        let sorted = values.sorted()
        let rank = (sorted.count * p + 99) / 100
        return sorted[rank - 1]
    }

    func assertWithin19Percent(_ estimate: UInt64, _ truth: UInt64, _ what: String, line: UInt = #line) {
        let error = abs(Double(estimate) - Double(truth)) / Double(max(truth, 1))
        XCTAssertLessThanOrEqual(error, 0.19, "\(what): \(estimate) vs \(truth)", line: line)
    }

    func check(_ values: [UInt64], _ name: String, workers: Int = 1, line: UInt = #line) {
        let s = summary(values, workers: workers)
        XCTAssertEqual(s.count, UInt64(values.count), name, line: line)
        XCTAssertEqual(s.max, values.max(), name, line: line)
        assertWithin19Percent(s.p50, exactPercentile(50, values), "\(name) p50", line: line)
        assertWithin19Percent(s.p99, exactPercentile(99, values), "\(name) p99", line: line)
        XCTAssertLessThanOrEqual(s.p50, s.p99, name, line: line)
        XCTAssertLessThanOrEqual(s.p99, s.max, name, line: line)
    }

    func testEmpty() {
        XCTAssertEqual(summary([]), summary([]))
        let s = summary([])
        XCTAssertEqual([s.count, s.p50, s.p99, s.max], [0, 0, 0, 0])
    }

    func testKnownDistributions() {
        check([1234], "single value")
        check(Array(repeating: 777, count: 1000), "constant")
        check(Array(UInt64(1)...10_000), "uniform 1…10000")
        check(Array(UInt64(0)...3), "tiny exact values")
        var rng = SplitMix(seed: 7)
        check((0..<20_000).map { _ in 50 + rng.next() % 5000 }, "random uniform", workers: 3)
        // Exponential-ish: many short waits, a long tail.
        check((0..<10_000).map { i in UInt64(100 * pow(1.001, Double(i))) }, "geometric")
        // Percentiles that fall right at the start of a bucket, the widest one relative to its
        // values: 1024 lies in [1024, 1280).
        check(Array(repeating: 1024, count: 60) + Array(repeating: 100_000, count: 40), "p50 on a bucket's lower edge")
        check(Array(repeating: 10, count: 98) + Array(repeating: 4096, count: 2) + [1_000_000], "p99 on a bucket's lower edge")
        // Milliseconds of first-packet delay, in microseconds.
        check((0..<1000).map { UInt64(1_000 + $0 * 3_000) }, "ms range")
    }

    func testMaximumIsExactAndSummedAcrossWorkers() {
        let h1 = DelayHistogram.allocate()
        let h2 = DelayHistogram.allocate()
        defer { h1.deallocate(); h2.deallocate() }
        h1.record(5)
        h1.record(90)
        h2.record(12_345)
        h2.record(7)
        let s = DelayHistogram.summary(of: [h1, h2])
        XCTAssertEqual(s.count, 4)
        XCTAssertEqual(s.max, 12_345)
        XCTAssertEqual(DelayHistogram.summary(of: [h1]).max, 90)
        XCTAssertEqual(DelayHistogram.summary(of: []).count, 0)
    }
}
