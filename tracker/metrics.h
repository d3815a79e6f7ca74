#pragma once

// The tracker's Prometheus metrics (names and labels in docs/metrics.md).
// Labels are bounded: method, code, result, release (as name@version or id),
// datacenter, state; never peer ids or addresses. Thread-safe.

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::tracker {

class TrackerMetrics {
 public:
  explicit TrackerMetrics(std::shared_ptr<prometheus::Registry> registry);

  // One finished RPC: its latency and gRPC status code name.
  void ObserveRpc(const std::string& method, absl::Duration latency,
                  const std::string& code);
  void CountAnnounce();
  void CountLeases(const v1::OriginLeaseResponse& response);
  void CountStoreError();
  // Replaces the per-swarm gauges with `health` (the swarms of this tracker's
  // datacenter); swarms that disappeared are removed. `release_sizes` maps
  // release ids to their total size in bytes; a swarm whose release is not
  // in it gets no shoal_tracker_release_size_bytes.
  void SetSwarms(const v1::SwarmHealthResponse& health,
                 const absl::flat_hash_map<std::string, uint64_t>& release_sizes);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Counter& announces_;
  prometheus::Family<prometheus::Counter>& leases_;
  prometheus::Counter& store_errors_;
  prometheus::Family<prometheus::Gauge>& peers_;
  prometheus::Family<prometheus::Gauge>& complete_ratio_;
  prometheus::Family<prometheus::Gauge>& leases_outstanding_;
  prometheus::Family<prometheus::Gauge>& swarm_bytes_;
  prometheus::Family<prometheus::Gauge>& release_size_;
  absl::Mutex mu_;
  // Per-swarm gauges by the family that made them, replaced by SetSwarms.
  absl::flat_hash_map<prometheus::Family<prometheus::Gauge>*,
                      std::vector<prometheus::Gauge*>>
      swarm_gauges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::tracker
