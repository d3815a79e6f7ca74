#include "agent/scheduler.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

// Peers slower per byte than the typical peer by more than these factors
// are asked only after faster holders.
constexpr double kSlowFactor = 2;
constexpr double kVerySlowFactor = 8;
// Weight of the newest sample in a seconds-per-byte average.
constexpr double kRateSmoothing = 0.3;

// Tiers of holders: the three localities of peers in good standing, then
// the same for peers whose last request failed, so that a peer in doubt
// does not hold its pieces back from farther holders.
constexpr int kTiers = 2 * kNumLocalities;

// a |= b, byte by byte; `b` is at least as long as `a`.
void Or(std::string& a, const std::string& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] |= b[i];
}

// Exponential smoothing; an average of 0 has no samples yet.
double Smooth(double average, double sample) {
  return average == 0
             ? sample
             : (1 - kRateSmoothing) * average + kRateSmoothing * sample;
}

absl::Status CheckConfig(const SchedulerConfig& c,
                         const std::vector<uint64_t>& lengths) {
  if (c.max_in_flight_per_peer < 1 || c.max_in_flight < 1 ||
      c.endgame_max_copies < 1 || c.max_consecutive_failures < 1 ||
      c.max_refusals < 1 || c.max_origin_in_flight < 0) {
    return absl::InvalidArgumentError(
        "scheduler limits must be at least 1 (max_origin_in_flight 0)");
  }
  if (!(c.assumed_rate > 0) || !(c.timeout_factor > 0) ||
      c.min_timeout <= absl::ZeroDuration() || c.max_timeout < c.min_timeout ||
      c.busy_backoff < absl::ZeroDuration() || !(c.min_peer_rate >= 0)) {
    return absl::InvalidArgumentError(
        "scheduler rates and timeouts must be positive, min <= max");
  }
  uint64_t largest = 0;
  for (uint64_t length : lengths) {
    if (length == 0) return absl::InvalidArgumentError("a piece of 0 bytes");
    largest = std::max(largest, length);
  }
  if (c.min_peer_rate > 0 &&
      c.min_peer_rate * absl::ToDoubleSeconds(c.rate_window) <
          static_cast<double>(largest)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a peer at min_peer_rate ", c.min_peer_rate,
        " B/s cannot deliver a piece of ", largest,
        " bytes within rate_window ", absl::FormatDuration(c.rate_window),
        "; widen the window"));
  }
  if (!(c.endgame_after >= 0)) {
    return absl::InvalidArgumentError("endgame_after must not be negative");
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kBanned:
      return "banned";
    case DropReason::kSlow:
      return "slow";
    case DropReason::kFailures:
      return "failures";
    case DropReason::kLying:
      return "lying";
    case DropReason::kMisbehaving:
      return "misbehaving";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(
    const SchedulerConfig& config, std::vector<uint64_t> piece_lengths,
    Bitfield have, absl::BitGenRef rng) {
  RETURN_IF_ERROR(CheckConfig(config, piece_lengths));
  if (have.num_pieces() != piece_lengths.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("have bitfield of ", have.num_pieces(), " pieces for ",
                     piece_lengths.size(), " piece lengths"));
  }
  return absl::WrapUnique(
      new Scheduler(config, std::move(piece_lengths), std::move(have), rng));
}

Scheduler::Scheduler(const SchedulerConfig& config,
                     std::vector<uint64_t> lengths, Bitfield have,
                     absl::BitGenRef rng)
    : config_(config),
      lengths_(std::move(lengths)),
      rng_(rng),
      have_(std::move(have)),
      verified_(have_.Count()),
      availability_(lengths_.size(), 0),
      in_rack_(lengths_.size(), 0),
      in_flight_(have_.num_pieces()),
      typical_seconds_per_byte_(1.0 / config.assumed_rate) {}

Scheduler::~Scheduler() = default;

// --- Requests. ---

std::vector<Assignment> Scheduler::NextRequests(absl::Time now) {
  std::vector<Assignment> out;
  if (complete()) {
    endgame_ = false;
    return out;
  }
  const bool endgame_on = config_.endgame_max_copies > 1;
  endgame_ = endgame_on && InEndgame(now);
  if (total_in_flight_ >= config_.max_in_flight && !endgame_) return out;
  std::vector<Open> open = OpenPeers(now);
  if (!open.empty() && total_in_flight_ < config_.max_in_flight) {
    PickRarest(now, open, out);
  }
  endgame_ = endgame_on && InEndgame(now);
  if (endgame_ && !open.empty()) PickEndgame(now, open, out);
  return out;
}

