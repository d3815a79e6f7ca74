#include "tracker/redis_client.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace shoal::tracker {
namespace {

constexpr absl::string_view kScheme = "redis://";

absl::Status BadUrl(absl::string_view url, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "bad Redis URL \"", url, "\" (want redis://HOST:PORT[/DB]): ", why));
}

// Splits "HOST[:PORT]" or "[V6HOST][:PORT]" into `address`.
absl::Status ParseHostPort(absl::string_view url, absl::string_view hostport,
                           RedisAddress& address) {
  absl::string_view port;
  if (absl::StartsWith(hostport, "[")) {
    const size_t close = hostport.find(']');
    if (close == absl::string_view::npos) return BadUrl(url, "unclosed [");
    address.host = std::string(hostport.substr(1, close - 1));
    absl::string_view rest = hostport.substr(close + 1);
    if (!rest.empty() && !absl::ConsumePrefix(&rest, ":")) {
      return BadUrl(url, "junk after ]");
    }
    port = rest;
  } else {
    const size_t colon = hostport.rfind(':');
    address.host = std::string(hostport.substr(0, colon));
    if (colon != absl::string_view::npos) port = hostport.substr(colon + 1);
  }
  if (address.host.empty()) return BadUrl(url, "no host");
  if (!port.empty() && (!absl::SimpleAtoi(port, &address.port) ||
                        address.port <= 0 || address.port > 65535)) {
    return BadUrl(url, "bad port");
  }
  return absl::OkStatus();
}

// The commands in Redis' wire protocol, concatenated.
absl::StatusOr<std::string> Format(absl::Span<const RedisCommand> commands) {
  std::string wire;
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const RedisCommand& command : commands) {
    argv.clear();
    lengths.clear();
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    char* formatted = nullptr;
    const int n = redisFormatCommandArgv(&formatted, argv.size(), argv.data(),
                                         lengths.data());
    if (n < 0) return absl::ResourceExhaustedError("cannot format a command");
    wire.append(formatted, n);
    redisFreeCommand(formatted);
  }
  return wire;
}

}  // namespace

std::string RedisAddress::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return absl::StrCat(v6 ? "[" : "", host, v6 ? "]" : "", ":", port, "/", db);
}

absl::StatusOr<RedisAddress> ParseRedisUrl(absl::string_view url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, kScheme)) return BadUrl(url, "no redis://");
  if (absl::StrContains(rest, "@")) {
    return BadUrl(url, "credentials in the URL are not supported");
  }
  RedisAddress address;
  const size_t slash = rest.find('/');
  if (slash != absl::string_view::npos) {
    absl::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!absl::SimpleAtoi(db, &address.db) || address.db < 0)) {
      return BadUrl(url, "bad database number");
    }
    rest = rest.substr(0, slash);
  }
  RETURN_IF_ERROR(ParseHostPort(url, rest, address));
  return address;
}

RedisClient::RedisClient(RedisAddress address, Options options)
    : address_(std::move(address)), options_(options) {}

RedisClient::~RedisClient() = default;

absl::Status RedisClient::Unavailable(absl::string_view what) const {
  return absl::UnavailableError(
      absl::StrCat("Redis at ", address_.ToString(), ": ", what));
}

absl::StatusOr<std::vector<RedisReply>> RedisClient::Run(
    absl::Span<const RedisCommand> commands) {
  for (int attempt = 0;; ++attempt) {
    ASSIGN_OR_RETURN(Pooled pooled, Acquire());
    Exchange exchange = Send(*pooled.connection, commands);
    if (exchange.replies.ok()) {
      Return(std::move(pooled.connection));
      return std::move(exchange.replies);
    }
    Discard(std::move(pooled.connection));
    // Only a connection the server closed while it sat idle is worth a
    // second try: the commands never reached a live server.
    if (attempt > 0 || !pooled.reused || !exchange.peer_closed) {
      return exchange.replies.status();
    }
  }
}

absl::StatusOr<RedisClient::Pooled> RedisClient::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto can_go = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < options_.max_connections;
    };
    const absl::Duration wait =
        options_.connect_timeout + options_.command_timeout;
    if (!mu_.AwaitWithTimeout(absl::Condition(&can_go), wait)) {
      return Unavailable(absl::StrCat("all ", options_.max_connections,
                                      " connections stayed busy for ",
                                      absl::FormatDuration(wait)));
    }
    if (!idle_.empty()) {
      Pooled pooled{std::move(idle_.back()), /*reused=*/true};
      idle_.pop_back();
      return pooled;
    }
    ++open_;  // reserve the slot; dial outside the lock
  }
  absl::StatusOr<Connection> dialed = Dial();
  if (!dialed.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return dialed.status();
  }
  return Pooled{std::move(*dialed), /*reused=*/false};
}

absl::StatusOr<RedisClient::Connection> RedisClient::Dial() {
  Connection c(
      redisConnectWithTimeout(address_.host.c_str(), address_.port,
                              absl::ToTimeval(options_.connect_timeout)));
  if (c == nullptr) return Unavailable("cannot allocate a connection");
  if (c->err != 0) return Unavailable(absl::StrCat("connect: ", c->errstr));
  if (redisSetTimeout(c.get(), absl::ToTimeval(options_.command_timeout)) !=
      REDIS_OK) {
    return Unavailable(absl::StrCat("setting timeouts: ", c->errstr));
  }
  redisEnableKeepAlive(c.get());  // best effort: finds dead idle links
  if (address_.db != 0) {
    const RedisCommand select = {"SELECT", absl::StrCat(address_.db)};
    Exchange exchange = Send(*c, absl::MakeConstSpan(&select, 1));
    RETURN_IF_ERROR(exchange.replies.status());
    const redisReply& reply = *exchange.replies->front();
    if (reply.type == REDIS_REPLY_ERROR) {
      return Unavailable(absl::StrCat("SELECT ", address_.db, ": ",
                                      absl::string_view(reply.str, reply.len)));
    }
  }
  return c;
}

RedisClient::Exchange RedisClient::Send(
    redisContext& c, absl::Span<const RedisCommand> commands) {
  absl::StatusOr<std::string> wire = Format(commands);
  if (!wire.ok()) return {Unavailable(wire.status().message()), false};
  // hiredis writes with write(2), which raises SIGPIPE on a connection the
  // server has closed; sending the batch ourselves with MSG_NOSIGNAL turns
  // that into EPIPE. The socket carries hiredis' send timeout.
  for (size_t sent = 0; sent < wire->size();) {
    const ssize_t n =
        send(c.fd, wire->data() + sent, wire->size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      return {Unavailable(absl::StrCat("send: ", std::strerror(error))),
              error == EPIPE || error == ECONNRESET};
    }
    sent += n;
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* reply = nullptr;
    if (redisGetReply(&c, &reply) != REDIS_OK || reply == nullptr) {
      const int error = errno;
      const bool closed = c.err == REDIS_ERR_EOF ||
                          (c.err == REDIS_ERR_IO && error == ECONNRESET);
      return {Unavailable(c.errstr), closed};
    }
    replies.emplace_back(static_cast<redisReply*>(reply));
  }
  return {std::move(replies), false};
}

void RedisClient::Return(Connection c) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(std::move(c));
}

void RedisClient::Discard(Connection c) {
  std::vector<Connection> idle;
  {
    absl::MutexLock lock(&mu_);
    open_ -= 1 + static_cast<int>(idle_.size());
    idle.swap(idle_);
  }
  c.reset();  // close outside the lock
}

}  // namespace shoal::tracker
