#pragma once

// The agent's peer id: 32 lower-case hex digits made once from the system's
// random source and kept in <data_dir>/peer_id, so that the agent keeps its
// place in rollout percentages and swarms across restarts.

#include <string>

#include "absl/status/statusor.h"

namespace shoal::agent {

// Reads <data_dir>/peer_id, or makes and writes one (atomically) when the file
// does not exist. DATA_LOSS if the file exists but does not hold a peer id.
absl::StatusOr<std::string> LoadOrCreatePeerId(const std::string& data_dir);

}  // namespace shoal::agent
