#pragma once

// The HTTP listener every daemon serves on --metrics_listen, for Prometheus
// and for process supervisors (Kubernetes probes, systemd checks):
//
//   GET /metrics  200, the registry in Prometheus text exposition format
//                 (text/plain; version=0.0.4).
//   GET /healthz  200 "ok" while the process runs and serves HTTP.
//   GET /readyz   200 "ready" when the readiness check returns OK, else 503
//                 with the check's message, e.g. "tracker: no store".
//
// HEAD works on all three. Other paths are 404, other methods 405. Bodies
// are plain text ending in a newline. No authentication: bind it to an
// address only the monitoring network reaches.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/civetweb_util.h"

struct mg_connection;

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace shoal {

// Serves metrics and health over HTTP (civetweb). Thread-safe. The
// destructor stops the server and joins its threads.
class MetricsServer {
 public:
  // Starts serving on `listen` (numeric HOST:PORT; port 0 picks a free port)
  // and logs the bound address. `registry` is shared with the code that
  // records the metrics, which keeps adding to it while this serves it.
  // `ready` is called on a server thread for each /readyz, concurrently with
  // everything else, so it must be thread-safe; an empty function means
  // always ready. Errors: INVALID_ARGUMENT for a malformed `listen`;
  // UNAVAILABLE if the address cannot be bound (e.g. in use), with the
  // reason.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
      std::function<absl::Status()> ready);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address with the real port, e.g. "127.0.0.1:41234".
  std::string address() const { return http_->address(); }
  int port() const { return http_->port(); }

 private:
  MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                std::function<absl::Status()> ready);

  int Handle(mg_connection* conn);

  const std::shared_ptr<prometheus::Registry> registry_;
  const std::function<absl::Status()> ready_;
  // Last, so it stops before the members its handler uses are destroyed.
  std::unique_ptr<HttpServer> http_;
};

}  // namespace shoal
