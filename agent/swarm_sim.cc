#include "agent/swarm_sim.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/upload_gate.h"
#include "common/bitfield.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

constexpr int kOrigin = -1;

// The simulator feeds its schedulers only well-formed input.
void CheckOk(const absl::Status& status) { CHECK(status.ok()) << status; }

struct Flow {
  uint64_t length = 0;
  double remaining = 0;
  double rate = 0;
  bool bad = false;
};

// (sender or kOrigin, receiver, piece)
using FlowKey = std::tuple<int, int, uint32_t>;

struct Node {
  Node(const SimAgentSpec& s, uint32_t num_pieces, size_t num_agents)
      : spec(s), serves(num_pieces), linked(num_agents, 0) {
    result.uploads_per_piece.assign(num_pieces, 0);
  }

  SimAgentSpec spec;
  // Honest agents only (seeds' schedulers start complete).
  std::unique_ptr<std::mt19937_64> rng;
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<UploadGate> gate;
  Bitfield serves;           // what it claims and answers for
  int uploads = 0;           // for dishonest agents, which have no gate
  std::vector<char> linked;  // linked[u]: u is a connected peer
  SimAgentResult result;
  bool sent_twice = false;
};

class Swarm {
 public:
  explicit Swarm(const SwarmConfig& config)
      : config_(config),
        num_pieces_(static_cast<uint32_t>(config.piece_lengths.size())),
        grants_(num_pieces_, 0),
        out_(num_pieces_) {}

  absl::Status Init();
  SwarmResult Run();

 private:
  absl::Time Now() const { return absl::UnixEpoch() + absl::Seconds(now_); }
  int num_agents() const { return static_cast<int>(nodes_.size()); }
  bool Downloading(const Node& n) const {
    return n.scheduler != nullptr && !n.scheduler->complete();
  }
  void Link(int d, int u);
  void Step();
  void ComputeRates();
  void Complete(const FlowKey& key);
  void Deliver(int d, uint32_t piece, uint64_t length);
  void CountUpload(int u, uint32_t piece);
  void EndFlow(std::map<FlowKey, Flow>::iterator it, bool wasted);
  void CancelFlow(int u, int d, uint32_t piece);
  void Pump(int d);
  void PumpOrigin(int d);
  void Request(int d, const Assignment& a);
  bool AllDone() const;
  absl::Duration FluidBound() const;

  const SwarmConfig& config_;
  const uint32_t num_pieces_;
  std::vector<Node> nodes_;
  std::map<FlowKey, Flow> flows_;
  std::vector<uint32_t> grants_;  // origin leases per piece
  Bitfield out_;                  // pieces some downloader holds
  double now_ = 0;                // seconds
  SwarmResult result_;
};

// Max-min fair rates of flows that each use two resources (`ends`), by
// progressive filling: the resource with the smallest fair share fixes the
// rate of its unfixed flows, which then leave their other resource; repeat.
std::vector<double> MaxMinRates(std::vector<double> capacity,
                                const std::vector<std::pair<int, int>>& ends) {
  std::vector<int> unfixed(capacity.size(), 0);
  std::vector<std::vector<int>> users(capacity.size());
  for (int f = 0; f < static_cast<int>(ends.size()); ++f) {
    for (int r : {ends[f].first, ends[f].second}) {
      users[r].push_back(f);
      ++unfixed[r];
    }
  }
  std::vector<double> rates(ends.size(), -1);
  while (true) {
    int best = -1;
    double share = std::numeric_limits<double>::infinity();
    for (int r = 0; r < static_cast<int>(capacity.size()); ++r) {
      if (unfixed[r] > 0 && capacity[r] / unfixed[r] < share) {
        share = capacity[r] / unfixed[r];
        best = r;
      }
    }
    if (best < 0) return rates;
    share = std::max(0.0, share);
    for (int f : users[best]) {
      if (rates[f] >= 0) continue;
      rates[f] = share;
      for (int r : {ends[f].first, ends[f].second}) {
        capacity[r] -= share;
        --unfixed[r];
      }
    }
  }
}

Locality LocalityOf(const SimAgentSpec& a, const SimAgentSpec& b) {
  if (a.datacenter != b.datacenter) return Locality::kRemote;
  return a.rack == b.rack ? Locality::kRack : Locality::kDatacenter;
}

