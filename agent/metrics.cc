#include "agent/metrics.h"

#include "absl/strings/str_cat.h"

namespace shoal::agent {

const char* LocalityName(Locality locality) {
  switch (locality) {
    case Locality::kRack:
      return "rack";
    case Locality::kDatacenter:
      return "datacenter";
    case Locality::kRemote:
      return "remote";
  }
  return "remote";
}

AgentMetrics::AgentMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      verified_(prometheus::BuildCounter()
                    .Name("shoal_agent_verified_bytes_total")
                    .Help("Bytes of pieces that passed their Merkle proof, by "
                          "source and locality.")
                    .Register(*registry_)),
      received_(prometheus::BuildCounter()
                    .Name("shoal_agent_received_bytes_total")
                    .Help("Piece bytes received, duplicates and failed pieces "
                          "included.")
                    .Register(*registry_)),
      sent_(prometheus::BuildCounter()
                .Name("shoal_agent_sent_bytes_total")
                .Help("Piece bytes sent to other agents.")
                .Register(*registry_)
                .Add({})),
      pieces_verified_(prometheus::BuildCounter()
                           .Name("shoal_agent_pieces_verified_total")
                           .Help("Pieces that passed their Merkle proof.")
                           .Register(*registry_)
                           .Add({})),
      proof_failures_(
          prometheus::BuildCounter()
              .Name("shoal_agent_proof_failures_total")
              .Help("Pieces that failed their Merkle proof and were dropped.")
              .Register(*registry_)
              .Add({})),
      bans_(prometheus::BuildCounter()
                .Name("shoal_agent_peer_bans_total")
                .Help("Peers banned from a release for sending a piece that "
                      "failed its proof.")
                .Register(*registry_)
                .Add({})),
      releases_(prometheus::BuildGauge()
                    .Name("shoal_agent_releases")
                    .Help("Releases on this agent by state.")
                    .Register(*registry_)),
      progress_(prometheus::BuildGauge()
                    .Name("shoal_agent_release_progress_ratio")
                    .Help("Share of a release's bytes verified on this agent.")
                    .Register(*registry_)),
      disk_used_(prometheus::BuildGauge()
                     .Name("shoal_agent_disk_used_bytes")
                     .Help("Bytes the agent's releases occupy on disk.")
                     .Register(*registry_)
                     .Add({})),
      disk_quota_(prometheus::BuildGauge()
                      .Name("shoal_agent_disk_quota_bytes")
                      .Help("--disk_quota; 0 when unlimited.")
                      .Register(*registry_)
                      .Add({})),
      peers_(prometheus::BuildGauge()
                 .Name("shoal_agent_peers")
                 .Help("Peer sessions of downloading releases (state=connected) "
                       "and peers banned from a release (state=banned).")
                 .Register(*registry_)),
      install_seconds_(prometheus::BuildHistogram()
                           .Name("shoal_agent_install_duration_seconds")
                           .Help("Time to install a release into its directory.")
                           .Register(*registry_)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300})),
      installs_(prometheus::BuildCounter()
                    .Name("shoal_agent_installs_total")
                    .Help("Installs by result (ok, failed).")
                    .Register(*registry_)),
      post_installs_(prometheus::BuildCounter()
                         .Name("shoal_agent_post_install_total")
                         .Help("--post_install commands by result (ok: exited 0; "
                               "failed: anything else).")
                         .Register(*registry_)),
      evictions_(prometheus::BuildCounter()
                     .Name("shoal_agent_evictions_total")
                     .Help("Releases deleted to make room under --disk_quota.")
                     .Register(*registry_)
                     .Add({})),
      announces_(prometheus::BuildCounter()
                     .Name("shoal_agent_announces_total")
                     .Help("Announces to the tracker by result (ok, failed).")
                     .Register(*registry_)),
      last_announce_(
          prometheus::BuildGauge()
              .Name("shoal_agent_last_announce_timestamp_seconds")
              .Help("Unix time of the last announce the tracker accepted; 0 "
                    "until one is.")
              .Register(*registry_)) {
  // Every series a rate() may need exists from the start, at zero: a
  // counter first seen after its first increment loses that increment.
  for (const char* locality : {"rack", "datacenter", "remote"}) {
    verified_.Add({{"source", "peer"}, {"locality", locality}});
  }
  verified_.Add({{"source", "origin"}, {"locality", "origin"}});
  received_.Add({{"source", "peer"}});
  received_.Add({{"source", "origin"}});
  peers_.Add({{"state", "connected"}});
  peers_.Add({{"state", "banned"}});
  installs_.Add({{"result", "ok"}});
  installs_.Add({{"result", "failed"}});
  announces_.Add({{"result", "ok"}});
  announces_.Add({{"result", "failed"}});
}

