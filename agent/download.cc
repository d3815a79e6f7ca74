#include "agent/download.h"

#include <algorithm>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace shoal::agent {


// Forwards one session's callbacks to the engine as events.
class ReleaseDownload::Listener final : public SessionListener {
 public:
  Listener(ReleaseDownload& download, PeerKey key) : download_(download), key_(key) {}
  void OnBitfield(std::string bitfield) override {
    Event e;
    e.kind = Event::kBitfield;
    e.peer = key_;
    e.bitfield = std::move(bitfield);
    download_.Post(std::move(e));
  }
  void OnHave(std::vector<ReleasePieceIndex> pieces) override {
    Event e;
    e.kind = Event::kHave;
    e.peer = key_;
    e.pieces = std::move(pieces);
    download_.Post(std::move(e));
  }
  void OnPeers(std::vector<v1::PeerAddress> peers) override {
    Event e;
    e.kind = Event::kPeers;
    e.addresses = std::move(peers);
    download_.Post(std::move(e));
  }
  void OnClosed(absl::Status why) override {
    Event e;
    e.kind = Event::kClosed;
    e.peer = key_;
    e.status = std::move(why);
    download_.Post(std::move(e));
  }

 private:
  ReleaseDownload& download_;
  const PeerKey key_;
};

struct ReleaseDownload::Session {
  v1::PeerAddress address;
  Locality locality;
  // Destroyed before the listener it calls.
  std::unique_ptr<Listener> listener;
  std::unique_ptr<PeerSession> session;
  ~Session() { session.reset(); }
};

ReleaseDownload::ReleaseDownload(DownloadContext context, DownloadOptions options,
                                 std::unique_ptr<ReleaseStore> store,
                                 std::unique_ptr<OriginClient> origin,
                                 HaveCallback on_have)
    : context_(std::move(context)),
      options_(std::move(options)),
      store_(std::move(store)),
      origin_(std::move(origin)),
      on_have_(std::move(on_have)) {
  UpdateCounters();
  if (store_->complete()) {
    completed_.Notify();
    return;
  }
  const ReleasePieces& pieces = store_->pieces();
  std::vector<uint64_t> lengths(pieces.total_pieces());
  for (uint32_t i = 0; i < lengths.size(); ++i) {
    FilePiece fp = pieces.Locate(ReleasePieceIndex(i));
    lengths[i] = pieces.geometry(fp.file).piece_length(fp.piece);
  }
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler =
      Scheduler::Create(options_.scheduler, std::move(lengths), store_->bitfield(), bitgen_);
  CHECK(scheduler.ok()) << scheduler.status();  // config and sizes are ours
  scheduler_ = *std::move(scheduler);
  workers_ = std::make_unique<TaskPool>(options_.workers);
  verifiers_ = std::make_unique<TaskPool>(
      options_.verifiers > 0 ? options_.verifiers
                             : std::max<int>(4, 2 * std::thread::hardware_concurrency()));
  engine_ = std::thread([this] { Loop(); });
}

ReleaseDownload::~ReleaseDownload() {
  {
    absl::MutexLock lock(&queue_mu_);
    stopping_ = true;
  }
  if (engine_.joinable()) engine_.join();
  sessions_.clear();  // no engine thread any more: safe here
  if (verifiers_ != nullptr) verifiers_->Stop();
  if (workers_ != nullptr) workers_->Stop();
  absl::Status s = store_->Commit();
  if (!s.ok()) LOG(WARNING) << release_id() << ": final commit failed: " << s;
}

void ReleaseDownload::Post(Event event) {
  absl::MutexLock lock(&queue_mu_);
  events_.push_back(std::move(event));
}

