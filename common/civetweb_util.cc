#include "common/civetweb_util.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <glog/logging.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace shoal {
namespace {

// Idle time a kept-alive connection may hold its worker thread.
constexpr char kKeepAliveTimeoutMs[] = "2000";
// How often the destructor knocks while waiting for mg_stop().
constexpr absl::Duration kKnockInterval = absl::Milliseconds(50);

absl::once_flag civetweb_init_once;

// Connects to the listener and hangs up at once, which wakes civetweb's
// listening thread from poll(). Never blocks; failures do not matter.
void Knock(const HttpListenAddress& address) {
  std::string host = address.host;
  if (host == "0.0.0.0") host = "127.0.0.1";  // Wildcards answer on loopback.
  if (host == "::") host = "::1";
  addrinfo hints = {};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), absl::StrCat(address.port).c_str(), &hints,
                  &found) != 0) {
    return;
  }
  const int fd =
      socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    connect(fd, found->ai_addr, found->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(found);
}

}  // namespace

std::string HttpListenAddress::ToString() const {
  return ipv6 ? absl::StrCat("[", host, "]:", port)
              : absl::StrCat(host, ":", port);
}

absl::StatusOr<HttpListenAddress> ParseHttpListenAddress(
    absl::string_view listen) {
  const std::string usage = absl::StrCat(
      "listen address \"", listen,
      "\" must be HOST:PORT with a numeric host, e.g. 127.0.0.1:9090, "
      "0.0.0.0:9090 or [::1]:9090");
  const size_t colon = listen.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(usage);
  }
  absl::string_view host = listen.substr(0, colon);
  absl::string_view port = listen.substr(colon + 1);
  HttpListenAddress address;
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &address.port) || address.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(usage, "; the port must be 0-65535"));
  }
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) {
      return absl::InvalidArgumentError(usage);
    }
    address.ipv6 = true;
  }
  address.host = std::string(host);
  unsigned char buffer[sizeof(in6_addr)];
  if (inet_pton(address.ipv6 ? AF_INET6 : AF_INET, address.host.c_str(),
                buffer) != 1) {
    return absl::InvalidArgumentError(usage);
  }
  return address;
}

HttpServer::HttpServer(std::string name, HttpListenAddress address,
                       HttpHandler handler)
    : name_(std::move(name)),
      address_(std::move(address)),
      handler_(std::move(handler)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, HttpHandler handler) {
  ASSIGN_OR_RETURN(HttpListenAddress address,
                   ParseHttpListenAddress(options.listen));
  if (address.ipv6 && mg_check_feature(MG_FEATURES_IPV6) == 0) {
    return absl::UnimplementedError(absl::StrCat(
        "cannot serve ", options.name, " on ", options.listen,
        ": this civetweb build has no IPv6 support; use an IPv4 address"));
  }
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError("num_threads must be at least 1");
  }
  absl::call_once(civetweb_init_once, [] { mg_init_library(0); });
  auto server = absl::WrapUnique(
      new HttpServer(options.name, address, std::move(handler)));
  const std::string spec = address.ToString();
  const std::string threads = absl::StrCat(options.num_threads);
  // clang-format off
  const char* config[] = {
      "listening_ports", spec.c_str(),
      "num_threads", threads.c_str(),
      "enable_keep_alive", "yes",
      "keep_alive_timeout_ms", kKeepAliveTimeoutMs,
      "decode_url", "no",
      "tcp_nodelay", options.tcp_nodelay ? "1" : "0",
      nullptr};
  // clang-format on
  mg_callbacks callbacks = {};
  callbacks.init_context = &HttpServer::OnInitContext;
  callbacks.log_message = &HttpServer::OnLogMessage;
  mg_init_data init = {&callbacks, server.get(), config};
  char error_text[256] = "";
  mg_error_data error = {nullptr, error_text, sizeof(error_text)};
  server->ctx_ = mg_start2(&init, &error);
  if (server->ctx_ == nullptr) {
    absl::MutexLock lock(&server->mu_);
    return absl::UnavailableError(absl::StrCat(
        "cannot serve ", options.name, " on ", options.listen, ": ",
        server->first_message_.empty() ? error_text : server->first_message_));
  }
  mg_server_port ports[1];
  CHECK_EQ(mg_get_server_ports(server->ctx_, 1, ports), 1);
  server->address_.port = ports[0].port;
  return server;
}

// mg_stop() runs on a helper thread while this one knocks on the listener
// until it returns; a knock that lands before mg_stop() raised its stop flag
// is spent, hence the repetition.
HttpServer::~HttpServer() {
  if (ctx_ == nullptr) return;
  absl::Notification stopped;
  std::thread stopper([this, &stopped] {
    mg_stop(ctx_);
    stopped.Notify();
  });
  do {
    Knock(address_);
  } while (!stopped.WaitForNotificationWithTimeout(kKnockInterval));
  stopper.join();
}

std::string HttpServer::address() const { return address_.ToString(); }

// Registering before civetweb accepts connections means no request can find
// the handler missing.
void HttpServer::OnInitContext(const mg_context* ctx) {
  mg_set_request_handler(const_cast<mg_context*>(ctx), "/",
                         &HttpServer::OnRequest, mg_get_user_data(ctx));
}

int HttpServer::OnLogMessage(const mg_connection* conn, const char* message) {
  auto* self = static_cast<HttpServer*>(
      conn == nullptr ? nullptr : mg_get_user_data(mg_get_context(conn)));
  LOG(WARNING) << "civetweb"
               << (self == nullptr ? "" : absl::StrCat(" (", self->name_, ")"))
               << ": " << message;
  if (self != nullptr) {
    absl::MutexLock lock(&self->mu_);
    if (self->first_message_.empty()) self->first_message_ = message;
  }
  return 1;  // Handled: civetweb writes nothing itself.
}

int HttpServer::OnRequest(mg_connection* conn, void* self) {
  return static_cast<HttpServer*>(self)->handler_(conn);
}

void SendHttpHeaders(mg_connection* conn, int status,
                     const HttpHeaders& headers) {
  mg_response_header_start(conn, status);
  for (const auto& [name, value] : headers) {
    mg_response_header_add(conn, name.c_str(), value.c_str(),
                           static_cast<int>(value.size()));
  }
  mg_response_header_send(conn);
}

int SendHttpResponse(mg_connection* conn, int status,
                     absl::string_view content_type, absl::string_view body,
                     bool head) {
  SendHttpHeaders(conn, status,
                  {{"Content-Type", std::string(content_type)},
                   {"Content-Length", absl::StrCat(body.size())},
                   {"Cache-Control", "no-cache"}});
  if (!head && !body.empty()) mg_write(conn, body.data(), body.size());
  return status;
}

}  // namespace shoal
