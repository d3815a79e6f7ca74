#include "tracker/metrics.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace shoal::tracker {
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
}

std::string SwarmLabel(const v1::SwarmHealth& s) {
  if (!s.name().empty()) return absl::StrCat(s.name(), "@", s.version());
  return s.release_id();
}

}  // namespace

TrackerMetrics::TrackerMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("shoal_tracker_rpc_duration_seconds")
                        .Help("Time to answer a tracker RPC, by method.")
                        .Register(*registry_)),
      rpcs_(prometheus::BuildCounter()
                .Name("shoal_tracker_rpcs_total")
                .Help("Tracker RPCs answered, by method and gRPC status code.")
                .Register(*registry_)),
      announces_(prometheus::BuildCounter()
                     .Name("shoal_tracker_announces_total")
                     .Help("Announces accepted.")
                     .Register(*registry_)
                     .Add({})),
      leases_(prometheus::BuildCounter()
                  .Name("shoal_tracker_origin_leases_total")
                  .Help("Pieces asked for from the origin, by answer: granted, "
                        "held_by_peers, leased_to_others.")
                  .Register(*registry_)),
      store_errors_(prometheus::BuildCounter()
                        .Name("shoal_tracker_store_errors_total")
                        .Help("Calls that failed because the store (memory or "
                              "Redis) could not be reached.")
                        .Register(*registry_)
                        .Add({})),
      peers_(prometheus::BuildGauge()
                 .Name("shoal_tracker_peers")
                 .Help("Live peers per swarm, by state (downloading, seeding, stalled).")
                 .Register(*registry_)),
      complete_ratio_(prometheus::BuildGauge()
                          .Name("shoal_tracker_swarm_complete_ratio")
                          .Help("Share of a swarm's peers that hold the whole release.")
                          .Register(*registry_)),
      leases_outstanding_(prometheus::BuildGauge()
                              .Name("shoal_tracker_leases_outstanding")
                              .Help("Live origin leases per swarm.")
                              .Register(*registry_)),
      swarm_bytes_(prometheus::BuildGauge()
                       .Name("shoal_tracker_swarm_bytes")
                       .Help("Verified bytes the live peers of a swarm last "
                             "announced, by source (peer, origin).")
                       .Register(*registry_)),
      release_size_(prometheus::BuildGauge()
                        .Name("shoal_tracker_release_size_bytes")
                        .Help("Total size of a registered release with a live "
                              "swarm here.")
                        .Register(*registry_)) {
  // At zero from the start, so that rate() sees the first leases.
  for (const char* result : {"granted", "held_by_peers", "leased_to_others"}) {
    leases_.Add({{"result", result}});
  }
}

void TrackerMetrics::ObserveRpc(const std::string& method,
                                absl::Duration latency,
                                const std::string& code) {
  rpc_duration_.Add({{"method", method}}, LatencyBuckets())
      .Observe(absl::ToDoubleSeconds(latency));
  rpcs_.Add({{"method", method}, {"code", code}}).Increment();
}

void TrackerMetrics::CountAnnounce() { announces_.Increment(); }

void TrackerMetrics::CountLeases(const v1::OriginLeaseResponse& response) {
  leases_.Add({{"result", "granted"}}).Increment(response.granted_size());
  leases_.Add({{"result", "held_by_peers"}}).Increment(response.held_by_peers_size());
  leases_.Add({{"result", "leased_to_others"}})
      .Increment(response.leased_to_others_size());
}

void TrackerMetrics::CountStoreError() { store_errors_.Increment(); }

void TrackerMetrics::SetSwarms(
    const v1::SwarmHealthResponse& health,
    const absl::flat_hash_map<std::string, uint64_t>& release_sizes) {
  absl::MutexLock lock(&mu_);
  for (auto& [family, gauges] : swarm_gauges_) {
    for (prometheus::Gauge* g : gauges) family->Remove(g);
    gauges.clear();
  }
  auto set = [&](prometheus::Family<prometheus::Gauge>& family,
                 const prometheus::Labels& labels, double value) {
    prometheus::Gauge& g = family.Add(labels);
    g.Set(value);
    swarm_gauges_[&family].push_back(&g);
  };
  absl::flat_hash_set<std::string> sized;  // one size gauge per release
  for (const v1::SwarmHealth& s : health.swarms()) {
    const std::string release = SwarmLabel(s);
    prometheus::Labels base = {{"release", release},
                               {"datacenter", s.datacenter()}};
    auto with = [&](const char* name, const char* value) {
      prometheus::Labels l = base;
      l[name] = value;
      return l;
    };
    set(peers_, with("state", "downloading"), s.peers_downloading());
    set(peers_, with("state", "seeding"), s.peers_seeding());
    set(peers_, with("state", "stalled"), s.peers_stalled());
    uint32_t total = s.peers_downloading() + s.peers_seeding();
    set(complete_ratio_, base, total == 0 ? 0.0 : double(s.peers_seeding()) / total);
    set(leases_outstanding_, base, s.leases_outstanding());
    set(swarm_bytes_, with("source", "peer"), s.bytes_from_peers());
    set(swarm_bytes_, with("source", "origin"), s.bytes_from_origin());
    auto size = release_sizes.find(s.release_id());
    if (size != release_sizes.end() && sized.insert(release).second) {
      set(release_size_, {{"release", release}}, size->second);
    }
  }
}

}  // namespace shoal::tracker
