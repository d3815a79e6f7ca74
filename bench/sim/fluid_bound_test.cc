#include "bench/sim/fluid_bound.h"

#include <cmath>

#include "gtest/gtest.h"

namespace shoal::sim {
namespace {

const BoundTerm& Binding(const FluidBound& b) { return b.terms[b.binding]; }

TEST(FluidBoundTest, SeededSwarmIsTheClassicBound) {
  // One seed and six agents capped at 20 MB/s: max(F / u_seed,
  // N F / (u_seed + N u)) = F / u_seed.
  Scenario s;
  s.agents = 6;
  s.seeds = 1;
  s.datacenters = 1;
  s.racks_per_datacenter = 1;
  s.release_bytes = 256 << 20;
  s.upload_limit = 20e6;
  const FluidBound b = ComputeFluidBound(s);
  EXPECT_EQ(Binding(b).name, "seeds");
  EXPECT_NEAR(b.seconds, (256 << 20) / 20e6, 1e-9);
}

TEST(FluidBoundTest, SlowUploadsMakeTheSwarmTheLimit) {
  // A fast origin, slow agents: N F / (u_origin + N u).
  Scenario s;
  s.agents = 100;
  s.datacenters = 1;
  s.racks_per_datacenter = 10;
  s.release_bytes = 100e6;
  s.upload_limit = 10e6;
  s.origin_rate = 1e9;
  const FluidBound b = ComputeFluidBound(s);
  EXPECT_EQ(Binding(b).name, "swarm upload");
  EXPECT_NEAR(b.seconds, 100 * 100e6 / (1e9 + 100 * 10e6), 1e-9);
}

TEST(FluidBoundTest, IsolatedDatacentersEachNeedTheOrigin) {
  const Scenario s;  // the default: 3 datacenters, origin 10 Gb/s
  const FluidBound b = ComputeFluidBound(s);
  EXPECT_EQ(Binding(b).name, "origin");
  EXPECT_NEAR(b.seconds, 3.0 * (uint64_t{2} << 30) / 1.25e9, 1e-9);
}

TEST(FluidBoundTest, SlowRackUplinkBinds) {
  Scenario s;
  s.datacenters = 1;
  s.origin_rate = 100e9;
  s.datacenter_uplink_rate = 100e9;
  s.rack_uplink_rate = 0.1e9;
  const FluidBound b = ComputeFluidBound(s);
  EXPECT_EQ(Binding(b).name, "rack uplink");
  EXPECT_NEAR(b.seconds, (uint64_t{2} << 30) / 0.1e9, 1e-9);
}

TEST(FluidBoundTest, DatacenterWithoutSourceNeverCompletes) {
  Scenario s;
  s.agents = 4;
  s.seeds = 1;  // agent 4: datacenter 0
  s.datacenters = 2;
  s.origin_rate = 0;
  EXPECT_TRUE(std::isinf(ComputeFluidBound(s).seconds));
}

}  // namespace
}  // namespace shoal::sim
