#pragma once

// An agent: the releases it holds or downloads, the peer service that serves
// them, the announce loop that keeps its tracker informed, and the local
// control API. What shoal-agent's main() starts, and what tests start
// in-process.
//
// Data directory:
//   <data_dir>/peer_id                 this agent's peer id
//   <data_dir>/trusted/<name@version>  highest trusted sequence (replays)
//   <data_dir>/releases/<release id>/  one ReleaseStore each, plus
//                                      origin_urls (one per line)
//   <data_dir>/agent.sock              the control socket (default)

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/channel_follower.h"
#include "agent/download.h"
#include "agent/grpc_transport.h"
#include "agent/metrics.h"
#include "agent/peer_service.h"
#include "agent/piece_source.h"
#include "agent/rate_limiter.h"
#include "agent/rate_meter.h"
#include "agent/tracker_client.h"
#include "agent/upload_gate.h"
#include "agent/trusted_manifests.h"
#include "common/clock.h"
#include "common/grpc_security.h"
#include "common/metrics_server.h"
#include "common/trust.h"
#include "grpcpp/server.h"

namespace shoal::agent {

struct AgentConfig {
  std::string data_dir = "/var/lib/shoal";
  std::string listen = "127.0.0.1:0";  // peer data plane
  std::string advertise;               // default: the bound listen address
  std::string control;                 // default: <data_dir>/agent.sock
  std::string datacenter;
  std::string rack;
  std::string trust_path;
  std::vector<std::string> trackers;   // replicas of this datacenter's tracker
  std::string origin_url;              // used when the tracker names none
  std::string metrics_listen;
  TlsFlags tls;
  DownloadOptions download;
  PeerServiceOptions peer_service;
  bool durable = true;                 // fdatasync before recording pieces
  bool direct_io = true;               // see ReleaseStoreOptions::direct_io
  uint64_t upload_limit = 0;           // bytes/s served to peers; 0: none
  uint64_t download_limit = 0;         // bytes/s fetched from peers; 0: none
  uint64_t disk_quota = 0;             // bytes of the store; 0: no limit
  std::vector<ChannelSpec> follow;     // --follow
  absl::Duration seed_time = absl::Hours(24);  // after a channel moved on
  std::string post_install;            // shell command run after installs
  absl::Duration post_install_timeout = absl::Minutes(10);
};

// Thread-safe.
class Agent final : public PieceSource, public ChannelHost {
 public:
  static absl::StatusOr<std::unique_ptr<Agent>> Start(const AgentConfig& config,
                                                      const Clock& clock);
  ~Agent() override;

  // Starts (or joins) the download of "name@version" or a release id and
  // returns the release id. Errors a person can act on: NOT_FOUND (unknown
  // release), UNAUTHENTICATED / FAILED_PRECONDITION (manifest not trusted,
  // expired, replayed), UNAVAILABLE (tracker and origin unreachable).
  // With `required_name`, a release of another name is refused
  // (FAILED_PRECONDITION) before anything is stored.
  absl::StatusOr<std::string> Fetch(const std::string& release,
                                    const std::string& required_name = "");
  absl::StatusOr<v1::ReleaseStatus> ReleaseStatusOf(const std::string& release_id);
  // Waits at most `timeout` for the release to complete; then its status.
  absl::StatusOr<v1::ReleaseStatus> AwaitRelease(const std::string& release_id,
                                                 absl::Duration timeout);
  v1::StatusResponse Status();
  // Stops and deletes a release. NOT_FOUND if the agent does not hold it.
  absl::StatusOr<std::string> Remove(const std::string& release);
  // Pins or unpins a held release ("name@version" or id); its new status.
  absl::StatusOr<v1::ReleaseStatus> Pin(const std::string& release, bool pinned);
  // Installs a complete held release into `dest` (agent/install.h) and
  // records it; runs --post_install. FAILED_PRECONDITION unless complete.
  absl::StatusOr<v1::Installation> InstallRelease(const std::string& release_id,
                                                  const std::string& dest);

