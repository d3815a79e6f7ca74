// Announces, peers and swarm health. Leases and the catalog have their own
// files.

#include "tracker/tracker.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tracker/tracker_test_util.h"

namespace shoal::tracker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::Pieces;
using testing::Release;
using testing::TrackerTest;
using ::testing::UnorderedElementsAre;

constexpr auto kDownloading = v1::PEER_STATE_DOWNLOADING;
constexpr auto kSeeding = v1::PEER_STATE_SEEDING;
constexpr auto kStopped = v1::PEER_STATE_STOPPED;
// A release id nobody registered.
const std::string kUnregistered(64, 'e');

class AnnounceTest : public TrackerTest {};

TEST_F(AnnounceTest, AnnouncedPeerIsOfferedToOthers) {
  ASSERT_TRUE(Announce(1, kUnregistered, kDownloading, "").ok());
  EXPECT_THAT(PeersFor(2, kUnregistered), ElementsAre(PeerId(1)));
}

TEST_F(AnnounceTest, PeerExpiresAfterTtlWithoutAnnouncing) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  clock_.Advance(options_.peer_ttl - absl::Seconds(1));
  EXPECT_THAT(PeersFor(2, kUnregistered), ElementsAre(PeerId(1)));
  clock_.Advance(absl::Seconds(1));
  EXPECT_THAT(PeersFor(2, kUnregistered), IsEmpty());
}

TEST_F(AnnounceTest, AnnouncingAgainKeepsPeerAlive) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  clock_.Advance(absl::Seconds(60));
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  clock_.Advance(absl::Seconds(60));
  EXPECT_THAT(PeersFor(2, kUnregistered), ElementsAre(PeerId(1)));
}

TEST_F(AnnounceTest, StoppedRemovesPeerAtOnce) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  ASSERT_TRUE(Announce(1, kUnregistered, kStopped, "").ok());
  EXPECT_THAT(PeersFor(2, kUnregistered), IsEmpty());
}

TEST_F(AnnounceTest, AnswersIntervalWithJitterAndTtl) {
  std::set<int64_t> intervals;
  for (int n = 0; n < 20; ++n) {
    absl::StatusOr<v1::AnnounceResponse> response =
        tracker().Announce(AnnounceOf(n, kUnregistered, kDownloading, ""));
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_GE(response->next_announce_ms(), 27000);
    EXPECT_LE(response->next_announce_ms(), 33000);
    EXPECT_EQ(response->peer_ttl_ms(), 90000);
    intervals.insert(response->next_announce_ms());
  }
  EXPECT_GT(intervals.size(), 10u);  // spread, not one value
}

TEST_F(AnnounceTest, RefusesBitfieldOfWrongLengthForRegisteredRelease) {
  const std::string id = Register(Pieces(20));  // 3 bytes
  absl::Status status = Announce(1, id, kDownloading, Bits(24, 0) + "x");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("bitfield is 4 bytes; 20 pieces need 3"));
  EXPECT_TRUE(Announce(1, id, kDownloading, Bits(20, 5)).ok());
}

TEST_F(AnnounceTest, RefusesBitfieldWithSpareBitsSet) {
  const std::string id = Register(Pieces(20));
  EXPECT_EQ(Announce(1, id, kDownloading, Bits(24, 24)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, CapsBitfieldOfUnknownRelease) {
  EXPECT_TRUE(Announce(1, kUnregistered, kDownloading,
                       std::string(kMaxBitfieldBytes, '\xff'))
                  .ok());
  EXPECT_EQ(Announce(2, kUnregistered, kDownloading,
                     std::string(kMaxBitfieldBytes + 1, '\xff'))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, PiecesHaveIsTheBitfieldPopcount) {
  const std::string id = Register(Pieces(20));
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 13)).ok());
  v1::GetPeersRequest request;
  request.set_peer_id(PeerId(2));
  request.set_release_id(id);
  absl::StatusOr<v1::GetPeersResponse> response = tracker().GetPeers(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->peers_size(), 1);
  EXPECT_EQ(response->peers(0).pieces_have(), 13u);
  EXPECT_EQ(response->peers(0).address(), "10.0.0.2:7881");
  EXPECT_EQ(response->peers(0).state(), kDownloading);
}

TEST_F(AnnounceTest, RefusesMalformedPeerId) {
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  request.set_peer_id("ABCDEF0123456789ABCDEF0123456789");
  absl::Status status = tracker().Announce(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("lower-case hex"));
}