void ReleaseDownload::Loop() {
  LOG(INFO) << store_->manifest().display_name() << ": downloading, "
            << store_->verified_count() << " of " << store_->pieces().total_pieces()
            << " pieces already verified";
  while (true) {
    std::deque<Event> batch;
    {
      absl::MutexLock lock(&queue_mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(queue_mu_) {
        return stopping_ || !events_.empty();
      };
      queue_mu_.AwaitWithTimeout(absl::Condition(&ready), options_.tick);
      if (stopping_) return;
      batch.swap(events_);
    }
    for (Event& e : batch) Handle(e);
    absl::Time now = context_.clock->Now();
    Periodic(now);
    UpdateCounters();
    if (scheduler_->complete()) break;
  }
  absl::Status s = store_->Commit();
  LOG(INFO) << store_->manifest().display_name() << ": complete"
            << (s.ok() ? "" : absl::StrCat(" (commit failed: ", s.ToString(), ")"));
  std::vector<PeerKey> keys;
  for (const auto& [key, session] : sessions_) keys.push_back(key);
  for (PeerKey key : keys) DropPeer(key, "release complete");
  UpdateCounters();
  completed_.Notify();
}

void ReleaseDownload::Handle(Event& e) {
  absl::Time now = context_.clock->Now();
  switch (e.kind) {
    case Event::kBitfield:
      if (sessions_.contains(e.peer)) scheduler_->OnBitfield(e.peer, e.bitfield).IgnoreError();
      break;
    case Event::kHave:
      if (!sessions_.contains(e.peer)) break;
      for (ReleasePieceIndex p : e.pieces) scheduler_->OnHave(e.peer, p).IgnoreError();
      break;
    case Event::kPeers:
      Learn(e.addresses);
      break;
    case Event::kClosed:
      if (sessions_.contains(e.peer)) DropPeer(e.peer, "session closed");
      break;
    case Event::kPieceVerified: {
      auto it = sessions_.find(e.peer);
      context_.metrics->CountVerified(
          Source::kPeer, it == sessions_.end() ? Locality::kRemote : it->second->locality, e.bytes);
      // Endgame duplicates still in flight end on their own: a second copy is
      // refused by the store (ALREADY_EXISTS) and does not count against its peer.
      scheduler_->OnPieceVerified(e.peer, e.piece, e.bytes, now);
      break;
    }
    case Event::kPieceFailed:
      HandlePiece(e);
      break;
    case Event::kLease:
      lease_in_flight_ = false;
      for (ReleasePieceIndex p : e.pieces) {
        // Granted while the store failed: fetching would waste origin bytes.
        if (!store_->error().ok()) {
          scheduler_->OnOriginLease(p, false, now).IgnoreError();
          continue;
        }
        if (scheduler_->OnOriginLease(p, true, now).ok()) {
          RunOnWorker([this, p] { FetchFromOrigin(p); });
        }
      }
      for (ReleasePieceIndex p : e.denied) scheduler_->OnOriginLease(p, false, now).IgnoreError();
      break;
    case Event::kOriginPiece:
      if (e.status.ok()) {
        scheduler_->OnPieceFromOrigin(e.piece, e.bytes, now);
      } else {
        LOG_EVERY_N(WARNING, 20) << "origin fetch of piece " << e.piece << ": " << e.status;
        scheduler_->OnOriginFailed(e.piece, now);
      }
      break;
    case Event::kRefreshDone:
      refresh_in_flight_ = false;
      Learn(e.addresses);
      break;
    case Event::kWake:
      break;
  }
}

namespace {

// How a failed fetch counts against its peer; nullopt when it does not (a
// copy from another source was stored first).
std::optional<FailureReason> ReasonFor(bool proof_failed, bool store_failed,
                                       const absl::Status& status) {
  if (proof_failed) return FailureReason::kBadProof;
  if (store_failed) return FailureReason::kBusy;  // our disk, not the peer
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return FailureReason::kRefused;
    case absl::StatusCode::kResourceExhausted:
      return FailureReason::kBusy;
    case absl::StatusCode::kDeadlineExceeded:
      return FailureReason::kTimeout;
    case absl::StatusCode::kAlreadyExists:
      return std::nullopt;
    default:
      return FailureReason::kError;
  }
}

}  // namespace

void ReleaseDownload::HandlePiece(Event& e) {
  absl::Time now = context_.clock->Now();
  std::optional<FailureReason> failure = ReasonFor(e.proof_failed, e.store_failed, e.status);
  if (!failure.has_value()) return;
  FailureReason reason = *failure;
  if (reason == FailureReason::kBadProof) context_.metrics->CountProofFailure();
  PeerVerdict verdict = scheduler_->OnPieceFailed(e.peer, e.piece, reason, now);
  if (verdict == PeerVerdict::kBan) {
    context_.metrics->CountBan();
    auto it = sessions_.find(e.peer);
    LOG(WARNING) << store_->manifest().display_name() << ": banned peer "
                 << (it == sessions_.end() ? "?" : it->second->address.peer_id())
                 << " for a piece that failed its proof: " << e.status;
  }
  if (verdict != PeerVerdict::kKeep && sessions_.contains(e.peer)) {
    DropPeer(e.peer, verdict == PeerVerdict::kBan ? "banned" : "failing");
  }
}

