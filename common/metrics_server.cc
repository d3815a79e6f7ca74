#include "common/metrics_server.h"

#include <civetweb.h>
#include <glog/logging.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace shoal {
namespace {

// Prometheus scrapes, probes and a person with curl: a few threads suffice.
constexpr int kNumThreads = 4;
constexpr char kPlainText[] = "text/plain; charset=utf-8";
constexpr char kExposition[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                             std::function<absl::Status()> ready)
    : registry_(std::move(registry)), ready_(std::move(ready)) {}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
    std::function<absl::Status()> ready) {
  CHECK(registry != nullptr) << "MetricsServer needs a registry";
  auto server = absl::WrapUnique(
      new MetricsServer(std::move(registry), std::move(ready)));
  MetricsServer* self = server.get();
  ASSIGN_OR_RETURN(server->http_,
                   HttpServer::Start({"metrics", listen, kNumThreads},
                                     [self](mg_connection* conn) {
                                       return self->Handle(conn);
                                     }));
  LOG(INFO) << "metrics: serving /metrics, /healthz and /readyz at http://"
            << server->address() << "/";
  return server;
}

int MetricsServer::Handle(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const absl::string_view method = info->request_method;
  const bool head = method == "HEAD";
  if (!head && method != "GET") {
    return SendHttpResponse(conn, 405, kPlainText,
                            "method not allowed: use GET or HEAD\n", head);
  }
  const absl::string_view path =
      info->local_uri_raw == nullptr ? "" : info->local_uri_raw;
  if (path == "/metrics") {
    const std::string text =
        prometheus::TextSerializer().Serialize(registry_->Collect());
    return SendHttpResponse(conn, 200, kExposition, text, head);
  }
  if (path == "/healthz") {
    return SendHttpResponse(conn, 200, kPlainText, "ok\n", head);
  }
  if (path == "/readyz") {
    const absl::Status status = ready_ ? ready_() : absl::OkStatus();
    if (status.ok()) {
      return SendHttpResponse(conn, 200, kPlainText, "ready\n", head);
    }
    return SendHttpResponse(conn, 503, kPlainText,
                            absl::StrCat("not ready: ", status.message(), "\n"),
                            head);
  }
  return SendHttpResponse(
      conn, 404, kPlainText,
      "not found: this server has /metrics, /healthz and /readyz\n", head);
}

}  // namespace shoal
