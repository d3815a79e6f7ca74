#include "common/rollout.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hex.h"
#include "common/sha256.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

constexpr char kChannel[] = "game-server/stable";

// 10,000 distinct peer ids shaped as agents make them: 32 hex digits.
std::vector<std::string> SyntheticPeerIds() {
  std::vector<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    Digest digest = Sha256(absl::StrCat("agent-", i));
    ids.push_back(HexEncode(DigestBytes(digest).substr(0, 16)));
  }
  return ids;
}

int CountIn(const std::vector<std::string>& ids, uint32_t percent) {
  int count = 0;
  for (const std::string& id : ids) count += InRollout(kChannel, id, percent);
  return count;
}

// Expected buckets computed independently from the definition:
//   int.from_bytes(sha256(channel + "/" + peer).digest()[:8], "big") % 100
TEST(RolloutTest, BucketFollowsTheDefinition) {
  EXPECT_EQ(RolloutBucket(kChannel, "00112233445566778899aabbccddeeff"), 94u);
  EXPECT_EQ(RolloutBucket("a/b", "0123456789abcdef0123456789abcdef"), 42u);
}

TEST(RolloutTest, InsideExactlyWhenBucketBelowPercent) {
  const std::string peer = "00112233445566778899aabbccddeeff";  // bucket 94
  EXPECT_FALSE(InRollout(kChannel, peer, 94));
  EXPECT_TRUE(InRollout(kChannel, peer, 95));
}

TEST(RolloutTest, RaisingPercentOnlyAddsAgents) {
  const std::vector<std::string> ids = SyntheticPeerIds();
  for (const std::string& id : ids) {
    if (InRollout(kChannel, id, 10)) {
      EXPECT_TRUE(InRollout(kChannel, id, 50)) << id;
    }
    if (InRollout(kChannel, id, 50)) {
      EXPECT_TRUE(InRollout(kChannel, id, 100)) << id;
    }
  }
}

TEST(RolloutTest, ShareIsNearThePercent) {
  const std::vector<std::string> ids = SyntheticPeerIds();
  // Binomial, n = 10,000: three standard deviations are 90 at 10 % and 150
  // at 50 %.
  EXPECT_NEAR(CountIn(ids, 10), 1000, 90);
  EXPECT_NEAR(CountIn(ids, 50), 5000, 150);
}

TEST(RolloutTest, NoneAtZeroAndAllAtHundred) {
  const std::vector<std::string> ids = SyntheticPeerIds();
  EXPECT_EQ(CountIn(ids, 0), 0);
  EXPECT_EQ(CountIn(ids, 100), static_cast<int>(ids.size()));
}

TEST(RolloutTest, ChannelsPickDifferentAgents) {
  // A 10 % canary of one channel should not be the same machines as another
  // channel's.
  const std::vector<std::string> ids = SyntheticPeerIds();
  int both = 0;
  for (const std::string& id : ids) {
    both += InRollout("game-server/stable", id, 10) &&
            InRollout("game-server/beta", id, 10);
  }
  EXPECT_LT(both, 200);  // independent choice: about 100
}

}  // namespace
}  // namespace shoal
