#include "agent/upload_gate.h"

#include "common/bitfield.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

Bitfield Holding(uint32_t num_pieces, uint32_t held) {
  Bitfield b(num_pieces);
  for (uint32_t i = 0; i < held; ++i) b.Set(ReleasePieceIndex(i));
  return b;
}

constexpr ReleasePieceIndex kZero(0);
constexpr ReleasePieceIndex kOne(1);

TEST(UploadGateTest, ServesAtMostSlotsAtOnce) {
  const Bitfield held = Holding(4, 4);
  UploadGate gate(4, /*slots=*/2, /*distinct_first=*/false);
  EXPECT_TRUE(gate.TryStart(kZero, held));
  EXPECT_TRUE(gate.TryStart(kOne, held));
  EXPECT_FALSE(gate.TryStart(ReleasePieceIndex(2), held));
  gate.Finish(kZero);
  EXPECT_EQ(gate.active(), 1);
  EXPECT_TRUE(gate.TryStart(ReleasePieceIndex(2), held));
}

TEST(UploadGateTest, RefusesASecondCopyWhileUnsentPiecesRemain) {
  const Bitfield held = Holding(4, 4);
  UploadGate gate(4, /*slots=*/4, /*distinct_first=*/true);
  ASSERT_TRUE(gate.TryStart(kZero, held));
  EXPECT_FALSE(gate.TryStart(kZero, held));
  EXPECT_TRUE(gate.TryStart(kOne, held));
}

TEST(UploadGateTest, ServesAPieceAgainOnceItsCopyIsDone) {
  const Bitfield held = Holding(4, 4);
  UploadGate gate(4, /*slots=*/4, /*distinct_first=*/true);
  ASSERT_TRUE(gate.TryStart(kZero, held));
  gate.Finish(kZero);
  EXPECT_TRUE(gate.TryStart(kZero, held));
}

TEST(UploadGateTest, ServesConcurrentCopiesOnceEveryPieceWentOut) {
  const Bitfield held = Holding(2, 2);
  UploadGate gate(2, /*slots=*/4, /*distinct_first=*/true);
  ASSERT_TRUE(gate.TryStart(kZero, held));
  ASSERT_TRUE(gate.TryStart(kOne, held));
  EXPECT_TRUE(gate.TryStart(kZero, held));
  EXPECT_TRUE(gate.TryStart(kOne, held));
}

TEST(UploadGateTest, WithoutDistinctFirstServesConcurrentCopies) {
  const Bitfield held = Holding(4, 4);
  UploadGate gate(4, /*slots=*/4, /*distinct_first=*/false);
  ASSERT_TRUE(gate.TryStart(kZero, held));
  EXPECT_TRUE(gate.TryStart(kZero, held));
}

}  // namespace
}  // namespace shoal::agent
