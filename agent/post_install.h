#pragma once

// The --post_install hook: an operator's shell command run after a release
// was installed and switched to, with the new version's directory as its
// argument. Its outcome is reported, never acted upon: a failing hook does
// not undo the install (the files are in place and `current` points at
// them; rolling back is pointing the channel at the previous release).

#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace shoal::agent {

// Environment variable that carries the installed version's directory.
inline constexpr char kInstallPathEnv[] = "SHOAL_INSTALL_PATH";
// Most bytes of the hook's output kept (the last ones).
inline constexpr size_t kPostInstallOutputBytes = 4096;

struct PostInstallSpec {
  // Run as `/bin/sh -c COMMAND shoal-post-install PATH`, so the script sees
  // PATH as $1.
  std::string command;
  // The installed version's directory: $1 and SHOAL_INSTALL_PATH.
  std::string path;
  // More variables for the hook (e.g. SHOAL_RELEASE); they and
  // SHOAL_INSTALL_PATH replace inherited variables of the same name.
  std::vector<std::pair<std::string, std::string>> env;
  // After this long the hook's whole process group is killed (SIGKILL).
  absl::Duration timeout = absl::Minutes(10);
};

struct PostInstallResult {
  enum class Outcome {
    kExited,      // exit_code holds its status
    kKilled,      // a signal ended it: `signal`
    kTimedOut,    // still running at the timeout; killed with SIGKILL
    kNotStarted,  // it could not be started: `output` says why
  };
  Outcome outcome = Outcome::kNotStarted;
  int exit_code = -1;
  int signal = 0;
  absl::Duration elapsed;
  // The last kPostInstallOutputBytes of its stdout and stderr, interleaved.
  std::string output;

  // True iff it exited with status 0.
  bool ok() const { return outcome == Outcome::kExited && exit_code == 0; }
  // "exited with status 3", "killed by signal 9", "timed out after 30s",
  // "not started: ...".
  std::string Describe() const;
};

// Runs the hook and waits for it, at most `spec.timeout`. The hook runs in
// its own process group, with stdin from /dev/null, an empty signal mask and
// default signal dispositions (whatever the agent blocks or ignores), and
// the agent's environment plus the variables above. Processes it leaves
// running after it exits are not waited for and not killed; at the timeout
// the whole group is killed. Never fails: a hook that cannot be started is
// reported as kNotStarted. Thread-safe (posix_spawn, no fork of the caller's
// threads).
PostInstallResult RunPostInstall(const PostInstallSpec& spec);

}  // namespace shoal::agent
