// shoalctl: the human's command line to a local shoal-agent.
//
//   shoalctl [--agent=SOCKET] fetch NAME@VERSION|ID [--dest=DIR] [--timeout=DURATION] [--json]
//   shoalctl [--agent=SOCKET] status [--json] | list
//   shoalctl [--agent=SOCKET] remove | pin | unpin NAME@VERSION|ID
//
// The agent commands live in agent/shoalctl_agent.h, the tracker commands in
// agent/shoalctl_tracker.h; this file parses the flags and dispatches.

#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "agent/shoalctl_agent.h"
#include "agent/shoalctl_tracker.h"
#include "common/grpc_security.h"

ABSL_FLAG(std::string, agent, "", "control socket of the agent (default $SHOAL_AGENT, else /var/lib/shoal/agent.sock)");
ABSL_FLAG(absl::Duration, timeout, absl::InfiniteDuration(), "fetch: give up after this long");
ABSL_FLAG(bool, json, false, "print one JSON object on stdout");
ABSL_FLAG(std::string, dest, "", "fetch: install the verified release as DIR/NAME@VERSION, DIR/current pointing at it");
ABSL_FLAG(std::string, tracker, "", "rollout, swarm: trackers to ask, HOST:PORT[,HOST:PORT...]");
ABSL_FLAG(std::string, tls_cert, "", "rollout, swarm: PEM certificate of this client");
ABSL_FLAG(std::string, tls_key, "", "rollout, swarm: PEM key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "rollout, swarm: PEM fleet CA certificate(s) to trust");
ABSL_FLAG(bool, insecure, false, "rollout, swarm: plaintext, loopback trackers only");
ABSL_FLAG(int32_t, percent, -1, "rollout set: percent of the channel's agents, 0..100");
ABSL_FLAG(bool, paused, false, "rollout set: store the change paused (nothing starts until resume)");

namespace {

constexpr char kUsage[] =
    "shoalctl [--agent=SOCKET] COMMAND\n"
    "  fetch NAME@VERSION|ID [--dest=DIR] [--timeout=D] [--json]   download, verify (and install) a release\n"
    "  status [--json]                                             the agent and what it holds\n"
    "  list                                                        one line per release\n"
    "  remove NAME@VERSION|ID                                      stop and delete a release\n"
    "  pin | unpin NAME@VERSION|ID                                 keep a release under --disk_quota, or not\n"
    "  COMMAND --help                                              details of one command";

shoal::agent::AgentCommandFlags AgentFlags() {
  shoal::agent::AgentCommandFlags flags;
  flags.agent = absl::GetFlag(FLAGS_agent);
  flags.timeout = absl::GetFlag(FLAGS_timeout);
  flags.json = absl::GetFlag(FLAGS_json);
  flags.dest = absl::GetFlag(FLAGS_dest);
  return flags;
}

}  // namespace

namespace {

shoal::agent::TrackerCommandFlags TrackerFlags() {
  shoal::agent::TrackerCommandFlags flags;
  flags.trackers = absl::GetFlag(FLAGS_tracker);
  flags.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
               absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_insecure)};
  if (absl::GetFlag(FLAGS_percent) >= 0) flags.percent = absl::GetFlag(FLAGS_percent);
  flags.json = absl::GetFlag(FLAGS_json);
  flags.paused = absl::GetFlag(FLAGS_paused);
  return flags;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto help = shoal::agent::TrackerCommandHelp(argc, argv)) {
    std::cout << *help;
    return 0;
  }
  if (auto help = shoal::agent::AgentCommandHelpFor(argc, argv)) {
    std::cout << *help;
    return 0;
  }
  absl::SetProgramUsageMessage(absl::StrCat(kUsage, "\n", shoal::agent::kTrackerCommandsUsage));
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  std::string command = args[1];
  if (shoal::agent::IsTrackerCommand(command)) {
    return shoal::agent::RunTrackerCommand(args, TrackerFlags(), std::cout, std::cerr);
  }
  if (shoal::agent::IsAgentCommand(command)) {
    return shoal::agent::RunAgentCommand(AgentFlags(),
                                         std::vector<std::string>(args.begin() + 1, args.end()));
  }
  std::cerr << "shoalctl: unknown command " << command << " (see shoalctl --help)\n";
  return 2;
}