absl::Status CheckConfig(const SwarmConfig& c) {
  if (c.piece_lengths.empty() || c.agents.empty()) {
    return absl::InvalidArgumentError("a swarm needs pieces and agents");
  }
  for (const SimAgentSpec& a : c.agents) {
    if (!(a.upload_rate >= 0) || !(a.download_rate > 0)) {
      return absl::InvalidArgumentError("agent rates must be positive");
    }
  }
  if (c.upload_slots < 1 || !(c.origin_rate >= 0) ||
      c.tick <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("bad upload_slots, origin_rate or tick");
  }
  return absl::OkStatus();
}

absl::Status Swarm::Init() {
  if (absl::Status s = CheckConfig(config_); !s.ok()) return s;
  Bitfield full(num_pieces_);
  for (uint32_t i = 0; i < num_pieces_; ++i) full.Set(ReleasePieceIndex(i));
  for (int i = 0; i < static_cast<int>(config_.agents.size()); ++i) {
    const SimAgentSpec& spec = config_.agents[i];
    Node n(spec, num_pieces_, config_.agents.size());
    if (spec.seed || spec.behaviour != SimBehaviour::kHonest) n.serves = full;
    if (spec.behaviour == SimBehaviour::kHonest) {
      n.rng = std::make_unique<std::mt19937_64>(config_.random_seed * 7919 + i);
      absl::StatusOr<std::unique_ptr<Scheduler>> s = Scheduler::Create(
          config_.scheduler, config_.piece_lengths, n.serves, *n.rng);
      if (!s.ok()) return s.status();
      n.scheduler = *std::move(s);
      n.gate = std::make_unique<UploadGate>(num_pieces_, config_.upload_slots,
                                            config_.distinct_first);
    }
    nodes_.push_back(std::move(n));
  }
  for (int d = 0; d < num_agents(); ++d) {
    if (!Downloading(nodes_[d])) continue;
    for (int u = 0; u < num_agents(); ++u) {
      if (u != d) Link(d, u);
    }
  }
  return absl::OkStatus();
}

void Swarm::Link(int d, int u) {
  Scheduler& s = *nodes_[d].scheduler;
  const PeerKey key(static_cast<uint64_t>(u));
  CheckOk(s.AddPeer(key, LocalityOf(nodes_[d].spec, nodes_[u].spec)));
  CheckOk(s.OnBitfield(key, nodes_[u].serves.bytes()));
  nodes_[d].linked[u] = 1;
}

SwarmResult Swarm::Run() {
  for (int d = 0; d < num_agents(); ++d) Pump(d);
  const double limit = absl::ToDoubleSeconds(config_.time_limit);
  while (!AllDone() && result_.steps < config_.max_steps && now_ < limit) {
    ++result_.steps;
    Step();
  }
  result_.all_complete = AllDone();
  result_.release_bytes = 0;
  for (uint64_t length : config_.piece_lengths) result_.release_bytes += length;
  result_.fluid_bound = FluidBound();
  for (Node& n : nodes_) {
    if (n.scheduler != nullptr) n.result.progress = n.scheduler->progress();
    if (n.result.completed_after) {
      result_.last_completion =
          std::max(result_.last_completion, *n.result.completed_after);
    }
    result_.agents.push_back(std::move(n.result));
  }
  return std::move(result_);
}

// Moves time to the next completion or tick, then lets every agent act.
void Swarm::Step() {
  ComputeRates();
  const double tick = absl::ToDoubleSeconds(config_.tick);
  double next = (std::floor(now_ / tick + 1e-9) + 1) * tick;
  for (const auto& [key, f] : flows_) {
    if (f.rate > 0) next = std::min(next, now_ + f.remaining / f.rate);
  }
  const double dt = next - now_;
  std::vector<FlowKey> done;
  for (auto& [key, f] : flows_) {
    const double moved = std::min(f.remaining, f.rate * dt);
    f.remaining -= moved;
    if (std::get<0>(key) != kOrigin) {
      nodes_[std::get<0>(key)].result.bytes_sent += moved;
    }
    if (f.remaining <= 1e-6 * static_cast<double>(f.length)) {
      done.push_back(key);
    }
  }
  now_ = next;
  for (const FlowKey& key : done) Complete(key);
  for (int d = 0; d < num_agents(); ++d) Pump(d);
}

