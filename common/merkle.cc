#include "common/merkle.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "absl/numeric/bits.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal {
namespace {

// The tallest tree FileGeometry admits: pieces of 2^63 bytes hold 2^49
// leaves, and at most 2^32 - 1 pieces add 32 levels above them.
constexpr int kMaxHeight = 63 - 14 + 32;

// log2 of the smallest power of two >= n; 0 for n <= 1.
int CeilLog2(uint64_t n) { return n <= 1 ? 0 : absl::bit_width(n - 1); }

uint64_t CeilDiv(uint64_t n, uint64_t d) { return n / d + (n % d != 0); }

// The root of a subtree of 2^height zero leaves. Computed once per process.
const Digest& ZeroHash(int height) {
  static const std::array<Digest, kMaxHeight + 1> kTable = [] {
    std::array<Digest, kMaxHeight + 1> table;
    table[0].fill(0);
    for (int h = 1; h <= kMaxHeight; ++h) {
      table[h] = Sha256Pair(table[h - 1], table[h - 1]);
    }
    return table;
  }();
  CHECK(height >= 0 && height <= kMaxHeight) << "tree height " << height;
  return kTable[height];
}

Digest HashPair(Sha256Hasher& hasher, const Digest& left, const Digest& right) {
  hasher.Update(DigestBytes(left));
  hasher.Update(DigestBytes(right));
  return hasher.Finish();
}

// The parent of nodes 2j and 2j+1 of `level`, a level at `height` whose nodes
// past level.size() are padding.
Digest Parent(Sha256Hasher& hasher, absl::Span<const Digest> level, size_t j,
              int height) {
  const Digest& right =
      2 * j + 1 < level.size() ? level[2 * j + 1] : ZeroHash(height);
  return HashPair(hasher, level[2 * j], right);
}

// The node `levels` levels above `nodes`, the leading (non-padding) nodes of
// a level at `height`; the tree above them must have a single root there.
Digest ReduceToRoot(Sha256Hasher& hasher, std::vector<Digest> nodes, int height,
                    int levels) {
  size_t count = nodes.size();
  for (int k = 0; k < levels; ++k) {
    const absl::Span<const Digest> below(nodes.data(), count);
    count = (count + 1) / 2;
    // Safe in place: parent j is stored after its children 2j and 2j+1 are
    // read, and later parents read only nodes past 2j+1.
    for (size_t j = 0; j < count; ++j) {
      nodes[j] = Parent(hasher, below, j, height + k);
    }
  }
  CHECK_EQ(count, 1u) << "not enough levels to reach a single root";
  return nodes[0];
}

absl::Status CheckIndex(const FileGeometry& g, PieceIndex i) {
  if (i.value() >= g.num_pieces()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece index ", i.value(), " is out of range for a file of ",
        g.num_pieces(), " pieces"));
  }
  return absl::OkStatus();
}

absl::Status CheckPieceData(const FileGeometry& g, PieceIndex i,
                            uint64_t size) {
  RETURN_IF_ERROR(CheckIndex(g, i));
  if (size != g.piece_length(i)) {
    return absl::InvalidArgumentError(absl::StrCat("piece ", i.value(), " has ",
                                                   size, " bytes, expected ",
                                                   g.piece_length(i)));
  }
  return absl::OkStatus();
}

absl::Status CheckProofLength(const FileGeometry& g, PieceIndex i,
                              size_t size) {
  if (size != g.proof_length()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Merkle proof for piece ", i.value(), " has ", size,
                     " hashes, expected ", g.proof_length()));
  }
  return absl::OkStatus();
}

absl::Status CheckPieceLayer(const FileGeometry& g, size_t size) {
  if (g.num_pieces() == 0) {
    return absl::InvalidArgumentError("an empty file has no Merkle tree");
  }
  if (size != g.num_pieces()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "piece layer has ", size, " hashes, expected ", g.num_pieces()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FileGeometry> FileGeometry::Create(uint64_t file_size,
                                                  uint64_t piece_size) {
  if (!absl::has_single_bit(piece_size) || piece_size < kBlockSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("piece size ", piece_size,
                     " is not a power of two of at least ", kBlockSize));
  }
  const uint64_t num_pieces = CeilDiv(file_size, piece_size);
  if (num_pieces > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a file of ", file_size, " bytes has ", num_pieces,
                     " pieces of ", piece_size, " bytes, more than ",
                     std::numeric_limits<uint32_t>::max()));
  }
  // A file of at most one piece is one subtree, only as tall as its blocks
  // need; otherwise every piece spans piece_size / kBlockSize leaves.
  const int piece_height = num_pieces > 1
                               ? CeilLog2(piece_size / kBlockSize)
                               : CeilLog2(CeilDiv(file_size, kBlockSize));
  return FileGeometry(file_size, piece_size, static_cast<uint32_t>(num_pieces),
                      piece_height, CeilLog2(num_pieces));
}

