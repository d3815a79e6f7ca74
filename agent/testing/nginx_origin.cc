#include "agent/testing/nginx_origin.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"

namespace shoal::agent::testing {
namespace {

constexpr char kNginx[] = "/usr/sbin/nginx";
constexpr absl::Duration kReadyBound = absl::Seconds(10);
constexpr absl::Duration kStopBound = absl::Seconds(5);
constexpr absl::Duration kPollInterval = absl::Milliseconds(10);
constexpr int kPortAttempts = 5;

// Everything nginx writes goes under $DIR; it serves $ROOT on $PORT.
constexpr char kConfig[] = R"(daemon off;
master_process off;
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log info;
events { worker_connections 128; }
http {
  log_format shoal '$connection $status "$request"';
  access_log $DIR/access.log shoal;
  client_body_temp_path $DIR/client_body;
  proxy_temp_path $DIR/proxy;
  fastcgi_temp_path $DIR/fastcgi;
  uwsgi_temp_path $DIR/uwsgi;
  scgi_temp_path $DIR/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 30s;
  server {
    listen 127.0.0.1:$PORT;
    root $ROOT;
    location / { }
  }
}
)";

// A loopback port nobody listens on right now (it may be taken before nginx
// binds it; Start retries then).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  absl::Cleanup closer = [fd] { close(fd); };
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(std::strerror(errno));
  }
  return ntohs(addr.sin_port);
}

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  absl::Cleanup closer = [fd] { close(fd); };
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string MakeDir() {
  const char* tmp = getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/nginx.XXXXXX");
  return mkdtemp(dir.data()) == nullptr ? "" : dir;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NginxOrigin>> NginxOrigin::Start(
    const std::string& root) {
  if (access(kNginx, X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        kNginx, " is missing: install nginx (deploy/install-deps.sh)"));
  }
  std::string dir = MakeDir();
  if (dir.empty()) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  std::unique_ptr<NginxOrigin> nginx(new NginxOrigin(std::move(dir), root));
  absl::Status last;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    absl::StatusOr<int> port = FreePort();
    if (!port.ok()) return port.status();
    nginx->port_ = *port;
    last = nginx->Spawn();
    if (last.ok()) last = nginx->AwaitReady();
    if (last.ok()) return nginx;
    nginx->Stop();
  }
  return last;
}

NginxOrigin::~NginxOrigin() { Stop(); }

std::string NginxOrigin::base_url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

absl::Status NginxOrigin::Spawn() {
  const std::string config_path = absl::StrCat(dir_, "/nginx.conf");
  const std::string config = absl::StrReplaceAll(
      kConfig,
      {{"$DIR", dir_}, {"$ROOT", root_}, {"$PORT", absl::StrCat(port_)}});
  if (absl::Status s = WriteFileAtomically(config_path, config, 0644, false);
      !s.ok()) {
    return s;
  }
  const std::string prefix = absl::StrCat(dir_, "/");
  const std::string error_log = absl::StrCat(dir_, "/error.log");
  const std::string output = absl::StrCat(dir_, "/output.log");
  std::vector<const char*> argv = {kNginx,
                                   "-p",
                                   prefix.c_str(),
                                   "-c",
                                   config_path.c_str(),
                                   "-e",
                                   error_log.c_str(),
                                   nullptr};
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here on. Dies with the test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    const int fd = open(output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    execv(argv[0], const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status NginxOrigin::AwaitReady() {
  const absl::Time deadline = absl::Now() + kReadyBound;
  // Polls: nginx offers no readiness signal but accepting connections.
  while (absl::Now() < deadline) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      absl::StatusOr<std::string> log =
          ReadFile(absl::StrCat(dir_, "/error.log"), 1 << 20);
      return absl::UnavailableError(
          absl::StrCat("nginx on port ", port_,
                       " exited: ", log.ok() ? *log : log.status().ToString()));
    }
    if (Accepts(port_)) return absl::OkStatus();
    absl::SleepFor(kPollInterval);
  }
  return absl::UnavailableError(absl::StrCat(
      "nginx on port ", port_, " did not accept connections within ",
      absl::FormatDuration(kReadyBound)));
}

absl::StatusOr<std::string> NginxOrigin::AccessLog() const {
  return ReadFile(absl::StrCat(dir_, "/access.log"), 64 << 20);
}

void NginxOrigin::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);  // nginx's fast shutdown
  const absl::Time deadline = absl::Now() + kStopBound;
  while (waitpid(pid_, nullptr, WNOHANG) != pid_) {
    if (absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      break;
    }
    absl::SleepFor(kPollInterval);
  }
  pid_ = -1;
}

}  // namespace shoal::agent::testing