void AgentMetrics::RecordAnnounce(const absl::Status& status, absl::Time now) {
  announces_.Add({{"result", status.ok() ? "ok" : "failed"}}).Increment();
  absl::MutexLock lock(&mu_);
  if (last_announce_seconds_ == nullptr) {
    last_announce_seconds_ = &last_announce_.Add({});
  }
  if (status.ok()) last_announce_seconds_->Set(absl::ToUnixMillis(now) / 1000.0);
  announce_status_ = status;
}

absl::Status AgentMetrics::TrackerReadiness() const {
  absl::MutexLock lock(&mu_);
  if (announce_status_.ok()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("tracker: ", announce_status_.message()));
}

void AgentMetrics::SetDiskQuota(double bytes) { disk_quota_.Set(bytes); }

void AgentMetrics::SetPeers(const std::string& state, double count) {
  peers_.Add({{"state", state}}).Set(count);
}

void AgentMetrics::CountInstall(bool ok, double seconds) {
  installs_.Add({{"result", ok ? "ok" : "failed"}}).Increment();
  if (ok) install_seconds_.Observe(seconds);
}

void AgentMetrics::CountPostInstall(bool ok) {
  post_installs_.Add({{"result", ok ? "ok" : "failed"}}).Increment();
}

void AgentMetrics::CountEviction() { evictions_.Increment(); }

void AgentMetrics::CountVerified(Source source, Locality locality,
                                 uint64_t bytes) {
  const char* locality_name =
      source == Source::kOrigin ? "origin" : LocalityName(locality);
  verified_
      .Add({{"source", source == Source::kOrigin ? "origin" : "peer"},
            {"locality", locality_name}})
      .Increment(bytes);
  pieces_verified_.Increment();
}

void AgentMetrics::CountReceived(Source source, uint64_t bytes) {
  received_.Add({{"source", source == Source::kOrigin ? "origin" : "peer"}})
      .Increment(bytes);
}

void AgentMetrics::CountSent(uint64_t bytes) { sent_.Increment(bytes); }
void AgentMetrics::CountProofFailure() { proof_failures_.Increment(); }
void AgentMetrics::CountBan() { bans_.Increment(); }

void AgentMetrics::SetReleases(const std::string& state, double count) {
  releases_.Add({{"state", state}}).Set(count);
}

void AgentMetrics::SetProgress(const std::string& release, double ratio) {
  absl::MutexLock lock(&mu_);
  prometheus::Gauge*& gauge = progress_by_release_[release];
  if (gauge == nullptr) gauge = &progress_.Add({{"release", release}});
  gauge->Set(ratio);
}

void AgentMetrics::ForgetRelease(const std::string& release) {
  absl::MutexLock lock(&mu_);
  auto it = progress_by_release_.find(release);
  if (it == progress_by_release_.end()) return;
  progress_.Remove(it->second);
  progress_by_release_.erase(it);
}

void AgentMetrics::SetDiskUsed(double bytes) { disk_used_.Set(bytes); }

}  // namespace shoal::agent
