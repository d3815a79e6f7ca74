#include "bench/sim/flow_network.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "glog/logging.h"

namespace shoal::sim {
namespace {}  // namespace

std::vector<double> MaxMinRates(
    absl::Span<const double> capacity,
    const std::vector<std::vector<uint32_t>>& paths) {
  std::vector<double> left(capacity.begin(), capacity.end());
  std::vector<int> unfrozen(capacity.size(), 0);
  for (const auto& path : paths) {
    for (uint32_t l : path) ++unfrozen[l];
  }
  std::vector<double> rates(paths.size(), -1);
  while (true) {
    int best = -1;
    double share = std::numeric_limits<double>::infinity();
    for (size_t l = 0; l < left.size(); ++l) {
      if (unfrozen[l] > 0 && left[l] / unfrozen[l] < share) {
        share = left[l] / unfrozen[l];
        best = static_cast<int>(l);
      }
    }
    if (best < 0) return rates;
    share = std::max(0.0, share);
    for (size_t f = 0; f < paths.size(); ++f) {
      if (rates[f] >= 0 ||
          std::find(paths[f].begin(), paths[f].end(),
                    static_cast<uint32_t>(best)) == paths[f].end()) {
        continue;
      }
      rates[f] = share;
      for (uint32_t l : paths[f]) {
        left[l] -= share;
        --unfrozen[l];
      }
    }
  }
}

LinkId FlowNetwork::AddLink(double capacity) {
  CHECK_GE(capacity, 0);
  links_.emplace_back();
  links_.back().capacity = capacity;
  return LinkId(static_cast<uint32_t>(links_.size() - 1));
}

uint32_t FlowNetwork::SlotOf(FlowId id) const {
  const uint32_t slot = static_cast<uint32_t>(id.value());
  CHECK_LT(slot, flows_.size());
  return slot;
}

bool FlowNetwork::running(FlowId id) const {
  const uint32_t slot = static_cast<uint32_t>(id.value());
  if (slot >= flows_.size()) return false;
  const Flow& f = flows_[slot];
  return f.running && f.generation == (id.value() >> 32);
}

double FlowNetwork::rate(FlowId id) const {
  CHECK(running(id));
  return flows_[SlotOf(id)].rate;
}

void FlowNetwork::MarkDirty(uint32_t link) {
  if (links_[link].dirty) return;
  links_[link].dirty = true;
  dirty_.push_back(link);
}

FlowId FlowNetwork::Start(absl::Span<const LinkId> path, double bytes,
                          uint64_t tag, absl::Duration now) {
  CHECK(!path.empty() && path.size() <= kMaxPath) << path.size() << " links";
  CHECK_GT(bytes, 0);
  uint32_t slot;
  if (free_slots_.empty()) {
    slot = static_cast<uint32_t>(flows_.size());
    flows_.emplace_back();
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  Flow& f = flows_[slot];
  f.hops = static_cast<int>(path.size());
  for (int i = 0; i < f.hops; ++i) {
    const uint32_t l = path[i].value();
    CHECK_LT(l, links_.size());
    f.links[i] = l;
    f.position[i] = static_cast<uint32_t>(links_[l].flows.size());
    links_[l].flows.push_back(slot);
    MarkDirty(l);
  }
  f.rate = 0;
  f.bytes = bytes;
  f.remaining = bytes;
  f.settled = now;
  f.bottleneck = kNone;
  f.running = true;
  f.tag = tag;
  f.member = 0;
  f.finish = absl::InfiniteDuration();
  ++running_;
  return FlowId((static_cast<uint64_t>(f.generation) << 32) | slot);
}

void FlowNetwork::Settle(Flow& f, absl::Duration now) {
  if (f.rate > 0) {
    f.remaining -= f.rate * absl::ToDoubleSeconds(now - f.settled);
    f.remaining = std::max(0.0, f.remaining);
  }
  f.settled = now;
}

void FlowNetwork::Detach(uint32_t slot, absl::Duration now) {
  Flow& f = flows_[slot];
  Settle(f, now);
  for (int i = 0; i < f.hops; ++i) {
    Link& link = links_[f.links[i]];
    link.load -= f.rate;
    const uint32_t pos = f.position[i];
    const uint32_t moved = link.flows.back();
    link.flows[pos] = moved;
    link.flows.pop_back();
    if (moved != slot) {
      Flow& m = flows_[moved];
      for (int j = 0; j < m.hops; ++j) {
        if (m.links[j] == f.links[i]) m.position[j] = pos;
      }
    }
    if (link.flows.empty()) link.load = 0;
    MarkDirty(f.links[i]);
  }
  RemoveCompletion(slot);
  f.running = false;
  ++f.generation;
  --running_;
  free_slots_.push_back(slot);
}

double FlowNetwork::Stop(FlowId id, absl::Duration now) {
  CHECK(running(id)) << "flow " << id << " is not running";
  const uint32_t slot = SlotOf(id);
  Settle(flows_[slot], now);
  const double moved = flows_[slot].bytes - flows_[slot].remaining;
  Detach(slot, now);
  return moved;
}

// --- Completions. ---

bool FlowNetwork::Earlier(uint32_t a, uint32_t b) const {
  const absl::Duration fa = flows_[a].finish, fb = flows_[b].finish;
  return fa != fb ? fa < fb : a < b;
}

void FlowNetwork::SiftUp(size_t i) {
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!Earlier(completions_[i], completions_[parent])) return;
    std::swap(completions_[i], completions_[parent]);
    flows_[completions_[i]].heap_position = static_cast<uint32_t>(i);
    flows_[completions_[parent]].heap_position = static_cast<uint32_t>(parent);
    i = parent;
  }
}

