#include "agent/testing/hostile_service.h"

#include <grpcpp/alarm.h>

#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_security.h"
#include "common/sha256.h"
#include "glog/logging.h"

namespace shoal::agent::hostile {
namespace {

constexpr std::pair<Mode, absl::string_view> kModeNames[] = {
    {Mode::kFlip, "flip"},       {Mode::kWrongPiece, "wrong_piece"},
    {Mode::kBogusProof, "bogus_proof"}, {Mode::kLie, "lie"},
    {Mode::kStall, "stall"},     {Mode::kOversize, "oversize"},
};

// The piece length an oversize answer declares: far beyond any piece.
constexpr uint64_t kHugeLength = uint64_t{1} << 40;

// Writes `messages` one at a time and then ends the call with `end`; with a
// `hold`, keeps the call open after the last message until the caller goes
// away or `hold` passes, and only then ends it with `end`. Deletes itself
// once gRPC is done with it and its alarm, if any, has run (a cancelled
// alarm still runs its callback, with false).
template <typename Message>
class Writer final : public grpc::ServerWriteReactor<Message> {
 public:
  Writer(std::vector<Message> messages, grpc::Status end,
         std::optional<absl::Duration> hold)
      : messages_(std::move(messages)),
        end_(std::move(end)),
        hold_(hold.has_value()) {
    absl::MutexLock lock(&mu_);
    if (hold_) {
      ++refs_;
      alarm_.Set(absl::ToChronoTime(absl::Now() + *hold),
                 [this](bool fired) { OnAlarm(fired); });
    }
    Step();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) cancelled_ = true;
    Step();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    Step();
  }

  void OnDone() override {
    if (hold_) alarm_.Cancel();
    Unref();
  }

 private:
  void OnAlarm(bool fired) {
    if (fired) {
      absl::MutexLock lock(&mu_);
      held_out_ = true;
      Step();
    }
    Unref();
  }

  void Unref() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  // Starts the next write or the Finish, unless a write is in flight. gRPC
  // runs no reaction inline, so this may be called under the lock.
  void Step() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (cancelled_) {
      finished_ = true;
      this->Finish(grpc::Status::CANCELLED);
    } else if (next_ < messages_.size()) {
      writing_ = true;
      this->StartWrite(&messages_[next_++]);
    } else if (!hold_ || held_out_) {
      finished_ = true;
      this->Finish(end_);
    }
  }

  absl::Mutex mu_;
  std::vector<Message> messages_;
  const grpc::Status end_;
  const bool hold_;
  grpc::Alarm alarm_;
  // gRPC's reference (until OnDone), and the alarm's while it is set.
  int refs_ ABSL_GUARDED_BY(mu_) = 1;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool held_out_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Message>
Writer<Message>* Refuse(grpc::Status status) {
  return new Writer<Message>({}, std::move(status), std::nullopt);
}

// `data` in chunks of `chunk_bytes`, the first one declaring
// `declared_length` and carrying `proof`.
std::vector<v1::PieceChunk> Chunks(absl::string_view data,
                                   const MerkleProof& proof,
                                   uint64_t declared_length,
                                   size_t chunk_bytes) {
  std::vector<v1::PieceChunk> chunks;
  for (uint64_t offset = 0; offset < data.size(); offset += chunk_bytes) {
    v1::PieceChunk& chunk = chunks.emplace_back();
    chunk.set_offset(offset);
    chunk.set_data(std::string(data.substr(offset, chunk_bytes)));
    if (offset > 0) continue;
    chunk.set_piece_length(declared_length);
    for (const Digest& d : proof) chunk.add_proof(std::string(DigestBytes(d)));
  }
  return chunks;
}

// Flips one bit, a different one for each request.
void FlipBit(std::string& data, uint64_t n) {
  data[(n * 7919) % data.size()] ^= static_cast<char>(1 << (n % 8));
}

void CorruptProof(MerkleProof& proof, uint64_t n) {
  if (proof.empty()) {
    proof.push_back(Sha256("not a proof"));
    return;
  }
  proof[n % proof.size()][n % kDigestSize] ^= 0x80;
}

}  // namespace

absl::StatusOr<Mode> ParseMode(absl::string_view name) {
  std::string known;
  for (const auto& [mode, mode_name] : kModeNames) {
    if (name == mode_name) return mode;
    absl::StrAppend(&known, known.empty() ? "" : ", ", mode_name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown mode \"", name, "\"; modes: ", known));
}

