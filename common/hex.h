#pragma once

// Lower-case hexadecimal encoding of byte strings.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal {

std::string HexEncode(absl::string_view bytes);

// INVALID_ARGUMENT unless `hex` has even length and only [0-9a-fA-F].
absl::StatusOr<std::string> HexDecode(absl::string_view hex);

}  // namespace shoal
