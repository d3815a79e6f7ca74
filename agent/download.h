#pragma once

// The download engine of one release: drives a Scheduler with events from
// peer sessions, the tracker and the origin, verifies every piece into the
// ReleaseStore, and tells subscribers about each verified piece.
//
// Threads. One engine thread owns the Scheduler and every PeerSession: it
// alone creates and destroys sessions and calls the scheduler, so neither
// needs a lock. Transport callbacks run on transport threads; they verify and
// store a received piece there (hashing in parallel, off the engine thread)
// and then only enqueue an event. Blocking calls (tracker RPCs, origin HTTP)
// run on a small worker pool and enqueue their results. Nothing ever waits on
// the engine thread while holding a lock the engine needs.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/metrics.h"
#include "agent/origin_client.h"
#include "agent/rate_limiter.h"
#include "agent/release_store.h"
#include "agent/scheduler.h"
#include "agent/task_pool.h"
#include "agent/tracker_client.h"
#include "agent/transport.h"
#include "common/clock.h"
#include "shoal/v1/agent.pb.h"

namespace shoal::agent {

// Called with each piece this agent verifies, on the thread that verified it.
using HaveCallback = std::function<void(ReleasePieceIndex)>;

// Collaborators shared by every download of an agent; all must outlive it.
struct DownloadContext {
  Transport* transport = nullptr;
  TrackerClient* tracker = nullptr;  // may be null: peers from --peer flags only
  const Clock* clock = nullptr;
  AgentMetrics* metrics = nullptr;
  DownloadPacer* download_pacer = nullptr;  // may be null: no download limit
  v1::PeerAddress self;
};

struct DownloadOptions {
  SchedulerConfig scheduler;
  // Peer sessions kept open while downloading.
  int max_peers = 16;
  // How often to ask the tracker for peers (sooner when short of peers).
  absl::Duration peer_refresh = absl::Seconds(10);
  // How often verified pieces are recorded durably (ReleaseStore::Commit);
  // a kill loses at most the pieces verified in the last interval.
  absl::Duration commit_interval = absl::Milliseconds(500);
  // Engine wake-ups when no event arrives.
  absl::Duration tick = absl::Milliseconds(50);
  // Threads for blocking calls (tracker, origin).
  int workers = 3;
  // Threads that verify and store received pieces (0: one per core, at
  // least two). More than the cores pays off: a thread waits while its
  // piece is written.
  int verifiers = 0;
};

// Thread-safe.
class ReleaseDownload {
 public:
  // Starts the engine thread unless the store is already complete. `origin`
  // may be null (no origin known: peers only). `on_have` is called for
  // every newly verified piece.
  ReleaseDownload(DownloadContext context, DownloadOptions options,
                  std::unique_ptr<ReleaseStore> store,
                  std::unique_ptr<OriginClient> origin, HaveCallback on_have);
  // Stops the engine and closes every session.
  ~ReleaseDownload();

  ReleaseStore& store() { return *store_; }
  const std::string& release_id() const { return store_->manifest().release_id(); }

  // A snapshot for the control API and metrics.
  v1::ReleaseStatus Status() const;
  // True once the release is complete and the engine has settled its
  // counters (then Status() is final); false if `timeout` passes first.
  bool WaitForCompletion(absl::Duration timeout) const;
  // Members of the swarm this agent knows (for peer exchange), same
  // datacenter as `asker` first; remembers `asker`.
  std::vector<v1::PeerAddress> KnownPeers(const v1::PeerAddress& asker, size_t limit);
  // Counts bytes served to other agents.
  void CountSent(uint64_t bytes);
  // Peers to try besides those the tracker and peer exchange name.
  void AddPeers(std::vector<v1::PeerAddress> peers);

