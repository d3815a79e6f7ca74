#pragma once

// A small pool of blocking hiredis connections to one Redis server, and the
// one operation RedisStore needs from it: send a batch of commands in one
// write and read their replies (one round trip).
//
// Connections are dialed on demand up to `max_connections`; a caller that
// finds them all busy waits for one. A connection that fails (I/O error,
// timeout, closed by the server) is discarded together with every idle one
// (they were most likely dropped by the same server restart) and the next
// call dials afresh, so a Redis that goes away and comes back is used again
// without restarting anything. A batch that fails on a reused idle
// connection because the server had closed it is sent once more on a fresh
// connection; a timeout is never retried, since the commands may have run.
//
// The link is plain TCP (hiredis 0.14 has no TLS): keep Redis on a private
// network.
//
// Thread-safe.

#include <sys/time.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "hiredis/hiredis.h"

namespace shoal::tracker {

// Where a Redis server is, parsed from "redis://HOST:PORT[/DB]".
struct RedisAddress {
  std::string host;
  int port = 6379;
  int db = 0;

  // "HOST:PORT/DB", for error messages.
  std::string ToString() const;
};

// INVALID_ARGUMENT unless `url` is "redis://HOST:PORT" or
// "redis://HOST:PORT/DB" (an IPv6 host in brackets).
absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url);

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using RedisReply = std::unique_ptr<redisReply, ReplyDeleter>;

// One command: its name then its arguments, binary-safe.
using RedisCommand = std::vector<std::string>;

class RedisClient {
 public:
  struct Options {
    absl::Duration connect_timeout = absl::Seconds(1);
    absl::Duration command_timeout = absl::Seconds(1);
    int max_connections = 4;
  };

  RedisClient(RedisAddress address, Options options);
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;
  ~RedisClient();

  // Sends `commands` pipelined on one connection and returns one reply per
  // command, in order. Error replies (REDIS_REPLY_ERROR) are returned as
  // replies for the caller to judge; the connection stays usable.
  // UNAVAILABLE, naming the server, when it cannot be reached, a timeout
  // passes, or the connection breaks.
  absl::StatusOr<std::vector<RedisReply>> Run(
      absl::Span<const RedisCommand> commands);

  const RedisAddress& address() const { return address_; }

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  using Connection = std::unique_ptr<redisContext, ContextDeleter>;

  // What one exchange on one connection came to.
  struct Exchange {
    absl::StatusOr<std::vector<RedisReply>> replies;
    bool peer_closed = false;  // the server had closed the connection
  };

  struct Pooled {
    Connection connection;
    bool reused = false;  // taken from the idle list rather than dialed
  };

  // An idle connection, or a new one when fewer than `max_connections` are
  // open; waits (bounded) while all are busy.
  absl::StatusOr<Pooled> Acquire();
  // Dials, sets timeouts and selects the database.
  absl::StatusOr<Connection> Dial();
  Exchange Send(redisContext& c, absl::Span<const RedisCommand> commands);
  // Returns a healthy connection to the idle list.
  void Return(Connection c);
  // Gives up the slot of a broken connection and closes the idle ones.
  void Discard(Connection c);
  absl::Status Unavailable(absl::string_view what) const;

  const RedisAddress address_;
  const Options options_;

  absl::Mutex mu_;
  std::vector<Connection> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle plus in use
};

}  // namespace shoal::tracker