void ReleaseDownload::Periodic(absl::Time now) {
  for (const Cancel& c : scheduler_->Expired(now)) {
    scheduler_->OnPieceFailed(c.peer, c.piece, FailureReason::kTimeout, now);
  }
  for (const Drop& d : scheduler_->PeersToDrop(now)) {
    if (sessions_.contains(d.peer)) DropPeer(d.peer, std::string(DropReasonName(d.reason)).c_str());
  }
  if (now - last_commit_ >= options_.commit_interval && !commit_in_flight_.exchange(true)) {
    last_commit_ = now;
    RunOnWorker([this] {
      absl::Status s = store_->Commit();
      if (!s.ok()) {
        LOG_EVERY_N(ERROR, 10) << release_id() << ": cannot record pieces: " << s;
      }
      commit_in_flight_ = false;
    });
  }
  if (!store_->error().ok() && now - last_store_retry_ >= absl::Seconds(5)) {
    // The release stays FAILED (with the reason) until a write succeeds again:
    // try again now and then, so that it completes once room is made. A full
    // disk is tried again only once there is room for a piece: each try asks
    // for origin leases, and leases held by an agent that cannot store the
    // pieces keep the rest of the datacenter waiting for them.
    last_store_retry_ = now;
    const absl::Status error = store_->error();
    if (!absl::IsResourceExhausted(error) || store_->HasRoomForAPiece()) {
      LOG_EVERY_N(WARNING, 12) << release_id() << ": " << error << "; retrying";
      store_->ClearError();
    }
  }
  RefreshPeers(now);
  ConnectMore();
  AskForOrigin(now);
  IssueRequests(now);
}

void ReleaseDownload::DropPeer(PeerKey key, const char* why) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  VLOG(1) << "dropping peer " << it->second->address.peer_id() << ": " << why;
  dial_backoff_[it->second->address.peer_id()] = context_.clock->Now() + absl::Seconds(5);
  std::unique_ptr<Session> session = std::move(it->second);
  sessions_.erase(it);
  scheduler_->RemovePeer(key);
  session.reset();  // on the engine thread: waits for its callbacks, which never wait on us
}

Locality ReleaseDownload::LocalityOf(const v1::PeerAddress& peer) const {
  if (peer.datacenter() != context_.self.datacenter()) return Locality::kRemote;
  return peer.rack() == context_.self.rack() ? Locality::kRack : Locality::kDatacenter;
}

PeerKey ReleaseDownload::KeyFor(const std::string& peer_id) {
  auto [it, inserted] = keys_.emplace(peer_id, PeerKey(next_key_));
  if (inserted) ++next_key_;
  return it->second;
}

void ReleaseDownload::ConnectMore() {
  if (static_cast<int>(sessions_.size()) >= options_.max_peers) return;
  std::vector<v1::PeerAddress> candidates;
  {
    absl::MutexLock lock(&peers_mu_);
    for (const auto& [id, address] : known_) candidates.push_back(address);
  }
  absl::Time now = context_.clock->Now();
  std::shuffle(candidates.begin(), candidates.end(), bitgen_);
  std::stable_sort(candidates.begin(), candidates.end(),
                   [this](const v1::PeerAddress& a, const v1::PeerAddress& b) {
                     return LocalityOf(a) < LocalityOf(b);
                   });
  for (const v1::PeerAddress& peer : candidates) {
    if (static_cast<int>(sessions_.size()) >= options_.max_peers) break;
    PeerKey key = KeyFor(peer.peer_id());
    auto backoff = dial_backoff_.find(peer.peer_id());
    if (sessions_.contains(key) || scheduler_->IsBanned(key) ||
        (backoff != dial_backoff_.end() && backoff->second > now)) {
      continue;
    }
    if (!scheduler_->AddPeer(key, LocalityOf(peer)).ok()) continue;
    auto session = std::make_unique<Session>();
    session->address = peer;
    session->locality = LocalityOf(peer);
    session->listener = std::make_unique<Listener>(*this, key);
    session->session =
        context_.transport->Connect(peer, release_id(), context_.self, *session->listener);
    sessions_.emplace(key, std::move(session));
  }
}

