#pragma once

// A running tracker: store, domain object, gRPC service, channel watch hub,
// metrics listener and the thread that refreshes swarm gauges. What main()
// starts, and what tests start in-process.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/grpc_security.h"
#include "common/metrics_server.h"
#include "common/trust.h"
#include "grpcpp/server.h"
#include "tracker/channel_watch.h"
#include "tracker/metrics.h"
#include "tracker/service.h"
#include "tracker/store.h"
#include "tracker/tracker.h"

namespace shoal::tracker {

struct TrackerConfig {
  std::string listen = "127.0.0.1:0";  // gRPC, HOST:PORT
  std::string metrics_listen;          // empty: no metrics listener
  std::string trust_path;              // required
  std::string store = "memory";        // "memory" or "redis://HOST:PORT[/DB]"
  std::vector<std::string> admin_identities;
  TlsFlags tls;
  TrackerOptions options;              // options.datacenter is required
  absl::Duration watch_poll = absl::Milliseconds(500);
  absl::Duration gauge_refresh = absl::Seconds(10);
};

// Thread-safe. The destructor shuts down like Shutdown().
class TrackerServer {
 public:
  // Errors name the flag at fault (bad trust file, store unreachable, TLS
  // files, an insecure non-loopback address, a port in use).
  static absl::StatusOr<std::unique_ptr<TrackerServer>> Start(
      const TrackerConfig& config, const Clock& clock);
  ~TrackerServer();

  // The bound addresses, with real ports.
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  // {"grpc": "...", "metrics": "..."}: what --ready_file holds.
  std::string ReadyJson() const;

  // Stops accepting calls, ends streams, joins every thread. Idempotent.
  void Shutdown();

 private:
  TrackerServer() = default;
  void RefreshGauges();
  // Adds the size of `release_id` to release_sizes_ if it is registered and
  // not there yet.
  void LearnReleaseSize(const std::string& release_id);

  std::unique_ptr<Store> store_;
  std::unique_ptr<TrustPolicy> trust_;
  std::unique_ptr<Tracker> tracker_;
  std::unique_ptr<TrackerMetrics> metrics_;
  std::unique_ptr<ChannelWatchHub> hub_;
  std::unique_ptr<TrackerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::string grpc_address_;
  std::string metrics_address_;
  std::string datacenter_;
  absl::Duration gauge_refresh_;
  // Release id to total size; ids name content, so sizes never change.
  // Only the gauge thread touches it.
  absl::flat_hash_map<std::string, uint64_t> release_sizes_;
  absl::Notification stop_;
  std::thread gauge_thread_;
  bool shut_down_ = false;
};

// Opens the store named by a --store flag value.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& spec);

}  // namespace shoal::tracker
