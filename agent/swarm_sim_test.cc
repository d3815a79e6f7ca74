#include "agent/swarm_sim.h"

#include <algorithm>
#include <iostream>

#include "absl/time/time.h"
#include "agent/scheduler.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

// Every node uploads at 10 MB/s (26 ms per 256 KiB piece).
constexpr double kRate = 10e6;

SchedulerConfig SimSchedulerConfig() {
  SchedulerConfig c;
  c.max_in_flight_per_peer = 1;
  c.max_in_flight = 4;
  c.min_peer_rate = 256 * 1024;
  c.rate_window = absl::Seconds(4);
  c.grace = absl::Seconds(2);
  c.assumed_rate = kRate / 4;
  c.min_timeout = absl::Seconds(1);
  c.max_timeout = absl::Seconds(30);
  c.busy_backoff = absl::Milliseconds(20);
  c.failure_memory = absl::Seconds(5);
  c.max_origin_in_flight = 1;
  c.origin_retry = absl::Milliseconds(200);
  return c;
}

SimAgentSpec Agent(int rack = 0) {
  return SimAgentSpec{0, rack, kRate, 2 * kRate};
}

SimAgentSpec Seed(int rack = 0) {
  SimAgentSpec s = Agent(rack);
  s.seed = true;
  return s;
}

SimAgentSpec Dishonest(SimBehaviour behaviour) {
  SimAgentSpec s = Agent();
  s.behaviour = behaviour;
  return s;
}

// One seed (agent 0) and `downloaders` agents, every node capped at kRate
// up and 2 x kRate down; 64 MiB in `pieces` pieces (256 KiB by default);
// 4 upload slots per agent.
SwarmConfig OneSeed(int downloaders, int pieces = 256) {
  SwarmConfig c;
  c.piece_lengths.assign(pieces, (64ull << 20) / pieces);
  c.scheduler = SimSchedulerConfig();
  c.upload_slots = 4;
  c.agents.push_back(Seed());
  for (int i = 0; i < downloaders; ++i) c.agents.push_back(Agent());
  return c;
}

SwarmResult Simulate(const SwarmConfig& config) {
  absl::StatusOr<SwarmResult> result = RunSwarm(config);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return SwarmResult();
  std::cout << result->Summary() << "\n";
  return *std::move(result);
}

double Copies(const SwarmResult& r, int agent) {
  return r.agents[agent].bytes_sent / static_cast<double>(r.release_bytes);
}

// Downloaders (agent index >= first) that dropped `peer` for `reason`.
int DroppedBy(const SwarmResult& r, int peer, DropReason reason, int first) {
  int n = 0;
  for (int i = first; i < static_cast<int>(r.agents.size()); ++i) {
    const auto& dropped = r.agents[i].dropped;
    n += std::count(dropped.begin(), dropped.end(),
                    std::make_pair(peer, reason));
  }
  return n;
}

class OneSeedSwarm : public ::testing::TestWithParam<int> {};

// 8, 20 and 50 downloaders (50 with 128 pieces, to keep the test short).
TEST_P(OneSeedSwarm, EveryDownloaderCompletesNearTheFluidBound) {
  const int n = GetParam();
  const SwarmResult r = Simulate(OneSeed(n, n > 20 ? 128 : 256));
  std::cout << "seed copies " << Copies(r, 0) << "\n";
  ASSERT_TRUE(r.all_complete);
  EXPECT_LT(r.CompletionRatio(), 1.25);
  EXPECT_LT(Copies(r, 0), 1.15);
}

INSTANTIATE_TEST_SUITE_P(Sizes, OneSeedSwarm, ::testing::Values(8, 20, 50));

TEST(SwarmSimTest, SeedSendsEveryPieceOnceBeforeAnyTwice) {
  const SwarmResult r = Simulate(OneSeed(20));
  ASSERT_TRUE(r.all_complete);
  const SimAgentResult& seed = r.agents[0];
  EXPECT_EQ(seed.distinct_before_duplicate, 256u);
  // One copy of everything left the seed at nearly its full rate.
  EXPECT_LT(absl::FDivDuration(r.all_pieces_out, r.fluid_bound), 1.05);
  std::vector<int> histogram(4, 0);
  for (uint32_t copies : seed.uploads_per_piece) {
    ++histogram[std::min<uint32_t>(copies, 3)];
  }
  std::cout << "pieces the seed sent 0/1/2/3+ times: " << histogram[0] << "/"
            << histogram[1] << "/" << histogram[2] << "/" << histogram[3]
            << "\n";
  EXPECT_EQ(histogram[0], 0);
  EXPECT_GT(histogram[1], 200);
}

TEST(SwarmSimTest, WithoutDistinctFirstTheSeedRepeatsPiecesEarly) {
  SwarmConfig config = OneSeed(20);
  config.distinct_first = false;
  const SwarmResult r = Simulate(config);
  ASSERT_TRUE(r.all_complete);
  std::cout << "distinct pieces before the first duplicate: "
            << r.agents[0].distinct_before_duplicate << "\n";
  EXPECT_LT(r.agents[0].distinct_before_duplicate, 200u);
}

TEST(SwarmSimTest, EndgameFinishesLastPiecesWhenOneHolderIsSlow) {
  SwarmConfig config = OneSeed(20);
  config.agents[5].upload_rate = kRate / 10;  // above the floor, but slow
  config.scheduler.min_timeout = absl::Seconds(5);
  const SwarmResult with = Simulate(config);
  config.scheduler.endgame_max_copies = 1;
  const SwarmResult without = Simulate(config);
  ASSERT_TRUE(with.all_complete);
  ASSERT_TRUE(without.all_complete);
  EXPECT_GT(with.endgame_requests, 0u);
  EXPECT_GT(with.cancels, 0u);
  EXPECT_EQ(without.endgame_requests, 0u);
  EXPECT_LT(with.last_completion, without.last_completion);
  EXPECT_LT(with.CompletionRatio(), 1.3);
}

