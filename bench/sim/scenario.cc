#include "bench/sim/scenario.h"

#include "absl/strings/str_cat.h"

namespace shoal::sim {
namespace {

absl::Status Positive(const char* name, double value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be positive, not ", value));
}

}  // namespace

absl::Status CheckScenario(const Scenario& s) {
  if (s.agents < 1 || s.seeds < 0 || s.corrupt < 0 || s.corrupt > s.agents) {
    return absl::InvalidArgumentError(
        "need at least one agent, no negative seeds, at most every agent "
        "corrupt");
  }
  if (s.datacenters < 1 || s.racks_per_datacenter < 1) {
    return absl::InvalidArgumentError(
        "need at least one datacenter and one rack per datacenter");
  }
  if (s.piece_bytes == 0 || s.release_bytes == 0 ||
      s.release_bytes / s.piece_bytes > (uint64_t{1} << 20)) {
    return absl::InvalidArgumentError(
        "release and piece sizes must be positive, at most 2^20 pieces");
  }
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"nic rate", s.nic_rate},
        {"rack uplink rate", s.rack_uplink_rate},
        {"datacenter uplink rate", s.datacenter_uplink_rate}}) {
    if (absl::Status st = Positive(name, value); !st.ok()) return st;
  }
  if (s.origin_rate < 0 || s.upload_limit < 0) {
    return absl::InvalidArgumentError(
        "origin rate and upload limit must not be negative");
  }
  if (s.origin_rate == 0 && s.seeds == 0) {
    return absl::InvalidArgumentError(
        "without an origin, at least one seed is needed");
  }
  if (!(s.fairness_tolerance >= 0 && s.fairness_tolerance < 0.1)) {
    return absl::InvalidArgumentError("fairness tolerance must be in [0, 0.1)");
  }
  if (s.quantum <= absl::ZeroDuration() ||
      s.local_latency < absl::ZeroDuration() ||
      s.datacenter_latency < absl::ZeroDuration() ||
      s.origin_latency < absl::ZeroDuration() ||
      s.start_spread < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "quantum must be positive; latencies and spread not negative");
  }
  if (s.max_peers < 1 || s.max_uploads < 1 || s.workers < 1 ||
      s.lease_batch < 1 || s.lease_holders < 1 || s.max_peers_returned < 1 ||
      s.pex_limit < 0 || s.tracker_threads < 0 || s.cross_rack_peers < 0 ||
      s.cross_rack_peers > s.max_peers ||
      s.tracker_call_cost < absl::ZeroDuration() ||
      s.tracker_peer_cost < absl::ZeroDuration() ||
      s.tracker_announce_cost < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "max_peers, max_uploads, workers, lease_batch, lease_holders and "
        "max_peers_returned must be at least 1; tracker costs not negative; "
        "cross_rack_peers within 0..max_peers");
  }
  return absl::OkStatus();
}

}  // namespace shoal::sim
