// swarm_sim: simulates one release rolling out to a fleet (bench/sim/README.md)
// and prints completion percentiles against the fluid bound, origin bytes
// per datacenter and traffic by locality; --json for the benchmark runner.

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "bench/sim/report.h"
#include "bench/sim/scenario.h"
#include "bench/sim/swarm.h"
#include "bench/sim/units.h"
#include "glog/logging.h"

ABSL_FLAG(int, agents, 10000, "downloading agents");
ABSL_FLAG(int, seeds, 0, "agents holding the release from the start");
ABSL_FLAG(int, corrupt, 0, "downloaders whose uploads fail their proofs");
ABSL_FLAG(int, datacenters, 3, "datacenters (one tracker each)");
ABSL_FLAG(int, racks, 50, "racks per datacenter");
ABSL_FLAG(std::string, release_size, "2GiB", "release size");
ABSL_FLAG(std::string, piece_size, "4MiB", "piece size");
ABSL_FLAG(std::string, nic, "10Gb/s", "NIC rate, each direction");
ABSL_FLAG(std::string, upload_limit, "0",
          "every agent's --upload_limit (0: none)");
ABSL_FLAG(std::string, rack_uplink, "40Gb/s",
          "rack uplink rate, each direction");
ABSL_FLAG(std::string, dc_link, "100Gb/s",
          "datacenter link rate, each direction");
ABSL_FLAG(std::string, origin, "10Gb/s", "origin upload rate (0: no origin)");
ABSL_FLAG(absl::Duration, latency, absl::Microseconds(100),
          "one-way latency within a datacenter (agents, tracker)");
ABSL_FLAG(absl::Duration, dc_latency, absl::Milliseconds(20),
          "one-way latency between datacenters");
ABSL_FLAG(absl::Duration, origin_latency, absl::Milliseconds(20),
          "one-way latency to the origin");
ABSL_FLAG(absl::Duration, start_spread, absl::ZeroDuration(),
          "agents start within this long of each other");
ABSL_FLAG(int, max_peers, 16, "agent --max_peers");
ABSL_FLAG(int, max_uploads, 32, "agent --max_uploads");
ABSL_FLAG(int, max_in_flight, 8, "scheduler: requests in flight in all");
ABSL_FLAG(int, max_in_flight_per_peer, 2, "scheduler: requests per peer");
ABSL_FLAG(int, max_origin_in_flight, 2, "scheduler: origin pieces at once");
ABSL_FLAG(bool, pex, true, "peer exchange on Watch streams");
ABSL_FLAG(int, cross_rack_peers, 0,
          "what-if, not the real agent/tracker: keep K sessions (and 2K places "
          "in tracker answers) for peers in other racks");
ABSL_FLAG(int, lease_holders, 1, "tracker: K leases per piece per datacenter");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(60), "tracker: lease TTL");
ABSL_FLAG(int, max_peers_returned, 50, "tracker: peers per answer at most");
ABSL_FLAG(int, tracker_threads, 2,
          "tracker: calls served at once per datacenter (0: answers at once)");
ABSL_FLAG(absl::Duration, tracker_call_cost, absl::Microseconds(20),
          "tracker: fixed cost of a peer list or lease call");
ABSL_FLAG(absl::Duration, tracker_peer_cost, absl::Nanoseconds(600),
          "tracker: cost per swarm peer of a peer list or lease call");
ABSL_FLAG(absl::Duration, tracker_announce_cost, absl::Microseconds(5),
          "tracker: cost of an announce");
ABSL_FLAG(absl::Duration, quantum, absl::Milliseconds(1),
          "virtual time within which events are batched");
ABSL_FLAG(double, fairness_tolerance, 1e-3,
          "flow rates are max-min fair to within this fraction of link "
          "capacity");
ABSL_FLAG(absl::Duration, time_limit, absl::Minutes(30), "virtual time limit");
ABSL_FLAG(absl::Duration, stall_limit, absl::Seconds(60),
          "stop when no piece was verified for this long");
ABSL_FLAG(bool, wake_on_every_event, false,
          "run an agent's engine after every event it gets, not only those "
          "it can act on (slower; for checking that the shortcut changes "
          "nothing)");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(bool, json, false, "print JSON instead of the table");
ABSL_FLAG(bool, progress, true, "progress lines on stderr");

