#include "tracker/lease_policy.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace shoal::tracker {

absl::StatusOr<LeaseAsk> ParseLeaseAsk(const v1::OriginLeaseRequest& request,
                                       const std::string& release_id,
                                       uint32_t total_pieces,
                                       uint32_t max_pieces) {
  LeaseAsk ask;
  absl::flat_hash_set<uint32_t> considered;
  auto consider = [&](uint32_t piece) -> absl::Status {
    if (piece >= total_pieces) {
      return absl::InvalidArgumentError(
          absl::StrCat("piece ", piece, " is out of range: release ",
                       release_id, " has ", total_pieces, " pieces"));
    }
    if (considered.size() < max_pieces && considered.insert(piece).second) {
      ask.pieces.push_back(piece);
    }
    return absl::OkStatus();
  };
  for (uint32_t piece : request.pieces()) RETURN_IF_ERROR(consider(piece));
  // A failed holder's piece counts as asked for even if `pieces` omits it.
  for (uint32_t piece : request.holders_failed()) {
    RETURN_IF_ERROR(consider(piece));
    if (considered.contains(piece)) ask.holders_failed.insert(piece);
  }
  return ask;
}

absl::Status AnswerLeaseAsk(
    const LeaseAsk& ask, absl::FunctionRef<bool(uint32_t)> held_by_others,
    absl::FunctionRef<absl::StatusOr<bool>(uint32_t)> acquire,
    v1::OriginLeaseResponse& response) {
  for (uint32_t piece : ask.pieces) {
    if (held_by_others(piece) && !ask.holders_failed.contains(piece)) {
      response.add_held_by_peers(piece);
      continue;
    }
    ASSIGN_OR_RETURN(bool granted, acquire(piece));
    if (granted) {
      response.add_granted(piece);
    } else {
      response.add_leased_to_others(piece);
    }
  }
  return absl::OkStatus();
}

}  // namespace shoal::tracker
