#pragma once

// Where things live in an origin tree, relative to its root (a directory the
// publisher writes, or the base URL of an HTTP server or CDN serving it):
//
//   releases/<release id>.manifest   SignedManifest bytes; immutable
//   names/<name>/<version>           a release id and a newline; the one
//                                    mutable object, written last
//   pieces/<hh>/<piece hash hex>     one piece's bytes; content-addressed,
//                                    immutable, shared between releases
//   layers/<hh>/<pieces root hex>    a file's piece hashes, 32 bytes each, in
//                                    order; content-addressed by the root they
//                                    prove into, immutable
//
// <hh> is the first two hex digits of the object's name.

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/sha256.h"

namespace shoal {

inline std::string PieceObjectPath(const Digest& piece_hash) {
  std::string hex = DigestToHex(piece_hash);
  return absl::StrCat("pieces/", hex.substr(0, 2), "/", hex);
}

inline std::string LayerObjectPath(const Digest& pieces_root) {
  std::string hex = DigestToHex(pieces_root);
  return absl::StrCat("layers/", hex.substr(0, 2), "/", hex);
}

inline std::string ManifestObjectPath(absl::string_view release_id) {
  return absl::StrCat("releases/", release_id, ".manifest");
}

inline std::string NamePointerPath(absl::string_view name,
                                   absl::string_view version) {
  return absl::StrCat("names/", name, "/", version);
}

}  // namespace shoal
