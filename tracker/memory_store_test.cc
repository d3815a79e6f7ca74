// What only MemoryStore has: its memory bound. The behaviours common to every
// store are in store_test.cc.

#include "tracker/memory_store.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::tracker {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
constexpr int kBatch = 5000;

v1::StoredPeer Peer(int i) {
  v1::StoredPeer peer;
  peer.set_peer_id(absl::StrCat("peer-", i));
  peer.set_datacenter("dc1");
  return peer;
}

TEST(MemoryStoreTest, ExpiredPeersOfUntouchedSwarmsAreSwept) {
  MemoryStore store;
  for (int i = 0; i < kBatch; ++i) {  // one swarm each, never listed again
    ASSERT_TRUE(store
                    .PutPeer(absl::StrCat("old-", i), Peer(i),
                             kStart + absl::Seconds(10))
                    .ok());
  }
  const absl::Time later = kStart + absl::Seconds(20);
  ASSERT_TRUE(store.ListPeers("unrelated", "", later).ok());  // tells the time
  for (int i = 0; i < kBatch; ++i) {
    ASSERT_TRUE(store
                    .PutPeer(absl::StrCat("new-", i), Peer(i),
                             later + absl::Seconds(10))
                    .ok());
  }

  EXPECT_LT(store.EntryCount(), static_cast<size_t>(kBatch + kBatch / 2));
  for (int i = 0; i < kBatch; ++i) {
    absl::StatusOr<std::vector<v1::StoredPeer>> peers =
        store.ListPeers(absl::StrCat("new-", i), "dc1", later);
    ASSERT_TRUE(peers.ok());
    ASSERT_EQ(peers->size(), 1u) << "swept a live peer of new-" << i;
  }
}

TEST(MemoryStoreTest, ExpiredLeasesOfUntouchedPiecesAreSwept) {
  MemoryStore store;
  const absl::Time later = kStart + absl::Seconds(20);
  for (int i = 0; i < kBatch; ++i) {
    LeaseKey key{"release", "dc1", static_cast<uint32_t>(i)};
    ASSERT_TRUE(*store.TryAcquireLease(key, "a", 1, kStart,
                                       kStart + absl::Seconds(10)));
  }
  for (int i = 0; i < kBatch; ++i) {
    LeaseKey key{"other", "dc1", static_cast<uint32_t>(i)};
    ASSERT_TRUE(
        *store.TryAcquireLease(key, "a", 1, later, later + absl::Seconds(10)));
  }

  EXPECT_LT(store.EntryCount(), static_cast<size_t>(kBatch + kBatch / 2));
  absl::StatusOr<uint32_t> live = store.CountLeases("other", "dc1", later);
  ASSERT_TRUE(live.ok());
  EXPECT_EQ(*live, static_cast<uint32_t>(kBatch));
}

TEST(MemoryStoreTest, RefusedLeaseRequestsDoNotGrowTheStore) {
  MemoryStore store;
  ASSERT_TRUE(*store.TryAcquireLease({"release", "dc1", 0}, "a", 0, kStart,
                                     kStart + absl::Seconds(10)) == false);
  EXPECT_EQ(store.EntryCount(), 0u);
}

}  // namespace
}  // namespace shoal::tracker
