#pragma once

// What one simulation run models: the fleet and its placement, the release,
// the network, and the agent and tracker settings (defaults: those of
// shoal-agent and shoal-tracker). Plain values; see README.md.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/scheduler.h"

namespace shoal::sim {

struct Scenario {
  // --- Fleet. Agent i (downloaders first, then seeds) sits in datacenter
  // i % datacenters and rack (i / datacenters) % racks_per_datacenter.
  int agents = 10000;  // downloaders
  int seeds = 0;       // agents holding the whole release from the start
  // Downloaders whose uploads all fail their proofs (they download
  // honestly); the first `corrupt` of them.
  int corrupt = 0;
  int datacenters = 3;
  int racks_per_datacenter = 50;

  // --- Release.
  uint64_t release_bytes = uint64_t{2} << 30;
  uint64_t piece_bytes = uint64_t{4} << 20;

  // --- Network, bytes/s in each direction. The origin sits outside every
  // datacenter: its bytes enter through the datacenter and rack links.
  double nic_rate = 1.25e9;       // 10 Gb/s
  double upload_limit = 0;        // shoal-agent --upload_limit; 0: none
  double rack_uplink_rate = 5e9;  // 40 Gb/s
  double datacenter_uplink_rate = 12.5e9;  // 100 Gb/s
  double origin_rate = 1.25e9;             // 10 Gb/s; 0: no origin
  // One way.
  absl::Duration local_latency = absl::Microseconds(100);  // within a DC
  absl::Duration datacenter_latency = absl::Milliseconds(20);
  absl::Duration origin_latency = absl::Milliseconds(20);
  // Downloaders start their fetch at uniform times in [0, start_spread].
  absl::Duration start_spread = absl::ZeroDuration();

  // --- Agent (shoal-agent's defaults).
  agent::SchedulerConfig scheduler;
  int max_peers = 16;    // --max_peers
  int max_uploads = 32;  // --max_uploads
  absl::Duration peer_refresh = absl::Seconds(10);
  absl::Duration engine_tick = absl::Milliseconds(50);
  int workers = 3;      // threads for tracker calls and origin fetches
  int lease_batch = 8;  // pieces per lease request
  bool peer_exchange = true;
  absl::Duration pex_interval = absl::Seconds(30);
  int pex_limit = 32;
  absl::Duration downloading_announce = absl::Seconds(5);
  // A what-if, not what shoal-agent and shoal-tracker do (0 keeps them):
  // the tracker keeps 2 x K places of each answer for peers in other racks
  // of the datacenter, and the agent keeps K of its max_peers sessions for
  // them. With K = 0 and racks larger than the tracker's answer, every
  // session stays within the rack.
  int cross_rack_peers = 0;

  // --- Tracker, one per datacenter (shoal-tracker's defaults).
  absl::Duration announce_interval = absl::Seconds(30);
  int lease_holders = 1;  // K per piece per datacenter
  absl::Duration lease_ttl = absl::Seconds(60);
  uint32_t max_peers_returned = 50;
  // Service: `tracker_threads` calls at once (0: infinitely fast), each
  // taking tracker_call_cost plus tracker_peer_cost per peer in the swarm
  // for GetPeers and lease requests (which list the swarm), or
  // tracker_announce_cost. Defaults from bench/sim:tracker_cost.
  int tracker_threads = 2;
  absl::Duration tracker_call_cost = absl::Microseconds(20);
  absl::Duration tracker_peer_cost = absl::Nanoseconds(600);
  absl::Duration tracker_announce_cost = absl::Microseconds(5);

  // --- Simulation.
  // Events within one quantum of virtual time are handled before rates are
  // recomputed and before the agents' engines run; see README.md.
  absl::Duration quantum = absl::Milliseconds(1);
  // Flow rates are max-min fair to within this fraction of link capacity
  // (FlowNetwork's tolerance).
  double fairness_tolerance = 1e-3;
  absl::Duration time_limit = absl::Minutes(30);
  // Stop when no agent verified a piece for this long.
  absl::Duration stall_limit = absl::Seconds(60);
  // Wake an engine for every event, not only for those it can act on.
  bool wake_on_every_event = false;
  uint64_t random_seed = 1;

  uint32_t num_pieces() const {
    return static_cast<uint32_t>((release_bytes + piece_bytes - 1) /
                                 piece_bytes);
  }
  int num_racks() const { return datacenters * racks_per_datacenter; }
  int num_agents() const { return agents + seeds; }
  int datacenter_of(int agent) const { return agent % datacenters; }
  // Global rack index.
  int rack_of(int agent) const {
    return datacenter_of(agent) * racks_per_datacenter +
           (agent / datacenters) % racks_per_datacenter;
  }
  double upload_rate() const {
    return upload_limit > 0 && upload_limit < nic_rate ? upload_limit
                                                       : nic_rate;
  }
};

// INVALID_ARGUMENT naming the setting that cannot work.
absl::Status CheckScenario(const Scenario& s);

}  // namespace shoal::sim
