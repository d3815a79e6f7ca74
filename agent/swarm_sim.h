#pragma once

// A deterministic swarm in one process, for tests: every agent drives its own
// Scheduler (agent/scheduler.h), and pieces move over a fluid network model
// in virtual time. Each transfer is a flow; flows share the sender's upload
// and the receiver's download rate max-min fairly; messages (bitfields,
// haves, refusals) arrive at once. Every downloader is connected to every
// other agent; locality follows the agents' datacenter and rack labels. A
// fake tracker hands out origin leases, at most K per piece (for the whole
// swarm) unless the asker reports that the holders failed; leases do not
// expire.
//
// The loop advances to the next flow completion or the next tick, whichever
// comes first, and then lets every unfinished agent act (drops, timeouts,
// origin leases, new requests). Steps are bounded by `max_steps` and the
// virtual `time_limit`. The same config gives the same result, bit for bit.
// RunSwarm shares no state between calls: it is thread-safe.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/scheduler.h"

namespace shoal::agent {

enum class SimBehaviour {
  kHonest,   // Downloads, and serves what it verified.
  kCorrupt,  // Claims every piece; every piece it sends fails its proof.
  kStalled,  // Claims every piece; accepts requests, never sends a byte.
  kLiar,     // Claims every piece; answers every request NOT_FOUND.
};

struct SimAgentSpec {
  int datacenter = 0;
  int rack = 0;
  double upload_rate = 0;    // bytes/s
  double download_rate = 0;  // bytes/s
  bool seed = false;         // Starts with every piece (honest agents).
  SimBehaviour behaviour = SimBehaviour::kHonest;
};

struct SwarmConfig {
  std::vector<uint64_t> piece_lengths;
  std::vector<SimAgentSpec> agents;
  SchedulerConfig scheduler;
  // Uploads an agent serves at once; further requests are answered busy.
  int upload_slots = 8;
  // The serving rule of UploadGate (agent/upload_gate.h): an agent refuses
  // (busy) a piece it is already sending while it still holds pieces it
  // has never sent.
  bool distinct_first = true;
  // The origin: its upload rate (0: there is none), leases per piece.
  double origin_rate = 0;
  int origin_leases_per_piece = 1;
  int origin_request_limit = 4;
  absl::Duration tick = absl::Milliseconds(10);
  absl::Duration time_limit = absl::Minutes(10);
  int64_t max_steps = 2'000'000;
  uint64_t random_seed = 1;
};

struct SimAgentResult {
  // Virtual time from the start until it held every piece; unset if never
  // (and for seeds and dishonest agents, which download nothing).
  std::optional<absl::Duration> completed_after;
  Progress progress;      // its scheduler's counters (downloaders only)
  double bytes_sent = 0;  // everything that left it, wasted bytes included
  // Complete, good uploads of each piece.
  std::vector<uint32_t> uploads_per_piece;
  // Distinct pieces it finished sending before it first sent one twice.
  uint32_t distinct_before_duplicate = 0;
  // Peers it dropped (agent index, reason), in order.
  std::vector<std::pair<int, DropReason>> dropped;
};

struct SwarmResult {
  std::vector<SimAgentResult> agents;
  uint64_t release_bytes = 0;
  bool all_complete = false;  // every honest downloader
  absl::Duration last_completion;
  // When every piece was first held by some downloader: how fast the
  // sources got one copy of everything out.
  absl::Duration all_pieces_out;
  // max(F / source upload, F / slowest download, N F / all upload).
  absl::Duration fluid_bound;
  double origin_bytes = 0;
  uint64_t origin_grants = 0;
  // Bytes moved and thrown away: cancelled or expired partial transfers,
  // pieces that failed their proof, copies of pieces already held.
  double wasted_bytes = 0;
  uint64_t cancels = 0;
  uint64_t endgame_requests = 0;
  uint64_t busy_refusals = 0;
  int64_t steps = 0;

  double CompletionRatio() const {
    return absl::FDivDuration(last_completion, fluid_bound);
  }
  // Bytes from peers of each locality, over all downloaders.
  std::array<double, kNumLocalities> BytesByLocality() const;
  // One line of figures for logs.
  std::string Summary() const;
};

// Runs the swarm to completion, `time_limit` or `max_steps`.
// INVALID_ARGUMENT for a config that cannot run (no pieces, negative rates,
// a scheduler config Scheduler::Create refuses).
absl::StatusOr<SwarmResult> RunSwarm(const SwarmConfig& config);

}  // namespace shoal::agent
