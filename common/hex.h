#pragma once

// Lower-case hexadecimal encoding of byte strings.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

std::string HexEncode(absl::string_view bytes);

// INVALID_ARGUMENT unless `hex` has even length and only [0-9a-fA-F].
absl::StatusOr<std::string> HexDecode(absl::string_view hex);

// True when `s` is exactly `digits` lower-case hex digits: the form of release
// ids (64, the hex SHA-256 of a manifest body) and peer ids (32).
bool IsLowerHex(absl::string_view s, size_t digits);
inline bool IsReleaseId(absl::string_view s) { return IsLowerHex(s, 64); }
inline bool IsPeerId(absl::string_view s) { return IsLowerHex(s, 32); }

}  // namespace shoal
