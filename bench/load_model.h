#pragma once

// What tracker_load sends and how it measures: simulated agents with
// realistic announces, and a latency histogram.

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shoal/v1/tracker.pb.h"

namespace shoal::bench {

// Latencies in nanoseconds, each kept to within 1/64 of its value (64
// buckets per power of two, up to about 73 minutes). Thread-compatible.
class LatencyHistogram {
 public:
  LatencyHistogram();

  // Negative values count as 0.
  void Record(int64_t nanos);
  // The value at quantile `q` in [0, 1], rounded up to the top of its
  // bucket; 0 when nothing was recorded.
  int64_t Quantile(double q) const;

 private:
  std::vector<int64_t> counts_;
  int64_t total_ = 0;
};

// A registered release: its id and piece count.
struct Release {
  std::string id;
  uint32_t pieces = 0;
};

// One release as a simulated peer holds it.
struct HeldRelease {
  const Release* release = nullptr;
  std::string bitfield;  // wire form, Bitfield::ByteLength(pieces) bytes
  uint64_t bytes_from_peers = 0;
  uint64_t bytes_from_origin = 0;
};

// One simulated agent. Its fields are touched by one thread at a time: the
// one that set `busy`.
struct SimPeer {
  std::string id;       // 32 lower-case hex digits
  std::string address;  // 10.x.y.z:7881
  std::string rack;
  std::vector<HeldRelease> held;  // 1 to 3 distinct releases
  std::mt19937_64 rng;
  std::atomic<bool> busy{false};
};

// `count` peers over `releases` (which must outlive them and not be empty),
// spread over `racks` racks. A third start as seeders of each release they
// hold, the others with a random share of its pieces. The same arguments
// give the same peers in the same state.
std::vector<std::unique_ptr<SimPeer>> MakePeers(
    const std::vector<Release>& releases, int count, int racks, uint64_t seed);

// Replaces `request` with the peer's next announce of all its releases;
// each download first gains up to 8 random pieces, and is SEEDING once it
// holds them all.
void NextAnnounce(SimPeer& peer, const std::string& datacenter,
                  v1::AnnounceRequest& request);

}  // namespace shoal::bench
