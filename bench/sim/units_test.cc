#include "bench/sim/units.h"

#include "gtest/gtest.h"

namespace shoal::sim {
namespace {

TEST(UnitsTest, ParsesBinaryAndDecimalSizes) {
  EXPECT_EQ(*ParseSize("4MiB"), 4u << 20);
  EXPECT_EQ(*ParseSize("2GiB"), 2ull << 30);
  EXPECT_EQ(*ParseSize("1.5GB"), 1500000000u);
  EXPECT_EQ(*ParseSize("1000"), 1000u);
}

TEST(UnitsTest, RejectsMalformedSizes) {
  EXPECT_FALSE(ParseSize("4 parsecs").ok());
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("0").ok());
  EXPECT_FALSE(ParseSize("-3MiB").ok());
}

TEST(UnitsTest, ParsesRatesInBitsAndBytes) {
  EXPECT_DOUBLE_EQ(*ParseRate("10Gb/s"), 1.25e9);
  EXPECT_DOUBLE_EQ(*ParseRate("40Gbps"), 5e9);
  EXPECT_DOUBLE_EQ(*ParseRate("20MB/s"), 20e6);
  EXPECT_DOUBLE_EQ(*ParseRate("1.25e9"), 1.25e9);
  EXPECT_DOUBLE_EQ(*ParseRate("0"), 0);
}

TEST(UnitsTest, RejectsMalformedRates) {
  EXPECT_FALSE(ParseRate("fast").ok());
  EXPECT_FALSE(ParseRate("10Gb").ok());
  EXPECT_FALSE(ParseRate("-1MB/s").ok());
}

TEST(UnitsTest, FormatsForReports) {
  EXPECT_EQ(FormatBytes(3 << 20), "3.00 MiB");
  EXPECT_EQ(FormatRate(1.25e9), "10.0 Gb/s");
}

}  // namespace
}  // namespace shoal::sim
