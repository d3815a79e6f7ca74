#include "common/sha256.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

// Test vectors from FIPS 180-2, appendix B.
constexpr char kEmptyHex[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbcHex[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kTwoBlockMessage[] =
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr char kTwoBlockHex[] =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr char kMillionAHex[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256Test, EmptyMessageMatchesFipsVector) {
  EXPECT_EQ(DigestToHex(Sha256("")), kEmptyHex);
}

TEST(Sha256Test, AbcMatchesFipsVector) {
  EXPECT_EQ(DigestToHex(Sha256("abc")), kAbcHex);
}

TEST(Sha256Test, TwoBlockMessageMatchesFipsVector) {
  EXPECT_EQ(DigestToHex(Sha256(kTwoBlockMessage)), kTwoBlockHex);
}

TEST(Sha256Test, MillionAsMatchesFipsVector) {
  EXPECT_EQ(DigestToHex(Sha256(std::string(1000000, 'a'))), kMillionAHex);
}

TEST(Sha256Test, PairHashesTheConcatenation) {
  const Digest left = Sha256("left");
  const Digest right = Sha256("right");
  const std::string both =
      std::string(DigestBytes(left)) + std::string(DigestBytes(right));
  EXPECT_EQ(Sha256Pair(left, right), Sha256(both));
}

TEST(Sha256Test, PairIsOrderSensitive) {
  const Digest a = Sha256("a");
  const Digest b = Sha256("b");
  EXPECT_NE(Sha256Pair(a, b), Sha256Pair(b, a));
}

TEST(Sha256HasherTest, SplitUpdatesMatchOneShot) {
  Sha256Hasher hasher;
  hasher.Update("abcdbcdecdefdefgefgh");
  hasher.Update("");
  hasher.Update("fghighijhijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(DigestToHex(hasher.Finish()), kTwoBlockHex);
}

TEST(Sha256HasherTest, NoUpdatesGivesEmptyDigest) {
  Sha256Hasher hasher;
  EXPECT_EQ(DigestToHex(hasher.Finish()), kEmptyHex);
}

TEST(Sha256HasherTest, FinishStartsANewMessage) {
  Sha256Hasher hasher;
  hasher.Update("abc");
  ASSERT_EQ(DigestToHex(hasher.Finish()), kAbcHex);
  hasher.Update(kTwoBlockMessage);
  EXPECT_EQ(DigestToHex(hasher.Finish()), kTwoBlockHex);
  EXPECT_EQ(DigestToHex(hasher.Finish()), kEmptyHex);
}

TEST(Sha256HasherTest, MoveKeepsThePartialMessage) {
  Sha256Hasher first;
  first.Update("ab");
  Sha256Hasher second(std::move(first));
  second.Update("c");
  EXPECT_EQ(DigestToHex(second.Finish()), kAbcHex);
}

TEST(Sha256HasherTest, MoveAssignmentKeepsThePartialMessage) {
  Sha256Hasher first;
  first.Update("ab");
  Sha256Hasher second;
  second.Update("unrelated");
  second = std::move(first);
  second.Update("c");
  EXPECT_EQ(DigestToHex(second.Finish()), kAbcHex);
}

TEST(DigestTest, HexRoundTrips) {
  absl::StatusOr<Digest> d = DigestFromHex(kAbcHex);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Sha256("abc"));
  EXPECT_EQ(DigestToHex(*d), kAbcHex);
}

TEST(DigestTest, FromHexAcceptsUpperCase) {
  absl::StatusOr<Digest> d = DigestFromHex(
      "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, Sha256("abc"));
}

TEST(DigestTest, FromHexRejectsWrongLength) {
  const std::string hex = kAbcHex;
  EXPECT_EQ(DigestFromHex(hex.substr(0, 62)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DigestFromHex(hex + "00").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DigestFromHex("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DigestTest, FromHexRejectsNonHexDigits) {
  std::string hex = kAbcHex;
  hex[10] = 'g';
  EXPECT_EQ(DigestFromHex(hex).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DigestTest, BytesViewsTheRawDigest) {
  const Digest d = Sha256("abc");
  const absl::string_view bytes = DigestBytes(d);
  ASSERT_EQ(bytes.size(), 32u);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0xba);
  EXPECT_EQ(static_cast<uint8_t>(bytes[31]), 0xad);
}

TEST(DigestTest, FromBytesRoundTrips) {
  const Digest d = Sha256("abc");
  absl::StatusOr<Digest> copy = DigestFromBytes(DigestBytes(d));
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(*copy, d);
}

TEST(DigestTest, FromBytesRejectsWrongLength) {
  EXPECT_EQ(DigestFromBytes(std::string(31, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DigestFromBytes(std::string(33, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DigestFromBytes("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal
