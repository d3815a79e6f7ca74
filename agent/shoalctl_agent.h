#pragma once

// The shoalctl commands that talk to the local agent over its control
// socket: fetch, status, list, remove, pin, unpin. shoalctl.cc parses the
// flags and hands the command here.

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shoal::agent {

inline constexpr char kDefaultAgentSocket[] = "/var/lib/shoal/agent.sock";

// The flags the agent commands read.
struct AgentCommandFlags {
  std::string agent;  // --agent; empty: $SHOAL_AGENT, else kDefaultAgentSocket
  absl::Duration timeout = absl::InfiniteDuration();  // --timeout (fetch)
  bool json = false;                                  // --json (fetch, status)
  std::string dest;                                   // --dest (fetch)
};

// The control socket: `flag` if set, else `env` ($SHOAL_AGENT; may be null)
// if set, else kDefaultAgentSocket.
std::string AgentSocketPath(const std::string& flag, const char* env);

// True for fetch, status, list, remove, pin and unpin.
bool IsAgentCommand(absl::string_view command);

// The --help text of one agent command; empty for any other command.
std::string AgentCommandHelp(absl::string_view command);

// The help text of an agent command when `argv` (as main got it, before
// flag parsing) names one and holds --help, -help or -h; nullopt otherwise.
// Values of flags given as separate words ("--agent PATH") are skipped.
std::optional<std::string> AgentCommandHelpFor(int argc, const char* const* argv);

// Runs `args`: an agent command and its operands. Output on stdout, progress
// and errors on stderr. Returns the exit code: 0 done, 1 failed (the reason
// on stderr), 2 wrong usage.
int RunAgentCommand(const AgentCommandFlags& flags, const std::vector<std::string>& args);

// `path` made absolute against `cwd`, with "." components and repeated or
// trailing slashes dropped. ".." is kept: it means something else than
// removing the previous component when that component is a symlink.
std::string AbsolutePath(absl::string_view cwd, absl::string_view path);

}  // namespace shoal::agent
