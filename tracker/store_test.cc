// One suite of Store behaviours, run against MemoryStore and against
// RedisStore on a real redis-server; then what only Redis has: outages,
// several replicas, key TTLs.

#include "tracker/store.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/memory_store.h"
#include "tracker/redis_store.h"
#include "tracker/testing/redis_server.h"

namespace shoal::tracker {
namespace {

using ::shoal::tracker::testing::RedisServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
const std::string kRelease1(64, 'a');
const std::string kRelease2(64, 'b');
const std::string kRelease3(64, 'c');

v1::StoredPeer Peer(const std::string& id, const std::string& datacenter,
                    uint32_t pieces_have = 0) {
  v1::StoredPeer peer;
  peer.set_peer_id(id);
  peer.set_address(id + ".example:7000");
  peer.set_datacenter(datacenter);
  peer.set_rack("rack-1");
  peer.set_state(v1::PEER_STATE_DOWNLOADING);
  peer.set_pieces_have(pieces_have);
  return peer;
}

v1::StoredRelease Release(const std::string& id, const std::string& name,
                          const std::string& version) {
  v1::StoredRelease release;
  release.set_release_id(id);
  release.set_name(name);
  release.set_version(version);
  release.set_manifest("signed manifest of " + name + "@" + version);
  release.add_origin_urls("https://origin.example/" + name);
  release.set_total_pieces(12);
  return release;
}

ChannelRecord Channel(const std::string& name, const std::string& release,
                      uint32_t percent) {
  ChannelRecord channel;
  channel.channel = name;
  channel.release_id = release;
  channel.percent = percent;
  channel.updated_ms = 1234;
  return channel;
}

std::vector<std::string> PeerIds(const std::vector<v1::StoredPeer>& peers) {
  std::vector<std::string> ids;
  for (const v1::StoredPeer& peer : peers) ids.push_back(peer.peer_id());
  return ids;
}

std::vector<std::string> ReleaseIds(
    const std::vector<v1::StoredRelease>& releases) {
  std::vector<std::string> ids;
  for (const v1::StoredRelease& release : releases) {
    ids.push_back(release.release_id());
  }
  return ids;
}

// --- Behaviours every store has. ---

enum class Backend { kMemory, kRedis };

void PrintTo(Backend backend, std::ostream* os) {
  *os << (backend == Backend::kMemory ? "memory" : "redis");
}

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kMemory) {
      store_ = std::make_unique<MemoryStore>();
      return;
    }
    if (server_ == nullptr) {  // one server for the whole suite
      absl::StatusOr<std::unique_ptr<RedisServer>> server =
          RedisServer::Start();
      ASSERT_TRUE(server.ok()) << server.status();
      server_ = std::move(*server);
    }
    ASSERT_TRUE(server_->FlushAll().ok());
    absl::StatusOr<std::unique_ptr<RedisStore>> store =
        RedisStore::Connect(server_->url(), RedisOptions());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  static void TearDownTestSuite() { server_.reset(); }

  std::vector<std::string> ListedPeers(const std::string& release,
                                       const std::string& datacenter,
                                       absl::Time now) {
    absl::StatusOr<std::vector<v1::StoredPeer>> peers =
        store_->ListPeers(release, datacenter, now);
    EXPECT_TRUE(peers.ok()) << peers.status();
    return peers.ok() ? PeerIds(*peers) : std::vector<std::string>{"error"};
  }

  bool Acquire(const LeaseKey& key, const std::string& peer, int max_holders,
               absl::Duration ttl = absl::Seconds(10)) {
    absl::StatusOr<bool> granted = store_->TryAcquireLease(
        key, peer, max_holders, clock_.Now(), clock_.Now() + ttl);
    EXPECT_TRUE(granted.ok()) << granted.status();
    return granted.ok() && *granted;
  }

  inline static std::unique_ptr<RedisServer> server_;
  FakeClock clock_{kStart};
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, ListPeersReturnsThePeersOfOneDatacenter) {
  const absl::Time expires = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("b", "dc1"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("c", "dc2"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease2, Peer("d", "dc1"), expires).ok());

  EXPECT_THAT(ListedPeers(kRelease1, "dc1", clock_.Now()),
              UnorderedElementsAre("a", "b"));
}

