#include "tracker/peer_selection.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::tracker {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

v1::StoredPeer Peer(const std::string& id, const std::string& datacenter,
                    const std::string& rack, const std::string& bitfield = "") {
  v1::StoredPeer peer;
  peer.set_peer_id(id);
  peer.set_datacenter(datacenter);
  peer.set_rack(rack);
  peer.set_bitfield(bitfield);
  return peer;
}

Asker AskerIn(const std::string& datacenter, const std::string& rack,
              const std::string& bitfield = "") {
  return Asker{"me", datacenter, rack, bitfield};
}

std::vector<std::string> Ids(const std::vector<const v1::StoredPeer*>& peers) {
  std::vector<std::string> ids;
  for (const v1::StoredPeer* peer : peers) ids.push_back(peer->peer_id());
  return ids;
}

RankOptions Options(uint32_t limit, bool include_other_datacenters = false) {
  RankOptions options;
  options.limit = limit;
  options.include_other_datacenters = include_other_datacenters;
  return options;
}

std::vector<std::string> Rank(const Asker& asker,
                              const std::vector<v1::StoredPeer>& candidates,
                              RankOptions options, uint64_t seed = 1) {
  std::mt19937_64 gen(seed);
  return Ids(RankPeers(asker, candidates, options, gen));
}

TEST(PeerSelectionTest, SameRackThenSameDatacenterThenOthers) {
  std::vector<v1::StoredPeer> candidates = {Peer("other-dc", "dc2", "r1"),
                                            Peer("same-dc", "dc1", "r2"),
                                            Peer("same-rack", "dc1", "r1")};
  EXPECT_THAT(Rank(AskerIn("dc1", "r1"), candidates, Options(10, true)),
              ElementsAre("same-rack", "same-dc", "other-dc"));
}

TEST(PeerSelectionTest, LeavesOutOtherDatacentersUnlessAsked) {
  std::vector<v1::StoredPeer> candidates = {Peer("other-dc", "dc2", "r1"),
                                            Peer("same-dc", "dc1", "r2")};
  EXPECT_THAT(Rank(AskerIn("dc1", "r1"), candidates, Options(10)),
              ElementsAre("same-dc"));
}

TEST(PeerSelectionTest, RackOfAnotherDatacenterIsNotTheSameRack) {
  std::vector<v1::StoredPeer> candidates = {Peer("far", "dc2", "r1"),
                                            Peer("near", "dc1", "r9")};
  EXPECT_THAT(Rank(AskerIn("dc1", "r1"), candidates, Options(10, true)),
              ElementsAre("near", "far"));
}

TEST(PeerSelectionTest, NeverReturnsTheAsker) {
  std::vector<v1::StoredPeer> candidates = {Peer("me", "dc1", "r1"),
                                            Peer("you", "dc1", "r1")};
  EXPECT_THAT(Rank(AskerIn("dc1", "r1"), candidates, Options(10)),
              ElementsAre("you"));
}

TEST(PeerSelectionTest, ReturnsAtMostTheLimit) {
  std::vector<v1::StoredPeer> candidates;
  for (int i = 0; i < 20; ++i) {
    candidates.push_back(Peer(std::to_string(i), "dc1", i < 5 ? "r1" : "r2"));
  }
  EXPECT_EQ(Rank(AskerIn("dc1", "r1"), candidates, Options(7)).size(), 7u);
  EXPECT_TRUE(Rank(AskerIn("dc1", "r1"), candidates, Options(0)).empty());
}

TEST(PeerSelectionTest, TruncationKeepsTheNearestTier) {
  std::vector<v1::StoredPeer> candidates = {
      Peer("dc-a", "dc1", "r2"), Peer("rack-a", "dc1", "r1"),
      Peer("dc-b", "dc1", "r2"), Peer("rack-b", "dc1", "r1")};
  EXPECT_THAT(Rank(AskerIn("dc1", "r1"), candidates, Options(2)),
              UnorderedElementsAre("rack-a", "rack-b"));
}

TEST(PeerSelectionTest, PeersHoldingWhatTheAskerLacksComeFirstInATier) {
  // The asker holds piece 0 of 8; "useful" peers hold piece 1.
  std::vector<v1::StoredPeer> candidates;
  for (int i = 0; i < 6; ++i) {
    const bool useful = i % 2 == 1;
    candidates.push_back(
        Peer((useful ? "useful-" : "same-") + std::to_string(i), "dc1", "r1",
             useful ? "\xc0" : "\x80"));
  }
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<std::string> ranked =
        Rank(AskerIn("dc1", "r1", "\x80"), candidates, Options(10), seed);
    ASSERT_EQ(ranked.size(), 6u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ranked[i].substr(0, 7), "useful-");
  }
}

TEST(PeerSelectionTest, UsefulnessDoesNotOutrankLocality) {
  std::vector<v1::StoredPeer> candidates = {
      Peer("useful-far", "dc1", "r2", "\xff"),
      Peer("useless-near", "dc1", "r1", "")};
  EXPECT_THAT(Rank(AskerIn("dc1", "r1"), candidates, Options(10)),
              ElementsAre("useless-near", "useful-far"));
}

TEST(PeerSelectionTest, ShufflesWithinATier) {
  std::vector<v1::StoredPeer> candidates;
  for (int i = 0; i < 5; ++i) {
    candidates.push_back(Peer(std::to_string(i), "dc1", "r1"));
  }
  std::map<std::string, int> first;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    ++first[Rank(AskerIn("dc1", "r1"), candidates, Options(5), seed)[0]];
  }
  // Uniform: about 40 each.
  ASSERT_EQ(first.size(), 5u);
  for (const auto& [id, count] : first) EXPECT_GT(count, 15) << id;
}

TEST(PeerSelectionTest, AskerWithoutRackGetsItsDatacenter) {
  std::vector<v1::StoredPeer> candidates = {Peer("a", "dc1", "r1"),
                                            Peer("b", "dc2", "r1")};
  EXPECT_THAT(Rank(AskerIn("dc1", ""), candidates, Options(10)),
              ElementsAre("a"));
}

}  // namespace
}  // namespace shoal::tracker
