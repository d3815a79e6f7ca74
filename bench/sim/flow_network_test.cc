#include "bench/sim/flow_network.h"

#include <random>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::sim {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;

constexpr absl::Duration kZero = absl::ZeroDuration();

// Starts flows of 1 GB over `paths` at time 0 and returns their rates.
std::vector<double> Rates(FlowNetwork& net,
                          const std::vector<std::vector<LinkId>>& paths) {
  std::vector<FlowId> ids;
  for (const auto& path : paths) ids.push_back(net.Start(path, 1e9, 0, kZero));
  net.Update(kZero);
  std::vector<double> rates;
  for (FlowId id : ids) rates.push_back(net.rate(id));
  return rates;
}

TEST(FlowNetworkTest, FlowsSharingOneLinkSplitItEvenly) {
  FlowNetwork net;
  const LinkId link = net.AddLink(10);
  EXPECT_THAT(Rates(net, {{link}, {link}}), ElementsAre(5, 5));
}

TEST(FlowNetworkTest, FlowHeldBackElsewhereLeavesItsShareToOthers) {
  // f0 on A (10); f1 on A and B (4); f2 on B. B fixes f1 and f2 at 2;
  // f0 takes what is left of A.
  FlowNetwork net;
  const LinkId a = net.AddLink(10), b = net.AddLink(4);
  EXPECT_THAT(Rates(net, {{a}, {a, b}, {b}}), ElementsAre(8, 2, 2));
}

TEST(FlowNetworkTest, SenderNicSplitByWhatReceiversTake) {
  // One sender (up 10) to receivers that take 1, 10 and 10.
  FlowNetwork net;
  const LinkId up = net.AddLink(10);
  const LinkId slow = net.AddLink(1), fast1 = net.AddLink(10),
               fast2 = net.AddLink(10);
  EXPECT_THAT(Rates(net, {{up, slow}, {up, fast1}, {up, fast2}}),
              ElementsAre(1, 4.5, 4.5));
}

TEST(FlowNetworkTest, RackUplinkLimitsCrossRackFlowsOnly) {
  // Hosts h1..h3 (NICs 10) send across a rack uplink of 4 to hosts of
  // another rack; h1 also sends to h4 in its own rack.
  FlowNetwork net;
  std::vector<LinkId> up, down;
  for (int i = 0; i < 7; ++i) {
    up.push_back(net.AddLink(10));
    down.push_back(net.AddLink(10));
  }
  const LinkId rack1_up = net.AddLink(4), rack2_down = net.AddLink(4);
  const std::vector<double> rates =
      Rates(net, {{up[1], rack1_up, rack2_down, down[5]},
                  {up[2], rack1_up, rack2_down, down[6]},
                  {up[3], rack1_up, rack2_down, down[0]},
                  {up[1], down[4]}});
  EXPECT_THAT(
      rates,
      ElementsAre(DoubleNear(4.0 / 3, 1e-9), DoubleNear(4.0 / 3, 1e-9),
                  DoubleNear(4.0 / 3, 1e-9), DoubleNear(10 - 4.0 / 3, 1e-9)));
}

TEST(FlowNetworkTest, OriginLeftoverGoesToTheUnconstrainedDatacenter) {
  // Origin 6: two flows into a datacenter behind a link of 2, one into a
  // datacenter with room.
  FlowNetwork net;
  const LinkId origin = net.AddLink(6);
  const LinkId dc_a = net.AddLink(2), dc_b = net.AddLink(100);
  EXPECT_THAT(Rates(net, {{origin, dc_a}, {origin, dc_a}, {origin, dc_b}}),
              ElementsAre(1, 1, 4));
}

TEST(FlowNetworkTest, ZeroCapacityLinkStallsItsFlowsOnly) {
  FlowNetwork net;
  const LinkId dead = net.AddLink(0), shared = net.AddLink(10);
  EXPECT_THAT(Rates(net, {{dead, shared}, {shared}}), ElementsAre(0, 10));
  EXPECT_EQ(net.NextCompletion(), absl::Seconds(1e8));  // 1 GB at 10 B/s
}

