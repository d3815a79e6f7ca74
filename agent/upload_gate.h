#pragma once

// The serving side of the swarm policy of agent/scheduler.h: which piece
// requests an agent accepts.

#include <cstdint>
#include <vector>

#include "common/bitfield.h"

namespace shoal::agent {

// Admission of piece uploads for one release on one agent. At most `slots`
// uploads at once; and, with `distinct_first`, while the agent holds pieces
// it has never started sending, it refuses a piece it is sending to someone
// else right now, so that the asker (whose scheduler treats the refusal as
// busy) picks another piece. A lone seed thus spends its upload on pieces
// nobody holds yet instead of on two copies of one: in the swarm simulator
// it sends every piece once before any twice. Never refuses for long: a
// piece is refused only while another copy of it is on its way.
// Thread-compatible.
class UploadGate {
 public:
  UploadGate(uint32_t num_pieces, int slots, bool distinct_first);

  // Whether to start sending `piece` now (false: answer RESOURCE_EXHAUSTED).
  // `held` is what the agent has verified and serves; it must hold `piece`.
  // Every true must be followed by one Finish.
  bool TryStart(ReleasePieceIndex piece, const Bitfield& held);
  // The upload of `piece` ended, sent or not.
  void Finish(ReleasePieceIndex piece);

  int active() const { return active_; }

 private:
  const int slots_;
  const bool distinct_first_;
  int active_ = 0;
  std::vector<uint16_t> sending_;  // uploads in progress, by piece
  Bitfield started_;               // pieces ever started
  uint32_t started_count_ = 0;
};

}  // namespace shoal::agent