TEST_P(StoreTest, ListPeersKeepsEveryField) {
  v1::StoredPeer peer = Peer("a", "dc1", 7);
  peer.set_bitfield(std::string("\xff\x80", 2));
  peer.set_bytes_from_origin(99);
  peer.set_last_progress_ms(42);
  ASSERT_TRUE(
      store_->PutPeer(kRelease1, peer, clock_.Now() + absl::Seconds(30)).ok());

  absl::StatusOr<std::vector<v1::StoredPeer>> peers =
      store_->ListPeers(kRelease1, "dc1", clock_.Now());
  ASSERT_TRUE(peers.ok()) << peers.status();
  ASSERT_EQ(peers->size(), 1u);
  EXPECT_EQ(peers->front().SerializeAsString(), peer.SerializeAsString());
}

TEST_P(StoreTest, ListPeersWithoutDatacenterReturnsEveryDatacenter) {
  const absl::Time expires = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("b", "dc2"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("c", "dc3"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease2, Peer("d", "dc1"), expires).ok());

  EXPECT_THAT(ListedPeers(kRelease1, "", clock_.Now()),
              UnorderedElementsAre("a", "b", "c"));
}

TEST_P(StoreTest, ListPeersOfUnknownReleaseIsEmpty) {
  EXPECT_THAT(ListedPeers(kRelease1, "", clock_.Now()), IsEmpty());
  EXPECT_THAT(ListedPeers(kRelease1, "dc1", clock_.Now()), IsEmpty());
}

TEST_P(StoreTest, PutPeerAgainReplacesIt) {
  const absl::Time expires = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1", 1), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1", 5), expires).ok());

  absl::StatusOr<std::vector<v1::StoredPeer>> peers =
      store_->ListPeers(kRelease1, "dc1", clock_.Now());
  ASSERT_TRUE(peers.ok()) << peers.status();
  ASSERT_EQ(peers->size(), 1u);
  EXPECT_EQ(peers->front().pieces_have(), 5u);
}

TEST_P(StoreTest, PutPeersPutsEachInItsSwarmWithItsExpiry) {
  const absl::Time soon = clock_.Now() + absl::Seconds(10);
  const absl::Time later = clock_.Now() + absl::Seconds(30);
  const PeerPut puts[] = {{kRelease1, Peer("a", "dc1"), soon},
                          {kRelease2, Peer("a", "dc1"), later},
                          {kRelease2, Peer("b", "dc2"), later}};
  ASSERT_TRUE(store_->PutPeers(puts).ok());

  EXPECT_THAT(ListedPeers(kRelease1, "", clock_.Now()), ElementsAre("a"));
  EXPECT_THAT(ListedPeers(kRelease2, "", clock_.Now()),
              UnorderedElementsAre("a", "b"));
  EXPECT_THAT(ListedPeers(kRelease1, "", soon), IsEmpty());
  EXPECT_THAT(ListedPeers(kRelease2, "", soon), UnorderedElementsAre("a", "b"));
}

TEST_P(StoreTest, PutPeersOfNothingIsOk) {
  EXPECT_TRUE(store_->PutPeers({}).ok());
  EXPECT_THAT(ListedPeers(kRelease1, "", clock_.Now()), IsEmpty());
}

TEST_P(StoreTest, PeerExpiresExactlyAtItsExpiry) {
  const absl::Time expires = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1"), expires).ok());

  EXPECT_THAT(ListedPeers(kRelease1, "dc1", expires - absl::Milliseconds(1)),
              ElementsAre("a"));
  EXPECT_THAT(ListedPeers(kRelease1, "dc1", expires), IsEmpty());
  EXPECT_THAT(ListedPeers(kRelease1, "", expires), IsEmpty());
}

TEST_P(StoreTest, PutPeerAgainExtendsItsLife) {
  ASSERT_TRUE(store_
                  ->PutPeer(kRelease1, Peer("a", "dc1"),
                            clock_.Now() + absl::Seconds(30))
                  .ok());
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(store_
                  ->PutPeer(kRelease1, Peer("a", "dc1"),
                            clock_.Now() + absl::Seconds(30))
                  .ok());
  clock_.Advance(absl::Seconds(20));

  EXPECT_THAT(ListedPeers(kRelease1, "dc1", clock_.Now()), ElementsAre("a"));
}

TEST_P(StoreTest, RemovePeerForgetsIt) {
  const absl::Time expires = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("b", "dc1"), expires).ok());

  ASSERT_TRUE(store_->RemovePeer(kRelease1, "dc1", "a").ok());

  EXPECT_THAT(ListedPeers(kRelease1, "", clock_.Now()), ElementsAre("b"));
}

TEST_P(StoreTest, RemovePeerThatIsAbsentIsOk) {
  EXPECT_TRUE(store_->RemovePeer(kRelease1, "dc1", "nobody").ok());
}

