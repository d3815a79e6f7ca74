#include "agent/trusted_manifests.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace shoal::agent {

TrustedManifests::TrustedManifests(std::string dir) : dir_(std::move(dir)) {}

absl::Status TrustedManifests::CheckAndRecord(const Manifest& manifest) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(MakeDirs(dir_));
  // Names and versions are validated labels: safe as file names.
  std::string path = absl::StrCat(dir_, "/", manifest.display_name());
  uint64_t sequence = manifest.body().sequence();
  absl::StatusOr<std::string> record = ReadFile(path, 1024);
  if (record.ok()) {
    std::vector<std::string> parts = absl::StrSplit(*record, ' ');
    uint64_t trusted = 0;
    if (parts.empty() || !absl::SimpleAtoi(parts[0], &trusted)) {
      return absl::DataLossError(absl::StrCat(path, " is not a trust record"));
    }
    if (sequence < trusted) {
      return absl::FailedPreconditionError(absl::StrCat(
          "replayed manifest: ", manifest.display_name(), " sequence ", sequence,
          " is older than the trusted sequence ", trusted));
    }
    if (sequence == trusted) return absl::OkStatus();
  } else if (!absl::IsNotFound(record.status())) {
    return record.status();
  }
  return WriteFileAtomically(
      path, absl::StrCat(sequence, " ", manifest.release_id(), "\n"), 0644);
}

}  // namespace shoal::agent
