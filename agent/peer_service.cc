#include "agent/peer_service.h"

#include <glog/logging.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_security.h"

namespace shoal::agent {

class WatchReactor;

// The live Watch streams, and the thread that sends them peer-exchange lists.
// Lock order: the hub's mutex before a reactor's; a reactor never calls the
// hub while holding its own.
class WatchHub {
 public:
  explicit WatchHub(absl::Duration pex_interval);
  ~WatchHub();  // Stops and joins the thread.

  // False once CloseAll() ran: the stream must end.
  bool Add(WatchReactor* watch);
  // After this returns the hub never touches `watch` again.
  void Remove(WatchReactor* watch);
  void CloseAll();

 private:
  void PexLoop();

  const absl::Duration pex_interval_;
  absl::Mutex mu_;
  absl::flat_hash_set<WatchReactor*> watches_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

namespace {

// Ends a call at once with `status`.
template <typename Message>
class RefusedCall final : public grpc::ServerWriteReactor<Message> {
 public:
  explicit RefusedCall(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

void AppendVarint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// Releases the slice holder's reference to the piece.
void UnrefPiece(void* holder) {
  delete static_cast<std::shared_ptr<const PieceBuffer>*>(holder);
}

// One PieceChunk in wire form: a small header (offset, and in the first chunk
// the length and proof) followed by the data field, whose bytes are a slice
// of `piece` itself rather than a copy. Field order does not matter to a
// protobuf parser; offset comes before data, as the client expects.
grpc::ByteBuffer EncodeChunk(const std::shared_ptr<const PieceBuffer>& piece,
                             uint64_t offset, size_t length,
                             const MerkleProof* proof) {
  v1::PieceChunk header;
  header.set_offset(offset);
  if (proof != nullptr) {
    header.set_piece_length(piece->size());
    for (const Digest& d : *proof)
      header.add_proof(std::string(DigestBytes(d)));
  }
  std::string head = header.SerializeAsString();
  AppendVarint(google::protobuf::internal::WireFormatLite::MakeTag(
                   v1::PieceChunk::kDataFieldNumber,
                   google::protobuf::internal::WireFormatLite::
                       WIRETYPE_LENGTH_DELIMITED),
               head);
  AppendVarint(length, head);
  grpc::Slice slices[2] = {
      grpc::Slice(head),
      grpc::Slice(const_cast<char*>(piece->data()) + offset, length,
                  &UnrefPiece, new std::shared_ptr<const PieceBuffer>(piece))};
  return grpc::ByteBuffer(slices, length == 0 ? 1 : 2);
}

}  // namespace

// One Watch stream: the bitfield (and a first peer list), then batches of
// haves and periodic peer lists. At most one write is in flight; news that
// arrives meanwhile is sent together when it completes. Deletes itself in
// OnDone.
class WatchReactor final : public grpc::ServerWriteReactor<v1::Availability>,
                           public HaveListener {
 public:
  WatchReactor(WatchHub& hub, PieceSource& source, v1::WatchRequest request,
               size_t pex_limit)
      : hub_(hub),
        source_(source),
        request_(std::move(request)),
        pex_limit_(pex_limit) {}

  // Subscribes and sends the first message, or ends the stream.
  void Start();

  void OnHave(ReleasePieceIndex piece) override {
    {
      absl::MutexLock lock(&mu_);
      haves_.push_back(piece.value());
    }
    Pump();
  }

  // Queues a fresh peer-exchange list. Called by the hub.
  void SendPeers() {
    std::vector<v1::PeerAddress> peers = source_.ExchangePeers(
        request_.release_id(), request_.asker(), pex_limit_);
    if (peers.empty()) return;
    {
      absl::MutexLock lock(&mu_);
      peers_ = std::move(peers);
    }
    Pump();
  }

  // Ends the stream with `status` once no write is in flight.
  void Close(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_.has_value()) finish_ = std::move(status);
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !finish_.has_value()) finish_ = grpc::Status::CANCELLED;
    }
    Pump();
  }

  void OnCancel() override { Close(grpc::Status::CANCELLED); }

  void OnDone() override {
    hub_.Remove(this);
    subscription_.reset();  // Waits out any OnHave in progress.
    delete this;
  }

 private:
  // Starts the next write or the Finish, unless a write is in flight.
  void Pump();

  WatchHub& hub_;
  PieceSource& source_;
  const v1::WatchRequest request_;
  const size_t pex_limit_;
  // Set in Start() before any write; reset in OnDone().
  std::unique_ptr<HaveSubscription> subscription_;

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = true;  // Until the first message.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> haves_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::PeerAddress> peers_ ABSL_GUARDED_BY(mu_);
  // The message being written; touched only by whoever set writing_.
  v1::Availability out_;
};

void WatchReactor::Start() {
  absl::StatusOr<Subscription> subscription =
      hub_.Add(this) ? source_.Subscribe(request_.release_id(), *this)
                     : absl::UnavailableError("agent is shutting down");
  if (!subscription.ok()) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!finish_.has_value()) finish_ = ToGrpcStatus(subscription.status());
    }
    Pump();
    return;
  }
  subscription_ = std::move(subscription->handle);
  out_.set_bitfield(subscription->bitfield.bytes());
  for (v1::PeerAddress& peer : source_.ExchangePeers(
           request_.release_id(), request_.asker(), pex_limit_)) {
    *out_.add_peers() = std::move(peer);
  }
  StartWrite(&out_);
}