std::vector<Scheduler::Open> Scheduler::OpenPeers(absl::Time now) {
  std::vector<Open> open;
  for (auto& [key, peer] : peers_) {
    peer.open = !peer.drop && peer.claim_count > 0 &&
                peer.backoff_until <= now &&
                peer.in_flight < config_.max_in_flight_per_peer;
    if (peer.open) open.push_back({key, &peer});
  }
  return open;
}

std::vector<std::pair<int, uint32_t>> Scheduler::Wanted(
    const std::vector<Open>& open, absl::Time now) const {
  // Byte-wise, per tier: what usable peers claim, and what open ones do.
  const size_t size = have_.bytes().size();
  std::array<std::string, kTiers> held, offered;
  held.fill(std::string(size, '\0'));
  offered.fill(std::string(size, '\0'));
  for (const auto& [unused_key, peer] : peers_) {
    // A busy complete peer is everyone's source; it does not hold pieces
    // back from farther holders.
    const bool complete_peer = peer.claim_count == have_.num_pieces();
    if (peer.drop || (complete_peer && !peer.open)) continue;
    Or(held[TierOf(peer)], peer.claims.bytes());
  }
  for (const Open& o : open) {
    Or(offered[TierOf(*o.peer)], o.peer->claims.bytes());
  }
  std::vector<std::pair<int, uint32_t>> wanted;
  for (size_t i = 0; i < size; ++i) {
    // Missing pieces not yet placed at a nearer tier.
    uint8_t left =
        static_cast<uint8_t>(~(have_.bytes()[i] | in_flight_.bytes()[i]));
    for (int tier = 0; tier < kTiers && left != 0; ++tier) {
      const uint8_t here = left & static_cast<uint8_t>(held[tier][i]);
      left &= static_cast<uint8_t>(~here);
      const uint8_t ready = here & static_cast<uint8_t>(offered[tier][i]);
      for (int b = 0; b < 8; ++b) {
        const uint32_t piece = static_cast<uint32_t>(i * 8 + b);
        if ((ready & (0x80 >> b)) == 0) continue;
        if (origin_.empty() || !OriginBusyFor(piece, now)) {
          wanted.emplace_back(tier, piece);
        }
      }
    }
  }
  return wanted;
}

void Scheduler::PickRarest(absl::Time now, std::vector<Open>& open,
                           std::vector<Assignment>& out) {
  // (holders in this rack, nearest tier, holders, random tie break, piece):
  // what the rack lacks first, so that it flows in while the rack shares
  // what it has.
  std::vector<std::tuple<uint32_t, int, uint32_t, uint32_t, uint32_t>>
      candidates;
  for (const auto& [tier, piece] : Wanted(open, now)) {
    candidates.emplace_back(in_rack_[piece], tier, availability_[piece],
                            absl::Uniform<uint32_t>(rng_), piece);
  }
  std::sort(candidates.begin(), candidates.end());
  for (const auto& [unused_rack, tier, unused_avail, unused_tie, piece] :
       candidates) {
    if (open.empty() || total_in_flight_ >= config_.max_in_flight) break;
    const int i =
        ChooseHolder(piece, now, open, tier % kNumLocalities, nullptr);
    if (i < 0) continue;
    out.push_back(Assign(open[i], piece, now, /*endgame=*/false));
    if (open[i].peer->in_flight >= config_.max_in_flight_per_peer) {
      open.erase(open.begin() + i);
    }
  }
}

