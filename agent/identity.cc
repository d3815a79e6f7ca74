#include "agent/identity.h"

#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/status_macros.h"

namespace shoal::agent {
namespace {

}  // namespace

absl::StatusOr<std::string> LoadOrCreatePeerId(const std::string& data_dir) {
  std::string path = absl::StrCat(data_dir, "/peer_id");
  absl::StatusOr<std::string> existing = ReadFile(path, 1024);
  if (existing.ok()) {
    std::string id(absl::StripAsciiWhitespace(*existing));
    if (!IsPeerId(id)) {
      return absl::DataLossError(absl::StrCat(
          path, " does not hold a peer id (32 lower-case hex digits); delete it to "
                "make a new one"));
    }
    return id;
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    return absl::InternalError("the system's random source failed");
  }
  std::string id = HexEncode(absl::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
  RETURN_IF_ERROR(WriteFileAtomically(path, id + "\n", 0644));
  return id;
}

}  // namespace shoal::agent
