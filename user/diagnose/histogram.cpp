#include "diagnose/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include <fmt/format.h>

namespace tcptrail::diagnose {

std::size_t LogLinearHistogram::bucket_of(std::uint64_t value) {
  if (value < kSubBuckets)
    return static_cast<std::size_t>(value);
  const unsigned e = 63U - static_cast<unsigned>(std::countl_zero(value));
  const unsigned shift = e - kSubBits;
  const std::uint64_t mantissa = value >> shift; // [kSubBuckets, 2*kSubBuckets)
  return static_cast<std::size_t>(kSubBuckets + shift * kSubBuckets +
                                  (mantissa - kSubBuckets));
}

std::uint64_t LogLinearHistogram::bucket_low(std::size_t index) {
  if (index < kSubBuckets)
    return index;
  const std::uint64_t shift = (index - kSubBuckets) / kSubBuckets;
  const std::uint64_t mantissa = kSubBuckets + (index - kSubBuckets) % kSubBuckets;
  return mantissa << shift;
}

std::uint64_t LogLinearHistogram::bucket_high(std::size_t index) {
  if (index < kSubBuckets)
    return index;
  const std::uint64_t shift = (index - kSubBuckets) / kSubBuckets;
  return bucket_low(index) + ((std::uint64_t{1} << shift) - 1);
}

void LogLinearHistogram::record(std::uint64_t value, std::uint64_t n) {
  if (n == 0)
    return;
  buckets_[bucket_of(value)] += n;
  if (count_ == 0 || value < min_)
    min_ = value;
  if (value > max_)
    max_ = value;
  count_ += n;
  const long double add = static_cast<long double>(value) * n;
  if (add >= static_cast<long double>(UINT64_MAX - sum_))
    sum_ = UINT64_MAX;
  else
    sum_ += value * n;
}

void LogLinearHistogram::merge(const LogLinearHistogram &o) {
  if (o.count_ == 0)
    return;
  for (std::size_t i = 0; i < kBuckets; ++i)
    buckets_[i] += o.buckets_[i];
  if (count_ == 0 || o.min_ < min_)
    min_ = o.min_;
  max_ = std::max(max_, o.max_);
  count_ += o.count_;
  sum_ = (UINT64_MAX - sum_ < o.sum_) ? UINT64_MAX : sum_ + o.sum_;
}

std::uint64_t LogLinearHistogram::percentile(double q) const {
  if (count_ == 0)
    return 0;
  if (q <= 0)
    return min_;
  if (q >= 1)
    return max_;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      const std::uint64_t lo = bucket_low(i), hi = bucket_high(i);
      const std::uint64_t mid = lo + (hi - lo) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

std::array<std::uint64_t, 64> LogLinearHistogram::log2_counts() const {
  std::array<std::uint64_t, 64> out{};
  for (std::size_t i = 0; i < kBuckets; ++i) {
    if (!buckets_[i])
      continue;
    const std::uint64_t lo = bucket_low(i);
    const unsigned e =
        lo == 0 ? 0U : 63U - static_cast<unsigned>(std::countl_zero(lo));
    out[e] += buckets_[i];
  }
  return out;
}

std::vector<Log2Bucket> log2_buckets(const LogLinearHistogram &h) {
  std::vector<Log2Bucket> out;
  if (h.count() == 0)
    return out;
  const auto counts = h.log2_counts();
  std::size_t first = 64, last = 0;
  for (std::size_t e = 0; e < 64; ++e) {
    if (!counts[e])
      continue;
    first = std::min(first, e);
    last = e;
  }
  for (std::size_t e = first; e <= last; ++e) {
    Log2Bucket b;
    b.low = e == 0 ? 0 : (std::uint64_t{1} << e);
    b.high = e == 63 ? UINT64_MAX : (std::uint64_t{1} << (e + 1)) - 1;
    b.count = counts[e];
    out.push_back(b);
  }
  return out;
}

std::string sparkline(const LogLinearHistogram &h, bool unicode) {
  static constexpr const char *kBlocks[] = {"\u2581", "\u2582", "\u2583",
                                            "\u2584", "\u2585", "\u2586",
                                            "\u2587", "\u2588"};
  static constexpr char kAscii[] = ".:-=+*#";
  const auto buckets = log2_buckets(h);
  std::uint64_t peak = 0;
  for (const auto &b : buckets)
    peak = std::max(peak, b.count);
  if (peak == 0) // no samples: no bars
    return std::string(buckets.size(), ' ');
  std::string out;
  for (const auto &b : buckets) {
    if (b.count == 0) {
      out += ' ';
      continue;
    }
    const std::size_t levels = unicode ? 8 : 7;
    // ceil(count / peak * levels), at least 1.
    std::size_t level = static_cast<std::size_t>(
        (static_cast<unsigned __int128>(b.count) * levels + peak - 1) / peak);
    level = std::clamp<std::size_t>(level, 1, levels);
    if (unicode)
      out += kBlocks[level - 1];
    else
      out += kAscii[level - 1];
  }
  return out;
}

std::string format_duration(std::uint64_t ns) {
  if (ns < 1'000)
    return fmt::format("{}ns", ns);
  auto scaled = [](double v, const char *unit) {
    if (v < 10)
      return fmt::format("{:.2f}{}", v, unit);
    if (v < 100)
      return fmt::format("{:.1f}{}", v, unit);
    return fmt::format("{:.0f}{}", v, unit);
  };
  if (ns < 1'000'000)
    return scaled(ns / 1e3, "us");
  if (ns < 1'000'000'000)
    return scaled(ns / 1e6, "ms");
  if (ns < 60'000'000'000ULL)
    return scaled(ns / 1e9, "s");
  const std::uint64_t s = ns / 1'000'000'000ULL;
  if (s < 3600)
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
}

} // namespace tcptrail::diagnose