TEST_P(StoreTest, ListSwarmsReturnsReleasesWithLivePeers) {
  ASSERT_TRUE(store_
                  ->PutPeer(kRelease1, Peer("a", "dc1"),
                            clock_.Now() + absl::Seconds(60))
                  .ok());
  ASSERT_TRUE(store_
                  ->PutPeer(kRelease2, Peer("b", "dc2"),
                            clock_.Now() + absl::Seconds(60))
                  .ok());
  ASSERT_TRUE(store_
                  ->PutPeer(kRelease3, Peer("c", "dc1"),
                            clock_.Now() + absl::Seconds(10))
                  .ok());
  clock_.Advance(absl::Seconds(10));

  absl::StatusOr<std::vector<std::string>> swarms =
      store_->ListSwarms(clock_.Now());
  ASSERT_TRUE(swarms.ok()) << swarms.status();
  EXPECT_THAT(*swarms, UnorderedElementsAre(kRelease1, kRelease2));
}

TEST_P(StoreTest, ListSwarmsOmitsReleaseWhosePeersAllStopped) {
  const absl::Time expires = clock_.Now() + absl::Seconds(60);
  ASSERT_TRUE(store_->PutPeer(kRelease1, Peer("a", "dc1"), expires).ok());
  ASSERT_TRUE(store_->PutPeer(kRelease2, Peer("b", "dc1"), expires).ok());
  ASSERT_TRUE(store_->RemovePeer(kRelease2, "dc1", "b").ok());

  absl::StatusOr<std::vector<std::string>> swarms =
      store_->ListSwarms(clock_.Now());
  ASSERT_TRUE(swarms.ok()) << swarms.status();
  EXPECT_THAT(*swarms, ElementsAre(kRelease1));
}

TEST_P(StoreTest, LeaseIsGrantedToTheFirstMaxHolders) {
  const LeaseKey key{kRelease1, "dc1", 3};
  EXPECT_TRUE(Acquire(key, "a", 2));
  EXPECT_TRUE(Acquire(key, "b", 2));
}

TEST_P(StoreTest, LeaseIsRefusedBeyondMaxHolders) {
  const LeaseKey key{kRelease1, "dc1", 3};
  ASSERT_TRUE(Acquire(key, "a", 2));
  ASSERT_TRUE(Acquire(key, "b", 2));
  EXPECT_FALSE(Acquire(key, "c", 2));
}

TEST_P(StoreTest, LeaseHolderExtendsItsLease) {
  const LeaseKey key{kRelease1, "dc1", 3};
  ASSERT_TRUE(Acquire(key, "a", 1, absl::Seconds(10)));
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(Acquire(key, "a", 1, absl::Seconds(10)));
  clock_.Advance(absl::Seconds(7));  // past the first expiry, not the second
  EXPECT_FALSE(Acquire(key, "b", 1));
}

TEST_P(StoreTest, ExpiredLeaseFreesItsSlot) {
  const LeaseKey key{kRelease1, "dc1", 3};
  ASSERT_TRUE(Acquire(key, "a", 1, absl::Seconds(10)));
  clock_.Advance(absl::Seconds(10) - absl::Milliseconds(1));
  ASSERT_FALSE(Acquire(key, "b", 1));
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(Acquire(key, "b", 1));
}

TEST_P(StoreTest, LeasesAreCountedPerPieceAndDatacenter) {
  ASSERT_TRUE(Acquire({kRelease1, "dc1", 3}, "a", 1));
  EXPECT_TRUE(Acquire({kRelease1, "dc1", 4}, "b", 1));
  EXPECT_TRUE(Acquire({kRelease1, "dc2", 3}, "c", 1));
  EXPECT_TRUE(Acquire({kRelease2, "dc1", 3}, "d", 1));
}

TEST_P(StoreTest, CountLeasesCountsLiveLeasesOfTheSwarm) {
  ASSERT_TRUE(Acquire({kRelease1, "dc1", 0}, "a", 2, absl::Seconds(5)));
  ASSERT_TRUE(Acquire({kRelease1, "dc1", 0}, "b", 2, absl::Seconds(20)));
  ASSERT_TRUE(Acquire({kRelease1, "dc1", 1}, "a", 2, absl::Seconds(20)));
  ASSERT_TRUE(Acquire({kRelease1, "dc2", 0}, "c", 2, absl::Seconds(20)));
  ASSERT_TRUE(Acquire({kRelease2, "dc1", 0}, "d", 2, absl::Seconds(20)));

  absl::StatusOr<uint32_t> before =
      store_->CountLeases(kRelease1, "dc1", clock_.Now());
  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<uint32_t> after =
      store_->CountLeases(kRelease1, "dc1", clock_.Now());
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*before, 3u);
  EXPECT_EQ(*after, 2u);
}

