#include "bench/load_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bitfield.h"
#include "common/merkle.h"

namespace shoal::bench {
namespace {

constexpr int kSubBits = 6;
constexpr int kSub = 1 << kSubBits;
constexpr int kMaxExponent = 42;

size_t Bucket(int64_t v) {
  if (v < kSub) return static_cast<size_t>(v);
  const int exponent = std::min(63 - __builtin_clzll(v), kMaxExponent);
  const int64_t sub = (v >> (exponent - kSubBits)) & (kSub - 1);
  return static_cast<size_t>((exponent - kSubBits + 1) * kSub + sub);
}

// The largest value of `bucket`.
int64_t Top(size_t bucket) {
  if (bucket < kSub) return static_cast<int64_t>(bucket);
  const int exponent = static_cast<int>(bucket / kSub) + kSubBits - 1;
  const int64_t sub = bucket % kSub;
  return ((kSub + sub + 1) << (exponent - kSubBits)) - 1;
}

// A well-mixed 64-bit value of `x` (splitmix64's finalizer).
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Marks up to `count` random pieces held (some draws hit held ones).
void GainPieces(HeldRelease& held, uint32_t count, std::mt19937_64& rng) {
  const uint32_t pieces = held.release->pieces;
  for (uint32_t i = 0; i < count && pieces > 0; ++i) {
    const uint32_t piece = static_cast<uint32_t>(rng() % pieces);
    const char bit = static_cast<char>(0x80 >> (piece % 8));
    if ((held.bitfield[piece / 8] & bit) != 0) continue;
    held.bitfield[piece / 8] |= bit;
    // One piece in twenty comes from the origin.
    (rng() % 20 == 0 ? held.bytes_from_origin : held.bytes_from_peers) +=
        kBlockSize;
  }
}

bool Complete(const HeldRelease& held) {
  return CountPieces(held.bitfield) == held.release->pieces;
}

}  // namespace

LatencyHistogram::LatencyHistogram()
    : counts_((kMaxExponent - kSubBits + 2) * kSub, 0) {}

void LatencyHistogram::Record(int64_t nanos) {
  ++counts_[Bucket(std::max<int64_t>(nanos, 0))];
  ++total_;
}

int64_t LatencyHistogram::Quantile(double q) const {
  if (total_ == 0) return 0;
  const int64_t rank =
      std::max<int64_t>(1, static_cast<int64_t>(q * total_ + 0.5));
  int64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return Top(i);
  }
  return Top(counts_.size() - 1);
}

std::vector<std::unique_ptr<SimPeer>> MakePeers(
    const std::vector<Release>& releases, int count, int racks, uint64_t seed) {
  std::vector<std::unique_ptr<SimPeer>> peers;
  peers.reserve(count);
  for (int i = 0; i < count; ++i) {
    auto peer = std::make_unique<SimPeer>();
    peer->rng.seed(Mix(seed * 1000003 + i));
    peer->id = absl::StrFormat("%016x%016x", Mix(seed ^ (2 * i)),
                               Mix(seed ^ (2 * i + 1)));
    peer->address = absl::StrCat("10.", (i >> 16) & 255, ".", (i >> 8) & 255,
                                 ".", i & 255, ":7881");
    peer->rack = absl::StrFormat("rack-%02d", i % std::max(racks, 1));
    const size_t held = std::min<size_t>(1 + peer->rng() % 3, releases.size());
    const size_t first = peer->rng() % releases.size();
    for (size_t k = 0; k < held; ++k) {
      HeldRelease h;
      h.release = &releases[(first + k) % releases.size()];
      h.bitfield = Bitfield(h.release->pieces).bytes();
      // Eight draws per piece leave a seeder missing nothing, almost surely.
      const uint32_t gain = peer->rng() % 3 == 0
                                ? 8 * h.release->pieces
                                : peer->rng() % (h.release->pieces + 1);
      GainPieces(h, gain, peer->rng);
      peer->held.push_back(std::move(h));
    }
    peers.push_back(std::move(peer));
  }
  return peers;
}

void NextAnnounce(SimPeer& peer, const std::string& datacenter,
                  v1::AnnounceRequest& request) {
  request.Clear();
  request.set_peer_id(peer.id);
  request.set_address(peer.address);
  request.set_datacenter(datacenter);
  request.set_rack(peer.rack);
  for (HeldRelease& held : peer.held) {
    if (!Complete(held)) GainPieces(held, peer.rng() % 9, peer.rng);
    v1::ReleaseAnnounce* r = request.add_releases();
    r->set_release_id(held.release->id);
    r->set_state(Complete(held) ? v1::PEER_STATE_SEEDING
                                : v1::PEER_STATE_DOWNLOADING);
    r->set_bitfield(held.bitfield);
    r->set_bytes_from_peers(held.bytes_from_peers);
    r->set_bytes_from_origin(held.bytes_from_origin);
  }
}

}  // namespace shoal::bench
