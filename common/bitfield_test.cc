#include "common/bitfield.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

TEST(BitfieldTest, BitOrderMatchesBitTorrent) {
  Bitfield bitfield(16);
  bitfield.Set(ReleasePieceIndex(0));
  bitfield.Set(ReleasePieceIndex(9));
  bitfield.Set(ReleasePieceIndex(15));
  EXPECT_EQ(bitfield.bytes(), std::string("\x80\x41", 2));
}

TEST(BitfieldTest, GetReadsWhatSetWrote) {
  Bitfield bitfield(20);
  bitfield.Set(ReleasePieceIndex(3));
  bitfield.Set(ReleasePieceIndex(19));
  for (uint32_t i = 0; i < 20; ++i) {
    EXPECT_EQ(bitfield.Get(ReleasePieceIndex(i)), i == 3 || i == 19) << i;
  }
}

TEST(BitfieldTest, SetFalseClearsOnlyThatPiece) {
  Bitfield bitfield(8);
  bitfield.Set(ReleasePieceIndex(1));
  bitfield.Set(ReleasePieceIndex(2));
  bitfield.Set(ReleasePieceIndex(1), false);
  EXPECT_FALSE(bitfield.Get(ReleasePieceIndex(1)));
  EXPECT_TRUE(bitfield.Get(ReleasePieceIndex(2)));
}

TEST(BitfieldTest, CountsHeldPieces) {
  Bitfield bitfield(100);
  for (uint32_t i = 0; i < 100; i += 3) bitfield.Set(ReleasePieceIndex(i));
  EXPECT_EQ(bitfield.Count(), 34u);
  EXPECT_FALSE(bitfield.complete());
}

TEST(BitfieldTest, CompleteWhenEveryPieceHeld) {
  Bitfield bitfield(11);
  for (uint32_t i = 0; i < 11; ++i) bitfield.Set(ReleasePieceIndex(i));
  EXPECT_TRUE(bitfield.complete());
  EXPECT_EQ(bitfield.bytes(), std::string("\xff\xe0", 2));
}

TEST(BitfieldTest, ReleaseWithoutPiecesIsEmptyAndComplete) {
  Bitfield bitfield(0);
  EXPECT_EQ(Bitfield::ByteLength(0), 0u);
  EXPECT_TRUE(bitfield.bytes().empty());
  EXPECT_TRUE(bitfield.complete());
  EXPECT_TRUE(Bitfield::FromBytes("", 0).ok());
}

TEST(BitfieldTest, FromBytesRoundTrips) {
  absl::StatusOr<Bitfield> bitfield =
      Bitfield::FromBytes(std::string("\x12\x34\x50", 3), 20);
  ASSERT_TRUE(bitfield.ok()) << bitfield.status();
  EXPECT_EQ(bitfield->num_pieces(), 20u);
  EXPECT_EQ(bitfield->Count(), 7u);
  EXPECT_TRUE(bitfield->Get(ReleasePieceIndex(3)));
  EXPECT_EQ(bitfield->bytes(), std::string("\x12\x34\x50", 3));
}

TEST(BitfieldTest, FromBytesRefusesWrongLengthNamingBoth) {
  absl::StatusOr<Bitfield> bitfield = Bitfield::FromBytes("abcd", 17);
  EXPECT_EQ(bitfield.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bitfield.status().message()),
              HasSubstr("bitfield is 4 bytes; 17 pieces need 3"));
  EXPECT_FALSE(Bitfield::FromBytes("ab", 17).ok());
}

TEST(BitfieldTest, FromBytesRefusesSpareBitsSet) {
  // 12 pieces: the low four bits of the second byte are spare.
  absl::StatusOr<Bitfield> bitfield =
      Bitfield::FromBytes(std::string("\xff\xf1", 2), 12);
  EXPECT_EQ(bitfield.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bitfield.status().message()),
              HasSubstr("past its last piece"));
  EXPECT_TRUE(Bitfield::FromBytes(std::string("\xff\xf0", 2), 12).ok());
}

TEST(BitfieldTest, HasPieceReadsWireBytesAndIsFalsePastTheEnd) {
  const std::string bytes("\x80\x01", 2);
  EXPECT_TRUE(HasPiece(bytes, ReleasePieceIndex(0)));
  EXPECT_FALSE(HasPiece(bytes, ReleasePieceIndex(1)));
  EXPECT_TRUE(HasPiece(bytes, ReleasePieceIndex(15)));
  EXPECT_FALSE(HasPiece(bytes, ReleasePieceIndex(16)));
}

TEST(BitfieldTest, CountPiecesCountsLongBitfields) {
  std::string bytes(1001, '\xff');
  bytes[500] = '\x01';
  EXPECT_EQ(CountPieces(bytes), 1000u * 8 + 1);
  EXPECT_EQ(CountPieces(""), 0u);
}

TEST(BitfieldTest, HolderWithAPieceTheWanterLacksIsUseful) {
  EXPECT_TRUE(HasPieceMissingFrom("\x81", "\x80"));
  EXPECT_FALSE(HasPieceMissingFrom("\x80", "\x81"));
  EXPECT_FALSE(HasPieceMissingFrom("\x00\x00", "\xff"));
}

TEST(BitfieldTest, UsefulnessPadsTheShorterBitfield) {
  EXPECT_TRUE(HasPieceMissingFrom(std::string("\x00\x01", 2), "\xff"));
  EXPECT_TRUE(HasPieceMissingFrom("\x01", ""));
  EXPECT_FALSE(HasPieceMissingFrom("", "\xff"));
}

}  // namespace
}  // namespace shoal