TEST_P(StoreTest, CountLeasesOfUnknownSwarmIsZero) {
  absl::StatusOr<uint32_t> count =
      store_->CountLeases(kRelease1, "dc1", clock_.Now());
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 0u);
}

TEST_P(StoreTest, GetReleaseReturnsWhatWasPut) {
  const v1::StoredRelease release = Release(kRelease1, "game", "1.0");
  ASSERT_TRUE(store_->PutRelease(release).ok());

  absl::StatusOr<std::optional<v1::StoredRelease>> got =
      store_->GetRelease(kRelease1);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->SerializeAsString(), release.SerializeAsString());
}

TEST_P(StoreTest, GetUnknownReleaseIsEmpty) {
  absl::StatusOr<std::optional<v1::StoredRelease>> got =
      store_->GetRelease(kRelease1);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreTest, PutReleaseAgainReplacesIt) {
  v1::StoredRelease release = Release(kRelease1, "game", "1.0");
  ASSERT_TRUE(store_->PutRelease(release).ok());
  release.clear_origin_urls();
  release.add_origin_urls("https://mirror.example/game");
  ASSERT_TRUE(store_->PutRelease(release).ok());

  absl::StatusOr<std::optional<v1::StoredRelease>> got =
      store_->GetRelease(kRelease1);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_THAT((*got)->origin_urls(),
              ElementsAre("https://mirror.example/game"));
}

TEST_P(StoreTest, ListReleasesIsSortedByReleaseId) {
  ASSERT_TRUE(store_->PutRelease(Release(kRelease3, "game", "1.2")).ok());
  ASSERT_TRUE(store_->PutRelease(Release(kRelease1, "tools", "3.0")).ok());
  ASSERT_TRUE(store_->PutRelease(Release(kRelease2, "game", "1.1")).ok());

  absl::StatusOr<std::vector<v1::StoredRelease>> all = store_->ListReleases("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(ReleaseIds(*all), ElementsAre(kRelease1, kRelease2, kRelease3));
}

TEST_P(StoreTest, ListReleasesFiltersByName) {
  ASSERT_TRUE(store_->PutRelease(Release(kRelease3, "game", "1.2")).ok());
  ASSERT_TRUE(store_->PutRelease(Release(kRelease1, "tools", "3.0")).ok());
  ASSERT_TRUE(store_->PutRelease(Release(kRelease2, "game", "1.1")).ok());

  absl::StatusOr<std::vector<v1::StoredRelease>> games =
      store_->ListReleases("game");
  absl::StatusOr<std::vector<v1::StoredRelease>> none =
      store_->ListReleases("gam");
  ASSERT_TRUE(games.ok()) << games.status();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(ReleaseIds(*games), ElementsAre(kRelease2, kRelease3));
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(StoreTest, ChannelGenerationStartsAtOneAndIncrements) {
  absl::StatusOr<ChannelRecord> first =
      store_->PutChannel(Channel("game/stable", kRelease1, 10));
  absl::StatusOr<ChannelRecord> second =
      store_->PutChannel(Channel("game/stable", kRelease1, 50));
  absl::StatusOr<ChannelRecord> other =
      store_->PutChannel(Channel("game/beta", kRelease2, 100));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(first->generation, 1u);
  EXPECT_EQ(second->generation, 2u);
  EXPECT_EQ(other->generation, 1u);
}

TEST_P(StoreTest, GetChannelReturnsTheLastPut) {
  ASSERT_TRUE(store_->PutChannel(Channel("game/stable", kRelease1, 10)).ok());
  ChannelRecord paused = Channel("game/stable", kRelease2, 25);
  paused.paused = true;
  paused.updated_ms = 5678;
  ASSERT_TRUE(store_->PutChannel(paused).ok());

  absl::StatusOr<std::optional<ChannelRecord>> got =
      store_->GetChannel("game/stable");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->channel, "game/stable");
  EXPECT_EQ((*got)->release_id, kRelease2);
  EXPECT_EQ((*got)->percent, 25u);
  EXPECT_TRUE((*got)->paused);
  EXPECT_EQ((*got)->generation, 2u);
  EXPECT_EQ((*got)->updated_ms, 5678);
}

TEST_P(StoreTest, GetUnknownChannelIsEmpty) {
  absl::StatusOr<std::optional<ChannelRecord>> got =
      store_->GetChannel("game/stable");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreTest, PingSucceeds) { EXPECT_TRUE(store_->Ping().ok()); }

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kMemory, Backend::kRedis),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kMemory ? "Memory"
                                                                 : "Redis";
                         });

}  // namespace
}  // namespace shoal::tracker
