#include "agent/shoalctl_tracker_output.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace shoal::agent {
namespace {

constexpr char kFlagsHelp[] = R"(
Flags:
  --tracker=HOST:PORT[,HOST:PORT...]
      the trackers to ask, all at once: one per datacenter, or the replicas
      of one (replicas sharing a Redis store show the same state)
  --tls_cert=PEM --tls_key=PEM --tls_ca=PEM
      mutual TLS with the fleet CA, as for the daemons; changing a rollout
      needs a certificate identity listed in the trackers' --admin_identities
  --insecure
      plaintext, for trackers on loopback only (demos)
  --json
      one JSON object per line instead of a table

Exit status: 0 when every tracker answered, 1 when any failed (each failure
is a line on stderr naming its tracker), 2 for bad arguments or flags (then
nothing was sent).
)";

constexpr char kRolloutOverview[] =
    R"(shoalctl --tracker=ADDRS rollout COMMAND CHANNEL ...

Channel rollouts on trackers. CHANNEL is "<release name>/<label>", e.g.
game-server/stable: it points at one release of that name, for a percentage
of the agents that follow it, and can be paused. Every command goes to every
tracker in --tracker.

  rollout set CHANNEL NAME@VERSION|ID --percent=P   point the channel at a release
  rollout pause CHANNEL                             hold the rollout where it is
  rollout resume CHANNEL                            let a paused rollout go on
  rollout show CHANNEL                              each tracker's rollout

`shoalctl rollout COMMAND --help` tells more about one command.
)";

constexpr char kRolloutSet[] =
    R"(shoalctl --tracker=ADDRS rollout set CHANNEL NAME@VERSION|ID --percent=P [--paused]

Points CHANNEL at a release on every tracker given, for P percent (0 to 100)
of the agents that follow the channel, and lets it run (a paused channel is
resumed). With --paused the change is stored paused: agents see it but
start nothing until `rollout resume`. Each tracker must hold the release
(shoal-publish register) and its manifest must verify against that
tracker's trust file now. An agent inside
10 % is inside 50 % too, so raising P only adds agents; pointing the channel
back at an older release is a rollback.

Prints the rollout each tracker stored: channel, release, the first 8 hex
digits of its id, percent, state, generation (grows with every change) and
the time of the change (UTC).

Example:
  shoalctl --tracker=fra1-tracker:7070,iad1-tracker:7070 \
    --tls_cert=ops.pem --tls_key=ops.key --tls_ca=fleet-ca.pem \
    rollout set game-server/stable game-server@1.4.2 --percent=10
)";

constexpr char kRolloutPause[] =
    R"(shoalctl --tracker=ADDRS rollout pause CHANNEL

Pauses the rollout of CHANNEL on every tracker given. Its release and
percent stay as they are, so that `rollout resume` goes on from there; a
rollout can be paused even after its release expired. Prints the rollout
each tracker stored.
)";

constexpr char kRolloutResume[] =
    R"(shoalctl --tracker=ADDRS rollout resume CHANNEL

Lets a paused rollout of CHANNEL go on, on every tracker given, with the
release and percent it had. Prints the rollout each tracker stored.
)";

constexpr char kRolloutShow[] =
    R"(shoalctl --tracker=ADDRS rollout show CHANNEL

Prints each tracker's rollout of CHANNEL: release (name@version and the
first 8 hex digits of its id), percent, paused or rolling, generation and
the time of the last change (UTC). Trackers that disagree show different
rows; a tracker without the channel is a failure.
)";

constexpr char kSwarm[] =
    R"(shoalctl --tracker=ADDRS swarm [NAME@VERSION|ID] [--json]