 private:
  // Everything that reaches the engine thread from other threads.
  struct Event {
    enum Kind {
      kBitfield,       // peer, bitfield
      kHave,           // peer, pieces
      kPeers,          // addresses (peer exchange or tracker)
      kClosed,         // peer, status
      kPieceVerified,  // peer, piece, bytes (already stored)
      kPieceFailed,    // peer, piece, status
      kLease,          // granted, denied pieces, status
      kOriginPiece,    // piece, bytes, status (stored when ok)
      kRefreshDone,    //
      kWake,           //
    };
    Kind kind = kWake;
    PeerKey peer;
    std::string bitfield;
    std::vector<ReleasePieceIndex> pieces;
    std::vector<ReleasePieceIndex> denied;
    std::vector<v1::PeerAddress> addresses;
    absl::Status status;
    ReleasePieceIndex piece;
    uint64_t bytes = 0;
    bool proof_failed = false;  // kPieceFailed: the bytes did not prove into the root
    bool store_failed = false;  // kPieceFailed: our disk failed, not the peer
  };
  class Listener;
  struct Session;

  void Post(Event event);
  void Loop();
  void Handle(Event& event);
  void HandlePiece(Event& event);
  void Periodic(absl::Time now);
  void ConnectMore();
  void DropPeer(PeerKey key, const char* why);
  void IssueRequests(absl::Time now);
  void AskForOrigin(absl::Time now);
  void RefreshPeers(absl::Time now);
  void Learn(const std::vector<v1::PeerAddress>& peers);
  void RunOnWorker(std::function<void()> task);
  void VerifyAndStore(PeerKey key, ReleasePieceIndex piece,
                      absl::StatusOr<ReceivedPiece> result);
  void FetchFromOrigin(ReleasePieceIndex piece);
  absl::StatusOr<MerkleProof> OriginProof(FileIndex file, PieceIndex index, Digest* hash);
  void OnPieceReceived(PeerKey key, ReleasePieceIndex piece,
                       absl::StatusOr<ReceivedPiece> result);
  Locality LocalityOf(const v1::PeerAddress& peer) const;
  PeerKey KeyFor(const std::string& peer_id);
  void UpdateCounters();

  const DownloadContext context_;
  const DownloadOptions options_;
  const std::unique_ptr<ReleaseStore> store_;
  const std::unique_ptr<OriginClient> origin_;
  const HaveCallback on_have_;

  // Engine thread only.
  absl::BitGen bitgen_;
  std::unique_ptr<Scheduler> scheduler_;
  absl::flat_hash_map<std::string, PeerKey> keys_;  // peer id -> key, stable
  uint64_t next_key_ = 1;
  absl::flat_hash_map<PeerKey, std::unique_ptr<Session>> sessions_;
  absl::flat_hash_map<std::string, absl::Time> dial_backoff_;  // peer id
  absl::Time last_peer_refresh_ = absl::InfinitePast();
  bool refresh_in_flight_ = false;
  bool lease_in_flight_ = false;
  absl::Time last_commit_ = absl::InfinitePast();
  absl::Time last_store_retry_ = absl::InfinitePast();
  std::atomic<bool> commit_in_flight_{false};

  // Event queue.
  absl::Mutex queue_mu_;
  std::deque<Event> events_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  // Blocking calls; verification and storage of received pieces. Started
  // with the engine (a release complete at start has neither).
  std::unique_ptr<TaskPool> workers_;
  std::unique_ptr<TaskPool> verifiers_;

  // Origin piece layers, per file, fetched on first use (workers).
  absl::Mutex layers_mu_;
  absl::flat_hash_map<uint32_t, std::unique_ptr<PieceTree>> layers_ ABSL_GUARDED_BY(layers_mu_);

  // Known swarm members (tracker and peer exchange).
  mutable absl::Mutex peers_mu_;
  absl::flat_hash_map<std::string, v1::PeerAddress> known_ ABSL_GUARDED_BY(peers_mu_);

  // Status, written by the engine thread, read by Status().
  mutable absl::Mutex status_mu_;
  v1::ReleaseStatus status_ ABSL_GUARDED_BY(status_mu_);
  std::atomic<uint64_t> bytes_sent_{0};
  absl::Notification completed_;

  std::thread engine_;
};

}  // namespace shoal::agent