TEST_F(AnnounceTest, RefusesAddressWithoutPort) {
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  request.set_address("10.0.0.1");
  EXPECT_EQ(tracker().Announce(request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, RefusesWildcardAddress) {
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  request.set_address("0.0.0.0:7881");
  absl::Status status = tracker().Announce(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("wildcard"));
}

TEST_F(AnnounceTest, AcceptsBracketedIpv6Address) {
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  request.set_address("[fd00::5]:7881");
  EXPECT_TRUE(tracker().Announce(request).ok());
}

TEST_F(AnnounceTest, RefusesEmptyRack) {
  EXPECT_EQ(Announce(1, kUnregistered, kSeeding, "", "dc1", "").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, RefusesMalformedReleaseId) {
  EXPECT_EQ(Announce(1, "abc", kSeeding, "").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, RefusesUnspecifiedState) {
  EXPECT_EQ(Announce(1, kUnregistered, v1::PEER_STATE_UNSPECIFIED, "").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, RefusesReleaseListedTwice) {
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  *request.add_releases() = request.releases(0);
  EXPECT_EQ(tracker().Announce(request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AnnounceTest, RefusesTooManyReleases) {
  options_.max_releases_per_announce = 2;
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  for (char c : {'a', 'b'}) {
    v1::ReleaseAnnounce* release = request.add_releases();
    release->set_release_id(std::string(64, c));
    release->set_state(kSeeding);
  }
  absl::Status status = tracker().Announce(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("the limit is 2"));
}

TEST_F(AnnounceTest, InvalidAnnounceStoresNothing) {
  v1::AnnounceRequest request = AnnounceOf(1, kUnregistered, kSeeding, "");
  v1::ReleaseAnnounce* bad = request.add_releases();
  bad->set_release_id("not-an-id");
  ASSERT_FALSE(tracker().Announce(request).ok());
  EXPECT_THAT(PeersFor(2, kUnregistered), IsEmpty());
}

TEST_F(AnnounceTest, RateLimitRefusesAnnouncesPastTheLimit) {
  options_.max_announces_per_interval = 3;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  }
  absl::Status status = Announce(1, kUnregistered, kSeeding, "");
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()), HasSubstr("retry in 30s"));
  EXPECT_TRUE(Announce(2, kUnregistered, kSeeding, "").ok());  // per peer
}

TEST_F(AnnounceTest, RateLimitResetsAfterTheInterval) {
  options_.max_announces_per_interval = 1;
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  clock_.Advance(absl::Seconds(10));
  absl::Status status = Announce(1, kUnregistered, kSeeding, "");
  EXPECT_THAT(std::string(status.message()), HasSubstr("retry in 20s"));
  clock_.Advance(absl::Seconds(20));
  EXPECT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
}

TEST_F(AnnounceTest, AcceptsPeerOfAnotherDatacenterUnderItsOwn) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "", "dc2", "r1").ok());
  ASSERT_TRUE(Announce(2, kUnregistered, kSeeding, "", "dc2", "r7").ok());
  EXPECT_THAT(PeersFor(2, kUnregistered), ElementsAre(PeerId(1)));
  EXPECT_THAT(PeersFor(3, kUnregistered), IsEmpty());  // a dc1 newcomer
}

TEST_F(AnnounceTest, StoreOutageIsUnavailableWithContext) {
  store_.down = true;
  absl::Status status = Announce(1, kUnregistered, kSeeding, "");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("tracker store failed reading release " +
                        kUnregistered + ": connection refused"));
}

TEST_F(AnnounceTest, RecoversWhenTheStoreComesBack) {
  store_.down = true;
  ASSERT_FALSE(Announce(1, kUnregistered, kSeeding, "").ok());
  store_.down = false;
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  EXPECT_THAT(PeersFor(2, kUnregistered), ElementsAre(PeerId(1)));
}

class GetPeersTest : public TrackerTest {};

TEST_F(GetPeersTest, SameRackFirstThenSameDatacenter) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "", "dc1", "r2").ok());
  ASSERT_TRUE(Announce(2, kUnregistered, kSeeding, "", "dc1", "r1").ok());
  ASSERT_TRUE(Announce(3, kUnregistered, kSeeding, "", "dc1", "r1").ok());
  for (int round = 0; round < 5; ++round) {
    std::vector<std::string> peers = PeersFor(3, kUnregistered);
    EXPECT_THAT(peers, ElementsAre(PeerId(2), PeerId(1)));
  }
}