uint64_t FileGeometry::piece_offset(PieceIndex i) const {
  CHECK_LT(i.value(), num_pieces_) << "piece index out of range";
  return uint64_t{i.value()} * piece_size_;
}

uint64_t FileGeometry::piece_length(PieceIndex i) const {
  return std::min(piece_size_, file_size_ - piece_offset(i));
}

absl::StatusOr<Digest> PieceHash(const FileGeometry& g, PieceIndex i,
                                 absl::string_view data) {
  RETURN_IF_ERROR(CheckPieceData(g, i, data.size()));
  // One allocation per piece: the leaves, reduced in place afterwards.
  std::vector<Digest> leaves(CeilDiv(data.size(), kBlockSize));
  Sha256Hasher hasher;
  for (size_t b = 0; b < leaves.size(); ++b) {
    hasher.Update(data.substr(b * kBlockSize, kBlockSize));
    leaves[b] = hasher.Finish();
  }
  return ReduceToRoot(hasher, std::move(leaves), /*height=*/0,
                      g.piece_height());
}

absl::StatusOr<Digest> PiecesRoot(const FileGeometry& g,
                                  absl::Span<const Digest> piece_layer) {
  RETURN_IF_ERROR(CheckPieceLayer(g, piece_layer.size()));
  Sha256Hasher hasher;
  return ReduceToRoot(
      hasher, std::vector<Digest>(piece_layer.begin(), piece_layer.end()),
      g.piece_height(), g.proof_length());
}

absl::StatusOr<PieceTree> PieceTree::Create(const FileGeometry& g,
                                            std::vector<Digest> piece_layer) {
  RETURN_IF_ERROR(CheckPieceLayer(g, piece_layer.size()));
  std::vector<std::vector<Digest>> levels;
  levels.reserve(g.proof_length() + 1);
  levels.push_back(std::move(piece_layer));
  Sha256Hasher hasher;
  for (uint32_t k = 0; k < g.proof_length(); ++k) {
    const std::vector<Digest>& below = levels.back();
    std::vector<Digest> above((below.size() + 1) / 2);
    for (size_t j = 0; j < above.size(); ++j) {
      above[j] = Parent(hasher, below, j, g.piece_height() + k);
    }
    levels.push_back(std::move(above));
  }
  return PieceTree(g, std::move(levels));
}

const Digest& PieceTree::piece_hash(PieceIndex i) const {
  CHECK_LT(i.value(), geometry_.num_pieces()) << "piece index out of range";
  return levels_.front()[i.value()];
}

absl::StatusOr<MerkleProof> PieceTree::Proof(PieceIndex i) const {
  RETURN_IF_ERROR(CheckIndex(geometry_, i));
  MerkleProof proof;
  proof.reserve(geometry_.proof_length());
  uint64_t index = i.value();
  for (size_t k = 0; k + 1 < levels_.size(); ++k) {
    const uint64_t sibling = index ^ 1;
    proof.push_back(sibling < levels_[k].size()
                        ? levels_[k][sibling]
                        : ZeroHash(geometry_.piece_height() + k));
    index >>= 1;
  }
  return proof;
}

absl::Status VerifyPiece(const FileGeometry& g, const Digest& root,
                         PieceIndex i, absl::string_view data,
                         const MerkleProof& proof) {
  // Reject a malformed proof before spending time hashing the data.
  RETURN_IF_ERROR(CheckIndex(g, i));
  RETURN_IF_ERROR(CheckProofLength(g, i, proof.size()));
  ASSIGN_OR_RETURN(const Digest piece_hash, PieceHash(g, i, data));
  return VerifyPieceHash(g, root, i, piece_hash, proof);
}

absl::Status VerifyPieceHash(const FileGeometry& g, const Digest& root,
                             PieceIndex i, const Digest& piece_hash,
                             const MerkleProof& proof) {
  RETURN_IF_ERROR(CheckIndex(g, i));
  RETURN_IF_ERROR(CheckProofLength(g, i, proof.size()));
  Sha256Hasher hasher;
  Digest node = piece_hash;
  uint32_t index = i.value();
  for (const Digest& uncle : proof) {
    node = (index & 1) != 0 ? HashPair(hasher, uncle, node)
                            : HashPair(hasher, node, uncle);
    index >>= 1;
  }
  if (node != root) {
    return absl::DataLossError(
        absl::StrCat("piece ", i.value(),
                     " failed verification: its hash and Merkle proof do not "
                     "match the signed root"));
  }
  return absl::OkStatus();
}

}  // namespace shoal
