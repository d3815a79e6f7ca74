#pragma once

// A civetweb HTTP server with the project's conventions, for the HTTP
// listeners daemons run beside gRPC (metrics, health) and for the publisher's
// embedded origin. It takes care of the civetweb quirks once:
//   - listen addresses are numeric HOST:PORT; port 0 picks a free port and
//     address() reports the real one;
//   - a failed start (address in use, no permission) reports civetweb's
//     reason, which civetweb only passes to its log callback;
//   - URLs reach the handler undecoded (civetweb's decode_url=no), so a
//     handler compares `local_uri_raw` with what it serves and sees "%2F";
//   - the destructor stops civetweb promptly: its listening thread otherwise
//     notices mg_stop() only when its poll() times out, up to two seconds.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

struct mg_connection;
struct mg_context;

namespace shoal {

// A parsed listen address.
struct HttpListenAddress {
  std::string host;  // Numeric, without brackets.
  int port = 0;
  bool ipv6 = false;

  // "127.0.0.1:8080" or "[::1]:8080".
  std::string ToString() const;
};

// Parses "HOST:PORT" with a numeric IPv4 or bracketed IPv6 host, e.g.
// "127.0.0.1:9090", "0.0.0.0:0", "[::1]:9090". INVALID_ARGUMENT (with an
// example of the right form) otherwise, or for a port outside 0-65535.
absl::StatusOr<HttpListenAddress> ParseHttpListenAddress(
    absl::string_view listen);

// Handles one request on one of civetweb's worker threads, concurrently with
// others, and returns the HTTP status it sent.
using HttpHandler = std::function<int(mg_connection* conn)>;

struct HttpServerOptions {
  std::string name;    // What the server is, for logs and errors: "metrics".
  std::string listen;  // See ParseHttpListenAddress.
  // civetweb holds one thread per open connection, idle kept-alive ones
  // included, so this bounds concurrent clients.
  int num_threads = 4;
  // Sets TCP_NODELAY on accepted connections, so a response's last segment
  // is not held back waiting for the client's acknowledgement.
  bool tcp_nodelay = false;
};

// A running civetweb server sending every request to one handler.
// Thread-safe. The destructor stops the server and joins civetweb's threads;
// requests in flight are cut off.
class HttpServer {
 public:
  // Starts serving. Errors: INVALID_ARGUMENT for a malformed `listen` or
  // num_threads < 1; UNIMPLEMENTED for IPv6 when civetweb lacks it;
  // UNAVAILABLE when civetweb cannot start (e.g. the address is in use), with
  // civetweb's reason.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, HttpHandler handler);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound address with the real port, e.g. "127.0.0.1:41234".
  std::string address() const;
  int port() const { return address_.port; }

 private:
  HttpServer(std::string name, HttpListenAddress address, HttpHandler handler);

  static void OnInitContext(const mg_context* ctx);
  static int OnLogMessage(const mg_connection* conn, const char* message);
  static int OnRequest(mg_connection* conn, void* self);

  const std::string name_;
  // The port is set once civetweb has bound it, before Start returns.
  HttpListenAddress address_;
  const HttpHandler handler_;
  mg_context* ctx_ = nullptr;  // Owned; stopped in the destructor.

  absl::Mutex mu_;
  // civetweb's first log message; explains a failed start.
  std::string first_message_ ABSL_GUARDED_BY(mu_);
};

// Response headers by name; sent in the map's order.
using HttpHeaders = std::map<std::string, std::string>;

// Sends the status line and `headers`; the body, if any, follows with
// mg_write(). The caller supplies Content-Length.
void SendHttpHeaders(mg_connection* conn, int status,
                     const HttpHeaders& headers);

// Sends a whole response: `status`, Content-Type, Content-Length,
// `Cache-Control: no-cache`, and `body` unless `head` (a HEAD request).
// Returns `status`.
int SendHttpResponse(mg_connection* conn, int status,
                     absl::string_view content_type, absl::string_view body,
                     bool head);

}  // namespace shoal
