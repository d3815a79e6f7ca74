#include "tracker/peer_memo.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::tracker {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
constexpr absl::Duration kWindow = absl::Seconds(30);
constexpr absl::Duration kForget = absl::Seconds(90);

TEST(PeerMemoTest, AdmitsUpToTheLimitPerWindow) {
  PeerMemo memo(100, kWindow, 2, kForget);
  EXPECT_TRUE(memo.Admit("p", kT0).ok());
  EXPECT_TRUE(memo.Admit("p", kT0 + absl::Seconds(1)).ok());
  absl::Status refused = memo.Admit("p", kT0 + absl::Seconds(5));
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("retry in 25s"));
  EXPECT_TRUE(memo.Admit("p", kT0 + kWindow).ok());
}

TEST(PeerMemoTest, FirstReportIsProgress) {
  PeerMemo memo(100, kWindow, 10, kForget);
  EXPECT_EQ(memo.RecordProgress("p", "r", 0, kT0), kT0);
}

TEST(PeerMemoTest, ProgressTimeMovesOnlyWhenCountGrows) {
  PeerMemo memo(100, kWindow, 10, kForget);
  memo.RecordProgress("p", "r", 5, kT0);
  EXPECT_EQ(memo.RecordProgress("p", "r", 5, kT0 + absl::Seconds(30)), kT0);
  EXPECT_EQ(memo.RecordProgress("p", "r", 4, kT0 + absl::Seconds(60)), kT0);
  const absl::Time later = kT0 + absl::Seconds(80);
  EXPECT_EQ(memo.RecordProgress("p", "r", 6, later), later);
}

TEST(PeerMemoTest, ProgressIsPerRelease) {
  PeerMemo memo(100, kWindow, 10, kForget);
  memo.RecordProgress("p", "a", 5, kT0);
  const absl::Time later = kT0 + absl::Seconds(10);
  EXPECT_EQ(memo.RecordProgress("p", "b", 5, later), later);
  EXPECT_EQ(memo.RecordProgress("p", "a", 5, later), kT0);
}

TEST(PeerMemoTest, SilenceLongerThanForgetStartsAfresh) {
  PeerMemo memo(100, kWindow, 10, kForget);
  memo.RecordProgress("p", "r", 5, kT0);
  const absl::Time back = kT0 + kForget;
  EXPECT_EQ(memo.RecordProgress("p", "r", 5, back), back);
}

TEST(PeerMemoTest, ForgetReleaseStartsAfresh) {
  PeerMemo memo(100, kWindow, 10, kForget);
  memo.RecordProgress("p", "r", 5, kT0);
  memo.ForgetRelease("p", "r");
  const absl::Time later = kT0 + absl::Seconds(1);
  EXPECT_EQ(memo.RecordProgress("p", "r", 5, later), later);
}

TEST(PeerMemoTest, StaysBoundedByDroppingSilentPeers) {
  PeerMemo memo(10, kWindow, 10, kForget);
  for (int i = 0; i < 5; ++i) {
    memo.RecordProgress(absl::StrCat("old", i), "r", 1, kT0);
  }
  const absl::Time later = kT0 + kForget;
  for (int i = 0; i < 100; ++i) {
    memo.RecordProgress(absl::StrCat("new", i), "r", 1, later);
    EXPECT_LE(memo.entries(), 11u);
  }
}

TEST(PeerMemoTest, FullOfLivePeersForgetsRatherThanRefuses) {
  PeerMemo memo(4, kWindow, 1, kForget);
  ASSERT_TRUE(memo.Admit("a", kT0).ok());
  ASSERT_FALSE(memo.Admit("a", kT0).ok());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(memo.Admit(absl::StrCat("other", i), kT0).ok());
  }
  EXPECT_TRUE(memo.Admit("a", kT0).ok());
}

}  // namespace
}  // namespace shoal::tracker
