#pragma once

// The seam between the download engine and the network. The engine and the
// scheduler see only these interfaces; gRPC (agent/grpc_transport.h) is one
// implementation, the in-memory fake used by swarm tests is another.
//
// Pieces are numbered across the release (ReleasePieceIndex). Nothing that
// arrives through a transport is trusted: bitfields may lie, pieces may be
// wrong; the engine verifies every piece against the signed root.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/piece_buffer.h"
#include "common/bitfield.h"
#include "common/merkle.h"
#include "shoal/v1/peer.pb.h"

namespace shoal::agent {

// A piece as it came off the wire: unverified bytes and the sender's proof.
struct ReceivedPiece {
  PieceBuffer data;
  MerkleProof proof;
};

// What one remote agent says about one release. Calls for one session are
// serialized (never concurrent) and happen on transport threads; they must
// not block for long.
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  // The remote's full bitfield, raw bytes as sent (check the length!).
  virtual void OnBitfield(std::string bitfield) = 0;
  // Pieces the remote verified since.
  virtual void OnHave(std::vector<ReleasePieceIndex> pieces) = 0;
  // Other members of the swarm the remote knows (peer exchange).
  virtual void OnPeers(std::vector<v1::PeerAddress> peers) = 0;
  // The availability stream ended (remote gone, refused, or cancelled); no
  // call follows.
  virtual void OnClosed(absl::Status why) = 0;
};

// One connection to one remote agent, for one release. Thread-safe.
// Destroying it cancels its calls; no callback runs after the destructor
// returns.
class PeerSession {
 public:
  using PieceCallback = absl::AnyInvocable<void(absl::StatusOr<ReceivedPiece>)>;

  virtual ~PeerSession() = default;

  // Fetches one piece. `done` runs exactly once, on a transport thread, unless
  // the session is destroyed first. Errors: NOT_FOUND (the remote lacks it),
  // RESOURCE_EXHAUSTED (its upload slots are full), DEADLINE_EXCEEDED
  // (`timeout` passed), DATA_LOSS (more than `expected_length` bytes, chunks
  // out of order, a malformed proof), UNAVAILABLE (connection).
  virtual void FetchPiece(ReleasePieceIndex piece, uint64_t expected_length,
                          absl::Duration timeout, PieceCallback done) = 0;
};

// Makes sessions. Thread-safe.
class Transport {
 public:
  virtual ~Transport() = default;

  // Starts watching `release_id` at `remote`, announcing ourselves as `self`.
  // `listener` must outlive the returned session.
  virtual std::unique_ptr<PeerSession> Connect(const v1::PeerAddress& remote,
                                               const std::string& release_id,
                                               const v1::PeerAddress& self,
                                               SessionListener& listener) = 0;
};

}  // namespace shoal::agent
