// Origin leases: which agent of a datacenter may fetch a piece from the
// origin.

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tracker/tracker.h"
#include "tracker/tracker_test_util.h"

namespace shoal::tracker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::Pieces;
using testing::TrackerTest;

constexpr auto kDownloading = v1::PEER_STATE_DOWNLOADING;

class LeaseTest : public TrackerTest {
 protected:
  // The release, registered on first use so that tests can set options_
  // before the tracker is built.
  const std::string& id() {
    if (id_.empty()) id_ = Register(Pieces(20));
    return id_;
  }

  absl::StatusOr<v1::OriginLeaseResponse> Ask(
      int n, const std::vector<uint32_t>& pieces,
      const std::vector<uint32_t>& holders_failed = {}) {
    v1::OriginLeaseRequest request;
    request.set_peer_id(PeerId(n));
    request.set_release_id(id());
    for (uint32_t piece : pieces) request.add_pieces(piece);
    for (uint32_t piece : holders_failed) request.add_holders_failed(piece);
    return tracker().RequestOriginLease(request);
  }

  std::vector<uint32_t> Granted(int n, const std::vector<uint32_t>& pieces) {
    absl::StatusOr<v1::OriginLeaseResponse> response = Ask(n, pieces);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    return {response->granted().begin(), response->granted().end()};
  }

 private:
  std::string id_;
};

TEST_F(LeaseTest, GrantsAFreePieceToTheFirstAgent) {
  EXPECT_THAT(Granted(1, {0, 1}), ElementsAre(0, 1));
}

TEST_F(LeaseTest, OthersWaitWhileOneAgentHoldsTheLease) {
  ASSERT_THAT(Granted(1, {0}), ElementsAre(0));
  absl::StatusOr<v1::OriginLeaseResponse> response = Ask(2, {0, 1});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->granted(), ElementsAre(1));
  EXPECT_THAT(response->leased_to_others(), ElementsAre(0));
  EXPECT_THAT(response->held_by_peers(), IsEmpty());
}

TEST_F(LeaseTest, HolderAskingAgainKeepsItsLease) {
  ASSERT_THAT(Granted(1, {0}), ElementsAre(0));
  clock_.Advance(absl::Seconds(50));
  EXPECT_THAT(Granted(1, {0}), ElementsAre(0));
  clock_.Advance(absl::Seconds(50));  // past the first lease's expiry
  EXPECT_THAT(Granted(2, {0}), IsEmpty());
}

TEST_F(LeaseTest, PieceHeldByAPeerIsFetchedFromPeers) {
  ASSERT_TRUE(Announce(1, id(), kDownloading, Bits(20, 1)).ok());
  absl::StatusOr<v1::OriginLeaseResponse> response = Ask(2, {0, 1});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->held_by_peers(), ElementsAre(0));
  EXPECT_THAT(response->granted(), ElementsAre(1));
}

TEST_F(LeaseTest, AskersOwnPiecesDoNotCountAsHeldByPeers) {
  ASSERT_TRUE(Announce(1, id(), kDownloading, Bits(20, 1)).ok());
  EXPECT_THAT(Granted(1, {0}), ElementsAre(0));
}

TEST_F(LeaseTest, FailedHoldersLetTheAskerFetchFromTheOrigin) {
  ASSERT_TRUE(Announce(1, id(), kDownloading, Bits(20, 2)).ok());
  absl::StatusOr<v1::OriginLeaseResponse> response = Ask(2, {0, 1}, {1});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->held_by_peers(), ElementsAre(0));
  EXPECT_THAT(response->granted(), ElementsAre(1));
}

TEST_F(LeaseTest, FailedHolderPieceCountsAsAskedFor) {
  ASSERT_TRUE(Announce(1, id(), kDownloading, Bits(20, 2)).ok());
  absl::StatusOr<v1::OriginLeaseResponse> response = Ask(2, {}, {1});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->granted(), ElementsAre(1));
}

TEST_F(LeaseTest, ExpiredLeaseFreesThePiece) {
  ASSERT_THAT(Granted(1, {0}), ElementsAre(0));
  clock_.Advance(options_.lease_ttl - absl::Seconds(1));
  EXPECT_THAT(Granted(2, {0}), IsEmpty());
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(Granted(2, {0}), ElementsAre(0));
}

TEST_F(LeaseTest, KHoldersShareAPiece) {
  options_.lease_holders = 2;
  EXPECT_THAT(Granted(1, {0}), ElementsAre(0));
  EXPECT_THAT(Granted(2, {0}), ElementsAre(0));
  EXPECT_THAT(Granted(3, {0}), IsEmpty());
}

TEST_F(LeaseTest, LeasesArePerDatacenter) {
  ASSERT_TRUE(Announce(2, id(), kDownloading, Bits(20, 0), "dc2").ok());
  ASSERT_THAT(Granted(1, {0}), ElementsAre(0));
  EXPECT_THAT(Granted(2, {0}), ElementsAre(0));
}

TEST_F(LeaseTest, PeersOfOtherDatacentersDoNotHoldForThisOne) {
  ASSERT_TRUE(Announce(1, id(), kDownloading, Bits(20, 20), "dc2").ok());
  EXPECT_THAT(Granted(2, {0}), ElementsAre(0));
}

TEST_F(LeaseTest, AnswerCarriesOriginUrlsAndExpiry) {
  absl::StatusOr<v1::OriginLeaseResponse> response = Ask(1, {0});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->origin_urls(),
              ElementsAre("https://origin.example/releases"));
  EXPECT_EQ(response->expires_ms(),
            absl::ToUnixMillis(clock_.Now() + options_.lease_ttl));
}

TEST_F(LeaseTest, DuplicatePiecesAreAnsweredOnce) {
  EXPECT_THAT(Granted(1, {3, 3, 3}), ElementsAre(3));
}

TEST_F(LeaseTest, ConsidersOnlyTheLimitPerRequest) {
  options_.max_pieces_per_lease_request = 4;
  EXPECT_THAT(Granted(1, {9, 8, 7, 6, 5, 4}), ElementsAre(9, 8, 7, 6));
}

TEST_F(LeaseTest, RefusesPieceOutOfRange) {
  absl::Status status = Ask(1, {0, 20}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("piece 20 is out of range"));
  EXPECT_EQ(Ask(1, {}, {20}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LeaseTest, UnregisteredReleaseIsNotFound) {
  v1::OriginLeaseRequest request;
  request.set_peer_id(PeerId(1));
  request.set_release_id(std::string(64, 'e'));
  request.add_pieces(0);
  EXPECT_EQ(tracker().RequestOriginLease(request).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace shoal::tracker