void WatchReactor::Pump() {
  std::optional<grpc::Status> finish;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (finish_.has_value()) {
      finished_ = true;
      finish = std::move(finish_);
    } else if (!haves_.empty() || !peers_.empty()) {
      writing_ = true;
      out_.Clear();
      out_.mutable_have()->Add(haves_.begin(), haves_.end());
      haves_.clear();
      for (v1::PeerAddress& peer : peers_) *out_.add_peers() = std::move(peer);
      peers_.clear();
    } else {
      return;
    }
  }
  if (finish.has_value()) {
    Finish(*std::move(finish));
  } else {
    StartWrite(&out_);
  }
}

WatchHub::WatchHub(absl::Duration pex_interval)
    : pex_interval_(pex_interval), thread_([this] { PexLoop(); }) {}

WatchHub::~WatchHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

bool WatchHub::Add(WatchReactor* watch) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  watches_.insert(watch);
  return true;
}

void WatchHub::Remove(WatchReactor* watch) {
  absl::MutexLock lock(&mu_);
  watches_.erase(watch);
}

void WatchHub::CloseAll() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (WatchReactor* watch : watches_) {
    watch->Close(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent is shutting down"));
  }
}

void WatchHub::PexLoop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), pex_interval_)) {
    // Under the lock, so that no reactor is deleted meanwhile; SendPeers
    // does not call back into the hub.
    for (WatchReactor* watch : watches_) watch->SendPeers();
  }
}

namespace {

// One FetchPiece stream: the piece, read once, sent as slices of that one
// buffer, one chunk in flight at a time (each after the pacer allows it).
// Holds an upload slot until OnDone, where it deletes itself.
class UploadReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  UploadReactor(ServedPiece piece, size_t chunk_bytes, UploadPacer* pacer,
                absl::AnyInvocable<void() &&> release_slot)
      : data_(std::make_shared<const PieceBuffer>(std::move(piece.data))),
        proof_(std::move(piece.proof)),
        ticket_(std::move(piece.ticket)),
        chunk_bytes_(chunk_bytes),
        pacer_(pacer),
        release_slot_(std::move(release_slot)) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    Next();
  }

  // A write in flight then fails; a chunk waiting for the pacer sees the flag.
  void OnCancel() override { cancelled_.store(true); }

  void OnDone() override {
    ticket_.reset();
    std::move(release_slot_)();
    delete this;
  }

 private:
  size_t NextLength() const {
    return std::min(chunk_bytes_, data_->size() - offset_);
  }

  void Next() {
    if (pacer_ == nullptr) return Send();
    pacer_->Acquire(NextLength(), [this] { Send(); });
  }

  void Send() {
    if (cancelled_.load()) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    const size_t length = NextLength();
    buffer_ =
        EncodeChunk(data_, offset_, length, offset_ == 0 ? &proof_ : nullptr);
    offset_ += length;
    if (offset_ == data_->size()) {
      StartWriteAndFinish(&buffer_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      StartWrite(&buffer_);
    }
  }

  // Shared with the slices handed to gRPC, which may outlive this reactor.
  const std::shared_ptr<const PieceBuffer> data_;
  const MerkleProof proof_;
  std::unique_ptr<UploadTicket> ticket_;
  const size_t chunk_bytes_;
  UploadPacer* const pacer_;
  absl::AnyInvocable<void() &&> release_slot_;
  std::atomic<bool> cancelled_{false};
  // Touched only by the one step (Send or OnWriteDone) running at a time.
  uint64_t offset_ = 0;
  grpc::ByteBuffer buffer_;
};

}  // namespace

PeerService::PeerService(PieceSource& source, PeerServiceOptions options)
    : source_(source),
      options_(std::move(options)),
      hub_(std::make_unique<WatchHub>(options_.pex_interval)) {
  CHECK_GT(options_.max_uploads, 0);
  CHECK_GT(options_.pex_interval, absl::ZeroDuration());
  CHECK(options_.chunk_bytes > 0 && options_.chunk_bytes <= kMaxChunkBytes)
      << options_.chunk_bytes;
}

PeerService::~PeerService() = default;

void PeerService::Shutdown() { hub_->CloseAll(); }

int PeerService::uploads_in_flight() const {
  absl::MutexLock lock(&mu_);
  return uploads_;
}

bool PeerService::TryAcquireUpload() {
  absl::MutexLock lock(&mu_);
  if (uploads_ >= options_.max_uploads) return false;
  ++uploads_;
  return true;
}

void PeerService::ReleaseUpload() {
  absl::MutexLock lock(&mu_);
  --uploads_;
}

grpc::ServerWriteReactor<v1::Availability>* PeerService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  (void)context;
  auto* watch = new WatchReactor(*hub_, source_, *request, options_.pex_limit);
  watch->Start();
  return watch;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* PeerService::FetchPiece(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) {
  (void)context;
  using Refused = RefusedCall<grpc::ByteBuffer>;
  grpc::ByteBuffer copy(*request);  // Shares the slices; Deserialize eats it.
  v1::FetchPieceRequest parsed;
  if (!grpc::SerializationTraits<v1::FetchPieceRequest>::Deserialize(&copy,
                                                                     &parsed)
           .ok()) {
    return new Refused(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                    "malformed FetchPieceRequest"));
  }
  if (!TryAcquireUpload()) {
    return new Refused(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("all ", options_.max_uploads,
                     " upload slots are busy; try another peer or later")));
  }
  absl::StatusOr<ServedPiece> piece =
      source_.ReadPiece(parsed.release_id(), ReleasePieceIndex(parsed.piece()));
  if (!piece.ok()) {
    ReleaseUpload();
    return new Refused(ToGrpcStatus(piece.status()));
  }
  return new UploadReactor(*std::move(piece), options_.chunk_bytes,
                           options_.pacer, [this] { ReleaseUpload(); });
}

}  // namespace shoal::agent