void FlowNetwork::SiftDown(size_t i) {
  while (true) {
    size_t best = i;
    for (size_t child : {2 * i + 1, 2 * i + 2}) {
      if (child < completions_.size() &&
          Earlier(completions_[child], completions_[best])) {
        best = child;
      }
    }
    if (best == i) return;
    std::swap(completions_[i], completions_[best]);
    flows_[completions_[i]].heap_position = static_cast<uint32_t>(i);
    flows_[completions_[best]].heap_position = static_cast<uint32_t>(best);
    i = best;
  }
}

void FlowNetwork::PlaceCompletion(uint32_t slot) {
  Flow& f = flows_[slot];
  f.finish =
      f.rate > 0
          ? f.settled + absl::Nanoseconds(std::ceil(f.remaining / f.rate * 1e9))
          : absl::InfiniteDuration();
  if (f.finish == absl::InfiniteDuration()) {
    RemoveCompletion(slot);
    return;
  }
  if (f.heap_position == kNone) {
    f.heap_position = static_cast<uint32_t>(completions_.size());
    completions_.push_back(slot);
  }
  SiftUp(f.heap_position);
  SiftDown(f.heap_position);
}

void FlowNetwork::RemoveCompletion(uint32_t slot) {
  Flow& f = flows_[slot];
  if (f.heap_position == kNone) return;
  const size_t i = f.heap_position;
  f.heap_position = kNone;
  const uint32_t last = completions_.back();
  completions_.pop_back();
  if (last == slot) return;
  completions_[i] = last;
  flows_[last].heap_position = static_cast<uint32_t>(i);
  SiftUp(i);
  SiftDown(flows_[last].heap_position);
}

absl::Duration FlowNetwork::NextCompletion() const {
  return completions_.empty() ? absl::InfiniteDuration()
                              : flows_[completions_.front()].finish;
}

std::optional<FlowEnd> FlowNetwork::PopCompletion(absl::Duration limit) {
  if (NextCompletion() > limit) return std::nullopt;
  const uint32_t slot = completions_.front();
  const Flow& f = flows_[slot];
  const FlowEnd end{FlowId((static_cast<uint64_t>(f.generation) << 32) | slot),
                    f.tag, f.finish};
  Detach(slot, end.at);
  return end;
}

// --- Rates. ---