void ReleaseDownload::IssueRequests(absl::Time now) {
  // Over --download_limit: ask for nothing until the bucket allows again.
  // A full disk or a write error stops new requests; Periodic retries.
  if (!store_->error().ok()) return;
  DownloadPacer* pacer = context_.download_pacer;
  if (pacer != nullptr && !pacer->unlimited() && pacer->NextAllowed() > now) return;
  for (const Assignment& a : scheduler_->NextRequests(now)) {
    auto it = sessions_.find(a.peer);
    if (it == sessions_.end()) continue;
    // The scheduler already counts the request as in flight, so it goes out
    // now and every request of the round is charged: TryStart would count
    // only the first one while the bucket is not in debt.
    if (pacer != nullptr) pacer->Charge(a.length);
    PeerKey key = a.peer;
    ReleasePieceIndex piece = a.piece;
    it->second->session->FetchPiece(
        piece, a.length, std::max(a.deadline - now, absl::Milliseconds(100)),
        [this, key, piece](absl::StatusOr<ReceivedPiece> result) {
          OnPieceReceived(key, piece, std::move(result));
        });
  }
}

// On a transport thread: hand the piece to a verifier, so that this thread
// goes back to the network at once.
void ReleaseDownload::OnPieceReceived(PeerKey key, ReleasePieceIndex piece,
                                      absl::StatusOr<ReceivedPiece> result) {
  if (result.ok()) context_.metrics->CountReceived(Source::kPeer, result->data.size());
  verifiers_->Run([this, key, piece, result = std::move(result)]() mutable {
    VerifyAndStore(key, piece, std::move(result));
  });
}

// On a verifier: verify and store, then tell the engine.
void ReleaseDownload::VerifyAndStore(PeerKey key, ReleasePieceIndex piece,
                                     absl::StatusOr<ReceivedPiece> result) {
  Event e;
  e.peer = key;
  e.piece = piece;
  if (result.ok()) {
    absl::Status put = store_->Put(piece, result->data.view(), result->proof);
    if (put.ok()) {
      e.kind = Event::kPieceVerified;
      e.bytes = result->data.size();
      on_have_(piece);
    } else {
      e.kind = Event::kPieceFailed;
      e.status = put;
      // DATA_LOSS: the proof failed; INVALID_ARGUMENT: a proof of the wrong
      // length for the piece we asked for. Either way the peer sent a bad
      // piece.
      e.proof_failed = absl::IsDataLoss(put) || absl::IsInvalidArgument(put);
      e.store_failed = !store_->error().ok();
      if (!absl::IsDataLoss(put) && !absl::IsAlreadyExists(put) &&
          !absl::IsInvalidArgument(put)) {
        LOG_EVERY_N(ERROR, 10) << release_id() << ": cannot store piece " << piece << ": " << put;
      }
    }
  } else {
    e.kind = Event::kPieceFailed;
    e.status = result.status();
    // The transport's DATA_LOSS: the peer's answer cannot be the piece
    // (longer than asked, malformed, ended short with an OK status). As bad
    // as a failed proof, and treated the same.
    e.proof_failed = absl::IsDataLoss(result.status());
  }
  Post(std::move(e));
}

void ReleaseDownload::Learn(const std::vector<v1::PeerAddress>& peers) {
  absl::MutexLock lock(&peers_mu_);
  for (const v1::PeerAddress& p : peers) {
    if (p.peer_id() == context_.self.peer_id() || p.address().empty()) continue;
    if (known_.size() >= 1024 && !known_.contains(p.peer_id())) continue;
    known_[p.peer_id()] = p;
  }
}

std::vector<v1::PeerAddress> ReleaseDownload::KnownPeers(const v1::PeerAddress& asker,
                                                         size_t limit) {
  Learn({asker});
  std::vector<v1::PeerAddress> out;
  {
    absl::MutexLock lock(&peers_mu_);
    for (const auto& [id, address] : known_) {
      if (id != asker.peer_id()) out.push_back(address);
    }
  }
  std::stable_partition(out.begin(), out.end(), [&](const v1::PeerAddress& p) {
    return p.datacenter() == asker.datacenter();
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

void ReleaseDownload::CountSent(uint64_t bytes) { bytes_sent_ += bytes; }

void ReleaseDownload::AddPeers(std::vector<v1::PeerAddress> peers) {
  Event e;
  e.kind = Event::kPeers;
  e.addresses = std::move(peers);
  Post(std::move(e));
}

}  // namespace shoal::agent
