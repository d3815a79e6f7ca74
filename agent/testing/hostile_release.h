#pragma once

// A published release as the hostile test peer (hostile_peer.cc) holds it:
// read from an origin tree that `shoal-publish create` wrote, with every
// piece's honest bytes and proof at hand, so that the peer can then spoil
// them in the way its mode asks.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/bitfield.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/release_pieces.h"

namespace shoal::agent::hostile {

// A piece as the publisher made it: its bytes and its Merkle proof.
struct HonestPiece {
  std::string data;
  MerkleProof proof;
};

// Immutable after Load(); thread-safe.
class HostileRelease {
 public:
  // Reads the release `release` (a release id, or NAME@VERSION resolved
  // through names/) from the origin tree in `origin_dir`: its manifest and
  // the piece layer of each file, each layer checked against the pieces
  // root in the manifest. The manifest's signatures are not checked: this
  // peer is the attacker, and the agents it talks to check them. Errors:
  // NOT_FOUND for a missing object, DATA_LOSS for a layer that does not
  // prove into its root or a manifest whose id is not `release`,
  // INVALID_ARGUMENT for a malformed `release`.
  static absl::StatusOr<std::unique_ptr<HostileRelease>> Load(
      const std::string& origin_dir, const std::string& release);

  const std::string& release_id() const { return manifest_.release_id(); }
  std::string display_name() const { return manifest_.display_name(); }
  uint32_t total_pieces() const { return pieces_.total_pieces(); }
  // Every piece of the release set.
  Bitfield FullBitfield() const;

  // The piece's honest bytes (read from the origin tree) and proof.
  // NOT_FOUND for a piece out of range or a missing piece object.
  absl::StatusOr<HonestPiece> Read(ReleasePieceIndex piece) const;

  // The first piece after `piece` (wrapping around) of the same length and
  // proof length, so that it passes every size check made before the
  // Merkle proof; nullopt when no other piece has that shape.
  std::optional<ReleasePieceIndex> Substitute(ReleasePieceIndex piece) const;

 private:
  HostileRelease(std::string origin_dir, Manifest manifest,
                 ReleasePieces pieces, std::vector<std::optional<PieceTree>> trees)
      : origin_dir_(std::move(origin_dir)),
        manifest_(std::move(manifest)),
        pieces_(std::move(pieces)),
        trees_(std::move(trees)) {}

  uint64_t LengthOf(ReleasePieceIndex piece) const;
  uint32_t ProofLengthOf(ReleasePieceIndex piece) const;

  const std::string origin_dir_;
  const Manifest manifest_;
  const ReleasePieces pieces_;
  // One per file of the manifest; empty for an empty file.
  const std::vector<std::optional<PieceTree>> trees_;
};

}  // namespace shoal::agent::hostile