void FlowNetwork::Update(absl::Duration now) {
  if (dirty_.empty()) return;
  ++stats_.updates;
  ++update_;
  members_.clear();
  for (uint32_t l : dirty_) {
    links_[l].dirty = false;
    for (uint32_t slot : links_[l].flows) {
      if (flows_[slot].member == update_) continue;
      flows_[slot].member = update_;
      members_.push_back(slot);
    }
  }
  dirty_.clear();
  if (members_.empty()) return;
  for (int round = 1;; ++round) {
    if (round > kMaxRounds) {
      // Changes keep spreading: refill everything (nothing is fixed then).
      ++stats_.full_refills;
      members_.clear();
      for (uint32_t slot = 0; slot < flows_.size(); ++slot) {
        if (!flows_[slot].running) continue;
        flows_[slot].member = update_;
        members_.push_back(slot);
      }
      Refill();
      break;
    }
    Refill();
    if (!DrawInFixed()) break;
  }
  Commit(now);
}

void FlowNetwork::Refill() {
  ++round_;
  ++stats_.rounds;
  stats_.flows_refilled += members_.size();
  touched_.clear();
  for (uint32_t slot : members_) {
    Flow& f = flows_[slot];
    f.frozen = false;
    for (int i = 0; i < f.hops; ++i) {
      Link& l = links_[f.links[i]];
      if (l.round != round_) {
        l.round = round_;
        l.refilled = 0;
        l.old_rates = 0;
        l.new_rates = 0;
        l.fastest = 0;
        l.slowest_bottlenecked = std::numeric_limits<double>::infinity();
        touched_.push_back(f.links[i]);
      }
      ++l.refilled;
      l.old_rates += f.rate;
    }
  }
  heap_.clear();
  auto push = [&](uint32_t idx) {
    Link& l = links_[idx];
    ++l.version;
    heap_.push_back(
        Share{std::max(0.0, l.residual) / l.unfrozen, idx, l.version});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<Share>());
  };
  for (uint32_t idx : touched_) {
    Link& l = links_[idx];
    l.unfrozen = l.refilled;
    // What the fixed flows leave of the link.
    l.residual = l.capacity - (l.load - l.old_rates);
    push(idx);
  }
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<Share>());
    const Share s = heap_.back();
    heap_.pop_back();
    Link& bottleneck = links_[s.link];
    if (s.version != bottleneck.version || bottleneck.unfrozen == 0) continue;
    const double share = s.share;
    for (uint32_t slot : bottleneck.flows) {
      Flow& f = flows_[slot];
      if (f.member != update_ || f.frozen) continue;
      f.frozen = true;
      f.new_rate = share;
      f.new_bottleneck = s.link;
      bottleneck.slowest_bottlenecked =
          std::min(bottleneck.slowest_bottlenecked, share);
      for (int i = 0; i < f.hops; ++i) {
        Link& l = links_[f.links[i]];
        l.new_rates += share;
        l.fastest = std::max(l.fastest, share);
        --l.unfrozen;
        if (f.links[i] == s.link) continue;
        l.residual -= share;
        if (l.unfrozen > 0) push(f.links[i]);
      }
    }
  }
}

bool FlowNetwork::DrawInFixed() {
  bool drew = false;
  for (uint32_t idx : touched_) {
    const Link& l = links_[idx];
    if (l.flows.size() == l.refilled) continue;  // no fixed flow here
    const double tolerance = tolerance_ * l.capacity + 1e-9;
    const double load = l.load - l.old_rates + l.new_rates;
    const bool spare = l.capacity - load > tolerance;
    for (uint32_t slot : l.flows) {
      Flow& g = flows_[slot];
      if (g.member == update_) continue;
      // Max-min fair: every flow has a saturated link on which no flow
      // runs faster than it.
      bool unfair = g.rate > l.slowest_bottlenecked + tolerance;
      if (g.bottleneck == idx) {
        unfair = unfair || spare || l.fastest > g.rate + tolerance;
      }
      if (!unfair) continue;
      g.member = update_;
      members_.push_back(slot);
      drew = true;
    }
  }
  return drew;
}

void FlowNetwork::Commit(absl::Duration now) {
  for (uint32_t slot : members_) {
    Flow& f = flows_[slot];
    f.bottleneck = f.new_bottleneck;
    if (f.new_rate == f.rate) continue;
    Settle(f, now);
    f.rate = f.new_rate;
    PlaceCompletion(slot);
  }
  // Exact sums, so that rounding does not pile up over many updates.
  for (uint32_t idx : touched_) {
    Link& l = links_[idx];
    l.load = 0;
    for (uint32_t slot : l.flows) l.load += flows_[slot].rate;
  }
}

}  // namespace shoal::sim
