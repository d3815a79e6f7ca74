#include "tracker/testing/redis_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "hiredis/hiredis.h"

namespace shoal::tracker::testing {
namespace {

constexpr absl::Duration kReadyBound = absl::Seconds(10);
constexpr int kPortAttempts = 5;

// A loopback port nobody listens on right now (it may be taken before the
// server binds it; Start retries then).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  absl::Cleanup closer = [fd] { close(fd); };
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  return ntohs(addr.sin_port);
}

// redis-server's full path, looked up on PATH before forking (the child may
// only make async-signal-safe calls).
std::string ServerBinary() {
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "", ':')) {
    std::string candidate = absl::StrCat(dir, "/redis-server");
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "/usr/bin/redis-server";
}

std::string ReplyText(const redisReply& reply) {
  switch (reply.type) {
    case REDIS_REPLY_INTEGER:
      return absl::StrCat(reply.integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::vector<std::string> parts;
      for (size_t i = 0; i < reply.elements; ++i) {
        parts.push_back(ReplyText(*reply.element[i]));
      }
      return absl::StrJoin(parts, "\n");
    }
    default:
      return std::string(reply.str, reply.len);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start() {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string templ = absl::StrCat(tmp ? tmp : "/tmp", "/redis.XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  std::unique_ptr<RedisServer> server(new RedisServer(templ, 0));
  absl::Status last;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    absl::StatusOr<int> port = FreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    last = server->Restart();
    if (last.ok()) return server;
    server->Kill();
  }
  return last;
}

RedisServer::~RedisServer() {
  Kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string RedisServer::url() const {
  return absl::StrCat("redis://127.0.0.1:", port_);
}

absl::Status RedisServer::Restart() {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  if (absl::Status spawned = Spawn(); !spawned.ok()) return spawned;
  return AwaitReady();
}

absl::Status RedisServer::Spawn() {
  const std::string binary = ServerBinary();
  const std::vector<std::string> args = {binary,
                                         "--port",
                                         absl::StrCat(port_),
                                         "--bind",
                                         "127.0.0.1",
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--dir",
                                         dir_,
                                         "--logfile",
                                         absl::StrCat(dir_, "/redis.log")};
  std::vector<char*> argv;
  for (const std::string& arg : args)
    argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(std::strerror(errno));
  if (pid == 0) {
    // Dies with the test, even when the test crashes.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status RedisServer::AwaitReady() {
  const absl::Time deadline = absl::Now() + kReadyBound;
  // Polls: the server offers no readiness signal but answering.
  while (absl::Now() < deadline) {
    int wstatus = 0;
    if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat(
          "redis-server on port ", port_,
          " exited: ", ReadFile(absl::StrCat(dir_, "/redis.log"))));
    }
    absl::StatusOr<std::string> pong = Command({"PING"});
    if (pong.ok() && *pong == "PONG") return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::UnavailableError(
      absl::StrCat("redis-server on port ", port_, " did not answer within ",
                   absl::FormatDuration(kReadyBound)));
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

absl::Status RedisServer::FlushAll() {
  absl::StatusOr<std::string> reply = Command({"FLUSHALL"});
  if (!reply.ok()) return reply.status();
  if (*reply != "OK") return absl::InternalError(*reply);
  return absl::OkStatus();
}

absl::StatusOr<std::string> RedisServer::Command(
    const std::vector<std::string>& args) {
  const timeval timeout = absl::ToTimeval(absl::Seconds(1));
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeout);
  if (c == nullptr) return absl::UnavailableError("cannot allocate");
  absl::Cleanup freer = [c] { redisFree(c); };
  if (c->err != 0) return absl::UnavailableError(c->errstr);
  redisSetTimeout(c, timeout);
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(c, argv.size(), argv.data(), lengths.data()));
  if (reply == nullptr) return absl::UnavailableError(c->errstr);
  std::string text = ReplyText(*reply);
  freeReplyObject(reply);
  return text;
}

}  // namespace shoal::tracker::testing
