#pragma once

// The publisher's embedded HTTP origin (`shoal-publish serve`): a small,
// read-only static file server over an origin tree, for demos and small
// sites. Production origins are nginx or a CDN serving the same tree; this
// server follows the same contract so agents cannot tell them apart.
//
// What it serves:
//   - GET and HEAD only; anything else is 405 with `Allow: GET, HEAD`.
//   - The URL path, percent-decoded, must be a clean relative path: no empty,
//     "." or ".." segments, no NUL, no backslash (400 otherwise). Files whose
//     real path (symlinks resolved) lies outside the root are 404, as are
//     directories (no listings), missing files and anything not a regular file.
//   - Every response carries Content-Length. Files carry `Accept-Ranges:
//     bytes`, a strong ETag and Last-Modified.
//   - Range: one `bytes=a-b`, `bytes=a-` or `bytes=-n` range gives 206 with
//     Content-Range; an unsatisfiable one gives 416 with
//     `Content-Range: bytes */SIZE`. Several ranges, a malformed header or an
//     empty file give the full 200. If-Range is not supported: objects are
//     content-addressed, and agents verify every byte anyway.
//   - If-None-Match matching the ETag (or "*") gives 304.
//   - `pieces/`, `layers/` and `releases/` hold content-addressed objects:
//     `Cache-Control: public, max-age=31536000, immutable`. Everything else,
//     notably the mutable `names/` pointers, is `Cache-Control: no-cache`.
//   - Content-Type is text/plain under `names/`, application/octet-stream
//     elsewhere; error bodies are one line of plain text.
//   - Bodies are streamed from disk in fixed-size chunks; connections are
//     kept alive between requests.
//
// With a registry in the options it also counts, for Prometheus
// (docs/metrics.md): shoal_origin_sent_bytes_total (response body bytes) and
// shoal_origin_requests_total{code} (responses by HTTP status).

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/civetweb_util.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"

struct mg_connection;

namespace shoal::publisher {

struct OriginServerOptions {
  // The origin tree. Must exist and be a directory; symlinks in the path to
  // it are resolved once at Start.
  std::string root_dir;
  // "HOST:PORT" with a numeric host: "127.0.0.1:8080", "0.0.0.0:0",
  // "[::1]:8080". Port 0 picks a free port; see address().
  std::string listen;
  // Worker threads. civetweb holds one thread per open connection, including
  // idle kept-alive ones, so this bounds concurrent clients.
  int num_threads = 16;
  // Where to register the server's metrics; nullptr for none. Borrowed: it
  // must outlive the server.
  prometheus::Registry* metrics = nullptr;
};

// Counters since Start, copied out by OriginServer::stats().
struct OriginServerStats {
  // Response body bytes written to clients; headers are not counted. A body
  // cut short (client gone, file shrank) counts what was written.
  uint64_t body_bytes_sent = 0;
  // Responses by HTTP status code. A response is counted when its headers are
  // sent, its body bytes once the body is done. Requests that civetweb itself
  // rejects before they reach this server (unparseable request lines,
  // unknown methods) are not counted.
  std::map<int, uint64_t> responses_by_status;
};

// Serves files under a root directory read-only over HTTP/1.1 (civetweb).
// Thread-safe. The destructor stops the server and joins civetweb's threads;
// requests in flight are cut off.
class OriginServer {
 public:
  // Starts serving and logs the bound address. Errors:
  //   INVALID_ARGUMENT: malformed `listen` (not HOST:PORT, host not a numeric
  //     IPv4 or bracketed IPv6 address, port outside 0-65535), empty root,
  //     num_threads < 1.
  //   NOT_FOUND: `root_dir` does not exist.
  //   FAILED_PRECONDITION: `root_dir` is not a directory.
  //   UNIMPLEMENTED: an IPv6 address with a civetweb built without IPv6.
  //   UNAVAILABLE: civetweb could not start, e.g. the address is in use; the
  //     message carries civetweb's reason.
  static absl::StatusOr<std::unique_ptr<OriginServer>> Start(
      const OriginServerOptions& options);

  OriginServer(const OriginServer&) = delete;
  OriginServer& operator=(const OriginServer&) = delete;

  // The bound address with the real port, e.g. "127.0.0.1:41234" or
  // "[::1]:41234".
  std::string address() const { return http_->address(); }
  int port() const { return http_->port(); }

  // A consistent snapshot of the counters.
  OriginServerStats stats() const;

  // Readiness for /readyz: OK while the origin root is still a directory
  // this process can read; UNAVAILABLE naming the problem otherwise.
  // Thread-safe.
  absl::Status CheckRoot() const;

 private:
  // What one request produced, for the counters.
  struct Outcome {
    int status;
    uint64_t body_bytes;
  };

  OriginServer(std::string root, prometheus::Registry* metrics);

  // Runs on civetweb's worker threads; returns the HTTP status sent.
  int Handle(mg_connection* conn);
  Outcome HandleRequest(mg_connection* conn);
  Outcome ServeFile(mg_connection* conn, const std::string& path, int fd,
                    bool head);
  // Sends the status line and headers and counts the response.
  void SendHeaders(mg_connection* conn, int status, const HttpHeaders& headers);
  // A one-line text/plain error response; `extra` adds headers.
  Outcome SendError(mg_connection* conn, int status, const std::string& text,
                    bool head, HttpHeaders extra = {});

  const std::string root_;  // Canonical; no trailing slash unless "/".
  // Null without a registry; owned by the registry otherwise.
  prometheus::Counter* sent_bytes_ = nullptr;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;

  mutable absl::Mutex mu_;
  OriginServerStats stats_ ABSL_GUARDED_BY(mu_);
  // Last, so it stops before the members its handler uses are destroyed.
  std::unique_ptr<HttpServer> http_;
};

}  // namespace shoal::publisher