void Swarm::ComputeRates() {
  // Resources: agents' uploads 0..n-1, the origin n, downloads n+1...
  const int n = num_agents();
  std::vector<double> capacity(2 * n + 1);
  for (int i = 0; i < n; ++i) {
    const SimAgentSpec& s = nodes_[i].spec;
    capacity[i] = s.behaviour == SimBehaviour::kStalled ? 0 : s.upload_rate;
    capacity[n + 1 + i] = s.download_rate;
  }
  capacity[n] = config_.origin_rate;
  std::vector<std::pair<int, int>> ends;
  for (const auto& [key, unused_flow] : flows_) {
    const int up = std::get<0>(key) == kOrigin ? n : std::get<0>(key);
    ends.emplace_back(up, n + 1 + std::get<1>(key));
  }
  const std::vector<double> rates = MaxMinRates(std::move(capacity), ends);
  size_t i = 0;
  for (auto& [unused_key, flow] : flows_) flow.rate = rates[i++];
}

void Swarm::EndFlow(std::map<FlowKey, Flow>::iterator it, bool wasted) {
  const auto [u, d, piece] = it->first;
  if (wasted) {
    result_.wasted_bytes +=
        static_cast<double>(it->second.length) - it->second.remaining;
  }
  if (u != kOrigin) {
    Node& up = nodes_[u];
    if (up.gate != nullptr) {
      up.gate->Finish(ReleasePieceIndex(piece));
    } else {
      --up.uploads;
    }
  }
  flows_.erase(it);
}

void Swarm::CancelFlow(int u, int d, uint32_t piece) {
  auto it = flows_.find(FlowKey(u, d, piece));
  if (it == flows_.end()) return;
  ++result_.cancels;
  EndFlow(it, /*wasted=*/true);
}

void Swarm::Complete(const FlowKey& key) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return;  // cancelled by a copy that finished first
  const auto [u, d, piece] = key;
  const uint64_t length = it->second.length;
  const bool bad = it->second.bad;
  EndFlow(it, /*wasted=*/bad);
  Scheduler& s = *nodes_[d].scheduler;
  const ReleasePieceIndex index(piece);
  std::vector<Cancel> cancels;
  if (u == kOrigin) {
    result_.origin_bytes += static_cast<double>(length);
    cancels = s.OnPieceFromOrigin(index, length, Now());
  } else if (bad) {
    s.OnPieceFailed(PeerKey(u), index, FailureReason::kBadProof, Now());
    return;
  } else {
    CountUpload(u, piece);
    cancels = s.OnPieceVerified(PeerKey(u), index, length, Now());
  }
  for (const Cancel& c : cancels) {
    CancelFlow(static_cast<int>(c.peer.value()), d, c.piece.value());
  }
  Deliver(d, piece, length);
}

void Swarm::CountUpload(int u, uint32_t piece) {
  SimAgentResult& r = nodes_[u].result;
  if (r.uploads_per_piece[piece]++ == 0) {
    if (!nodes_[u].sent_twice) ++r.distinct_before_duplicate;
  } else {
    nodes_[u].sent_twice = true;
  }
}

void Swarm::Deliver(int d, uint32_t piece, uint64_t length) {
  Node& node = nodes_[d];
  if (node.serves.Get(ReleasePieceIndex(piece))) {
    result_.wasted_bytes += static_cast<double>(length);
    return;
  }
  node.serves.Set(ReleasePieceIndex(piece));
  if (!out_.Get(ReleasePieceIndex(piece))) {
    out_.Set(ReleasePieceIndex(piece));
    if (out_.complete()) result_.all_pieces_out = absl::Seconds(now_);
  }
  for (Node& other : nodes_) {
    if (other.linked[d] && Downloading(other)) {
      CheckOk(other.scheduler->OnHave(PeerKey(d), ReleasePieceIndex(piece)));
    }
  }
  if (node.scheduler->complete() && !node.result.completed_after) {
    node.result.completed_after = absl::Seconds(now_);
  }
}

void Swarm::Pump(int d) {
  Node& node = nodes_[d];
  if (!Downloading(node)) return;
  Scheduler& s = *node.scheduler;
  const absl::Time now = Now();
  for (const Cancel& c : s.Expired(now)) {
    CancelFlow(static_cast<int>(c.peer.value()), d, c.piece.value());
    s.OnPieceFailed(c.peer, c.piece, FailureReason::kTimeout, now);
  }
  for (const Drop& drop : s.PeersToDrop(now)) {
    const int u = static_cast<int>(drop.peer.value());
    for (uint32_t piece = 0; piece < num_pieces_; ++piece) {
      CancelFlow(u, d, piece);
    }
    s.RemovePeer(drop.peer);
    node.linked[u] = 0;
    node.result.dropped.emplace_back(u, drop.reason);
  }
  if (config_.origin_rate > 0) PumpOrigin(d);
  for (const Assignment& a : s.NextRequests(now)) Request(d, a);
}

