#pragma once

// `shoal-publish register`: hands a release's signed manifest and origin URLs
// to trackers (one per datacenter, or the replicas of one), which verify it
// against their own trust files before accepting it.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/grpc_security.h"

namespace shoal::publisher {

struct RegisterOptions {
  std::string origin_dir;               // where the manifest is read from
  std::string release;                  // NAME@VERSION or release id
  std::vector<std::string> origin_urls; // base URLs agents fetch the tree from
  std::vector<std::string> trackers;    // HOST:PORT each
  absl::Duration deadline = absl::Seconds(10);
};

struct RegisterOutcome {
  std::string tracker;
  absl::Status status;
  bool created = false;
};

// Sends the registration to every tracker (one failing does not stop the
// others). INVALID_ARGUMENT/NOT_FOUND before any call for bad options or an
// unknown release; otherwise one outcome per tracker, in order.
absl::StatusOr<std::vector<RegisterOutcome>> RegisterRelease(
    const RegisterOptions& options, const GrpcSecurity& security,
    std::string* release_id);

}  // namespace shoal::publisher