void Scheduler::PickEndgame(absl::Time now, std::vector<Open>& open,
                            std::vector<Assignment>& out) {
  // (copies in flight, oldest request, piece): the least covered and the
  // longest waiting pieces first, once their newest copy is overdue: out
  // for endgame_after x the typical time of a piece of that length.
  std::vector<std::tuple<size_t, absl::Time, uint32_t>> items;
  for (const auto& [piece, requests] : requests_) {
    if (requests.size() >= static_cast<size_t>(config_.endgame_max_copies)) {
      continue;
    }
    absl::Time oldest = absl::InfiniteFuture();
    absl::Time newest = absl::InfinitePast();
    for (const Request& r : requests) {
      oldest = std::min(oldest, r.started);
      newest = std::max(newest, r.started);
    }
    const absl::Duration typical =
        absl::Seconds(typical_seconds_per_byte_ * lengths_[piece]);
    if (now - newest < config_.endgame_after * typical) continue;
    items.emplace_back(requests.size(), oldest, piece);
  }
  std::sort(items.begin(), items.end());
  for (const auto& [unused_copies, unused_oldest, piece] : items) {
    if (open.empty()) break;
    const int i =
        ChooseHolder(piece, now, open, kNumLocalities - 1, &requests_[piece]);
    if (i < 0) continue;
    out.push_back(Assign(open[i], piece, now, /*endgame=*/true));
    if (open[i].peer->in_flight >= config_.max_in_flight_per_peer) {
      open.erase(open.begin() + i);
    }
  }
}

int Scheduler::ChooseHolder(uint32_t piece, absl::Time now,
                            const std::vector<Open>& open, int farthest,
                            const std::vector<Request>* requested) {
  const ReleasePieceIndex index(piece);
  int best = -1;
  int ties = 0;
  std::tuple<int, int, int, int> best_rank;
  for (int i = 0; i < static_cast<int>(open.size()); ++i) {
    const Peer& peer = *open[i].peer;
    if (static_cast<int>(peer.locality) > farthest || !peer.claims.Get(index) ||
        Avoided(piece, open[i].key, now)) {
      continue;
    }
    if (requested != nullptr &&
        std::any_of(requested->begin(), requested->end(),
                    [&](const Request& r) { return r.peer == open[i].key; })) {
      continue;
    }
    const bool complete_peer = peer.claim_count == have_.num_pieces();
    const std::tuple<int, int, int, int> rank(
        static_cast<int>(peer.locality), SpeedClass(peer),
        complete_peer ? 1 : 0, peer.in_flight);
    if (best < 0 || rank < best_rank) {
      best = i;
      best_rank = rank;
      ties = 1;
    } else if (rank == best_rank && absl::Uniform(rng_, 0, ++ties) == 0) {
      best = i;  // Each of the tied holders is kept with equal chance.
    }
  }
  return best;
}

int Scheduler::TierOf(const Peer& peer) {
  return static_cast<int>(peer.locality) +
         (peer.consecutive_failures > 0 ? kNumLocalities : 0);
}

int Scheduler::SpeedClass(const Peer& peer) const {
  if (peer.seconds_per_byte == 0) return 0;  // not measured yet
  const double ratio = peer.seconds_per_byte / typical_seconds_per_byte_;
  return ratio <= kSlowFactor ? 0 : ratio <= kVerySlowFactor ? 1 : 2;
}

Assignment Scheduler::Assign(const Open& open, uint32_t piece, absl::Time now,
                             bool endgame) {
  Peer& peer = *open.peer;
  const uint64_t length = lengths_[piece];
  const double seconds_per_byte = peer.seconds_per_byte > 0
                                      ? peer.seconds_per_byte
                                      : 1.0 / config_.assumed_rate;
  const absl::Duration timeout =
      std::clamp(absl::Seconds(config_.timeout_factor * seconds_per_byte *
                               static_cast<double>(length)),
                 config_.min_timeout, config_.max_timeout);
  if (peer.in_flight++ == 0) peer.busy_since = now;
  ++total_in_flight_;
  requests_[piece].push_back(Request{open.key, now, now + timeout});
  in_flight_.Set(ReleasePieceIndex(piece));
  return Assignment{open.key, ReleasePieceIndex(piece), length, now + timeout,
                    endgame};
}

bool Scheduler::Avoided(uint32_t piece, PeerKey peer, absl::Time now) const {
  auto it = avoid_.find(piece);
  if (it == avoid_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const Avoid& a) {
    return a.peer == peer && a.until > now;
  });
}

void Scheduler::AddAvoid(uint32_t piece, PeerKey peer, absl::Time until,
                         bool failed) {
  std::vector<Avoid>& list = avoid_[piece];
  for (Avoid& a : list) {
    if (a.peer == peer) {
      a.until = std::max(a.until, until);
      a.holder_failed = a.holder_failed || failed;
      return;
    }
  }
  list.push_back(Avoid{peer, until, failed});
}

