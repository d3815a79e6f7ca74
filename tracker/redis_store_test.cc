// What only RedisStore has: a server that can go away, replicas sharing one
// server, URLs, key TTLs. The behaviours common to every store are in
// store_test.cc.

#include "tracker/redis_store.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tracker/testing/redis_server.h"

namespace shoal::tracker {
namespace {

using ::shoal::tracker::testing::RedisServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
const std::string kRelease(64, 'a');

v1::StoredPeer Peer(const std::string& id) {
  v1::StoredPeer peer;
  peer.set_peer_id(id);
  peer.set_address(id + ".example:7000");
  peer.set_datacenter("dc1");
  return peer;
}

std::vector<std::string> PeerIds(
    const absl::StatusOr<std::vector<v1::StoredPeer>>& peers) {
  std::vector<std::string> ids;
  if (!peers.ok()) return {peers.status().ToString()};
  for (const v1::StoredPeer& peer : *peers) ids.push_back(peer.peer_id());
  return ids;
}

class RedisStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->FlushAll().ok());
  }

  std::unique_ptr<RedisStore> Connect(const std::string& suffix = "") {
    absl::StatusOr<std::unique_ptr<RedisStore>> store =
        RedisStore::Connect(server_->url() + suffix, RedisOptions());
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  inline static std::unique_ptr<RedisServer> server_;
  FakeClock clock_{kStart};
};

TEST_F(RedisStoreTest, ConnectRejectsMalformedUrl) {
  for (const char* url : {"127.0.0.1:6379", "http://127.0.0.1:6379",
                          "redis://:6379", "redis://127.0.0.1:0",
                          "redis://127.0.0.1:6379/x", "redis://u:p@host:1"}) {
    EXPECT_EQ(RedisStore::Connect(url, RedisOptions()).status().code(),
              absl::StatusCode::kInvalidArgument)
        << url;
  }
}

TEST_F(RedisStoreTest, ConnectToAbsentServerIsUnavailableNamingIt) {
  absl::StatusOr<std::unique_ptr<RedisServer>> gone = RedisServer::Start();
  ASSERT_TRUE(gone.ok()) << gone.status();
  (*gone)->Kill();

  absl::StatusOr<std::unique_ptr<RedisStore>> store =
      RedisStore::Connect((*gone)->url(), RedisOptions());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("127.0.0.1:", (*gone)->port())));
}

TEST_F(RedisStoreTest, IsUnavailableWhileServerIsDownAndRecoversAfter) {
  std::unique_ptr<RedisStore> store = Connect();
  ASSERT_NE(store, nullptr);
  const absl::Time expires = clock_.Now() + absl::Seconds(60);
  ASSERT_TRUE(store->PutPeer(kRelease, Peer("a"), expires).ok());

  server_->Kill();
  const absl::Status down = store->PutPeer(kRelease, Peer("b"), expires);
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(down.message(),
              HasSubstr(absl::StrCat("127.0.0.1:", server_->port())));
  EXPECT_EQ(store->Ping().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(server_->Restart().ok());  // empty, and without our scripts
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_TRUE(store->PutPeer(kRelease, Peer("c"), expires).ok());
  EXPECT_THAT(PeerIds(store->ListPeers(kRelease, "dc1", clock_.Now())),
              ElementsAre("c"));
}

TEST_F(RedisStoreTest, FirstCallAfterServerRestartSucceeds) {
  std::unique_ptr<RedisStore> store = Connect();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Ping().ok());  // leaves an idle pooled connection

  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());

  EXPECT_TRUE(store->Ping().ok());
}

TEST_F(RedisStoreTest, TwoStoresOnOneServerSeeEachOthersWrites) {
  std::unique_ptr<RedisStore> one = Connect();
  std::unique_ptr<RedisStore> two = Connect();
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);

  ASSERT_TRUE(
      one->PutPeer(kRelease, Peer("a"), clock_.Now() + absl::Seconds(9)).ok());
  EXPECT_THAT(PeerIds(two->ListPeers(kRelease, "", clock_.Now())),
              ElementsAre("a"));

  ChannelRecord channel;
  channel.channel = "game/stable";
  channel.release_id = kRelease;
  ASSERT_TRUE(one->PutChannel(channel).ok());
  absl::StatusOr<ChannelRecord> second = two->PutChannel(channel);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->generation, 2u);

  const LeaseKey key{kRelease, "dc1", 0};
  const absl::Time until = clock_.Now() + absl::Seconds(9);
  ASSERT_TRUE(*one->TryAcquireLease(key, "a", 1, clock_.Now(), until));
  EXPECT_FALSE(*two->TryAcquireLease(key, "b", 1, clock_.Now(), until));
}

