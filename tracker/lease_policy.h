#pragma once

// The origin lease rule of Tracker::RequestOriginLease as pure code: which
// pieces of a request are considered, and how each is answered. The tracker
// applies it to its store's view of a swarm; the swarm simulator (bench/sim)
// applies the same rule to its own view.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::tracker {

// The pieces one lease request considers.
struct LeaseAsk {
  // Request order: `pieces`, then those only in `holders_failed`.
  std::vector<uint32_t> pieces;
  // The considered pieces whose holders the asker reported failed.
  absl::flat_hash_set<uint32_t> holders_failed;
};

// The pieces of `request` to consider: those of `pieces`, then those only in
// `holders_failed` (a failed holder's piece counts as asked for even if
// `pieces` omits it), duplicates dropped, the first `max_pieces`.
// INVALID_ARGUMENT for a piece (in either list) at or past `total_pieces`;
// `release_id` names the release in that message.
absl::StatusOr<LeaseAsk> ParseLeaseAsk(const v1::OriginLeaseRequest& request,
                                       const std::string& release_id,
                                       uint32_t total_pieces,
                                       uint32_t max_pieces);

// Sorts each piece of `ask`, in order, into one list of `response`:
// held_by_peers when `held_by_others(piece)` (another live peer of the
// asker's datacenter announced it) and the asker did not report its holders
// failed; else granted when `acquire(piece)` grants a lease (the store's
// TryAcquireLease with K and the lease TTL); else leased_to_others. Stops at
// the first error of `acquire` and returns it.
absl::Status AnswerLeaseAsk(
    const LeaseAsk& ask, absl::FunctionRef<bool(uint32_t)> held_by_others,
    absl::FunctionRef<absl::StatusOr<bool>(uint32_t)> acquire,
    v1::OriginLeaseResponse& response);

}  // namespace shoal::tracker
