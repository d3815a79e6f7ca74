#include "bench/load_model.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/bitfield.h"
#include "gtest/gtest.h"

namespace shoal::bench {
namespace {

std::vector<Release> Releases(int count, uint32_t pieces) {
  std::vector<Release> releases;
  for (int i = 0; i < count; ++i) {
    releases.push_back({absl::StrFormat("%064x", i), pieces});
  }
  return releases;
}

TEST(LatencyHistogramTest, QuantilesAreWithinOneSixtyFourth) {
  LatencyHistogram histogram;
  for (int64_t v = 1; v <= 100000; ++v) histogram.Record(v * 1000);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 100000 * 1000;
    EXPECT_GE(histogram.Quantile(q), exact) << q;
    EXPECT_LE(histogram.Quantile(q), exact * (1 + 1.0 / 64)) << q;
  }
  EXPECT_GE(histogram.Quantile(1.0), 100000 * 1000);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram histogram;
  histogram.Record(3);
  histogram.Record(5);
  EXPECT_EQ(histogram.Quantile(0.5), 3);
  EXPECT_EQ(histogram.Quantile(1.0), 5);
}

TEST(LatencyHistogramTest, EmptyIsZero) {
  EXPECT_EQ(LatencyHistogram().Quantile(0.99), 0);
}

TEST(MakePeersTest, SameSeedGivesSamePeers) {
  const std::vector<Release> releases = Releases(100, 256);
  auto a = MakePeers(releases, 50, 4, 7);
  auto b = MakePeers(releases, 50, 4, 7);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]->id, b[i]->id);
    ASSERT_EQ(a[i]->held.size(), b[i]->held.size());
    for (size_t k = 0; k < a[i]->held.size(); ++k) {
      EXPECT_EQ(a[i]->held[k].bitfield, b[i]->held[k].bitfield);
    }
  }
}

TEST(MakePeersTest, PeersAreDistinctAndHoldDistinctReleases) {
  const std::vector<Release> releases = Releases(2, 20);
  auto peers = MakePeers(releases, 1000, 4, 1);
  std::set<std::string> ids;
  for (const auto& peer : peers) {
    EXPECT_EQ(peer->id.size(), 32u);
    ids.insert(peer->id);
    std::set<const Release*> held;
    for (const HeldRelease& h : peer->held) held.insert(h.release);
    EXPECT_EQ(held.size(), peer->held.size());
    EXPECT_GE(held.size(), 1u);
  }
  EXPECT_EQ(ids.size(), peers.size());
}

TEST(NextAnnounceTest, BitfieldsOnlyGrowUntilSeeding) {
  const std::vector<Release> releases = Releases(10, 17);
  auto peers = MakePeers(releases, 1, 1, 3);
  SimPeer& peer = *peers[0];
  v1::AnnounceRequest request;
  std::vector<uint32_t> last(peer.held.size(), 0);
  for (int round = 0; round < 200; ++round) {
    NextAnnounce(peer, "dc", request);
    ASSERT_EQ(request.releases_size(), static_cast<int>(peer.held.size()));
    for (int i = 0; i < request.releases_size(); ++i) {
      const v1::ReleaseAnnounce& r = request.releases(i);
      ASSERT_TRUE(Bitfield::FromBytes(r.bitfield(), 17).ok());
      const uint32_t have = CountPieces(r.bitfield());
      EXPECT_GE(have, last[i]);
      last[i] = have;
      EXPECT_EQ(r.state() == v1::PEER_STATE_SEEDING, have == 17);
    }
  }
  for (uint32_t have : last) EXPECT_EQ(have, 17u);  // 200 rounds fill 17
}

}  // namespace
}  // namespace shoal::bench
