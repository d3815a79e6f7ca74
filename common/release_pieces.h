#pragma once

// How the pieces of a release are numbered: the pieces of the manifest's
// files in order, the first file's pieces first (an empty file has none).
// Bitfields, the tracker's lease requests and the agent's piece picking all
// count pieces this way; Merkle trees and proofs count within one file.
//
//   file 0: 3 pieces  -> release pieces 0 1 2
//   file 1: empty     -> (none)
//   file 2: 2 pieces  -> release pieces 3 4

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "common/bitfield.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/types.h"

namespace shoal {

// Pieces in the whole release. A release of more than 2^32 - 1 pieces
// (possible only with tiny pieces and terabytes of data) saturates at
// UINT32_MAX, which every bitfield limit refuses. Thread-safe.
uint32_t TotalPieces(const Manifest& manifest);

// A piece of one file.
struct FilePiece {
  FileIndex file;
  PieceIndex piece;

  friend bool operator==(const FilePiece& a, const FilePiece& b) {
    return a.file == b.file && a.piece == b.piece;
  }
};

// The numbering of one manifest's pieces, with each file's geometry.
// Immutable after Create(); copyable; thread-safe.
class ReleasePieces {
 public:
  // OUT_OF_RANGE when the release has more than 2^32 - 1 pieces.
  static absl::StatusOr<ReleasePieces> Create(const Manifest& manifest);

  uint32_t total_pieces() const { return total_pieces_; }
  uint32_t num_files() const { return static_cast<uint32_t>(files_.size()); }

  // CHECK-fail unless file < num_files().
  const FileGeometry& geometry(FileIndex file) const;
  // The release index of the file's first piece (for an empty file: of the
  // next file's first piece).
  ReleasePieceIndex first_piece(FileIndex file) const;

  // Where release piece `piece` lies. CHECK-fails unless piece <
  // total_pieces(); check untrusted indices against total_pieces() first.
  FilePiece Locate(ReleasePieceIndex piece) const;
  // The release index of a file's piece. CHECK-fails unless the file exists
  // and piece < its num_pieces().
  ReleasePieceIndex ToRelease(FilePiece piece) const;

 private:
  struct File {
    FileGeometry geometry;
    uint32_t first_piece;
  };
  ReleasePieces(std::vector<File> files, uint32_t total_pieces)
      : files_(std::move(files)), total_pieces_(total_pieces) {}

  std::vector<File> files_;
  uint32_t total_pieces_;
};

}  // namespace shoal
