#include "bench/sim/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/sim/units.h"
#include "nlohmann/json.hpp"

namespace shoal::sim {
namespace {

std::string Seconds(double s) {
  return std::isfinite(s) ? absl::StrFormat("%.3f s", s) : "never";
}

std::string Ms(absl::Duration d) {
  return absl::StrFormat("%g ms", absl::ToDoubleMilliseconds(d));
}

double WorstOrigin(const SimResult& r) {
  double worst = 0;
  for (double b : r.origin_bytes_by_datacenter) worst = std::max(worst, b);
  return worst / static_cast<double>(r.release_bytes);
}

std::string Verdict(bool met, double value, double goal) {
  return absl::StrFormat(
      "goal <= %.2f: %s", goal,
      met ? "met"
          : absl::StrFormat("MISSED by %.0f %%", (value / goal - 1) * 100));
}

// The scenario, three lines.
void DescribeScenario(const Scenario& s, std::string& out) {
  absl::StrAppendFormat(
      &out,
      "scenario  %d agents (%d seeds, %d corrupt) in %d datacenter(s) x %d "
      "racks; release %s in %u pieces of %s\n",
      s.agents, s.seeds, s.corrupt, s.datacenters, s.racks_per_datacenter,
      FormatBytes(s.release_bytes), s.num_pieces(), FormatBytes(s.piece_bytes));
  absl::StrAppendFormat(
      &out,
      "network   NIC %s (upload %s), rack uplinks %s, datacenter links %s, "
      "origin %s; one-way latency %s within a datacenter, %s between, %s to "
      "the origin\n",
      FormatRate(s.nic_rate), FormatRate(s.upload_rate()),
      FormatRate(s.rack_uplink_rate), FormatRate(s.datacenter_uplink_rate),
      s.origin_rate > 0 ? FormatRate(s.origin_rate) : "none",
      Ms(s.local_latency), Ms(s.datacenter_latency), Ms(s.origin_latency));
  absl::StrAppendFormat(
      &out,
      "policy    agent: max_peers %d, max_uploads %d, %d/%d requests per "
      "peer/in all, %d origin pieces at once, peer exchange %s%s; tracker: "
      "K=%d "
      "lease(s) per piece per datacenter, %d peers per answer at most, %s\n",
      s.max_peers, s.max_uploads, s.scheduler.max_in_flight_per_peer,
      s.scheduler.max_in_flight, s.scheduler.max_origin_in_flight,
      s.peer_exchange ? "on" : "off",
      s.cross_rack_peers > 0
          ? absl::StrFormat(
                ", WHAT-IF: %d sessions kept for other racks (not the real "
                "agent)",
                s.cross_rack_peers)
          : "",
      s.lease_holders, s.max_peers_returned,
      s.tracker_threads == 0
          ? std::string("answers at once")
          : absl::StrFormat("%d threads, %g us + %g us per swarm peer per "
                            "peer list or lease call",
                            s.tracker_threads,
                            absl::ToDoubleMicroseconds(s.tracker_call_cost),
                            absl::ToDoubleMicroseconds(s.tracker_peer_cost)));
  absl::StrAppendFormat(&out,
                        "sim       quantum %s, start spread %s, seed %d\n\n",
                        Ms(s.quantum), Ms(s.start_spread), s.random_seed);
}

}  // namespace

std::string FormatTable(const Scenario& s, const SimResult& r) {
  std::string out;
  DescribeScenario(s, out);
  const double t_star = r.bound.seconds;
  const double p99 = r.Percentile(0.99);
  absl::StrAppendFormat(&out, "completion, from each agent's start\n");
  absl::StrAppendFormat(&out, "  completed   %d of %d%s\n", r.completed,
                        r.downloaders,
                        r.stalled     ? " (STALLED: no progress for the stall "
                                        "limit)"
                        : r.timed_out ? " (time limit reached)"
                                      : "");
  for (const auto& [name, q] : {std::pair<const char*, double>{"p50", 0.5},
                                {"p90", 0.9},
                                {"p99", 0.99},
                                {"max", 1.0}}) {
    const double v = r.Percentile(q);
    absl::StrAppendFormat(&out, "  %-10s  %-10s  %.2f x T*\n", name, Seconds(v),
                          v / t_star);
  }
  absl::StrAppendFormat(&out, "\nfluid bound T* = %s, set by \"%s\"\n",
                        Seconds(t_star), r.bound.terms[r.bound.binding].name);
  for (const BoundTerm& t : r.bound.terms) {
    absl::StrAppendFormat(&out, "  %-19s %-10s %s\n", t.name,
                          Seconds(t.seconds), t.reason);
  }
  absl::StrAppendFormat(
      &out, "\np99 / T* = %.3f (%s)\n", p99 / t_star,
      Verdict(p99 / t_star <= kCompletionGoal, p99 / t_star, kCompletionGoal));
  std::vector<std::string> per_dc;
  for (size_t d = 0; d < r.origin_bytes_by_datacenter.size(); ++d) {
    per_dc.push_back(absl::StrFormat("dc%d %.3f", d,
                                     r.origin_bytes_by_datacenter[d] /
                                         static_cast<double>(r.release_bytes)));
  }
  std::vector<std::string> in_dc;
  for (size_t d = 0; d < r.all_pieces_in_datacenter_seconds.size(); ++d) {
    in_dc.push_back(absl::StrFormat(
        "dc%d %s", d, Seconds(r.all_pieces_in_datacenter_seconds[d])));
  }
  absl::StrAppendFormat(&out, "every piece held in the datacenter at: %s\n",
                        absl::StrJoin(in_dc, ", "));
  const double worst = WorstOrigin(r);
  absl::StrAppendFormat(&out,
                        "origin bytes per datacenter, in release copies: %s "
                        "(worst %.3f, %s)\n",
                        absl::StrJoin(per_dc, ", "), worst,
                        Verdict(worst <= kOriginGoal, worst, kOriginGoal));
  absl::StrAppendFormat(
      &out,
      "traffic between agents: within racks %s, across racks %s, across "
      "datacenters %s; wasted %s\n",
      FormatBytes(r.rack_bytes), FormatBytes(r.cross_rack_bytes),
      FormatBytes(r.cross_datacenter_bytes), FormatBytes(r.wasted_bytes));
  absl::StrAppendFormat(
      &out,
      "\ncounts    pieces from peers %d, from origin %d; requests %d "
      "(endgame %d), busy %d, not found %d, timeouts %d, bans %d; drops "
      "slow/failures/lying %d/%d/%d; sessions %d\n",
      r.pieces_from_peers, r.pieces_from_origin, r.requests, r.endgame_requests,
      r.busy_refusals, r.not_found_refusals, r.timeouts, r.bans, r.drops[1],
      r.drops[2], r.drops[3], r.sessions_opened);
  absl::StrAppendFormat(
      &out,
      "tracker   lease requests %d (granted %d), peer lists %d, announces "
      "%d; calls waited for a thread %.1f ms on average, %.1f ms at most\n",
      r.lease_requests, r.leases_granted, r.peer_requests, r.announces,
      r.tracker_mean_wait_seconds * 1e3, r.tracker_max_wait_seconds * 1e3);
  absl::StrAppendFormat(
      &out,
      "run       virtual %.3f s, wall %.1f s; %d events in %d quanta, %d "
      "engine runs, peak %d flows; rate updates %d (%.1f rounds, %.1f "
      "flows refilled each, %d full)\n",
      r.end_seconds, r.wall_seconds, r.events, r.quanta, r.engine_runs,
      r.peak_flows, r.network.updates,
      r.network.updates > 0
          ? static_cast<double>(r.network.rounds) / r.network.updates
          : 0.0,
      r.network.updates > 0
          ? static_cast<double>(r.network.flows_refilled) / r.network.updates
          : 0.0,
      r.network.full_refills);
  return out;
}

std::string FormatJson(const Scenario& s, const SimResult& r) {
  auto finite = [](double v) -> nlohmann::json {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  nlohmann::json j;
  j["scenario"] = {
      {"agents", s.agents},
      {"seeds", s.seeds},
      {"corrupt", s.corrupt},
      {"datacenters", s.datacenters},
      {"racks_per_datacenter", s.racks_per_datacenter},
      {"release_bytes", s.release_bytes},
      {"piece_bytes", s.piece_bytes},
      {"nic_bytes_per_s", s.nic_rate},
      {"upload_bytes_per_s", s.upload_rate()},
      {"rack_uplink_bytes_per_s", s.rack_uplink_rate},
      {"datacenter_link_bytes_per_s", s.datacenter_uplink_rate},
      {"origin_bytes_per_s", s.origin_rate},
      {"datacenter_latency_s", absl::ToDoubleSeconds(s.datacenter_latency)},
      {"quantum_s", absl::ToDoubleSeconds(s.quantum)},
      {"cross_rack_peers", s.cross_rack_peers},
      {"seed", s.random_seed}};
  const double t_star = r.bound.seconds;
  j["completed"] = r.completed;
  j["downloaders"] = r.downloaders;
  j["stalled"] = r.stalled;
  j["timed_out"] = r.timed_out;
  for (const auto& [name, q] : {std::pair<const char*, double>{"p50", 0.5},
                                {"p90", 0.9},
                                {"p99", 0.99},
                                {"max", 1.0}}) {
    j["completion_s"][name] = finite(r.Percentile(q));
  }
  j["fluid_bound_s"] = t_star;
  j["fluid_bound_term"] = r.bound.terms[r.bound.binding].name;
  for (const BoundTerm& t : r.bound.terms) {
    j["fluid_bound_terms"][t.name] = finite(t.seconds);
  }
  j["p99_over_bound"] = finite(r.Percentile(0.99) / t_star);
  j["p99_goal"] = kCompletionGoal;
  std::vector<double> copies;
  for (double b : r.origin_bytes_by_datacenter) {
    copies.push_back(b / static_cast<double>(r.release_bytes));
  }
  j["origin_copies_by_datacenter"] = copies;
  std::vector<nlohmann::json> in_dc;
  for (double t : r.all_pieces_in_datacenter_seconds)
    in_dc.push_back(finite(t));
  j["all_pieces_in_datacenter_s"] = in_dc;
  j["origin_goal"] = kOriginGoal;
  j["bytes"] = {{"within_racks", r.rack_bytes},
                {"across_racks", r.cross_rack_bytes},
                {"across_datacenters", r.cross_datacenter_bytes},
                {"wasted", r.wasted_bytes}};
  j["counts"] = {{"pieces_from_peers", r.pieces_from_peers},
                 {"pieces_from_origin", r.pieces_from_origin},
                 {"requests", r.requests},
                 {"endgame_requests", r.endgame_requests},
                 {"busy_refusals", r.busy_refusals},
                 {"not_found_refusals", r.not_found_refusals},
                 {"timeouts", r.timeouts},
                 {"bans", r.bans},
                 {"sessions", r.sessions_opened},
                 {"lease_requests", r.lease_requests},
                 {"leases_granted", r.leases_granted},
                 {"peer_requests", r.peer_requests},
                 {"announces", r.announces}};
  j["tracker_wait_s"] = {{"mean", r.tracker_mean_wait_seconds},
                         {"max", r.tracker_max_wait_seconds}};
  j["virtual_s"] = r.end_seconds;
  j["wall_s"] = r.wall_seconds;
  j["events"] = r.events;
  return j.dump(2) + "\n";
}

}  // namespace shoal::sim