TEST(FlowNetworkTest, CompletionTimesFollowRateChanges) {
  // 100 bytes at 10 B/s; a second 100-byte flow joins at 5 s. The first has
  // 50 bytes left at 5 B/s (done at 15 s); the second then has 50 left at
  // 10 B/s (done at 20 s).
  FlowNetwork net;
  const LinkId link = net.AddLink(10);
  const FlowId first = net.Start({link}, 100, 1, kZero);
  net.Update(kZero);
  EXPECT_EQ(net.NextCompletion(), absl::Seconds(10));
  const FlowId second = net.Start({link}, 100, 2, absl::Seconds(5));
  net.Update(absl::Seconds(5));
  std::optional<FlowEnd> end = net.PopCompletion(absl::Seconds(100));
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->id, first);
  EXPECT_EQ(end->tag, 1u);
  EXPECT_EQ(end->at, absl::Seconds(15));
  EXPECT_FALSE(net.running(first));
  net.Update(end->at);
  end = net.PopCompletion(absl::Seconds(100));
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->id, second);
  EXPECT_EQ(end->at, absl::Seconds(20));
  EXPECT_EQ(net.running_flows(), 0u);
}

TEST(FlowNetworkTest, StopReturnsTheBytesMovedAndFreesTheLink) {
  FlowNetwork net;
  const LinkId link = net.AddLink(10);
  const FlowId a = net.Start({link}, 100, 0, kZero);
  const FlowId b = net.Start({link}, 100, 0, kZero);
  net.Update(kZero);
  EXPECT_DOUBLE_EQ(net.Stop(a, absl::Seconds(4)), 20);
  net.Update(absl::Seconds(4));
  EXPECT_EQ(net.rate(b), 10);
  EXPECT_EQ(net.NextCompletion(), absl::Seconds(12));
}

TEST(FlowNetworkTest, NothingCompletesBeforeTheLimit) {
  FlowNetwork net;
  const LinkId link = net.AddLink(10);
  net.Start({link}, 100, 0, kZero);
  net.Update(kZero);
  EXPECT_FALSE(net.PopCompletion(absl::Seconds(9)).has_value());
  EXPECT_TRUE(net.PopCompletion(absl::Seconds(10)).has_value());
}

// Random starts and stops on a random topology; after every Update the
// incremental rates equal a from-scratch max-min computation.
// (seed, tolerance of the network, largest error allowed in B/s with
// capacities of 1 to 100 B/s).
class IncrementalMatchesScratch
    : public ::testing::TestWithParam<std::tuple<int, double, double>> {};

TEST_P(IncrementalMatchesScratch, AfterEveryUpdate) {
  const auto [seed, tolerance, error] = GetParam();
  std::mt19937_64 rng(seed);
  FlowNetwork net(tolerance);
  const int num_links = 24;
  std::vector<double> capacity;
  for (int l = 0; l < num_links; ++l) {
    capacity.push_back(std::uniform_real_distribution<double>(1, 100)(rng));
    net.AddLink(capacity.back());
  }
  struct Live {
    FlowId id;
    std::vector<uint32_t> path;
  };
  std::vector<Live> live;
  absl::Duration now;
  for (int step = 0; step < 300; ++step) {
    now += absl::Milliseconds(1);
    const int changes = std::uniform_int_distribution<int>(1, 4)(rng);
    for (int c = 0; c < changes; ++c) {
      if (!live.empty() && (live.size() > 40 || rng() % 3 == 0)) {
        const size_t i = rng() % live.size();
        net.Stop(live[i].id, now);
        live.erase(live.begin() + i);
        continue;
      }
      std::vector<uint32_t> path;
      const int hops = std::uniform_int_distribution<int>(1, 4)(rng);
      while (static_cast<int>(path.size()) < hops) {
        const uint32_t l = rng() % num_links;
        if (std::find(path.begin(), path.end(), l) == path.end()) {
          path.push_back(l);
        }
      }
      std::vector<LinkId> ids;
      for (uint32_t l : path) ids.push_back(LinkId(l));
      live.push_back({net.Start(ids, 1e12, 0, now), path});
    }
    net.Update(now);
    std::vector<std::vector<uint32_t>> paths;
    for (const Live& f : live) paths.push_back(f.path);
    const std::vector<double> expected = MaxMinRates(capacity, paths);
    for (size_t i = 0; i < live.size(); ++i) {
      ASSERT_NEAR(net.rate(live[i].id), expected[i], error)
          << "step " << step << " flow " << i;
    }
  }
  // Mostly incremental: few updates fall back to refilling everything.
  EXPECT_LT(net.stats().full_refills * 10, net.stats().updates);
}

INSTANTIATE_TEST_SUITE_P(Exact, IncrementalMatchesScratch,
                         ::testing::Combine(::testing::Range(1, 9),
                                            ::testing::Values(kExactTolerance),
                                            ::testing::Values(1e-4)));
// The simulator's tolerance: within about 1 % of the largest link.
INSTANTIATE_TEST_SUITE_P(Loose, IncrementalMatchesScratch,
                         ::testing::Combine(::testing::Range(1, 9),
                                            ::testing::Values(1e-3),
                                            ::testing::Values(1.0)));

}  // namespace
}  // namespace shoal::sim
