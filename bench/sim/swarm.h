#pragma once

// The swarm simulator of issue 7: a discrete-event simulation of one
// release rolling out to a fleet. Every downloading agent runs the agent's
// real Scheduler (agent/scheduler.h: piece choice, peer choice, timeouts,
// drops, bans) and serves through the real UploadGate, driven the way
// agent/download.cc drives them (engine ticks, bounded peer sessions from
// the tracker nearest first, peer exchange, lease requests on a small
// worker pool, announces). One tracker per datacenter ranks peers with the
// tracker's RankPeers and answers leases with its lease rule and
// MemoryStore (see tracker_model.h). Bytes move as flows over a
// flow_network.h model of NICs, rack uplinks, datacenter links and the
// origin; messages take a fixed latency.
//
// Deterministic: the same scenario gives the same result.

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/scheduler.h"
#include "bench/sim/flow_network.h"
#include "bench/sim/fluid_bound.h"
#include "bench/sim/scenario.h"

namespace shoal::sim {

struct SimResult {
  int downloaders = 0;
  int completed = 0;
  // Of completed downloaders, from their own start, ascending.
  std::vector<double> completion_seconds;
  double end_seconds = 0;  // virtual time when the run stopped
  bool stalled = false;    // no piece verified for stall_limit
  bool timed_out = false;  // time_limit reached
  FluidBound bound;

  uint64_t release_bytes = 0;
  // When some agent of each datacenter first held every piece: the end of
  // what the origin (or seeds) had to bring in; infinite if never.
  std::vector<double> all_pieces_in_datacenter_seconds;
  std::vector<double> origin_bytes_by_datacenter;
  // Bytes moved between agents, by where they crossed; partial and
  // wasted transfers included.
  double rack_bytes = 0;
  double cross_rack_bytes = 0;
  double cross_datacenter_bytes = 0;
  // Moved and thrown away: cut off, duplicate or corrupt pieces.
  double wasted_bytes = 0;

  uint64_t pieces_from_peers = 0;
  uint64_t pieces_from_origin = 0;
  uint64_t requests = 0;
  uint64_t endgame_requests = 0;
  uint64_t busy_refusals = 0;
  uint64_t not_found_refusals = 0;
  uint64_t timeouts = 0;
  uint64_t bans = 0;
  std::array<uint64_t, 5> drops = {};  // by agent::DropReason
  uint64_t sessions_opened = 0;
  uint64_t lease_requests = 0;
  uint64_t leases_granted = 0;
  uint64_t peer_requests = 0;
  uint64_t announces = 0;
  // Time calls waited for a tracker thread.
  double tracker_max_wait_seconds = 0;
  double tracker_mean_wait_seconds = 0;

  uint64_t events = 0;
  uint64_t quanta = 0;
  uint64_t engine_runs = 0;
  size_t peak_flows = 0;
  NetworkStats network;
  double wall_seconds = 0;

  // The q-quantile (0..1) of completion_seconds over all downloaders; an
  // agent that did not complete counts as infinitely late.
  double Percentile(double q) const;
};

// Called about once per virtual second: virtual time, completed agents.
using ProgressFn = std::function<void(absl::Duration, int)>;

// INVALID_ARGUMENT for a scenario CheckScenario refuses.
absl::StatusOr<SimResult> RunSimulation(const Scenario& scenario,
                                        const ProgressFn& progress = nullptr);

}  // namespace shoal::sim
