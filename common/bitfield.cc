#include "common/bitfield.h"

#include <bitset>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace shoal {
namespace {

uint8_t Mask(uint32_t piece) { return 0x80 >> (piece % 8); }

}  // namespace

size_t Bitfield::ByteLength(uint32_t num_pieces) {
  return (static_cast<size_t>(num_pieces) + 7) / 8;
}

Bitfield::Bitfield(uint32_t num_pieces)
    : num_pieces_(num_pieces), bytes_(ByteLength(num_pieces), '\0') {}

absl::StatusOr<Bitfield> Bitfield::FromBytes(absl::string_view bytes,
                                             uint32_t num_pieces) {
  const size_t want = ByteLength(num_pieces);
  if (bytes.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("bitfield is ", bytes.size(),
                                                   " bytes; ", num_pieces,
                                                   " pieces need ", want));
  }
  const uint32_t spare = static_cast<uint32_t>(want * 8 - num_pieces);
  if (spare > 0) {
    // The low `spare` bits of the last byte lie past the last piece.
    const uint8_t spare_mask = (1u << spare) - 1;
    if (static_cast<uint8_t>(bytes.back()) & spare_mask) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bitfield sets bits past its last piece (", num_pieces,
          " pieces); the spare bits of the last byte must be zero"));
    }
  }
  Bitfield result(num_pieces);
  result.bytes_.assign(bytes.data(), bytes.size());
  return result;
}

bool Bitfield::Get(ReleasePieceIndex piece) const {
  CHECK_LT(piece.value(), num_pieces_);
  return HasPiece(bytes_, piece);
}

void Bitfield::Set(ReleasePieceIndex piece, bool value) {
  CHECK_LT(piece.value(), num_pieces_);
  char& byte = bytes_[piece.value() / 8];
  if (value) {
    byte = static_cast<char>(static_cast<uint8_t>(byte) | Mask(piece.value()));
  } else {
    byte = static_cast<char>(static_cast<uint8_t>(byte) & ~Mask(piece.value()));
  }
}

uint32_t Bitfield::Count() const { return CountPieces(bytes_); }

bool HasPiece(absl::string_view bytes, ReleasePieceIndex piece) {
  const size_t byte = piece.value() / 8;
  if (byte >= bytes.size()) return false;
  return static_cast<uint8_t>(bytes[byte]) & Mask(piece.value());
}

uint32_t CountPieces(absl::string_view bytes) {
  // Eight bytes at a time: announces carry bitfields of up to a megabyte.
  uint64_t count = 0;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes.data() + i, sizeof(word));
    count += std::bitset<64>(word).count();
  }
  for (; i < bytes.size(); ++i) {
    count += std::bitset<8>(static_cast<uint8_t>(bytes[i])).count();
  }
  return static_cast<uint32_t>(count);
}

bool HasPieceMissingFrom(absl::string_view holder, absl::string_view wanter) {
  for (size_t i = 0; i < holder.size(); ++i) {
    const uint8_t want = i < wanter.size() ? wanter[i] : 0;
    if (static_cast<uint8_t>(holder[i]) & ~want) return true;
  }
  return false;
}

}  // namespace shoal