Swarm health from every tracker given, one table per datacenter, one row per
release and tracker: every release with live peers, or only the one named
(the tracker's own datacenter is then shown even without peers).

  PEERS          agents announcing the release
  COMPLETE       of those, agents holding every piece (seeding)
  DOWNLOADING    of those, agents still fetching
  STALLED        downloading agents without progress for the tracker's
                 stall threshold (2 minutes by default)
  DONE           COMPLETE / PEERS
  PEER-BYTES     verified bytes the agents received from peers
  ORIGIN-BYTES   verified bytes they received from the origin
  ORIGIN-COPIES  ORIGIN-BYTES / release size; about 1 per datacenter is the
                 goal ("-" when the tracker's catalog lacks the release)
  LEASES         origin leases outstanding

With --json, one JSON object per line for each (tracker, swarm) instead:
tracker, release_id, name, version, datacenter, peers, peers_seeding,
peers_downloading, peers_stalled, completion_histogram (peers by completion
decile [0,10%) ... [90,100%), then complete), total_pieces, total_size,
bytes_from_peers, bytes_from_origin, origin_copies (total_size and
origin_copies are null when unknown), leases_outstanding. No swarm prints
nothing.
)";

std::string ReleaseOf(const v1::SwarmHealth& swarm) {
  if (swarm.name().empty()) return "?";
  return absl::StrCat(swarm.name(), "@", swarm.version());
}

uint32_t Peers(const v1::SwarmHealth& swarm) {
  return swarm.peers_seeding() + swarm.peers_downloading();
}

std::optional<double> OriginCopies(const SwarmRow& row) {
  if (!row.release_size.has_value() || *row.release_size == 0) {
    return std::nullopt;
  }
  return static_cast<double>(row.health.bytes_from_origin()) /
         static_cast<double>(*row.release_size);
}

nlohmann::json SwarmJson(const SwarmRow& row) {
  const v1::SwarmHealth& h = row.health;
  const std::optional<double> copies = OriginCopies(row);
  return nlohmann::json{
      {"tracker", row.tracker},
      {"release_id", h.release_id()},
      {"name", h.name()},
      {"version", h.version()},
      {"datacenter", h.datacenter()},
      {"peers", Peers(h)},
      {"peers_seeding", h.peers_seeding()},
      {"peers_downloading", h.peers_downloading()},
      {"peers_stalled", h.peers_stalled()},
      {"completion_histogram",
       std::vector<uint32_t>(h.completion_histogram().begin(),
                             h.completion_histogram().end())},
      {"total_pieces", h.total_pieces()},
      {"total_size", row.release_size.has_value()
                         ? nlohmann::json(*row.release_size)
                         : nlohmann::json(nullptr)},
      {"bytes_from_peers", h.bytes_from_peers()},
      {"bytes_from_origin", h.bytes_from_origin()},
      {"origin_copies",
       copies.has_value() ? nlohmann::json(*copies) : nlohmann::json(nullptr)},
      {"leases_outstanding", h.leases_outstanding()}};
}

std::vector<std::string> SwarmCells(const SwarmRow& row) {
  const v1::SwarmHealth& h = row.health;
  const uint32_t peers = Peers(h);
  const std::optional<double> copies = OriginCopies(row);
  return {row.tracker,
          ReleaseOf(h),
          h.release_id().substr(0, 8),
          absl::StrCat(peers),
          absl::StrCat(h.peers_seeding()),
          absl::StrCat(h.peers_downloading()),
          absl::StrCat(h.peers_stalled()),
          peers == 0 ? "-" : absl::StrCat(100 * h.peers_seeding() / peers, "%"),
          HumanBytes(h.bytes_from_peers()),
          HumanBytes(h.bytes_from_origin()),
          copies.has_value() ? absl::StrFormat("%.2f", *copies) : "-",
          absl::StrCat(h.leases_outstanding())};
}

}  // namespace

std::string RolloutHelp(absl::string_view subcommand) {
  const char* text = kRolloutOverview;
  if (subcommand == "set") text = kRolloutSet;
  if (subcommand == "pause") text = kRolloutPause;
  if (subcommand == "resume") text = kRolloutResume;
  if (subcommand == "show") text = kRolloutShow;
  return absl::StrCat(text, kFlagsHelp);
}

std::string SwarmHelp() { return absl::StrCat(kSwarm, kFlagsHelp); }

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const std::vector<std::string>& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string text;
  for (const std::vector<std::string>& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      absl::StrAppend(&line, row[i],
                      std::string(widths[i] - row[i].size() + 2, ' '));
    }
    absl::StrAppend(&text, absl::StripTrailingAsciiWhitespace(line), "\n");
  }
  return text;
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const double b = static_cast<double>(bytes);
  if (bytes < (uint64_t{1} << 20)) return absl::StrFormat("%.1f KiB", b / 1024);
  if (bytes < (uint64_t{1} << 30)) {
    return absl::StrFormat("%.1f MiB", b / (1 << 20));
  }
  return absl::StrFormat("%.2f GiB", b / (1 << 30));
}

void PrintSwarms(std::vector<SwarmRow> rows, bool json, std::ostream& out) {
  // Stable: rows of one datacenter and release keep the trackers' order.
  std::stable_sort(
      rows.begin(), rows.end(), [](const SwarmRow& a, const SwarmRow& b) {
        return std::make_tuple(a.health.datacenter(), ReleaseOf(a.health),
                               a.health.release_id()) <
               std::make_tuple(b.health.datacenter(), ReleaseOf(b.health),
                               b.health.release_id());
      });
  if (json) {
    for (const SwarmRow& row : rows) out << SwarmJson(row).dump() << "\n";
    return;
  }
  if (rows.empty()) {
    out << "no swarm with live peers\n";
    return;
  }
  for (size_t begin = 0; begin < rows.size();) {
    const std::string& datacenter = rows[begin].health.datacenter();
    std::vector<std::vector<std::string>> table = {
        {"TRACKER", "RELEASE", "ID", "PEERS", "COMPLETE", "DOWNLOADING",
         "STALLED", "DONE", "PEER-BYTES", "ORIGIN-BYTES", "ORIGIN-COPIES",
         "LEASES"}};
    size_t end = begin;
    for (; end < rows.size() && rows[end].health.datacenter() == datacenter;
         ++end) {
      table.push_back(SwarmCells(rows[end]));
    }
    if (begin > 0) out << "\n";
    out << "datacenter " << datacenter << "\n" << FormatTable(table);
    begin = end;
  }
}

}  // namespace shoal::agent
