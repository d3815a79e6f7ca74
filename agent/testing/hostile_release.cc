#include "agent/testing/hostile_release.h"

#include <cstring>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/origin_layout.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace shoal::agent::hostile {
namespace {

constexpr uint64_t kMaxManifestBytes = 64 << 20;

// `release` itself when it is a release id, else the id the name pointer
// names/<name>/<version> holds.
absl::StatusOr<std::string> ResolveReleaseId(const std::string& origin_dir,
                                             const std::string& release) {
  if (IsReleaseId(release)) return release;
  std::vector<std::string> parts =
      absl::StrSplit(release, absl::MaxSplits('@', 1));
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--release=", release, " is neither a release id nor NAME@VERSION"));
  }
  const std::string path =
      absl::StrCat(origin_dir, "/", NamePointerPath(parts[0], parts[1]));
  ASSIGN_OR_RETURN(std::string pointer, ReadFile(path, 1024));
  std::string id(absl::StripAsciiWhitespace(pointer));
  if (!IsReleaseId(id)) {
    return absl::DataLossError(absl::StrCat(path, " holds no release id"));
  }
  return id;
}

// The tree of one non-empty file, from its layer object.
absl::StatusOr<PieceTree> LoadTree(const std::string& origin_dir,
                                   const FileGeometry& geometry,
                                   const Digest& root) {
  const std::string path =
      absl::StrCat(origin_dir, "/", LayerObjectPath(root));
  const uint64_t size = uint64_t{geometry.num_pieces()} * kDigestSize;
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, size));
  if (bytes.size() != size) {
    return absl::DataLossError(absl::StrCat(path, " is ", bytes.size(),
                                            " bytes; expected ", size));
  }
  std::vector<Digest> layer(geometry.num_pieces());
  for (size_t i = 0; i < layer.size(); ++i) {
    std::memcpy(layer[i].data(), bytes.data() + i * kDigestSize, kDigestSize);
  }
  ASSIGN_OR_RETURN(PieceTree tree, PieceTree::Create(geometry, std::move(layer)));
  if (tree.root() != root) {
    return absl::DataLossError(
        absl::StrCat(path, " does not prove into its pieces root"));
  }
  return tree;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HostileRelease>> HostileRelease::Load(
    const std::string& origin_dir, const std::string& release) {
  ASSIGN_OR_RETURN(std::string id, ResolveReleaseId(origin_dir, release));
  ASSIGN_OR_RETURN(std::string bytes,
                   ReadFile(absl::StrCat(origin_dir, "/", ManifestObjectPath(id)),
                            kMaxManifestBytes));
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::ParseUnverified(bytes));
  if (manifest.release_id() != id) {
    return absl::DataLossError(absl::StrCat("the manifest of ", id,
                                            " hashes to ", manifest.release_id()));
  }
  ASSIGN_OR_RETURN(ReleasePieces pieces, ReleasePieces::Create(manifest));
  std::vector<std::optional<PieceTree>> trees;
  for (uint32_t f = 0; f < pieces.num_files(); ++f) {
    const FileGeometry& geometry = pieces.geometry(FileIndex(f));
    if (geometry.num_pieces() == 0) {
      trees.emplace_back();
      continue;
    }
    ASSIGN_OR_RETURN(Digest root,
                     DigestFromBytes(manifest.body().files(f).pieces_root()));
    ASSIGN_OR_RETURN(PieceTree tree, LoadTree(origin_dir, geometry, root));
    trees.emplace_back(std::move(tree));
  }
  return absl::WrapUnique(new HostileRelease(origin_dir, std::move(manifest),
                                             std::move(pieces),
                                             std::move(trees)));
}

Bitfield HostileRelease::FullBitfield() const {
  Bitfield all(total_pieces());
  for (uint32_t i = 0; i < total_pieces(); ++i) all.Set(ReleasePieceIndex(i));
  return all;
}

absl::StatusOr<HonestPiece> HostileRelease::Read(ReleasePieceIndex piece) const {
  if (piece.value() >= total_pieces()) {
    return absl::NotFoundError(absl::StrCat("piece ", piece.value(),
                                            " is past the end of the release"));
  }
  const FilePiece where = pieces_.Locate(piece);
  const PieceTree& tree = *trees_[where.file.value()];
  const uint64_t length = LengthOf(piece);
  const std::string path = absl::StrCat(
      origin_dir_, "/", PieceObjectPath(tree.piece_hash(where.piece)));
  ASSIGN_OR_RETURN(std::string data, ReadFile(path, length));
  if (data.size() != length) {
    return absl::DataLossError(absl::StrCat(path, " is ", data.size(),
                                            " bytes; expected ", length));
  }
  ASSIGN_OR_RETURN(MerkleProof proof, tree.Proof(where.piece));
  return HonestPiece{std::move(data), std::move(proof)};
}

std::optional<ReleasePieceIndex> HostileRelease::Substitute(
    ReleasePieceIndex piece) const {
  const uint32_t total = total_pieces();
  if (piece.value() >= total) return std::nullopt;
  for (uint32_t step = 1; step < total; ++step) {
    const ReleasePieceIndex other((piece.value() + step) % total);
    if (LengthOf(other) == LengthOf(piece) &&
        ProofLengthOf(other) == ProofLengthOf(piece)) {
      return other;
    }
  }
  return std::nullopt;
}

uint64_t HostileRelease::LengthOf(ReleasePieceIndex piece) const {
  const FilePiece where = pieces_.Locate(piece);
  return pieces_.geometry(where.file).piece_length(where.piece);
}

uint32_t HostileRelease::ProofLengthOf(ReleasePieceIndex piece) const {
  return pieces_.geometry(pieces_.Locate(piece).file).proof_length();
}

}  // namespace shoal::agent::hostile
