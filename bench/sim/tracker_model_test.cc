#include "bench/sim/tracker_model.h"

#include <string>
#include <vector>

#include "common/bitfield.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::sim {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::Lt;
using ::testing::SizeIs;

constexpr uint32_t kPieces = 16;
const absl::Time kNow = absl::UnixEpoch();

TrackerSettings Settings() {
  TrackerSettings s;
  s.datacenter = "dc0";
  s.release_id = std::string(64, 'a');
  s.num_pieces = kPieces;
  return s;
}

std::string Id(int agent) { return "peer" + std::to_string(agent); }

std::string Holding(std::vector<uint32_t> pieces) {
  Bitfield bits(kPieces);
  for (uint32_t p : pieces) bits.Set(ReleasePieceIndex(p));
  return bits.bytes();
}

// Agents 0..n-1, agent i in rack "r<i % racks>", holding nothing.
void AnnounceAll(TrackerModel& t, int n, int racks) {
  for (int i = 0; i < n; ++i) {
    t.Announce(i, Id(i), "r" + std::to_string(i % racks), Holding({}), false,
               kNow);
  }
}

v1::OriginLeaseRequest Ask(int agent, std::vector<uint32_t> pieces) {
  v1::OriginLeaseRequest r;
  r.set_peer_id(Id(agent));
  r.set_release_id(std::string(64, 'a'));
  for (uint32_t p : pieces) r.add_pieces(p);
  return r;
}

TEST(TrackerModelTest, NamesRackPeersFirst) {
  TrackerModel t(Settings());
  AnnounceAll(t, 40, 4);  // agent 0's rack: 4, 8, ..., 36
  const std::vector<int> peers = t.GetPeers(0, Id(0), 9);
  ASSERT_THAT(peers, SizeIs(9));
  for (int p : peers) EXPECT_EQ(p % 4, 0) << p;
}

TEST(TrackerModelTest, WhatIfKeepsPlacesForOtherRacks) {
  TrackerSettings settings = Settings();
  settings.other_rack_places = 3;
  TrackerModel t(settings);
  AnnounceAll(t, 40, 4);
  const std::vector<int> peers = t.GetPeers(0, Id(0), 9);
  ASSERT_THAT(peers, SizeIs(9));
  int other = 0;
  for (int p : peers) other += p % 4 != 0;
  EXPECT_EQ(other, 3);
}

TEST(TrackerModelTest, LeasesAPieceOnceThenSendsAskersToItsHolder) {
  TrackerModel t(Settings());
  AnnounceAll(t, 3, 1);
  EXPECT_THAT(t.RequestLease(0, Ask(0, {5}), kNow).granted(), ElementsAre(5));
  EXPECT_THAT(t.RequestLease(1, Ask(1, {5}), kNow).leased_to_others(),
              ElementsAre(5));
  t.Announce(0, Id(0), "r0", Holding({5}), false, kNow);
  EXPECT_THAT(t.RequestLease(2, Ask(2, {5}), kNow).held_by_peers(),
              ElementsAre(5));
  EXPECT_EQ(t.leases_granted(), 1u);
}

TEST(TrackerModelTest, ThreadsServeCallsInArrivalOrder) {
  TrackerSettings settings = Settings();
  settings.threads = 2;
  settings.call_cost = absl::Milliseconds(1);
  settings.peer_cost = absl::ZeroDuration();
  TrackerModel t(settings);
  absl::Duration done;
  std::vector<absl::Duration> starts;
  for (int i = 0; i < 3; ++i) {
    starts.push_back(t.Admit(TrackerCall::kLease, absl::ZeroDuration(), &done));
  }
  EXPECT_THAT(starts, ElementsAre(absl::ZeroDuration(), absl::ZeroDuration(),
                                  absl::Milliseconds(1)));
  EXPECT_EQ(done, absl::Milliseconds(2));
  EXPECT_EQ(t.max_wait(), absl::Milliseconds(1));
}

}  // namespace
}  // namespace shoal::sim
