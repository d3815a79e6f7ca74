#pragma once

// shoal.v1.Peer as a hostile member of a swarm serves it: Watch claims every
// piece of the release, and FetchPiece answers in the one way its Mode
// chooses to be wrong. For tests of honest agents against such a peer
// (tests/e2e/hostile_peer_test.sh, through agent/testing/hostile_peer.cc).

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/testing/hostile_release.h"
#include "shoal/v1/peer.grpc.pb.h"

namespace shoal::agent::hostile {

enum class Mode {
  // The piece with one bit flipped, and its honest proof.
  kFlip,
  // Another piece of the same length and proof length (HostileRelease::
  // Substitute), with that piece's proof; flipped as kFlip when no other
  // piece has that shape.
  kWrongPiece,
  // The honest bytes with one proof hash corrupted; a proof of no hashes
  // (a file of one piece) gets one hash too many instead.
  kBogusProof,
  // NOT_FOUND and INTERNAL, in turn, for pieces the bitfield claims.
  kLie,
  // Accepts the request and never sends a byte.
  kStall,
  // In turn: a first chunk that declares a piece of 2^40 bytes, and the
  // whole piece followed by one chunk past its end.
  kOversize,
};

// INVALID_ARGUMENT naming the modes for an unknown `name`.
absl::StatusOr<Mode> ParseMode(absl::string_view name);
// "flip", "wrong_piece", "bogus_proof", "lie", "stall", "oversize".
absl::string_view ModeName(Mode mode);

struct HostileOptions {
  Mode mode = Mode::kFlip;
  // Longest a Watch stream or a stalled fetch is held open; the caller's
  // cancel or deadline, or server shutdown, usually ends them first.
  absl::Duration hold_limit = absl::Minutes(2);
  // Piece bytes per PieceChunk (at most 1 MiB, the protocol's limit).
  size_t chunk_bytes = 256 << 10;
};

// What the peer has done so far.
struct HostileStats {
  // Watch streams opened on the release.
  uint64_t watches = 0;
  // FetchPiece calls answered the mode's way.
  uint64_t requests = 0;
  // FetchPiece calls it could not misbehave on: another release, a piece
  // out of range, a piece object it could not read (answered with that
  // error).
  uint64_t invalid = 0;
};

// Thread-safe. `release` must outlive the service, and the service the
// grpc::Server it is registered with. Calls held open (Watch, stall) end
// when the caller goes away, at `hold_limit`, or when the server's
// Shutdown(deadline) cancels them.
class HostilePeerService final : public v1::Peer::CallbackService {
 public:
  HostilePeerService(const HostileRelease& release, HostileOptions options);

  HostilePeerService(const HostilePeerService&) = delete;
  HostilePeerService& operator=(const HostilePeerService&) = delete;

  Mode mode() const { return options_.mode; }
  HostileStats stats() const;

  grpc::ServerWriteReactor<v1::Availability>* Watch(
      grpc::CallbackServerContext* context,
      const v1::WatchRequest* request) override;

  grpc::ServerWriteReactor<v1::PieceChunk>* FetchPiece(
      grpc::CallbackServerContext* context,
      const v1::FetchPieceRequest* request) override;

 private:
  // The chunks the mode sends for `piece`, the `n`th request, given the
  // honest bytes and proof.
  std::vector<v1::PieceChunk> Spoil(ReleasePieceIndex piece, uint64_t n,
                                    HonestPiece honest) const;

  const HostileRelease& release_;
  const HostileOptions options_;
  std::atomic<uint64_t> watches_{0};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> invalid_{0};
};

}  // namespace shoal::agent::hostile
