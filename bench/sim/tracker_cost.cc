// tracker_cost: CPU time per call of the real Tracker (in process, on a
// MemoryStore) for announces, GetPeers and origin lease requests, at several
// swarm sizes. The swarm simulator's tracker service times come from these
// figures (README.md); rerun it to recalibrate on another machine.
//
//   bazel run -c opt //bench/sim:tracker_cost

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/bitfield.h"
#include "tracker/tracker_test_util.h"

namespace shoal::tracker::testing {
namespace {

constexpr uint32_t kPieces = 512;
constexpr int kRacks = 50;

// The tracker fixture outside a test run.
class Bench : public TrackerTest {
 public:
  void TestBody() override {}

  // Nanoseconds per call of each kind with `peers` peers half-way through
  // a download.
  void Measure(int peers) {
    const std::string id = Register(Pieces(kPieces));
    std::mt19937_64 rng(peers);
    std::vector<v1::AnnounceRequest> announces;
    for (int n = 0; n < peers; ++n) {
      Bitfield bits(kPieces);
      for (uint32_t i = 0; i < kPieces; ++i) {
        if (rng() % 2) bits.Set(ReleasePieceIndex(i));
      }
      announces.push_back(AnnounceOf(n, id, v1::PEER_STATE_DOWNLOADING,
                                     bits.bytes(), "dc1",
                                     "r" + std::to_string(n % kRacks)));
    }
    absl::Time start = absl::Now();
    for (const v1::AnnounceRequest& a : announces) {
      if (!tracker().Announce(a).ok()) std::abort();
    }
    const double announce =
        absl::ToDoubleNanoseconds(absl::Now() - start) / peers;
    const int calls = std::max(200, 200000 / peers);
    start = absl::Now();
    for (int c = 0; c < calls; ++c) {
      v1::GetPeersRequest request;
      request.set_peer_id(PeerId(c % peers));
      request.set_release_id(id);
      request.set_max_peers(32);
      if (!tracker().GetPeers(request).ok()) std::abort();
    }
    const double get_peers =
        absl::ToDoubleNanoseconds(absl::Now() - start) / calls;
    start = absl::Now();
    for (int c = 0; c < calls; ++c) {
      v1::OriginLeaseRequest request;
      request.set_peer_id(PeerId(c % peers));
      request.set_release_id(id);
      request.add_pieces(c % kPieces);
      request.add_pieces((c + 1) % kPieces);
      if (!tracker().RequestOriginLease(request).ok()) std::abort();
    }
    const double lease = absl::ToDoubleNanoseconds(absl::Now() - start) / calls;
    std::printf(
        "%6d peers: announce %8.1f us, GetPeers %8.1f us, lease %8.1f us\n",
        peers, announce / 1e3, get_peers / 1e3, lease / 1e3);
  }
};

}  // namespace
}  // namespace shoal::tracker::testing

int main() {
  for (int peers : {100, 1000, 3333, 10000}) {
    shoal::tracker::testing::Bench bench;
    bench.Measure(peers);
  }
  return 0;
}
