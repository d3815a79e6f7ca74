#include "common/hex.h"

#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(HexTest, RoundTripsAllByteValues) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  std::string hex = HexEncode(bytes);
  EXPECT_EQ(hex.substr(0, 8), "00010203");
  EXPECT_EQ(hex.substr(hex.size() - 4), "feff");
  auto decoded = HexDecode(hex);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, bytes);
}

TEST(HexTest, AcceptsUpperCase) {
  auto decoded = HexDecode("ABcd");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "\xab\xcd");
}

TEST(HexTest, RejectsOddLengthAndNonHex) {
  EXPECT_EQ(HexDecode("abc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HexDecode("zz").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal
