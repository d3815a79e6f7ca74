#pragma once

// What this agent has trusted, kept across restarts: for each name@version,
// the highest sequence it accepted. A manifest of the same name@version with
// a lower sequence is a replayed older signing and is refused (freeze and
// replay protection, as in The Update Framework).
//
// Kept as one small file per name@version under <data_dir>/trusted/,
// written atomically. Thread-safe.

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/manifest.h"

namespace shoal::agent {

class TrustedManifests {
 public:
  // `dir` is created if missing.
  explicit TrustedManifests(std::string dir);

  // FAILED_PRECONDITION "replayed manifest: ..." when a higher sequence of
  // the same name@version was trusted before; then records `manifest`'s
  // sequence if it is new or higher. Other errors from the filesystem.
  absl::Status CheckAndRecord(const Manifest& manifest);

 private:
  const std::string dir_;
  absl::Mutex mu_;
};

}  // namespace shoal::agent