TEST_F(GetPeersTest, OtherDatacentersOnlyWhenConfigured) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "", "dc2", "r1").ok());
  ASSERT_TRUE(Announce(2, kUnregistered, kSeeding, "", "dc1", "r1").ok());
  EXPECT_THAT(PeersFor(3, kUnregistered), ElementsAre(PeerId(2)));
}

TEST_F(GetPeersTest, OtherDatacentersFollowWhenConfigured) {
  options_.return_other_datacenters = true;
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "", "dc2", "r1").ok());
  ASSERT_TRUE(Announce(2, kUnregistered, kSeeding, "", "dc1", "r1").ok());
  EXPECT_THAT(PeersFor(3, kUnregistered), ElementsAre(PeerId(2), PeerId(1)));
}

TEST_F(GetPeersTest, ExcludesTheAsker) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "").ok());
  EXPECT_THAT(PeersFor(1, kUnregistered), IsEmpty());
}

TEST_F(GetPeersTest, BoundedByTrackerLimitAndRequest) {
  options_.max_peers_returned = 5;
  for (int n = 1; n <= 8; ++n) {
    ASSERT_TRUE(Announce(n, kUnregistered, kSeeding, "").ok());
  }
  EXPECT_EQ(PeersFor(0, kUnregistered).size(), 5u);
  EXPECT_EQ(PeersFor(0, kUnregistered, 3).size(), 3u);
  EXPECT_EQ(PeersFor(0, kUnregistered, 100).size(), 5u);
}

TEST_F(GetPeersTest, PeersHoldingWhatTheAskerLacksComeFirst) {
  const std::string id = Register(Pieces(16));
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(16, 4)).ok());
  ASSERT_TRUE(Announce(2, id, kDownloading, Bits(16, 8)).ok());
  ASSERT_TRUE(Announce(3, id, kDownloading, Bits(16, 4)).ok());
  ASSERT_TRUE(Announce(9, id, kDownloading, Bits(16, 4)).ok());  // asker
  for (int round = 0; round < 5; ++round) {
    EXPECT_EQ(PeersFor(9, id).front(), PeerId(2));
  }
}

TEST_F(GetPeersTest, RefusesMalformedReleaseId) {
  v1::GetPeersRequest request;
  request.set_peer_id(PeerId(1));
  request.set_release_id("xyz");
  EXPECT_EQ(tracker().GetPeers(request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

class HealthTest : public TrackerTest {
 protected:
  v1::SwarmHealthResponse Health(const std::string& release) {
    v1::SwarmHealthRequest request;
    request.set_release(release);
    absl::StatusOr<v1::SwarmHealthResponse> response =
        tracker().GetSwarmHealth(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.value_or(v1::SwarmHealthResponse());
  }
};

TEST_F(HealthTest, CountsPeersByStateWithHistogramAndBytes) {
  const std::string id = Register(Pieces(20));
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 0)).ok());
  ASSERT_TRUE(Announce(2, id, kDownloading, Bits(20, 11)).ok());  // 55 %
  ASSERT_TRUE(Announce(3, id, kDownloading, Bits(20, 19)).ok());  // 95 %
  v1::AnnounceRequest seeder = AnnounceOf(4, id, kSeeding, Bits(20, 20));
  seeder.mutable_releases(0)->set_bytes_from_peers(1000);
  seeder.mutable_releases(0)->set_bytes_from_origin(24);
  ASSERT_TRUE(tracker().Announce(seeder).ok());
  v1::SwarmHealthResponse health = Health("game-server@1.0");
  ASSERT_EQ(health.swarms_size(), 1);
  const v1::SwarmHealth& swarm = health.swarms(0);
  EXPECT_EQ(swarm.release_id(), id);
  EXPECT_EQ(swarm.name(), "game-server");
  EXPECT_EQ(swarm.version(), "1.0");
  EXPECT_EQ(swarm.datacenter(), "dc1");
  EXPECT_EQ(swarm.peers_downloading(), 3u);
  EXPECT_EQ(swarm.peers_seeding(), 1u);
  EXPECT_EQ(swarm.peers_stalled(), 0u);
  EXPECT_THAT(swarm.completion_histogram(),
              ElementsAre(1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1));
  EXPECT_EQ(swarm.bytes_from_peers(), 1000u);
  EXPECT_EQ(swarm.bytes_from_origin(), 24u);
  EXPECT_EQ(swarm.total_pieces(), 20u);
}

TEST_F(HealthTest, DownloadingPeerWithoutProgressIsStalled) {
  const std::string id = Register(Pieces(20));
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 3)).ok());
  ASSERT_TRUE(Announce(2, id, kDownloading, Bits(20, 3)).ok());
  clock_.Advance(absl::Seconds(60));
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 3)).ok());
  ASSERT_TRUE(Announce(2, id, kDownloading, Bits(20, 6)).ok());
  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(Health(id).swarms(0).peers_stalled(), 0u);
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 3)).ok());
  ASSERT_TRUE(Announce(2, id, kDownloading, Bits(20, 6)).ok());
  clock_.Advance(absl::Seconds(1));  // peer 1: two minutes without progress
  EXPECT_EQ(Health(id).swarms(0).peers_stalled(), 1u);
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 4)).ok());
  EXPECT_EQ(Health(id).swarms(0).peers_stalled(), 0u);
}

