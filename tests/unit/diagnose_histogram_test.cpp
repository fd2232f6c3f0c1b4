#include <algorithm>
#include <initializer_list>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "diagnose/histogram.h"

namespace tcptrail::diagnose {
namespace {

using H = LogLinearHistogram;

TEST(DiagnoseHistogram, BucketsAreContiguousAndTight) {
  // Every bucket starts right after the previous one ends, and its width
  // is within the stated relative error of its low bound.
  for (std::size_t i = 1; i < H::kBuckets; ++i) {
    ASSERT_EQ(H::bucket_low(i), H::bucket_high(i - 1) + 1) << i;
    const double width = static_cast<double>(H::bucket_high(i) - H::bucket_low(i) + 1);
    if (H::bucket_low(i) >= H::kSubBuckets)
      ASSERT_LE(width / static_cast<double>(H::bucket_low(i)),
                1.0 / H::kSubBuckets + 1e-12);
  }
  EXPECT_EQ(H::bucket_high(H::kBuckets - 1), UINT64_MAX);
  for (std::uint64_t v : std::initializer_list<std::uint64_t>{0, 1, 63, 64, 65, 127, 128, 1000,
                          123456789, (1ULL << 40) + 12345, UINT64_MAX}) {
    const auto b = H::bucket_of(v);
    EXPECT_LE(H::bucket_low(b), v);
    EXPECT_GE(H::bucket_high(b), v);
  }
}

TEST(DiagnoseHistogram, SmallValuesAreExact) {
  H h;
  for (std::uint64_t v = 1; v <= 50; ++v)
    h.record(v);
  EXPECT_EQ(h.count(), 50u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 50u);
  EXPECT_EQ(h.percentile(0.5), 25u);
  EXPECT_EQ(h.percentile(0.9), 45u);
  EXPECT_EQ(h.percentile(0.99), 50u);
  EXPECT_EQ(h.percentile(1.0), 50u);
  EXPECT_EQ(h.percentile(0.0), 1u);
  EXPECT_EQ(h.sum(), 50u * 51u / 2u);
}

TEST(DiagnoseHistogram, EmptyIsZero) {
  H h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_TRUE(log2_buckets(h).empty());
  EXPECT_EQ(sparkline(h, true), "");
}

TEST(DiagnoseHistogram, PercentilesWithinStatedErrorOfExact) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(13.0, 2.0); // ~0.4ms median
  std::vector<std::uint64_t> values;
  H h;
  for (int i = 0; i < 100000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * values.size()));
    const double exact = static_cast<double>(values[rank - 1]);
    const double got = static_cast<double>(h.percentile(q));
    EXPECT_LE(std::abs(got - exact) / exact, H::kRelativeError + 1e-9)
        << "q=" << q << " exact=" << exact << " got=" << got;
  }
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
}

TEST(DiagnoseHistogram, MergeEqualsRecordingBoth) {
  H a, b, both;
  for (std::uint64_t v : {5ULL, 700ULL, 90000ULL}) {
    a.record(v);
    both.record(v);
  }
  for (std::uint64_t v : {3ULL, 1'000'000ULL}) {
    b.record(v, 2);
    both.record(v, 2);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), both.count());
  EXPECT_EQ(a.min(), 3u);
  EXPECT_EQ(a.max(), 1'000'000u);
  for (double q : {0.1, 0.5, 0.9})
    EXPECT_EQ(a.percentile(q), both.percentile(q));
}

TEST(DiagnoseHistogram, Log2BucketsAndSparkline) {
  H h;
  h.record(1000, 1);      // [512, 1023]
  h.record(3000, 8);      // [2048, 4095]
  h.record(5000, 4);      // [4096, 8191]
  const auto b = log2_buckets(h);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].low, 512u);
  EXPECT_EQ(b[0].high, 1023u);
  EXPECT_EQ(b[0].count, 1u);
  EXPECT_EQ(b[1].count, 0u); // [1024, 2047] empty, kept
  EXPECT_EQ(b[2].count, 8u);
  EXPECT_EQ(b[3].count, 4u);
  EXPECT_EQ(b[3].high, 8191u);
  EXPECT_EQ(sparkline(h, true), "\u2581 \u2588\u2584");
  EXPECT_EQ(sparkline(h, false), ". #=");
}

TEST(DiagnoseHistogram, FormatDuration) {
  EXPECT_EQ(format_duration(0), "0ns");
  EXPECT_EQ(format_duration(850), "850ns");
  EXPECT_EQ(format_duration(12'345), "12.3us");
  EXPECT_EQ(format_duration(4'560'000), "4.56ms");
  EXPECT_EQ(format_duration(1'230'000'000), "1.23s");
  EXPECT_EQ(format_duration(123'000'000'000ULL), "2m03s");
}

} // namespace
} // namespace tcptrail::diagnose
