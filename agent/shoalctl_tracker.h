#pragma once

// shoalctl's commands to trackers: channel rollouts and swarm health.
//
//   shoalctl --tracker=ADDRS rollout set CHANNEL NAME@VERSION|ID --percent=P
//   shoalctl --tracker=ADDRS rollout pause|resume|show CHANNEL
//   shoalctl --tracker=ADDRS swarm [NAME@VERSION|ID]
//
// ADDRS is HOST:PORT[,HOST:PORT...]: the trackers of several datacenters, or
// replicas of one. Every address is asked, all at once; each success is a
// row on stdout, each failure a line on stderr naming the address, and the
// command fails when any address failed. --json prints one JSON object per
// line (per tracker for rollouts, per tracker and swarm for `swarm`).

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/grpc_security.h"

namespace shoal::agent {

// The flags the tracker commands read, as shoalctl parsed them.
struct TrackerCommandFlags {
  std::string trackers;  // --tracker: HOST:PORT[,HOST:PORT...]
  TlsFlags tls;          // --tls_cert --tls_key --tls_ca | --insecure
  std::optional<uint32_t> percent;  // --percent, when given
  bool paused = false;              // --paused: rollout set, but paused
  bool json = false;                // --json
  // Every tracker gets this long for all its calls of one command.
  absl::Duration call_timeout = absl::Seconds(10);
};

// Exit codes of RunTrackerCommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // some tracker failed or refused
inline constexpr int kExitUsage = 2;   // bad arguments or flags

// One line per command, for shoalctl's usage message.
inline constexpr char kTrackerCommandsUsage[] =
    "shoalctl --tracker=HOST:PORT[,...] [--tls_cert --tls_key --tls_ca | "
    "--insecure] COMMAND\n"
    "  rollout set CHANNEL NAME@VERSION|ID --percent=P   point a channel at a "
    "release, on every tracker\n"
    "  rollout pause|resume CHANNEL                       stop or restart a "
    "rollout, keeping release and percent\n"
    "  rollout show CHANNEL                               each tracker's "
    "rollout of the channel\n"
    "  swarm [NAME@VERSION|ID] [--json]                   swarm health per "
    "datacenter\n"
    "  COMMAND --help                                     details of one "
    "command";

// True for the commands RunTrackerCommand runs: "rollout" and "swarm".
bool IsTrackerCommand(absl::string_view command);

// The help text of a tracker command when `argv` (as main got it, before
// flag parsing) names one and holds --help, -help or -h; nullopt otherwise.
// Flag values given as separate words ("--tracker ADDR") are skipped by
// asking the flag registry which flags take a value.
std::optional<std::string> TrackerCommandHelp(int argc,
                                              const char* const* argv);

// Runs a tracker command. `args` are the positional arguments left after
// flag parsing: the program, the command, its operands. Blocks until every
// tracker answered or flags.call_timeout passed. Rows go to `out`,
// failures and usage errors to `err`. Returns kExitOk when every tracker
// did what was asked, kExitFailed when any failed (each failure names its
// address: "tracker not reachable at 10.1.2.3:7070 (...)", "release app@9 not
// found on tracker 10.1.2.3:7070; ..."), kExitUsage for bad arguments or
// flags (then nothing was sent).
int RunTrackerCommand(absl::Span<char* const> args,
                      const TrackerCommandFlags& flags, std::ostream& out,
                      std::ostream& err);

}  // namespace shoal::agent
