#pragma once

// The agent's Prometheus metrics (docs/metrics.md). Labels are bounded:
// source (peer, origin), locality (rack, datacenter, remote, origin), state,
// release (name@version); never peer ids, addresses or piece numbers.
// Thread-safe.

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "agent/scheduler.h"

namespace shoal::agent {

enum class Source { kPeer, kOrigin };

const char* LocalityName(Locality locality);

class AgentMetrics {
 public:
  explicit AgentMetrics(std::shared_ptr<prometheus::Registry> registry);

  // Bytes of a piece that passed its proof.
  void CountVerified(Source source, Locality locality, uint64_t bytes);
  // Every piece byte off the wire, duplicates and failed pieces included.
  void CountReceived(Source source, uint64_t bytes);
  void CountSent(uint64_t bytes);
  void CountProofFailure();
  void CountBan();
  void SetReleases(const std::string& state, double count);
  void SetProgress(const std::string& release, double ratio);
  void ForgetRelease(const std::string& release);
  void SetDiskUsed(double bytes);
  void SetDiskQuota(double bytes);
  // Peer sessions by state ("connected": open sessions of downloading
  // releases; "banned": peers banned from some release).
  void SetPeers(const std::string& state, double count);
  // An install and how long it took; a post-install command's outcome.
  void CountInstall(bool ok, double seconds);
  void CountPostInstall(bool ok);
  // A release deleted to make room under --disk_quota.
  void CountEviction();
  // The outcome of one announce to the tracker. Counts it by result and, on
  // success, records `now` as the time of the last announce the tracker
  // accepted. The timestamp gauge appears with the first announce, so an
  // agent without a tracker has none (and no "not announcing" alert).
  void RecordAnnounce(const absl::Status& status, absl::Time now);
  // The agent's /readyz when it has a tracker: OK while its last announce
  // succeeded; UNAVAILABLE before the first answer and after a failed
  // announce, with the reason.
  absl::Status TrackerReadiness() const;

  const std::shared_ptr<prometheus::Registry>& registry() const {
    return registry_;
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& verified_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Counter& sent_;
  prometheus::Counter& pieces_verified_;
  prometheus::Counter& proof_failures_;
  prometheus::Counter& bans_;
  prometheus::Family<prometheus::Gauge>& releases_;
  prometheus::Family<prometheus::Gauge>& progress_;
  prometheus::Gauge& disk_used_;
  prometheus::Gauge& disk_quota_;
  prometheus::Family<prometheus::Gauge>& peers_;
  prometheus::Histogram& install_seconds_;
  prometheus::Family<prometheus::Counter>& installs_;
  prometheus::Family<prometheus::Counter>& post_installs_;
  prometheus::Counter& evictions_;
  prometheus::Family<prometheus::Counter>& announces_;
  prometheus::Family<prometheus::Gauge>& last_announce_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, prometheus::Gauge*> progress_by_release_
      ABSL_GUARDED_BY(mu_);
  // Made by the first RecordAnnounce.
  prometheus::Gauge* last_announce_seconds_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status announce_status_ ABSL_GUARDED_BY(mu_) =
      absl::UnavailableError("no announce answered yet");
};

}  // namespace shoal::agent
