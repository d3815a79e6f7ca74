#pragma once

// What an agent serves to other agents: verified pieces with their proofs and
// news of pieces as they are verified. Implemented by the agent's release
// registry; read by the peer service (agent/peer_service.h) and by fakes.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/piece_buffer.h"
#include "common/bitfield.h"
#include "common/merkle.h"
#include "shoal/v1/peer.pb.h"

namespace shoal::agent {

// Ends an upload the source admitted (agent/upload_gate.h) when destroyed,
// whether the piece was sent or not.
class UploadTicket {
 public:
  virtual ~UploadTicket() = default;
};

// A verified piece read back from storage, and its proof.
struct ServedPiece {
  PieceBuffer data;
  MerkleProof proof;
  // Held by whoever sends the piece until the upload ends; may be null.
  std::unique_ptr<UploadTicket> ticket;
};

// Receives pieces as the agent verifies them. Calls may come from any thread
// and must not block.
class HaveListener {
 public:
  virtual ~HaveListener() = default;
  virtual void OnHave(ReleasePieceIndex piece) = 0;
};

// Ends a subscription when destroyed; no OnHave runs after that returns.
class HaveSubscription {
 public:
  virtual ~HaveSubscription() = default;
};

// The bitfield at the moment of subscribing, and the subscription to every
// piece verified after it.
struct Subscription {
  Bitfield bitfield;
  std::unique_ptr<HaveSubscription> handle;
};

// Thread-safe.
class PieceSource {
 public:
  virtual ~PieceSource() = default;

  // A piece the agent has verified and stored. NOT_FOUND for an unknown
  // release or a piece not held; other errors from storage.
  virtual absl::StatusOr<ServedPiece> ReadPiece(const std::string& release_id,
                                                ReleasePieceIndex piece) = 0;

  // The current bitfield of the release and, atomically with it, a
  // subscription to pieces verified afterwards (`listener` must outlive the
  // handle). NOT_FOUND for an unknown release.
  virtual absl::StatusOr<Subscription> Subscribe(const std::string& release_id,
                                                 HaveListener& listener) = 0;

  // Members of the release's swarm this agent knows, same datacenter as
  // `asker` first, at most `limit`, never the asker itself. Records `asker`
  // as a member.
  virtual std::vector<v1::PeerAddress> ExchangePeers(
      const std::string& release_id, const v1::PeerAddress& asker,
      size_t limit) = 0;
};

}  // namespace shoal::agent
