#include "common/rollout.h"

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace shoal {

uint32_t RolloutBucket(absl::string_view channel, absl::string_view peer_id) {
  const Digest digest = Sha256(absl::StrCat(channel, "/", peer_id));
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = value << 8 | digest[i];
  return static_cast<uint32_t>(value % 100);
}

bool InRollout(absl::string_view channel, absl::string_view peer_id,
               uint32_t percent) {
  return RolloutBucket(channel, peer_id) < percent;
}

}  // namespace shoal