absl::string_view ModeName(Mode mode) {
  for (const auto& [m, name] : kModeNames) {
    if (m == mode) return name;
  }
  return "unknown";
}

HostilePeerService::HostilePeerService(const HostileRelease& release,
                                       HostileOptions options)
    : release_(release), options_(std::move(options)) {
  CHECK(options_.chunk_bytes > 0 && options_.chunk_bytes <= (1 << 20))
      << options_.chunk_bytes;
}

HostileStats HostilePeerService::stats() const {
  return HostileStats{watches_.load(), requests_.load(), invalid_.load()};
}

grpc::ServerWriteReactor<v1::Availability>* HostilePeerService::Watch(
    grpc::CallbackServerContext* context, const v1::WatchRequest* request) {
  (void)context;
  if (request->release_id() != release_.release_id()) {
    return Refuse<v1::Availability>(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("no release ", request->release_id())));
  }
  ++watches_;
  LOG(INFO) << "watch from " << request->asker().peer_id();
  v1::Availability first;
  first.set_bitfield(release_.FullBitfield().bytes());
  return new Writer<v1::Availability>(
      {std::move(first)},
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch held long enough"),
      options_.hold_limit);
}

grpc::ServerWriteReactor<v1::PieceChunk>* HostilePeerService::FetchPiece(
    grpc::CallbackServerContext* context,
    const v1::FetchPieceRequest* request) {
  (void)context;
  const ReleasePieceIndex piece(request->piece());
  absl::StatusOr<HonestPiece> honest =
      request->release_id() == release_.release_id()
          ? release_.Read(piece)
          : absl::NotFoundError(absl::StrCat("no release ", request->release_id()));
  if (!honest.ok()) {
    ++invalid_;
    LOG(WARNING) << "cannot serve piece " << piece << ": " << honest.status();
    return Refuse<v1::PieceChunk>(ToGrpcStatus(honest.status()));
  }
  const uint64_t n = requests_++;
  LOG(INFO) << ModeName(options_.mode) << ": request " << n << " for piece "
            << piece;
  switch (options_.mode) {
    case Mode::kLie:
      return Refuse<v1::PieceChunk>(
          n % 2 == 0
              ? grpc::Status(grpc::StatusCode::NOT_FOUND, "piece not held")
              : grpc::Status(grpc::StatusCode::INTERNAL, "cannot read it"));
    case Mode::kStall:
      return new Writer<v1::PieceChunk>(
          {}, grpc::Status(grpc::StatusCode::UNAVAILABLE, "stalled long enough"),
          options_.hold_limit);
    default:
      return new Writer<v1::PieceChunk>(Spoil(piece, n, *std::move(honest)),
                                        grpc::Status::OK, std::nullopt);
  }
}

std::vector<v1::PieceChunk> HostilePeerService::Spoil(ReleasePieceIndex piece,
                                                      uint64_t n,
                                                      HonestPiece honest) const {
  const size_t chunk = options_.chunk_bytes;
  const uint64_t length = honest.data.size();
  switch (options_.mode) {
    case Mode::kWrongPiece: {
      std::optional<ReleasePieceIndex> other = release_.Substitute(piece);
      absl::StatusOr<HonestPiece> substitute =
          other.has_value() ? release_.Read(*other)
                            : absl::NotFoundError("no piece of the same shape");
      if (substitute.ok()) {
        LOG(INFO) << "sending piece " << *other << " as piece " << piece;
        return Chunks(substitute->data, substitute->proof, length, chunk);
      }
      LOG(INFO) << "flipping piece " << piece << ": " << substitute.status();
      FlipBit(honest.data, n);
      return Chunks(honest.data, honest.proof, length, chunk);
    }
    case Mode::kBogusProof:
      CorruptProof(honest.proof, n);
      return Chunks(honest.data, honest.proof, length, chunk);
    case Mode::kOversize: {
      if (n % 2 == 0) return Chunks(honest.data, honest.proof, kHugeLength, chunk);
      std::vector<v1::PieceChunk> chunks =
          Chunks(honest.data, honest.proof, length, chunk);
      v1::PieceChunk& extra = chunks.emplace_back();
      extra.set_offset(length);
      extra.set_data(std::string(chunk, 'x'));
      return chunks;
    }
    case Mode::kFlip:
      FlipBit(honest.data, n);
      return Chunks(honest.data, honest.proof, length, chunk);
    case Mode::kLie:
    case Mode::kStall:
      break;
  }
  LOG(FATAL) << ModeName(options_.mode) << " sends no piece";
}

}  // namespace shoal::agent::hostile