TEST_F(HealthTest, ReportsEachDatacenterAndOutstandingLeases) {
  const std::string id = Register(Pieces(20));
  ASSERT_TRUE(Announce(1, id, kDownloading, Bits(20, 0), "dc1").ok());
  ASSERT_TRUE(Announce(2, id, kSeeding, Bits(20, 20), "dc2").ok());
  v1::OriginLeaseRequest lease;
  lease.set_peer_id(PeerId(1));
  lease.set_release_id(id);
  for (uint32_t piece : {0, 1, 2}) lease.add_pieces(piece);
  ASSERT_EQ(tracker().RequestOriginLease(lease)->granted_size(), 3);
  v1::SwarmHealthResponse health = Health(id);
  ASSERT_EQ(health.swarms_size(), 2);
  EXPECT_EQ(health.swarms(0).datacenter(), "dc1");
  EXPECT_EQ(health.swarms(0).leases_outstanding(), 3u);
  EXPECT_EQ(health.swarms(1).datacenter(), "dc2");
  EXPECT_EQ(health.swarms(1).peers_seeding(), 1u);
  EXPECT_EQ(health.swarms(1).leases_outstanding(), 0u);
}

TEST_F(HealthTest, AllSwarmsWithLivePeersWhenNoReleaseNamed) {
  const std::string a = Register(Release("game-server", "1.0"));
  const std::string b = Register(Release("game-server", "2.0"));
  Register(Release("game-server", "3.0"));  // no peers
  ASSERT_TRUE(Announce(1, a, kDownloading, Bits(20, 0)).ok());
  ASSERT_TRUE(Announce(1, b, kDownloading, Bits(20, 0)).ok());
  const v1::SwarmHealthResponse health = Health("");
  std::vector<std::string> ids;
  for (const v1::SwarmHealth& swarm : health.swarms()) {
    ids.push_back(swarm.release_id());
  }
  EXPECT_THAT(ids, UnorderedElementsAre(a, b));
}

TEST_F(HealthTest, UnregisteredReleaseHasNoHistogram) {
  ASSERT_TRUE(Announce(1, kUnregistered, kSeeding, "\xff").ok());
  v1::SwarmHealthResponse health = Health(kUnregistered);
  ASSERT_EQ(health.swarms_size(), 1);
  EXPECT_EQ(health.swarms(0).peers_seeding(), 1u);
  EXPECT_THAT(health.swarms(0).completion_histogram(), IsEmpty());
  EXPECT_EQ(health.swarms(0).name(), "");
}

TEST_F(HealthTest, NamedReleaseWithoutPeersReportsThisDatacenter) {
  const std::string id = Register();
  v1::SwarmHealthResponse health = Health(id);
  ASSERT_EQ(health.swarms_size(), 1);
  EXPECT_EQ(health.swarms(0).datacenter(), "dc1");
  EXPECT_EQ(health.swarms(0).peers_downloading(), 0u);
}

TEST_F(HealthTest, UnknownNameIsNotFound) {
  v1::SwarmHealthRequest request;
  request.set_release("nothing@1.0");
  EXPECT_EQ(tracker().GetSwarmHealth(request).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TrackerOptionsTest, RefusesMissingDatacenterAndZeroLimits) {
  TrackerOptions options;
  EXPECT_EQ(ValidateTrackerOptions(options).code(),
            absl::StatusCode::kInvalidArgument);
  options.datacenter = "dc1";
  EXPECT_TRUE(ValidateTrackerOptions(options).ok());
  options.lease_holders = 0;
  absl::Status status = ValidateTrackerOptions(options);
  EXPECT_THAT(std::string(status.message()), HasSubstr("lease_holders"));
}

}  // namespace
}  // namespace shoal::tracker
