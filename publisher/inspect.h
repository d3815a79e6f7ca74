#pragma once

// `shoal-publish inspect`: a manifest for humans, or as one JSON object.

#include <string>

#include "common/manifest.h"

namespace shoal::publisher {

// Several lines: name, version, release id, sequence, times, piece size,
// signers and a file table. `verified` says whether the signatures were
// checked against a trust policy, and is shown.
std::string InspectText(const Manifest& manifest, bool verified);

// One line of JSON: name, version, sequence, release_id, piece_size, created
// and expires (RFC 3339), total_size, signatures [{key_id}], files [{path,
// size, mode, pieces_root (hex, "" for an empty file)}], verified.
std::string InspectJson(const Manifest& manifest, bool verified);

}  // namespace shoal::publisher