void Swarm::PumpOrigin(int d) {
  Scheduler& s = *nodes_[d].scheduler;
  for (const OriginWant& want :
       s.PiecesWantingOrigin(Now(), config_.origin_request_limit)) {
    const uint32_t piece = want.piece.value();
    // The fake tracker: K leases per piece, more when the holders failed.
    const bool grant =
        want.holders_failed ||
        grants_[piece] < static_cast<uint32_t>(config_.origin_leases_per_piece);
    if (grant) {
      ++grants_[piece];
      ++result_.origin_grants;
    }
    CheckOk(s.OnOriginLease(want.piece, grant, Now()));
    if (grant) {
      const uint64_t length = config_.piece_lengths[piece];
      flows_[FlowKey(kOrigin, d, piece)] =
          Flow{length, static_cast<double>(length), 0, false};
    }
  }
}

// The serving side: what the asked agent answers, at once.
void Swarm::Request(int d, const Assignment& a) {
  Scheduler& s = *nodes_[d].scheduler;
  const int u = static_cast<int>(a.peer.value());
  Node& up = nodes_[u];
  const SimBehaviour behaviour = up.spec.behaviour;
  if (behaviour == SimBehaviour::kLiar || !up.serves.Get(a.piece)) {
    s.OnPieceFailed(a.peer, a.piece, FailureReason::kRefused, Now());
    return;
  }
  const bool admitted = up.gate != nullptr
                            ? up.gate->TryStart(a.piece, up.serves)
                            : up.uploads < config_.upload_slots;
  if (!admitted) {
    ++result_.busy_refusals;
    s.OnPieceFailed(a.peer, a.piece, FailureReason::kBusy, Now());
    return;
  }
  if (up.gate == nullptr) ++up.uploads;
  if (a.endgame) ++result_.endgame_requests;
  flows_[FlowKey(u, d, a.piece.value())] =
      Flow{a.length, static_cast<double>(a.length), 0,
           behaviour == SimBehaviour::kCorrupt};
}

bool Swarm::AllDone() const {
  return std::none_of(nodes_.begin(), nodes_.end(),
                      [&](const Node& n) { return Downloading(n); });
}

absl::Duration Swarm::FluidBound() const {
  double release = 0;
  for (uint64_t length : config_.piece_lengths) release += length;
  double sources = config_.origin_rate, uploads = 0;
  double slowest = std::numeric_limits<double>::infinity();
  int downloaders = 0;
  for (const Node& n : nodes_) {
    if (n.spec.behaviour != SimBehaviour::kHonest) continue;
    if (n.spec.seed) {
      sources += n.spec.upload_rate;
      continue;
    }
    ++downloaders;
    uploads += n.spec.upload_rate;
    slowest = std::min(slowest, n.spec.download_rate);
  }
  if (downloaders == 0 || sources <= 0) return absl::InfiniteDuration();
  const double t = std::max({release / sources, release / slowest,
                             downloaders * release / (sources + uploads)});
  return absl::Seconds(t);
}

}  // namespace

std::array<double, kNumLocalities> SwarmResult::BytesByLocality() const {
  std::array<double, kNumLocalities> sum = {};
  for (const SimAgentResult& a : agents) {
    for (int i = 0; i < kNumLocalities; ++i) {
      sum[i] += static_cast<double>(a.progress.bytes_from_peers[i]);
    }
  }
  return sum;
}

std::string SwarmResult::Summary() const {
  const double release = static_cast<double>(release_bytes);
  const std::array<double, kNumLocalities> by = BytesByLocality();
  return absl::StrFormat(
      "complete=%d last=%s bound=%s ratio=%.3f origin=%.3fx wasted=%.3fx "
      "out=%s cancels=%d endgame=%d busy=%d rack/dc/remote=%.0f/%.0f/%.0f MiB "
      "steps=%d",
      all_complete, absl::FormatDuration(last_completion),
      absl::FormatDuration(fluid_bound), CompletionRatio(),
      origin_bytes / release, wasted_bytes / release,
      absl::FormatDuration(all_pieces_out), cancels, endgame_requests,
      busy_refusals, by[0] / (1 << 20), by[1] / (1 << 20), by[2] / (1 << 20),
      steps);
}

absl::StatusOr<SwarmResult> RunSwarm(const SwarmConfig& config) {
  Swarm swarm(config);
  if (absl::Status s = swarm.Init(); !s.ok()) return s;
  return swarm.Run();
}

}  // namespace shoal::agent