  const std::string& peer_id() const { return self_.peer_id(); }
  const std::string& peer_address() const { return self_.address(); }
  const std::string& control_address() const { return control_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  // {"peer": .., "control": .., "metrics": .., "peer_id": ..}
  std::string ReadyJson() const;

  // PieceSource.
  absl::StatusOr<ServedPiece> ReadPiece(const std::string& release_id,
                                        ReleasePieceIndex piece) override;
  absl::StatusOr<Subscription> Subscribe(const std::string& release_id,
                                         HaveListener& listener) override;
  std::vector<v1::PeerAddress> ExchangePeers(const std::string& release_id,
                                             const v1::PeerAddress& asker,
                                             size_t limit) override;

  // ChannelHost.
  absl::StatusOr<std::string> FetchForChannel(const std::string& release_id,
                                              const std::string& channel_name) override;
  absl::StatusOr<bool> AwaitComplete(const std::string& release_id,
                                     absl::Duration timeout) override;
  absl::Status InstallForChannel(const std::string& release_id, const std::string& dir) override;
  void Retire(const std::string& release_id) override;

 private:
  // One release and the peers subscribed to its new pieces.
  struct Release {
    std::unique_ptr<ReleaseDownload> download;
    absl::Mutex hub_mu;
    absl::flat_hash_set<HaveListener*> listeners ABSL_GUARDED_BY(hub_mu);
    // Pins, installs and last use (<release dir>/local); `last_used_ms`
    // also moves without the lock, when pieces are served.
    absl::Mutex local_mu;
    v1::StoredReleaseState local ABSL_GUARDED_BY(local_mu);
    // Which piece requests to serve now (agent/upload_gate.h).
    absl::Mutex gate_mu;
    std::unique_ptr<UploadGate> gate ABSL_GUARDED_BY(gate_mu);
    std::atomic<int64_t> last_used_ms{0};
    // Verified bytes by source from earlier runs (the download counts this
    // run's); set by LoadLocal.
    uint64_t earlier_from_peers = 0;
    uint64_t earlier_from_origin = 0;
    // Rates for status.
    absl::Mutex meter_mu;
    RateMeter download_meter ABSL_GUARDED_BY(meter_mu);
    RateMeter upload_meter ABSL_GUARDED_BY(meter_mu);
  };
  class HaveHandle;
  class GateTicket;

  Agent(const AgentConfig& config, const Clock& clock);
  absl::Status StartServers();
  absl::Status RecoverReleases();
  ReleaseStoreOptions StoreOptions() const;
  absl::StatusOr<std::string> ResolveRelease(const std::string& release,
                                             std::string* manifest_bytes,
                                             std::vector<std::string>* origin_urls);
  absl::Status StartRelease(const Manifest& manifest, std::unique_ptr<ReleaseStore> store,
                            std::vector<std::string> origin_urls);
  std::shared_ptr<Release> Find(const std::string& release_id);
  // The id of a held release given as "name@version" or id; NOT_FOUND.
  absl::StatusOr<std::string> HeldReleaseId(const std::string& release);
  // Loads / saves Release::local.
  void LoadLocal(Release& r);
  absl::Status SaveLocal(Release& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r.local_mu);
  void TouchLocal(Release& r);
  // The download's status plus pins, installs and last use.
  v1::ReleaseStatus FullStatus(Release& r);
  // Under --disk_quota: evicts least recently used releases that may go
  // until `manifest` fits, or says why it cannot (RESOURCE_EXHAUSTED).
  absl::Status MakeRoom(const Manifest& manifest);
  // Why a held release may not be evicted; empty if it may.
  std::string EvictionBlocker(Release& r, const v1::ReleaseStatus& status);
  void AnnounceLoop();
  v1::AnnounceRequest BuildAnnounce();
  void Notify(const std::string& release_id, ReleasePieceIndex piece);

  const AgentConfig config_;
  const Clock& clock_;
  RealSleeper sleeper_;
  absl::BitGen bitgen_;
  std::unique_ptr<TrustPolicy> trust_;
  std::unique_ptr<TrustedManifests> trusted_;
  std::unique_ptr<GrpcSecurity> security_;
  std::unique_ptr<AgentMetrics> metrics_;
  std::unique_ptr<TrackerClient> tracker_;
  std::unique_ptr<GrpcTransport> transport_;
  RealWaiter waiter_;
  // Declared before the peer service, which uses them, so destroyed after it.
  std::unique_ptr<PacedUploads> uploads_;
  std::unique_ptr<DownloadPacer> downloads_;
  std::unique_ptr<PeerService> peer_service_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<grpc::Service> control_service_;
  std::unique_ptr<grpc::Server> control_server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  v1::PeerAddress self_;
  std::string control_address_;
  std::string metrics_address_;

  // Serializes admissions under --disk_quota (MakeRoom through Create).
  absl::Mutex quota_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  // shared_ptr: a Release is read by RPC threads while Remove may drop it.
  absl::flat_hash_map<std::string, std::shared_ptr<Release>> releases_ ABSL_GUARDED_BY(mu_);

  // Followed channels; set at start, emptied when stopping.
  mutable absl::Mutex followers_mu_ ABSL_ACQUIRED_AFTER(quota_mu_);
  std::vector<std::unique_ptr<ChannelFollower>> followers_ ABSL_GUARDED_BY(followers_mu_);

  // Wakes the announce loop early: a release was added or completed.
  void RequestAnnounce();
  absl::Mutex announce_mu_;
  bool announce_requested_ ABSL_GUARDED_BY(announce_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(announce_mu_) = false;
  std::thread announcer_;
};

}  // namespace shoal::agent
