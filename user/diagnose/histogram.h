// Bounded latency distributions for `diagnose`: a log-linear histogram in
// the manner of HdrHistogram, and the compact text rendering of it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace tcptrail::diagnose {

// Values (ns) are counted in buckets: exact below kSubBuckets, then every
// power of two [2^e, 2^(e+1)) is split into kSubBuckets equal parts. A
// percentile is reported as the midpoint of its bucket (clamped to the
// exact min/max), so its relative error is at most 1 / (2 * kSubBuckets)
// = 0.78 %. count, min, max and sum are exact. Memory is fixed (~30 KiB).
class LogLinearHistogram {
public:
  static constexpr unsigned kSubBits = 6;
  static constexpr std::uint64_t kSubBuckets = 1ULL << kSubBits; // 64
  static constexpr std::size_t kBuckets =
      kSubBuckets + (64 - kSubBits) * kSubBuckets;
  // Documented precision of percentile(): relative error bound.
  static constexpr double kRelativeError = 1.0 / (2.0 * kSubBuckets);

  void record(std::uint64_t value, std::uint64_t n = 1);
  void merge(const LogLinearHistogram &other);

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  // Sum saturates at UINT64_MAX (584 years in ns).
  std::uint64_t sum() const { return sum_; }
  std::uint64_t mean() const { return count_ ? sum_ / count_ : 0; }

  // The value at quantile q in [0, 1] (nearest rank: the smallest value v
  // such that at least ceil(q * count) values are <= v). 0 when empty;
  // q >= 1 gives max(), q <= 0 gives min().
  std::uint64_t percentile(double q) const;

  // Counts per power of two: index e holds values in [2^e, 2^(e+1)),
  // index 0 also holds 0.
  std::array<std::uint64_t, 64> log2_counts() const;

  // Bucket arithmetic, public for tests.
  static std::size_t bucket_of(std::uint64_t value);
  static std::uint64_t bucket_low(std::size_t index);
  static std::uint64_t bucket_high(std::size_t index); // inclusive

private:
  std::vector<std::uint64_t> buckets_ = std::vector<std::uint64_t>(kBuckets);
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t sum_ = 0;
};

// One log2 bucket of a compact histogram.
struct Log2Bucket {
  std::uint64_t low = 0;  // 2^e (0 for the first bucket)
  std::uint64_t high = 0; // 2^(e+1) - 1
  std::uint64_t count = 0;
};

// The log2 buckets from the lowest to the highest non-empty one (empty
// buckets between them included). Empty when the histogram is.
std::vector<Log2Bucket> log2_buckets(const LogLinearHistogram &h);

// One line, one character per log2 bucket of log2_buckets(): its height
// relative to the largest bucket, as block characters (U+2581..U+2588) or,
// with ascii, from ".:-=+*#" ('#' the tallest). An empty bucket is a
// space, a non-empty one is never drawn empty.
std::string sparkline(const LogLinearHistogram &h, bool unicode);

// "0ns", "850ns", "12.3us", "4.56ms", "1.23s", "2m03s".
std::string format_duration(std::uint64_t ns);

} // namespace tcptrail::diagnose
