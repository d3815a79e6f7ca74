#include "agent/post_install.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace shoal::agent {
namespace {

// Poll step when the kernel offers no pidfd (before Linux 5.3, or a seccomp
// policy that refuses it): the child is then checked with waitpid(WNOHANG).
constexpr int kFallbackPollMs = 20;

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

void KeepTail(std::string& output) {
  if (output.size() > kPostInstallOutputBytes) {
    output.erase(0, output.size() - kPostInstallOutputBytes);
  }
}

// Reads what `fd` (non-blocking) holds into `output`. False at end of file
// or on an error: nothing more will come.
bool ReadAvailable(int fd, std::string& output) {
  char buffer[16384];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n > 0) {
      output.append(buffer, static_cast<size_t>(n));
      if (output.size() > 2 * kPostInstallOutputBytes) KeepTail(output);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

// "NAME=value" for the hook: the agent's environment without the names set
// here, then those.
std::vector<std::string> HookEnvironment(const PostInstallSpec& spec) {
  std::vector<std::pair<std::string, std::string>> vars = spec.env;
  vars.emplace_back(kInstallPathEnv, spec.path);
  absl::flat_hash_set<std::string> names;
  for (const auto& var : vars) names.insert(var.first);
  std::vector<std::string> out;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const absl::string_view text = *entry;
    const size_t eq = text.find('=');
    if (eq != absl::string_view::npos &&
        names.contains(std::string(text.substr(0, eq)))) {
      continue;
    }
    out.emplace_back(text);
  }
  for (const auto& var : vars) out.push_back(var.first + "=" + var.second);
  return out;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Starts the hook with stdout and stderr into `out_fd`. The spawn error
// (an errno value) on failure.
int Spawn(const PostInstallSpec& spec, int out_fd, pid_t* pid) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  absl::Cleanup free_actions = [&] {
    posix_spawn_file_actions_destroy(&actions);
  };
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 2);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  absl::Cleanup free_attr = [&] { posix_spawnattr_destroy(&attr); };
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);

  std::vector<std::string> args = {"/bin/sh", "-c", spec.command,
                                   "shoal-post-install", spec.path};
  std::vector<std::string> env = HookEnvironment(spec);
  std::vector<char*> argv = Pointers(args);
  std::vector<char*> envp = Pointers(env);
  return posix_spawn(pid, "/bin/sh", &actions, &attr, argv.data(), envp.data());
}

// Waits for `pid` until `deadline`, collecting its output from `out_fd`.
// True with its wait status in `*status` once it exited; false at the
// deadline.
bool WaitForExit(pid_t pid, int out_fd, absl::Time deadline,
                 std::string& output, int* status) {
  const int pidfd = OpenPidfd(pid);
  absl::Cleanup close_pidfd = [pidfd] {
    if (pidfd >= 0) close(pidfd);
  };
  bool reading = true;
  for (;;) {  // Ends at the child's exit or at the deadline.
    if (pidfd < 0 && waitpid(pid, status, WNOHANG) == pid) break;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    int wait_ms = static_cast<int>(
        std::min<double>(std::ceil(absl::ToDoubleMilliseconds(left)), 60000.0));
    if (pidfd < 0) wait_ms = std::min(wait_ms, kFallbackPollMs);
    pollfd fds[2];
    nfds_t n = 0;
    if (pidfd >= 0) fds[n++] = {pidfd, POLLIN, 0};
    const nfds_t out_index = n;
    if (reading) fds[n++] = {out_fd, POLLIN, 0};
    if (poll(fds, n, wait_ms) < 0 && errno != EINTR) return false;
    if (reading && fds[out_index].revents != 0) {
      reading = ReadAvailable(out_fd, output);
    }
    if (pidfd >= 0 && fds[0].revents != 0) {
      while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
  }
  // What it wrote before exiting; descendants may keep the pipe open, so
  // this takes what is there and does not wait for the end.
  if (reading) ReadAvailable(out_fd, output);
  return true;
}

}  // namespace

std::string PostInstallResult::Describe() const {
  switch (outcome) {
    case Outcome::kExited:
      return absl::StrCat("exited with status ", exit_code);
    case Outcome::kKilled:
      return absl::StrCat("killed by signal ", signal, " (", strsignal(signal),
                          ")");
    case Outcome::kTimedOut:
      return absl::StrCat("timed out after ", absl::FormatDuration(elapsed),
                          " and was killed");
    case Outcome::kNotStarted:
      return absl::StrCat("not started: ", output);
  }
  return "unknown";
}

PostInstallResult RunPostInstall(const PostInstallSpec& spec) {
  PostInstallResult result;
  const absl::Time start = absl::Now();
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    result.output = absl::StrCat("cannot create a pipe: ", strerror(errno));
    return result;
  }
  absl::Cleanup close_read = [&] { close(pipe_fds[0]); };
  pid_t pid = -1;
  const int spawn_error = Spawn(spec, pipe_fds[1], &pid);
  close(pipe_fds[1]);
  if (spawn_error != 0) {
    result.output = absl::StrCat("cannot run /bin/sh: ", strerror(spawn_error));
    return result;
  }
  fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);

  int status = 0;
  if (!WaitForExit(pid, pipe_fds[0], start + spec.timeout, result.output,
                   &status)) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ReadAvailable(pipe_fds[0], result.output);
    result.outcome = PostInstallResult::Outcome::kTimedOut;
    result.signal = SIGKILL;
  } else if (WIFEXITED(status)) {
    result.outcome = PostInstallResult::Outcome::kExited;
    result.exit_code = WEXITSTATUS(status);
  } else {
    result.outcome = PostInstallResult::Outcome::kKilled;
    result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  result.elapsed = absl::Now() - start;
  KeepTail(result.output);
  return result;
}

}  // namespace shoal::agent