namespace shoal::sim {
namespace {

absl::StatusOr<Scenario> ScenarioFromFlags() {
  Scenario s;
  s.agents = absl::GetFlag(FLAGS_agents);
  s.seeds = absl::GetFlag(FLAGS_seeds);
  s.corrupt = absl::GetFlag(FLAGS_corrupt);
  s.datacenters = absl::GetFlag(FLAGS_datacenters);
  s.racks_per_datacenter = absl::GetFlag(FLAGS_racks);
  absl::StatusOr<uint64_t> release =
      ParseSize(absl::GetFlag(FLAGS_release_size));
  absl::StatusOr<uint64_t> piece = ParseSize(absl::GetFlag(FLAGS_piece_size));
  absl::StatusOr<double> nic = ParseRate(absl::GetFlag(FLAGS_nic));
  absl::StatusOr<double> upload = ParseRate(absl::GetFlag(FLAGS_upload_limit));
  absl::StatusOr<double> rack = ParseRate(absl::GetFlag(FLAGS_rack_uplink));
  absl::StatusOr<double> dc = ParseRate(absl::GetFlag(FLAGS_dc_link));
  absl::StatusOr<double> origin = ParseRate(absl::GetFlag(FLAGS_origin));
  for (const absl::Status& st :
       {release.status(), piece.status(), nic.status(), upload.status(),
        rack.status(), dc.status(), origin.status()}) {
    if (!st.ok()) return st;
  }
  s.release_bytes = *release;
  s.piece_bytes = *piece;
  s.nic_rate = *nic;
  s.upload_limit = *upload;
  s.rack_uplink_rate = *rack;
  s.datacenter_uplink_rate = *dc;
  s.origin_rate = *origin;
  s.local_latency = absl::GetFlag(FLAGS_latency);
  s.datacenter_latency = absl::GetFlag(FLAGS_dc_latency);
  s.origin_latency = absl::GetFlag(FLAGS_origin_latency);
  s.start_spread = absl::GetFlag(FLAGS_start_spread);
  s.max_peers = absl::GetFlag(FLAGS_max_peers);
  s.max_uploads = absl::GetFlag(FLAGS_max_uploads);
  s.scheduler.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
  s.scheduler.max_in_flight_per_peer =
      absl::GetFlag(FLAGS_max_in_flight_per_peer);
  s.scheduler.max_origin_in_flight = absl::GetFlag(FLAGS_max_origin_in_flight);
  s.peer_exchange = absl::GetFlag(FLAGS_pex);
  s.cross_rack_peers = absl::GetFlag(FLAGS_cross_rack_peers);
  s.lease_holders = absl::GetFlag(FLAGS_lease_holders);
  s.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  s.max_peers_returned = absl::GetFlag(FLAGS_max_peers_returned);
  s.tracker_threads = absl::GetFlag(FLAGS_tracker_threads);
  s.tracker_call_cost = absl::GetFlag(FLAGS_tracker_call_cost);
  s.tracker_peer_cost = absl::GetFlag(FLAGS_tracker_peer_cost);
  s.tracker_announce_cost = absl::GetFlag(FLAGS_tracker_announce_cost);
  s.quantum = absl::GetFlag(FLAGS_quantum);
  s.fairness_tolerance = absl::GetFlag(FLAGS_fairness_tolerance);
  s.time_limit = absl::GetFlag(FLAGS_time_limit);
  s.stall_limit = absl::GetFlag(FLAGS_stall_limit);
  s.wake_on_every_event = absl::GetFlag(FLAGS_wake_on_every_event);
  s.random_seed = absl::GetFlag(FLAGS_seed);
  if (absl::Status st = CheckScenario(s); !st.ok()) return st;
  return s;
}

int Main() {
  absl::StatusOr<Scenario> scenario = ScenarioFromFlags();
  if (!scenario.ok()) {
    std::cerr << "swarm_sim: " << scenario.status().message() << "\n";
    return 2;
  }
  ProgressFn progress;
  if (absl::GetFlag(FLAGS_progress)) {
    progress = [start = absl::Now(), total = scenario->agents](
                   absl::Duration now, int completed) {
      std::cerr << absl::StrFormat("  t=%6.1fs  %d/%d complete  wall %.0fs\n",
                                   absl::ToDoubleSeconds(now), completed, total,
                                   absl::ToDoubleSeconds(absl::Now() - start));
    };
  }
  absl::StatusOr<SimResult> result = RunSimulation(*scenario, progress);
  if (!result.ok()) {
    std::cerr << "swarm_sim: " << result.status().message() << "\n";
    return 2;
  }
  std::cout << (absl::GetFlag(FLAGS_json) ? FormatJson(*scenario, *result)
                                          : FormatTable(*scenario, *result));
  return 0;
}

}  // namespace
}  // namespace shoal::sim

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "swarm_sim [--agents=N --datacenters=D --racks=R --release_size=2GiB "
      "...]: simulates a release rolling out to a fleet");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  return shoal::sim::Main();
}