bool Scheduler::EndRequest(PeerKey peer, uint32_t piece) {
  auto it = requests_.find(piece);
  if (it == requests_.end()) return false;
  std::vector<Request>& list = it->second;
  auto r = std::find_if(list.begin(), list.end(),
                        [&](const Request& q) { return q.peer == peer; });
  if (r == list.end()) return false;
  list.erase(r);
  ReleaseSlot(peer);
  if (list.empty()) {
    requests_.erase(it);
    in_flight_.Set(ReleasePieceIndex(piece), false);
  }
  return true;
}

void Scheduler::EndAllRequests(PeerKey peer) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    std::vector<Request>& list = it->second;
    const size_t before = list.size();
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const Request& r) { return r.peer == peer; }),
               list.end());
    for (size_t i = list.size(); i < before; ++i) ReleaseSlot(peer);
    if (!list.empty()) {
      ++it;
      continue;
    }
    in_flight_.Set(ReleasePieceIndex(it->first), false);
    it = requests_.erase(it);
  }
}

void Scheduler::ReleaseSlot(PeerKey key) {
  --total_in_flight_;
  auto it = peers_.find(key);
  if (it == peers_.end()) return;
  if (--it->second.in_flight == 0) {
    it->second.busy_since = absl::InfiniteFuture();
  }
}

std::vector<Cancel> Scheduler::MarkHave(uint32_t piece,
                                        std::optional<PeerKey> from) {
  std::vector<Cancel> cancels;
  auto it = requests_.find(piece);
  if (it != requests_.end()) {
    for (const Request& r : it->second) {
      ReleaseSlot(r.peer);
      if (r.peer != from) cancels.push_back({r.peer, ReleasePieceIndex(piece)});
    }
    requests_.erase(it);
    in_flight_.Set(ReleasePieceIndex(piece), false);
  }
  avoid_.erase(piece);
  origin_.erase(piece);
  if (!have_.Get(ReleasePieceIndex(piece))) {
    have_.Set(ReleasePieceIndex(piece));
    ++verified_;
  }
  return cancels;
}

std::vector<Cancel> Scheduler::OnPieceVerified(PeerKey key,
                                               ReleasePieceIndex piece,
                                               uint64_t bytes, absl::Time now) {
  CHECK_LT(piece.value(), have_.num_pieces());
  std::optional<absl::Time> started;
  if (auto it = requests_.find(piece.value()); it != requests_.end()) {
    for (const Request& r : it->second) {
      if (r.peer == key) started = r.started;
    }
  }
  std::vector<Cancel> cancels = MarkHave(piece.value(), key);
  auto it = peers_.find(key);
  if (it == peers_.end()) return cancels;
  Peer& peer = it->second;
  peer.consecutive_failures = 0;
  peer.busy_streak = 0;
  peer.bytes_verified += bytes;
  peer.delivered.emplace_back(now, bytes);
  while (!peer.delivered.empty() &&
         peer.delivered.front().first <= now - config_.rate_window) {
    peer.delivered.pop_front();
  }
  stats_.bytes_from_peers[static_cast<int>(peer.locality)] += bytes;
  if (started && bytes > 0) {
    const double sample =
        absl::ToDoubleSeconds(now - *started) / static_cast<double>(bytes);
    peer.seconds_per_byte = Smooth(peer.seconds_per_byte, sample);
    typical_seconds_per_byte_ = Smooth(typical_seconds_per_byte_, sample);
  }
  return cancels;
}

// --- State. ---

bool Scheduler::InEndgame(absl::Time now) const {
  const uint32_t missing = have_.num_pieces() - verified_;
  if (missing == 0) return false;
  return requests_.size() + OriginBusy(now) >= missing;
}

uint32_t Scheduler::Availability(ReleasePieceIndex piece) const {
  CHECK_LT(piece.value(), have_.num_pieces());
  return availability_[piece.value()];
}

Progress Scheduler::progress() const {
  Progress p = stats_;
  p.num_pieces = have_.num_pieces();
  p.pieces_verified = verified_;
  p.requests_in_flight = static_cast<uint32_t>(total_in_flight_);
  p.peers = static_cast<uint32_t>(peers_.size());
  p.banned = static_cast<uint32_t>(banned_.size());
  p.endgame = endgame_;
  return p;
}

}  // namespace shoal::agent
