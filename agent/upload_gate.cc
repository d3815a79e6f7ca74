#include "agent/upload_gate.h"

#include "glog/logging.h"

namespace shoal::agent {

UploadGate::UploadGate(uint32_t num_pieces, int slots, bool distinct_first)
    : slots_(slots),
      distinct_first_(distinct_first),
      sending_(num_pieces, 0),
      started_(num_pieces) {}

bool UploadGate::TryStart(ReleasePieceIndex piece, const Bitfield& held) {
  CHECK(held.Get(piece)) << "serving piece " << piece << " it does not hold";
  if (active_ >= slots_) return false;
  uint16_t& sending = sending_[piece.value()];
  if (distinct_first_ && sending > 0 && held.Count() > started_count_) {
    return false;
  }
  if (!started_.Get(piece)) {
    started_.Set(piece);
    ++started_count_;
  }
  ++sending;
  ++active_;
  return true;
}

void UploadGate::Finish(ReleasePieceIndex piece) {
  CHECK_GT(sending_[piece.value()], 0) << "piece " << piece << " not sending";
  --sending_[piece.value()];
  --active_;
}

}  // namespace shoal::agent
