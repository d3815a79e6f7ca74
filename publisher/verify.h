#pragma once

// `shoal-publish verify`: checks a release in an origin tree end to end: the
// name pointer, the manifest's signatures against a trust policy, its expiry,
// each file's layer object against the signed pieces root, and every piece
// object against its piece hash.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/manifest.h"
#include "common/trust.h"

namespace shoal::publisher {

// Resolves "NAME@VERSION" through names/ or takes a 64-digit release id.
// NOT_FOUND naming what was looked for.
absl::StatusOr<std::string> ResolveReleaseId(const std::string& origin_dir,
                                             const std::string& ref);

// Reads releases/<id>.manifest and verifies it (signatures, expiry, and that
// the body hashes to `release_id`).
absl::StatusOr<Manifest> LoadManifest(const std::string& origin_dir,
                                      const std::string& release_id,
                                      const TrustPolicy& trust,
                                      absl::Time now);

struct VerifyReport {
  Manifest manifest;
  uint64_t pieces_checked = 0;
  uint64_t bytes_checked = 0;
};

// OK with a report when everything is intact. Otherwise DATA_LOSS listing the
// broken files and pieces (up to a bound, with a count of the rest), or the
// manifest's own error.
absl::StatusOr<VerifyReport> VerifyRelease(const std::string& origin_dir,
                                           const std::string& ref,
                                           const TrustPolicy& trust,
                                           const Clock& clock, int threads);

}  // namespace shoal::publisher
