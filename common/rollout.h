#pragma once

// Which agents a channel's rollout percentage includes. Every agent decides
// for itself from the channel name and its own peer id, so the tracker never
// lists agents, and raising a percentage (10 -> 50 -> 100) only ever adds
// agents: an agent's bucket never changes.

#include <cstdint>

#include "absl/strings/string_view.h"

namespace shoal {

// The agent's bucket in the channel, 0..99: the first 8 bytes of
// SHA-256(channel + "/" + peer_id) read as a big-endian integer, modulo 100.
// Thread-safe.
uint32_t RolloutBucket(absl::string_view channel, absl::string_view peer_id);

// True iff RolloutBucket(channel, peer_id) < percent: never for 0, always
// for 100 and above. Thread-safe.
bool InRollout(absl::string_view channel, absl::string_view peer_id,
               uint32_t percent);

}  // namespace shoal
