#pragma once

// A Tracker on a MemoryStore and a FakeClock, with really signed manifests,
// for the tracker's unit tests.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/ed25519.h"
#include "common/trust.h"
#include "gtest/gtest.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/memory_store.h"
#include "tracker/store.h"
#include "tracker/tracker.h"

namespace shoal::tracker::testing {

// 2024-01-01T00:00:00Z: manifests are created here, the clock starts an hour
// later, and manifests expire 30 days after creation.
inline constexpr int64_t kCreatedMs = 1704067200000;
inline const absl::Time kStart =
    absl::FromUnixMillis(kCreatedMs) + absl::Hours(1);
inline constexpr absl::Duration kValidFor = absl::Hours(24 * 30);

// What a test manifest holds.
struct ReleaseSpec {
  std::string name = "game-server";
  std::string version = "1.0";
  uint64_t sequence = 1;
  // One file of this many 16 KiB pieces.
  uint32_t pieces = 20;
};

// A spec of `pieces` pieces, or of one name@version and sequence.
ReleaseSpec Pieces(uint32_t pieces);
ReleaseSpec Release(const std::string& name, const std::string& version,
                    uint64_t sequence = 1);

// A Store whose every call fails with UNAVAILABLE while `down` is set, and
// otherwise forwards to a MemoryStore: a Redis that went away.
class SwitchableStore final : public Store {
 public:
  bool down = false;

  absl::Status PutPeer(const std::string& release_id,
                       const v1::StoredPeer& peer, absl::Time expires) override;
  absl::Status RemovePeer(const std::string& release_id,
                          const std::string& datacenter,
                          const std::string& peer_id) override;
  absl::StatusOr<std::vector<v1::StoredPeer>> ListPeers(
      const std::string& release_id, const std::string& datacenter,
      absl::Time now) override;
  absl::StatusOr<std::vector<std::string>> ListSwarms(absl::Time now) override;
  absl::StatusOr<bool> TryAcquireLease(const LeaseKey& key,
                                       const std::string& peer_id,
                                       int max_holders, absl::Time now,
                                       absl::Time expires) override;
  absl::StatusOr<uint32_t> CountLeases(const std::string& release_id,
                                       const std::string& datacenter,
                                       absl::Time now) override;
  absl::Status PutRelease(const v1::StoredRelease& release) override;
  absl::StatusOr<std::optional<v1::StoredRelease>> GetRelease(
      const std::string& release_id) override;
  absl::StatusOr<std::vector<v1::StoredRelease>> ListReleases(
      const std::string& name) override;
  absl::StatusOr<ChannelRecord> PutChannel(
      const ChannelRecord& channel) override;
  absl::StatusOr<std::optional<ChannelRecord>> GetChannel(
      const std::string& channel) override;
  absl::Status Ping() override;

 private:
  absl::Status Check() const;
  MemoryStore memory_;
};

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest();

  // The tracker, built on first use from `options_`; set those first.
  Tracker& tracker();

  // SignedManifest bytes for `spec`, signed by `key` (the trusted key by
  // default) and expiring kValidFor after kCreatedMs.
  std::string SignedManifest(const ReleaseSpec& spec) const;
  std::string SignedManifest(const ReleaseSpec& spec,
                             const PrivateKey& key) const;
  // Registers `spec` with one origin URL; returns the release id.
  std::string Register(const ReleaseSpec& spec = ReleaseSpec());

  // The peer id of test agent `n`: 32 hex digits.
  static std::string PeerId(int n);
  // A bitfield of `pieces` pieces with the first `have` set.
  static std::string Bits(uint32_t pieces, uint32_t have);

  // An announce by agent `n` at 10.0.<n>:7881 of one release.
  v1::AnnounceRequest AnnounceOf(int n, const std::string& release_id,
                                 v1::PeerState state,
                                 const std::string& bitfield,
                                 const std::string& datacenter = "dc1",
                                 const std::string& rack = "r1") const;
  absl::Status Announce(int n, const std::string& release_id,
                        v1::PeerState state, const std::string& bitfield,
                        const std::string& datacenter = "dc1",
                        const std::string& rack = "r1");

  // Peer ids GetPeers returns to agent `n`, in order.
  std::vector<std::string> PeersFor(int n, const std::string& release_id,
                                    uint32_t max_peers = 0);

  PrivateKey key_;
  PrivateKey stranger_;  // not trusted
  TrustPolicy trust_;
  FakeClock clock_;
  SwitchableStore store_;
  TrackerOptions options_;

 private:
  std::unique_ptr<Tracker> tracker_;
};

}  // namespace shoal::tracker::testing