// The seed in rack 1; the downloaders and a dishonest peer claiming every
// piece in rack 0, so that every downloader asks the dishonest one first.
SwarmConfig WithDishonestNeighbour(SimBehaviour behaviour) {
  SwarmConfig config = OneSeed(20);
  config.agents[0].rack = 1;
  config.agents.push_back(Dishonest(behaviour));
  return config;
}

constexpr int kDownloaders = 20;
constexpr int kDishonest = 21;

TEST(SwarmSimTest, PeerSendingBadProofsIsBannedAndTheRestComplete) {
  const SwarmConfig config = WithDishonestNeighbour(SimBehaviour::kCorrupt);
  const SwarmResult r = Simulate(config);
  ASSERT_TRUE(r.all_complete);
  EXPECT_EQ(DroppedBy(r, kDishonest, DropReason::kBanned, 1), kDownloaders);
  for (int i = 1; i <= kDownloaders; ++i) {
    const Progress& p = r.agents[i].progress;
    EXPECT_EQ(p.banned, 1u);
    // Banned at its first bad piece: at most the pieces already in flight.
    EXPECT_LE(p.proof_failures,
              static_cast<uint32_t>(config.scheduler.max_in_flight_per_peer));
  }
}

TEST(SwarmSimTest, StalledPeerIsDropped) {
  const SwarmResult r =
      Simulate(WithDishonestNeighbour(SimBehaviour::kStalled));
  ASSERT_TRUE(r.all_complete);
  EXPECT_EQ(DroppedBy(r, kDishonest, DropReason::kFailures, 1) +
                DroppedBy(r, kDishonest, DropReason::kSlow, 1),
            kDownloaders);
  EXPECT_EQ(r.agents[kDishonest].bytes_sent, 0);
  EXPECT_LT(r.CompletionRatio(), 1.3);
}

TEST(SwarmSimTest, PeerLyingAboutItsBitfieldIsDropped) {
  const SwarmResult r = Simulate(WithDishonestNeighbour(SimBehaviour::kLiar));
  ASSERT_TRUE(r.all_complete);
  EXPECT_EQ(DroppedBy(r, kDishonest, DropReason::kLying, 1), kDownloaders);
}

TEST(SwarmSimTest, OriginLeasesKeepOriginBytesNearOneCopy) {
  SwarmConfig config = OneSeed(20, 128);
  config.agents.erase(config.agents.begin());  // no seed: the origin only
  config.origin_rate = kRate;
  config.origin_leases_per_piece = 1;
  const SwarmResult r = Simulate(config);
  ASSERT_TRUE(r.all_complete);
  const double copies = r.origin_bytes / static_cast<double>(r.release_bytes);
  std::cout << "origin copies " << copies << "\n";
  EXPECT_LE(copies, 1.25);
  EXPECT_GE(copies, 1.0);
}

TEST(SwarmSimTest, MostBytesComeFromTheSameRackWhenItHasThem) {
  SwarmConfig config = OneSeed(0);
  config.agents = {Seed(0), Seed(1)};
  for (int i = 0; i < 20; ++i) config.agents.push_back(Agent(i % 2));
  const SwarmResult r = Simulate(config);
  ASSERT_TRUE(r.all_complete);
  const auto by = r.BytesByLocality();
  const double same_rack = by[0] / (by[0] + by[1] + by[2]);
  std::cout << "same-rack share " << same_rack << "\n";
  EXPECT_GT(same_rack, 0.8);
}

TEST(SwarmSimTest, FewCopiesCrossRacksFromALoneSeed) {
  SwarmConfig config = OneSeed(0);
  for (int i = 0; i < 20; ++i) config.agents.push_back(Agent(i % 2));
  const SwarmResult r = Simulate(config);
  ASSERT_TRUE(r.all_complete);
  const auto by = r.BytesByLocality();
  const double cross = by[1] / static_cast<double>(r.release_bytes);
  std::cout << "copies across racks " << cross << "\n";
  EXPECT_LT(cross, 2.5);
  EXPECT_LT(r.CompletionRatio(), 1.25);
}

TEST(SwarmSimTest, SameConfigGivesTheSameRun) {
  const SwarmResult a = Simulate(OneSeed(8));
  const SwarmResult b = Simulate(OneSeed(8));
  ASSERT_EQ(a.agents.size(), b.agents.size());
  for (size_t i = 0; i < a.agents.size(); ++i) {
    EXPECT_EQ(a.agents[i].completed_after, b.agents[i].completed_after);
    EXPECT_EQ(a.agents[i].uploads_per_piece, b.agents[i].uploads_per_piece);
  }
  EXPECT_EQ(a.steps, b.steps);
}

TEST(SwarmSimTest, StopsAtMaxSteps) {
  SwarmConfig config = OneSeed(8);
  config.max_steps = 50;
  const SwarmResult r = Simulate(config);
  EXPECT_FALSE(r.all_complete);
  EXPECT_EQ(r.steps, 50);
}

TEST(SwarmSimTest, RejectsConfigWithoutPieces) {
  SwarmConfig config = OneSeed(8);
  config.piece_lengths.clear();
  EXPECT_EQ(RunSwarm(config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::agent
