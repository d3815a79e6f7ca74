#pragma once

// A throwaway redis-server for tests: listens on a free loopback port, keeps
// nothing on disk (no RDB, no AOF), works in its own temporary directory, and
// dies with the test process. Needs `redis-server` on PATH.
//
// Not thread-safe: drive it from the test's main thread.

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::tracker::testing {

class RedisServer {
 public:
  // Starts a server and waits (at most 10 s) until it answers PING. A port
  // taken between probing and binding is retried with another one.
  // UNAVAILABLE if no server comes up.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start();

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  // Kills the server and removes its directory.
  ~RedisServer();

  int port() const { return port_; }
  // "redis://127.0.0.1:PORT".
  std::string url() const;

  // Kills the server (SIGKILL, as a crash would) and reaps it. OK if it is
  // not running.
  void Kill();
  // Starts it again on the same port, empty; waits as Start does.
  absl::Status Restart();
  // Empties every database (between tests sharing one server).
  absl::Status FlushAll();
  // Runs one command and returns its reply as text: a string, status or
  // error as is, an integer in decimal, nil as "(nil)", an array as its
  // elements joined by "\n". UNAVAILABLE if the server does not answer.
  absl::StatusOr<std::string> Command(const std::vector<std::string>& args);

 private:
  RedisServer(std::string dir, int port) : dir_(std::move(dir)), port_(port) {}

  // Spawns redis-server on port_; does not wait.
  absl::Status Spawn();
  // Waits until the server answers PING, or exits, or the bound passes.
  absl::Status AwaitReady();

  const std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace shoal::tracker::testing
