#include "common/release_pieces.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace shoal {
namespace {

constexpr uint64_t kMaxPieces = std::numeric_limits<uint32_t>::max();

// ceil(size / piece_size): a validated manifest has a power-of-two piece
// size and fewer than 2^32 pieces per file.
uint64_t PiecesOf(const v1::FileEntry& file, uint64_t piece_size) {
  return file.size() / piece_size + (file.size() % piece_size != 0);
}

}  // namespace

uint32_t TotalPieces(const Manifest& manifest) {
  const uint64_t piece_size = manifest.body().piece_size();
  uint64_t total = 0;
  for (const v1::FileEntry& file : manifest.body().files()) {
    total += PiecesOf(file, piece_size);
    if (total > kMaxPieces) return static_cast<uint32_t>(kMaxPieces);
  }
  return static_cast<uint32_t>(total);
}

absl::StatusOr<ReleasePieces> ReleasePieces::Create(const Manifest& manifest) {
  const uint64_t piece_size = manifest.body().piece_size();
  std::vector<File> files;
  files.reserve(manifest.body().files_size());
  uint64_t total = 0;
  for (const v1::FileEntry& entry : manifest.body().files()) {
    absl::StatusOr<FileGeometry> geometry =
        FileGeometry::Create(entry.size(), piece_size);
    // Verified manifests always give a geometry; Create is still honest
    // about one that does not.
    if (!geometry.ok()) return geometry.status();
    files.push_back({*geometry, static_cast<uint32_t>(total)});
    total += geometry->num_pieces();
    if (total > kMaxPieces) {
      return absl::OutOfRangeError(
          absl::StrCat(manifest.display_name(), " has more than ", kMaxPieces,
                       " pieces; publish it with a larger piece size"));
    }
  }
  return ReleasePieces(std::move(files), static_cast<uint32_t>(total));
}

const FileGeometry& ReleasePieces::geometry(FileIndex file) const {
  CHECK_LT(file.value(), files_.size());
  return files_[file.value()].geometry;
}

ReleasePieceIndex ReleasePieces::first_piece(FileIndex file) const {
  CHECK_LT(file.value(), files_.size());
  return ReleasePieceIndex(files_[file.value()].first_piece);
}

FilePiece ReleasePieces::Locate(ReleasePieceIndex piece) const {
  CHECK_LT(piece.value(), total_pieces_);
  // The last file whose first piece is at or before `piece`. It has pieces:
  // an empty file shares its first_piece with the file after it, or is last
  // with first_piece == total_pieces_.
  auto after = std::upper_bound(
      files_.begin(), files_.end(), piece.value(),
      [](uint32_t p, const File& f) { return p < f.first_piece; });
  auto it = std::prev(after);
  CHECK_GT(it->geometry.num_pieces(), 0u);
  return {FileIndex(static_cast<uint32_t>(it - files_.begin())),
          PieceIndex(piece.value() - it->first_piece)};
}

ReleasePieceIndex ReleasePieces::ToRelease(FilePiece piece) const {
  CHECK_LT(piece.file.value(), files_.size());
  const File& file = files_[piece.file.value()];
  CHECK_LT(piece.piece.value(), file.geometry.num_pieces());
  return ReleasePieceIndex(file.first_piece + piece.piece.value());
}

}  // namespace shoal
