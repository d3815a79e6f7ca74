// The blocking side of ReleaseDownload: tracker calls and origin fetches on
// the worker pool, and the status snapshot.

#include "agent/download.h"

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace shoal::agent {

void ReleaseDownload::RunOnWorker(std::function<void()> task) {
  if (workers_ != nullptr) workers_->Run(std::move(task));
}

void ReleaseDownload::RefreshPeers(absl::Time now) {
  if (context_.tracker == nullptr || refresh_in_flight_) return;
  // Ask again soon while this agent has no peer at all (a seeder may just
  // have announced), sooner than usual while short of peers.
  absl::Duration wait = options_.peer_refresh;
  if (sessions_.empty()) {
    wait = absl::Seconds(1);
  } else if (static_cast<int>(sessions_.size()) < options_.max_peers / 2) {
    wait = options_.peer_refresh / 2;
  }
  if (now < last_peer_refresh_ + wait) return;
  last_peer_refresh_ = now;
  refresh_in_flight_ = true;
  RunOnWorker([this] {
    v1::GetPeersRequest request;
    request.set_peer_id(context_.self.peer_id());
    request.set_release_id(release_id());
    request.set_max_peers(options_.max_peers * 2);
    absl::StatusOr<v1::GetPeersResponse> response = context_.tracker->GetPeers(request);
    Event e;
    e.kind = Event::kRefreshDone;
    if (response.ok()) {
      for (const v1::PeerInfo& p : response->peers()) {
        v1::PeerAddress a;
        a.set_peer_id(p.peer_id());
        a.set_address(p.address());
        a.set_datacenter(p.datacenter());
        a.set_rack(p.rack());
        e.addresses.push_back(std::move(a));
      }
    } else {
      LOG_EVERY_N(WARNING, 10) << release_id() << ": cannot get peers: " << response.status();
    }
    Post(std::move(e));
  });
}

// Asks the tracker for leases on the pieces no peer can serve. Without a
// tracker (or when it cannot be reached) the agent leases itself: the origin
// is the source of last resort, paced by the scheduler's origin_retry.
void ReleaseDownload::AskForOrigin(absl::Time now) {
  // No leases while the store fails (a full disk): the pieces could not be
  // kept, and the lease would hold the piece back from the other agents of
  // the datacenter until it expires.
  if (lease_in_flight_ || !store_->error().ok()) return;
  std::vector<OriginWant> wants = scheduler_->PiecesWantingOrigin(now, 8);
  if (wants.empty()) return;
  if (origin_ == nullptr) {
    for (const OriginWant& w : wants) scheduler_->OnOriginLease(w.piece, false, now).IgnoreError();
    return;
  }
  lease_in_flight_ = true;
  RunOnWorker([this, wants] {
    Event e;
    e.kind = Event::kLease;
    if (context_.tracker == nullptr) {
      for (const OriginWant& w : wants) e.pieces.push_back(w.piece);
      Post(std::move(e));
      return;
    }
    v1::OriginLeaseRequest request;
    request.set_peer_id(context_.self.peer_id());
    request.set_release_id(release_id());
    for (const OriginWant& w : wants) {
      request.add_pieces(w.piece.value());
      if (w.holders_failed) request.add_holders_failed(w.piece.value());
    }
    absl::StatusOr<v1::OriginLeaseResponse> answer = context_.tracker->RequestOriginLease(request);
    if (!answer.ok()) {
      bool unreachable = absl::IsUnavailable(answer.status()) ||
                         absl::IsDeadlineExceeded(answer.status());
      LOG_EVERY_N(WARNING, 10) << release_id() << ": origin lease request failed"
                               << (unreachable ? " (tracker unreachable: fetching anyway)" : "")
                               << ": " << answer.status();
      for (const OriginWant& w : wants) (unreachable ? e.pieces : e.denied).push_back(w.piece);
    } else {
      for (uint32_t p : answer->granted()) e.pieces.push_back(ReleasePieceIndex(p));
      for (const OriginWant& w : wants) {
        if (std::find(e.pieces.begin(), e.pieces.end(), w.piece) == e.pieces.end()) {
          e.denied.push_back(w.piece);
        }
      }
    }
    Post(std::move(e));
  });
}

absl::StatusOr<MerkleProof> ReleaseDownload::OriginProof(FileIndex file, PieceIndex index,
                                                         Digest* hash) {
  absl::MutexLock lock(&layers_mu_);
  std::unique_ptr<PieceTree>& tree = layers_[file.value()];
  if (tree == nullptr) {
    const FileGeometry& g = store_->pieces().geometry(file);
    const v1::FileEntry& entry = store_->manifest().body().files(file.value());
    absl::StatusOr<Digest> root = DigestFromBytes(entry.pieces_root());
    if (!root.ok()) return root.status();
    absl::StatusOr<std::vector<Digest>> layer = origin_->FetchLayer(g, *root);
    if (!layer.ok()) return layer.status();
    absl::StatusOr<PieceTree> built = PieceTree::Create(g, *std::move(layer));
    if (!built.ok()) return built.status();
    tree = std::make_unique<PieceTree>(*std::move(built));
  }
  *hash = tree->piece_hash(index);
  return tree->Proof(index);
}

void ReleaseDownload::FetchFromOrigin(ReleasePieceIndex piece) {
  Event e;
  e.kind = Event::kOriginPiece;
  e.piece = piece;
  FilePiece fp = store_->pieces().Locate(piece);
  Digest hash;
  absl::StatusOr<MerkleProof> proof = OriginProof(fp.file, fp.piece, &hash);
  if (!proof.ok()) {
    e.status = proof.status();
    Post(std::move(e));
    return;
  }
  absl::StatusOr<std::string> data =
      origin_->FetchPiece(store_->pieces().geometry(fp.file), fp.piece, hash);
  if (data.ok()) {
    context_.metrics->CountReceived(Source::kOrigin, data->size());
    e.status = store_->Put(piece, *data, *proof);
    e.bytes = data->size();
    if (e.status.ok()) {
      context_.metrics->CountVerified(Source::kOrigin, Locality::kRemote, data->size());
      on_have_(piece);
    } else if (absl::IsAlreadyExists(e.status)) {
      e.status = absl::OkStatus();
    }
  } else {
    e.status = data.status();
  }
  Post(std::move(e));
}

void ReleaseDownload::UpdateCounters() {
  const Manifest& m = store_->manifest();
  v1::ReleaseStatus s;
  s.set_release_id(m.release_id());
  s.set_name(m.body().name());
  s.set_version(m.body().version());
  s.set_total_pieces(store_->pieces().total_pieces());
  s.set_total_size(m.total_size());
  s.set_pieces_verified(store_->verified_count());
  s.set_bytes_verified(store_->verified_bytes());
  s.set_bytes_sent(bytes_sent_.load());
  absl::Status error = store_->error();
  if (!error.ok()) {
    s.set_state(v1::RELEASE_STATE_FAILED);
    s.set_error(std::string(error.message()));
  } else {
    s.set_state(store_->complete() ? v1::RELEASE_STATE_SEEDING : v1::RELEASE_STATE_DOWNLOADING);
  }
  if (scheduler_ != nullptr) {
    Progress p = scheduler_->progress();
    uint64_t from_peers = 0;
    for (uint64_t b : p.bytes_from_peers) from_peers += b;
    s.set_bytes_from_peers(from_peers);
    s.set_bytes_from_origin(p.bytes_from_origin);
    s.set_proof_failures(p.proof_failures);
    s.set_peers_banned(p.banned);
    s.set_peers_connected(static_cast<uint32_t>(sessions_.size()));
  }
  absl::MutexLock lock(&status_mu_);
  // Rates from the change in verified bytes since the last update.
  status_ = std::move(s);
}

bool ReleaseDownload::WaitForCompletion(absl::Duration timeout) const {
  return completed_.WaitForNotificationWithTimeout(timeout);
}

v1::ReleaseStatus ReleaseDownload::Status() const {
  absl::MutexLock lock(&status_mu_);
  v1::ReleaseStatus s = status_;
  s.set_bytes_sent(bytes_sent_.load());
  return s;
}

}  // namespace shoal::agent
