#pragma once

// Which pieces of a release an agent holds, one bit per piece, in the wire
// form agents announce and exchange: bit i is (byte i/8) & (0x80 >> i%8), as
// in BitTorrent, and the spare bits of the last byte are zero.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/types.h"

namespace shoal {

// Index of a piece within a release: the pieces of all files numbered in
// manifest order (see common/release_pieces.h). Not a PieceIndex, which
// counts within one file.
using ReleasePieceIndex = StrongInt<struct ReleasePieceIndexTag, uint32_t>;

// A fixed-size set of pieces. Copyable value; thread-compatible.
class Bitfield {
 public:
  // Bytes that hold `num_pieces` bits: ceil(num_pieces / 8).
  static size_t ByteLength(uint32_t num_pieces);

  // An empty set (no piece held) of `num_pieces` pieces.
  explicit Bitfield(uint32_t num_pieces);

  // Parses the wire form. INVALID_ARGUMENT when `bytes` is not exactly
  // ByteLength(num_pieces) long ("bitfield is 3 bytes; 17 pieces need 3")
  // or a spare bit past the last piece is set.
  static absl::StatusOr<Bitfield> FromBytes(absl::string_view bytes,
                                            uint32_t num_pieces);

  uint32_t num_pieces() const { return num_pieces_; }

  // CHECK-fail unless piece < num_pieces().
  bool Get(ReleasePieceIndex piece) const;
  void Set(ReleasePieceIndex piece, bool value = true);

  // Pieces held.
  uint32_t Count() const;
  // True when every piece is held (also for a release of no pieces).
  bool complete() const { return Count() == num_pieces_; }

  // The wire form: ByteLength(num_pieces()) bytes.
  const std::string& bytes() const { return bytes_; }

  friend bool operator==(const Bitfield& a, const Bitfield& b) {
    return a.num_pieces_ == b.num_pieces_ && a.bytes_ == b.bytes_;
  }
  friend bool operator!=(const Bitfield& a, const Bitfield& b) {
    return !(a == b);
  }

 private:
  uint32_t num_pieces_;
  std::string bytes_;
};

// Whether the wire-form bitfield `bytes` has `piece` set; false past its
// end.
bool HasPiece(absl::string_view bytes, ReleasePieceIndex piece);

// Pieces set in the wire-form bitfield `bytes`, of any length.
uint32_t CountPieces(absl::string_view bytes);

// True when the wire-form bitfield `holder` has a piece set that `wanter`
// lacks. Bitfields of different lengths compare as if the shorter were
// padded with zero bytes.
bool HasPieceMissingFrom(absl::string_view holder, absl::string_view wanter);

}  // namespace shoal
