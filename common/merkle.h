#pragma once

// BitTorrent v2 (BEP 52) Merkle trees: one SHA-256 tree per file.
//
// The leaves are the SHA-256 digests of the file's 16 KiB blocks (the last
// block may be short). Past the end of the file the leaves are 32 zero bytes,
// up to the next power of two. A piece covers a power-of-two run of leaves; its
// hash is the root of that subtree, and the file's root is its "pieces root".
// A piece travels with its proof: the uncle hashes from the piece's node up to
// the root, which lets a receiver check the piece against the signed root
// alone.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/sha256.h"
#include "common/types.h"

namespace shoal {

// Bytes under one leaf of the tree.
inline constexpr uint64_t kBlockSize = 16 * 1024;

// The shape of one file's tree: how the file splits into pieces and how many
// levels lie below and above the piece layer. Copyable value type;
// thread-compatible.
class FileGeometry {
 public:
  // INVALID_ARGUMENT unless `piece_size` is a power of two no smaller than
  // kBlockSize and the file has at most 2^32 - 1 pieces.
  static absl::StatusOr<FileGeometry> Create(uint64_t file_size,
                                             uint64_t piece_size);

  uint64_t file_size() const { return file_size_; }
  uint64_t piece_size() const { return piece_size_; }

  // ceil(file_size / piece_size); 0 for an empty file.
  uint32_t num_pieces() const { return num_pieces_; }

  // Byte offset of piece `i` in the file. CHECK-fails unless i < num_pieces().
  uint64_t piece_offset(PieceIndex i) const;

  // Bytes in piece `i`: piece_size() except for a short last piece.
  // CHECK-fails unless i < num_pieces().
  uint64_t piece_length(PieceIndex i) const;

  // Leaves under one piece hash. With more than one piece this is
  // piece_size / kBlockSize. A file of at most one piece is a single subtree
  // of the next power of two >= ceil(file_size / kBlockSize) leaves (1 for an
  // empty file), so its piece hash is its pieces root.
  uint64_t leaves_per_piece() const { return uint64_t{1} << piece_height_; }

  // log2(leaves_per_piece()): the levels from the leaves up to a piece hash.
  int piece_height() const { return piece_height_; }

  // Uncle hashes in a proof, i.e. levels from the piece layer up to the root:
  // log2 of the next power of two >= num_pieces() (0 for at most one piece).
  uint32_t proof_length() const { return proof_length_; }

 private:
  FileGeometry(uint64_t file_size, uint64_t piece_size, uint32_t num_pieces,
               int piece_height, uint32_t proof_length)
      : file_size_(file_size),
        piece_size_(piece_size),
        num_pieces_(num_pieces),
        piece_height_(piece_height),
        proof_length_(proof_length) {}

  uint64_t file_size_;
  uint64_t piece_size_;
  uint32_t num_pieces_;
  int piece_height_;
  uint32_t proof_length_;
};

// The hash of piece `i`: the root of its subtree of leaves_per_piece() leaves
// over `data`, the piece's bytes. INVALID_ARGUMENT if `i` is out of range or
// data.size() != g.piece_length(i). Thread-safe.
absl::StatusOr<Digest> PieceHash(const FileGeometry& g, PieceIndex i,
                                 absl::string_view data);

// The pieces root computed from the piece layer (every piece hash, in order).
// Past num_pieces(), up to the next power of two, each piece-layer node is the
// root of leaves_per_piece() zero leaves. INVALID_ARGUMENT if the file is
// empty (it has no root) or piece_layer.size() != g.num_pieces().
// Thread-safe.
absl::StatusOr<Digest> PiecesRoot(const FileGeometry& g,
                                  absl::Span<const Digest> piece_layer);

// Uncle hashes from the piece layer up to the root, bottom first; a proof for
// geometry `g` has g.proof_length() entries.
using MerkleProof = std::vector<Digest>;

// The tree above the piece layer of one file, every level kept, so that a
// proof costs O(log n) to assemble. Memory is about twice the piece layer.
// Immutable after Create(); copyable; thread-safe for concurrent readers.
class PieceTree {
 public:
  // INVALID_ARGUMENT under the same conditions as PiecesRoot().
  static absl::StatusOr<PieceTree> Create(const FileGeometry& g,
                                          std::vector<Digest> piece_layer);

  // The pieces root.
  const Digest& root() const { return levels_.back().front(); }

  // The hash of piece `i`. CHECK-fails unless i < geometry().num_pieces().
  const Digest& piece_hash(PieceIndex i) const;

  // The proof for piece `i`. INVALID_ARGUMENT if `i` is out of range.
  absl::StatusOr<MerkleProof> Proof(PieceIndex i) const;

  const FileGeometry& geometry() const { return geometry_; }

 private:
  PieceTree(const FileGeometry& g, std::vector<std::vector<Digest>> levels)
      : geometry_(g), levels_(std::move(levels)) {}

  FileGeometry geometry_;
  // levels_[0] is the piece layer; each next level holds the parents of the
  // one below, without padding; levels_.back() holds only the root.
  std::vector<std::vector<Digest>> levels_;
};

// OK iff `data`, hashed as piece `i` and walked up with `proof`, yields
// `root`. DATA_LOSS, naming the piece, if it does not: the data or the proof
// is not what was signed. INVALID_ARGUMENT if `i` is out of range,
// data.size() != g.piece_length(i), or proof.size() != g.proof_length().
// Thread-safe.
absl::Status VerifyPiece(const FileGeometry& g, const Digest& root,
                         PieceIndex i, absl::string_view data,
                         const MerkleProof& proof);

// As VerifyPiece(), for a piece whose hash is already known.
absl::Status VerifyPieceHash(const FileGeometry& g, const Digest& root,
                             PieceIndex i, const Digest& piece_hash,
                             const MerkleProof& proof);

}  // namespace shoal
