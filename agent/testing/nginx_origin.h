#pragma once

// A real nginx serving a directory as an origin tree, for tests of origin
// clients against a production HTTP server (ranges, keep-alive, its own idea
// of headers). It listens on a free 127.0.0.1 port, runs in the foreground
// of a child process (no daemon, no master process) with its config, pid
// file, logs and temporary files in a fresh directory, and dies with the test
// process. Needs nginx at /usr/sbin/nginx (deploy/install-deps.sh installs
// it).
//
// Not thread-safe: drive it from the test's main thread.

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shoal::agent::testing {

class NginxOrigin {
 public:
  // Starts nginx serving `root` and waits (at most 10 s) until it accepts
  // connections. A port taken between probing and binding is retried with
  // another one. FAILED_PRECONDITION if nginx is not installed; UNAVAILABLE,
  // with nginx's error log, if it does not come up.
  static absl::StatusOr<std::unique_ptr<NginxOrigin>> Start(
      const std::string& root);

  NginxOrigin(const NginxOrigin&) = delete;
  NginxOrigin& operator=(const NginxOrigin&) = delete;
  // Stops nginx.
  ~NginxOrigin();

  int port() const { return port_; }
  // "http://127.0.0.1:PORT".
  std::string base_url() const;

  // nginx's access log so far: a line per request, `CONNECTION STATUS
  // "REQUEST LINE"`, where CONNECTION numbers the TCP connection it came on.
  // nginx writes a line just after sending the response, so the log is
  // complete only once Stop() has returned.
  absl::StatusOr<std::string> AccessLog() const;

  // Stops nginx (SIGTERM, then SIGKILL if it lingers) and reaps it. OK to
  // call twice.
  void Stop();

 private:
  NginxOrigin(std::string dir, std::string root)
      : dir_(std::move(dir)), root_(std::move(root)) {}

  // Writes the config for port_ and spawns nginx; does not wait.
  absl::Status Spawn();
  // Waits until nginx accepts connections, or exits, or the bound passes.
  absl::Status AwaitReady();

  const std::string dir_;   // config, pid, logs, temporary files
  const std::string root_;  // what it serves
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace shoal::agent::testing
