#include "bench/sim/swarm.h"

#include <iostream>

#include "gtest/gtest.h"

namespace shoal::sim {
namespace {

// One seed and six agents in one rack, every upload capped at 20 MB/s,
// 64 MiB in 1 MiB pieces (T* = 3.36 s, set by the seed).
Scenario SmallSeeded() {
  Scenario s;
  s.agents = 6;
  s.seeds = 1;
  s.datacenters = 1;
  s.racks_per_datacenter = 1;
  s.release_bytes = 64 << 20;
  s.piece_bytes = 1 << 20;
  s.upload_limit = 20e6;
  return s;
}

// 2 datacenters x 4 racks x 5 agents, no seed: the origin and the swarm.
Scenario SmallFleet() {
  Scenario s;
  s.agents = 40;
  s.datacenters = 2;
  s.racks_per_datacenter = 4;
  s.release_bytes = 64 << 20;
  s.piece_bytes = 1 << 20;
  return s;
}

SimResult Simulate(const Scenario& s) {
  absl::StatusOr<SimResult> r = RunSimulation(s);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return SimResult();
  std::cout << "completed " << r->completed << "/" << r->downloaders << ", max "
            << r->Percentile(1) << " s, T* " << r->bound.seconds << " s\n";
  return *std::move(r);
}

TEST(SwarmTest, SeededSwarmCompletesNearTheBoundWithoutTheOrigin) {
  const SimResult r = Simulate(SmallSeeded());
  ASSERT_EQ(r.completed, 6);
  EXPECT_LT(r.Percentile(1) / r.bound.seconds, 1.3);
  EXPECT_EQ(r.origin_bytes_by_datacenter[0], 0);
  EXPECT_EQ(r.pieces_from_peers, 6u * 64);
}

TEST(SwarmTest, SameScenarioSameResult) {
  const SimResult a = Simulate(SmallFleet());
  const SimResult b = Simulate(SmallFleet());
  EXPECT_EQ(a.completion_seconds, b.completion_seconds);
  EXPECT_EQ(a.events, b.events);
}

TEST(SwarmTest, OriginSendsEachPieceAboutOncePerDatacenter) {
  const SimResult r = Simulate(SmallFleet());
  ASSERT_EQ(r.completed, 40);
  for (double bytes : r.origin_bytes_by_datacenter) {
    EXPECT_GE(bytes, r.release_bytes);
    EXPECT_LE(bytes, 1.05 * r.release_bytes);
  }
  EXPECT_EQ(r.cross_datacenter_bytes, 0);  // peers never span datacenters
  EXPECT_GT(r.cross_rack_bytes, 0);
}

TEST(SwarmTest, CorruptUploaderIsBannedAndOthersComplete) {
  Scenario s = SmallSeeded();
  s.corrupt = 1;
  const SimResult r = Simulate(s);
  EXPECT_EQ(r.completed, 6);
  EXPECT_GE(r.bans, 1u);
  EXPECT_GT(r.wasted_bytes, 0);
}

// What the README reports: with racks larger than a peer list, every
// session stays in its rack; a piece leased into one rack never reaches
// the others (the tracker answers "held by peers"), and the swarm stalls.
TEST(SwarmTest, NearestFirstPeersKeepLargeRacksApart) {
  Scenario s = SmallFleet();
  s.agents = 160;
  s.datacenters = 1;
  s.racks_per_datacenter = 2;
  s.stall_limit = absl::Seconds(20);
  const SimResult r = Simulate(s);
  EXPECT_TRUE(r.stalled);
  EXPECT_EQ(r.cross_rack_bytes, 0);
  EXPECT_EQ(r.completed, 0);
  s.cross_rack_peers = 2;  // the what-if joins the racks
  s.tracker_threads = 0;
  EXPECT_EQ(Simulate(s).completed, 160);
}

// The engine runs after every event in the agent, and in the simulator only
// after news it can act on (and on its ticks). Runs differ in how they use
// each agent's generator, so compare means over a few seeds.
TEST(SwarmTest, WakingOnlyForUsefulNewsChangesLittle) {
  Scenario s = SmallSeeded();
  s.agents = 12;
  double p50[2] = {0, 0}, last[2] = {0, 0};
  for (int every = 0; every < 2; ++every) {
    s.wake_on_every_event = every == 1;
    for (uint64_t seed = 1; seed <= 3; ++seed) {
      s.random_seed = seed;
      const SimResult r = Simulate(s);
      ASSERT_EQ(r.completed, 12);
      p50[every] += r.Percentile(0.5) / 3;
      last[every] += r.Percentile(1) / 3;
    }
  }
  EXPECT_NEAR(p50[0] / p50[1], 1, 0.05);
  EXPECT_NEAR(last[0] / last[1], 1, 0.05);
}

TEST(SwarmTest, RejectsAScenarioThatCannotRun) {
  Scenario s = SmallFleet();
  s.origin_rate = 0;  // and no seed
  EXPECT_EQ(RunSimulation(s).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::sim