TEST_F(RedisStoreTest, ConcurrentLeaseRequestsOnTwoStoresGrantExactlyMax) {
  constexpr int kThreads = 8;
  constexpr int kPieces = 40;
  constexpr int kMaxHolders = 3;
  std::unique_ptr<RedisStore> stores[2] = {Connect(), Connect()};
  ASSERT_NE(stores[0], nullptr);
  ASSERT_NE(stores[1], nullptr);

  absl::Mutex mu;
  std::vector<int> granted(kPieces, 0);
  int errors = 0;
  absl::Notification go;
  std::vector<std::thread> threads;
  const absl::Time now = clock_.Now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.WaitForNotification();
      for (int piece = 0; piece < kPieces; ++piece) {
        absl::StatusOr<bool> ok = stores[t % 2]->TryAcquireLease(
            {kRelease, "dc1", static_cast<uint32_t>(piece)},
            absl::StrCat("peer-", t), kMaxHolders, now,
            now + absl::Seconds(30));
        absl::MutexLock lock(&mu);
        if (!ok.ok()) ++errors;
        if (ok.ok() && *ok) ++granted[piece];
      }
    });
  }
  go.Notify();
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(errors, 0);
  EXPECT_EQ(granted, std::vector<int>(kPieces, kMaxHolders));
  absl::StatusOr<uint32_t> count = stores[0]->CountLeases(kRelease, "dc1", now);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, static_cast<uint32_t>(kPieces * kMaxHolders));
}

TEST_F(RedisStoreTest, SwarmAndLeaseKeysExpireOnTheirOwn) {
  std::unique_ptr<RedisStore> store = Connect();
  ASSERT_NE(store, nullptr);
  const absl::Time until = clock_.Now() + absl::Seconds(30);
  ASSERT_TRUE(store->PutPeer(kRelease, Peer("a"), until).ok());
  ASSERT_TRUE(*store->TryAcquireLease({kRelease, "dc1", 0}, "a", 1,
                                      clock_.Now(), until));
  ChannelRecord channel;
  channel.channel = "game/stable";
  ASSERT_TRUE(store->PutChannel(channel).ok());

  absl::StatusOr<std::string> keys = server_->Command({"KEYS", "*"});
  ASSERT_TRUE(keys.ok()) << keys.status();
  for (absl::string_view key : absl::StrSplit(*keys, '\n')) {
    absl::StatusOr<std::string> pttl =
        server_->Command({"PTTL", std::string(key)});
    ASSERT_TRUE(pttl.ok()) << pttl.status();
    int64_t ms = 0;
    ASSERT_TRUE(absl::SimpleAtoi(*pttl, &ms)) << *pttl;
    const bool kept =
        key == "shoal:swarms" || key == "shoal:channel:game/stable";
    if (kept) {
      EXPECT_EQ(ms, -1) << key;
    } else {  // at least key_ttl: fake time must not make them vanish
      EXPECT_GT(ms, absl::ToInt64Milliseconds(absl::Minutes(59))) << key;
    }
  }
}

TEST_F(RedisStoreTest, UsesTheDatabaseOfTheUrl) {
  std::unique_ptr<RedisStore> store = Connect("/3");
  ASSERT_NE(store, nullptr);
  ChannelRecord channel;
  channel.channel = "game/stable";
  ASSERT_TRUE(store->PutChannel(channel).ok());

  absl::StatusOr<std::string> keyspace = server_->Command({"INFO", "keyspace"});
  ASSERT_TRUE(keyspace.ok()) << keyspace.status();
  EXPECT_THAT(*keyspace, HasSubstr("db3:keys=1"));
  EXPECT_THAT(*keyspace, Not(HasSubstr("db0:")));
}

}  // namespace
}  // namespace shoal::tracker
