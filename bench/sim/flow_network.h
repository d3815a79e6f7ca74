#pragma once

// A flow-level network for the swarm simulator: links with capacities in
// bytes/s, transfers as flows over paths of links, and rates max-min fair
// (each flow gets the largest rate such that raising it would lower a flow
// that has no more). No packets, no queues, no slow start: a flow moves its
// bytes at its fair rate from the moment rates are recomputed.
//
// Rates are recomputed incrementally: Update() refills only the flows on
// links that changed (a flow started or ended there), holding every other
// flow's rate fixed, then checks the fixed flows on the links it touched.
// A fixed flow is drawn in when its bottleneck link gained spare capacity,
// when a refilled flow on its bottleneck now runs faster than it, or when it
// runs faster than a refilled flow whose bottleneck they share; this repeats
// until no fixed flow is drawn in. The result is then max-min fair (every
// flow has a saturated link on which no flow runs faster), up to a relative
// tolerance (kExactTolerance unless set); past kMaxRounds rounds it falls back
// to a refill of every flow. MaxMinRates() is the from-scratch reference the
// tests compare against.
//
// Time is virtual (absl::Duration since the start of a run). Between two
// Update()s rates are constant, so completion times are exact; a flow
// started or freed capacity between Updates waits for the next one.
// Thread-compatible.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/types.h"

namespace shoal::sim {

using LinkId = StrongInt<struct LinkIdTag, uint32_t>;
// A flow while it runs; ids of ended flows are never reused.
using FlowId = StrongInt<struct FlowIdTag, uint64_t>;

// Max-min fair rates of flows over links, from scratch, by progressive
// filling: the link with the smallest fair share among its unfrozen flows
// freezes them at that share; repeat. `paths[f]` lists the distinct links of
// flow f (indices into `capacity`). Simple and slow: for tests.
std::vector<double> MaxMinRates(
    absl::Span<const double> capacity,
    const std::vector<std::vector<uint32_t>>& paths);

// Rates within this fraction of a link's capacity count as equal, and spare
// capacity below it as none (FlowNetwork's default).
inline constexpr double kExactTolerance = 1e-6;

// A flow that moved all its bytes.
struct FlowEnd {
  FlowId id;
  uint64_t tag = 0;  // the caller's, from Start
  absl::Duration at;
};

// Work done by Update(), for the simulator's report.
struct NetworkStats {
  uint64_t updates = 0;
  uint64_t flows_refilled = 0;  // summed over updates
  uint64_t rounds = 0;          // refills, summed over updates
  uint64_t full_refills = 0;
};

class FlowNetwork {
 public:
  static constexpr int kMaxPath = 6;
  static constexpr int kMaxRounds = 12;

  // `tolerance`: see kExactTolerance. Larger values stop the refill from
  // chasing changes that small; rates are then max-min fair to within
  // that fraction of the capacity of the links they cross.
  FlowNetwork() : FlowNetwork(kExactTolerance) {}
  explicit FlowNetwork(double tolerance) : tolerance_(tolerance) {}
  FlowNetwork(const FlowNetwork&) = delete;
  FlowNetwork& operator=(const FlowNetwork&) = delete;

  // A link of `capacity` bytes/s (0: nothing passes).
  LinkId AddLink(double capacity);
  double capacity(LinkId link) const { return links_[link.value()].capacity; }

  // A flow of `bytes` (> 0) over `path` (1 to kMaxPath distinct links),
  // at rate 0 until the next Update().
  FlowId Start(absl::Span<const LinkId> path, double bytes, uint64_t tag,
               absl::Duration now);
  // Ends a running flow early; returns the bytes it moved. CHECK-fails for
  // a flow that is not running.
  double Stop(FlowId id, absl::Duration now);
  bool running(FlowId id) const;

  // Recomputes the rates that the Starts, Stops and completions since the
  // last call affect, effective from `now`.
  void Update(absl::Duration now);
  // The next flow to move its last byte at or before `limit`, removed from
  // the network (its capacity is handed out at the next Update()); nullopt
  // if none. In time order.
  std::optional<FlowEnd> PopCompletion(absl::Duration limit);
  // When the next flow will complete at the current rates, or
  // InfiniteDuration().
  absl::Duration NextCompletion() const;

  double rate(FlowId id) const;
  size_t running_flows() const { return running_; }
  const NetworkStats& stats() const { return stats_; }

 private:
  static constexpr uint32_t kNone = ~0u;

  struct Link {
    double capacity = 0;
    double load = 0;              // sum of the rates of its flows
    std::vector<uint32_t> flows;  // slots
    bool dirty = false;
    // Scratch of one refill round, valid while `round == round_`.
    uint64_t round = 0;
    uint32_t refilled = 0;  // flows of this round on the link
    uint32_t unfrozen = 0;
    uint32_t version = 0;  // of the heap entry that is current
    double old_rates = 0;  // their rates before the round
    double residual = 0;   // capacity left for them
    double new_rates = 0;
    double fastest = 0;               // of them
    double slowest_bottlenecked = 0;  // of those it bottlenecks
  };
  struct Flow {
    std::array<uint32_t, kMaxPath> links;
    std::array<uint32_t, kMaxPath> position;  // in links[i].flows
    int hops = 0;
    double rate = 0;
    double remaining = 0;  // bytes at `settled`
    double bytes = 0;
    absl::Duration settled;
    uint32_t bottleneck = kNone;  // link
    uint32_t generation = 0;
    absl::Duration finish = absl::InfiniteDuration();  // at the current rate
    uint32_t heap_position = kNone;                    // in completions_
    bool running = false;
    uint64_t tag = 0;
    // Scratch of one Update.
    uint64_t member = 0;  // == update_ while being refilled
    bool frozen = false;
    double new_rate = 0;
    uint32_t new_bottleneck = kNone;
  };
  struct Share {
    double share;
    uint32_t link;
    uint32_t version;
    bool operator>(const Share& o) const {
      return share != o.share ? share > o.share : link > o.link;
    }
  };

  uint32_t SlotOf(FlowId id) const;
  void MarkDirty(uint32_t link);
  void Detach(uint32_t slot, absl::Duration now);
  // Progressive filling over `members_` with every other flow fixed.
  void Refill();
  // Fixed flows the last Refill treated unfairly; adds them to members_.
  bool DrawInFixed();
  void Commit(absl::Duration now);
  void Settle(Flow& f, absl::Duration now);
  // The completions heap: flows with a finite finish, earliest first.
  bool Earlier(uint32_t a, uint32_t b) const;
  void PlaceCompletion(uint32_t slot);  // after its finish changed
  void RemoveCompletion(uint32_t slot);
  void SiftUp(size_t i);
  void SiftDown(size_t i);

  const double tolerance_;
  std::vector<Link> links_;
  std::vector<Flow> flows_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> members_;  // flows being refilled
  std::vector<uint32_t> touched_;  // their links in this round
  std::vector<Share> heap_;        // of Refill, by fair share
  uint64_t update_ = 0;
  uint64_t round_ = 0;
  size_t running_ = 0;
  std::vector<uint32_t> completions_;  // slots, a binary heap
  NetworkStats stats_;
};

}  // namespace shoal::sim
