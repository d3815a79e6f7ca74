#pragma once

// The tracker's domain object: swarm membership, peer ranking, origin
// leases, the release catalog, channels and swarm health. The gRPC service
// only unpacks requests, calls these methods and packs the answers; nothing
// here knows about gRPC.
//
// State lives in a Store (memory or Redis, shared by the replicas of one
// datacenter's tracker). Two things are kept per replica, in bounded memory
// (see PeerMemo): the announce rate of each peer and the last progress each
// peer reported per release. A peer that fails over to another replica is
// therefore counted afresh, and its "last progress" restarts at that first
// announce.
//
// Errors, for every method:
//   INVALID_ARGUMENT    a malformed request; the message names the field and
//                       says what is accepted.
//   NOT_FOUND           an unknown release or channel, where one is required.
//   RESOURCE_EXHAUSTED  a peer announcing too often (the message says when to
//                       retry).
//   UNAUTHENTICATED, FAILED_PRECONDITION  a manifest that does not verify
//                       against the trust policy now (from Manifest::Verify),
//                       or a replayed signing.
//   UNAVAILABLE, INTERNAL  from the store, with what was being done.
//
// Thread-safe.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/manifest.h"
#include "common/trust.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/peer_memo.h"
#include "tracker/request_checks.h"
#include "tracker/store.h"

namespace shoal::tracker {

struct TrackerOptions {
  // This tracker's datacenter: askers that have not announced a release are
  // served peers of this datacenter, and their leases are counted here.
  std::string datacenter;
  // How often agents announce; answers add +-10 % jitter.
  absl::Duration announce_interval = absl::Seconds(30);
  // Peers not announcing for this long expire.
  absl::Duration peer_ttl = absl::Seconds(90);
  // How long an origin lease lasts.
  absl::Duration lease_ttl = absl::Seconds(60);
  // K: live leases per piece per datacenter.
  int lease_holders = 1;
  // Caps GetPeersRequest.max_peers; also the answer when it is 0.
  uint32_t max_peers_returned = 50;
  // Pieces considered per lease request; the rest of a longer request appear
  // in no list of the answer (ask again).
  uint32_t max_pieces_per_lease_request = 1024;
  uint32_t max_releases_per_announce = 256;
  // Whether GetPeers adds peers of other datacenters after the asker's own.
  bool return_other_datacenters = false;
  // A downloading peer without progress for this long counts as stalled.
  absl::Duration stall_threshold = absl::Minutes(2);
  // Per peer and announce_interval; more -> RESOURCE_EXHAUSTED.
  int max_announces_per_interval = 10;
  // Bounds the PeerMemo: peers plus their per-release records one replica
  // remembers (about 100 bytes each).
  size_t max_remembered_peers = 1 << 18;
  // Seeds the generator for jitter and shuffles; 0 seeds it from the OS.
  // Tests set it to repeat a run.
  uint64_t random_seed = 0;
};

// INVALID_ARGUMENT naming the option unless: `datacenter` is a valid label
// (ValidateLocalityLabel); every duration is positive; lease_holders,
// max_announces_per_interval, max_peers_returned,
// max_pieces_per_lease_request, max_releases_per_announce and
// max_remembered_peers are at least 1. A Tracker must be built only from
// options that pass.
absl::Status ValidateTrackerOptions(const TrackerOptions& options);

// Largest bitfield accepted (1 MiB, 8 Mi pieces). A release with more pieces
// is refused at registration: publish it with a larger piece size.
inline constexpr size_t kMaxBitfieldBytes = 1 << 20;
// Most origin URLs one registration may carry.
inline constexpr int kMaxOriginUrls = 16;

class Tracker {
 public:
  // `store`, `trust` and `clock` must outlive the tracker. CHECK-fails unless
  // ValidateTrackerOptions(options) is OK.
  Tracker(Store& store, const TrustPolicy& trust, const Clock& clock,
          TrackerOptions options);
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // Records the peer in the swarm of every release it lists, under the
  // datacenter it names (which may differ from this tracker's: agents fail
  // over across datacenters); STOPPED removes it from that swarm at once.
  // The whole request is validated before anything is stored:
  // peer_id is 32 lower-case hex digits; address is host:port (port
  // 1..65535; an IPv6 host in brackets); datacenter and rack pass
  // ValidateLocalityLabel; at most max_releases_per_announce releases, each
  // listed once, with a 64-hex-digit id and a state; a bitfield is exactly
  // ceil(total pieces / 8) bytes with the spare bits clear when the release
  // is registered, at most kMaxBitfieldBytes otherwise. pieces_have is the
  // bitfield's popcount. RESOURCE_EXHAUSTED when the peer has already
  // announced max_announces_per_interval times within announce_interval.
  // The answer: the next announce in announce_interval +-10 %, and peer_ttl.
  absl::StatusOr<v1::AnnounceResponse> Announce(
      const v1::AnnounceRequest& request);

  // Up to min(max_peers or max_peers_returned, max_peers_returned) live
  // peers of the release, ranked by RankPeers around the asker's own record
  // (its datacenter, rack and bitfield). An asker that has not announced the
  // release is ranked as a peer of this tracker's datacenter holding
  // nothing. Other datacenters only with return_other_datacenters.
  // The release need not be registered.
  absl::StatusOr<v1::GetPeersResponse> GetPeers(
      const v1::GetPeersRequest& request);

  // Sorts each requested piece (duplicates dropped, the first
  // max_pieces_per_lease_request considered) into one list of the answer,
  // within the asker's datacenter (this tracker's when it has not
  // announced): held_by_peers when another live peer's bitfield holds it and
  // it is not in holders_failed; else granted when a lease is free (fewer
  // than lease_holders live leases, or the asker's own, which is extended);
  // else leased_to_others. A piece only in holders_failed counts as asked
  // for. NOT_FOUND for an unregistered release; INVALID_ARGUMENT for a piece
  // (in either list) past the release's last.
  absl::StatusOr<v1::OriginLeaseResponse> RequestOriginLease(
      const v1::OriginLeaseRequest& request);

  // Verifies the manifest against the trust policy now and stores it with
  // its origin URLs (1 to kMaxOriginUrls http:// or https:// URLs with a
  // host; duplicates dropped). Idempotent: the same release again answers
  // created=false and replaces the origin URLs. Another release of the same
  // name@version needs a higher sequence (re-signing):
  // FAILED_PRECONDITION otherwise. INVALID_ARGUMENT for bytes that do not
  // decode, a body that fails validation, or more pieces than
  // kMaxBitfieldBytes can hold.
  absl::StatusOr<v1::RegisterReleaseResponse> RegisterRelease(
      const v1::RegisterReleaseRequest& request);

  // A release by id, or by "name@version" (the highest sequence registered
  // for it). NOT_FOUND when not registered.
  absl::StatusOr<v1::ReleaseInfo> GetRelease(
      const v1::GetReleaseRequest& request);

  // Registered releases (of one name, or all), sorted by name, version and
  // sequence, without manifest bytes.
  absl::StatusOr<v1::ListReleasesResponse> ListReleases(
      const v1::ListReleasesRequest& request);

  // Points a channel "<name>/<label>" at a release of that name (by id or
  // name@version), whose manifest must verify now, with a percent 0..100 and
  // a paused flag. An empty `release` keeps the channel's current one and
  // does not re-verify it, so that pausing always works; `keep_percent`
  // keeps its percent (both NOT_FOUND for a new channel). Returns the stored
  // rollout; its generation grows with every call. NOT_FOUND for an
  // unregistered release; INVALID_ARGUMENT for a release of another name
  // ("channel game-server/stable cannot point at other@1.0").
  absl::StatusOr<v1::Rollout> SetRollout(const v1::SetRolloutRequest& request);

  // NOT_FOUND for a channel never set.
  absl::StatusOr<v1::Rollout> GetRollout(const v1::GetRolloutRequest& request);

  // One SwarmHealth per (release, datacenter with live peers). For a named
  // release (id or name@version; NOT_FOUND for an unregistered name@version)
  // this tracker's datacenter is always included, even without peers; with
  // an empty `release`, every release with live peers. Sorted by release id
  // and datacenter. The completion histogram is empty when the release is
  // not registered (its piece count is unknown).
  absl::StatusOr<v1::SwarmHealthResponse> GetSwarmHealth(
      const v1::SwarmHealthRequest& request);

  const TrackerOptions& options() const { return options_; }

 private:
  // `status` from the store, saying what was being done.
  static absl::Status StoreError(const absl::Status& status,
                                 absl::string_view doing);

  // tracker.cc: swarms.
  // The lower-case release ids of the request, once everything in it
  // checked out.
  absl::StatusOr<std::vector<std::string>> CheckAnnounce(
      const v1::AnnounceRequest& request);
  absl::Status CheckBitfield(const std::string& release_id,
                             const std::string& bitfield);
  // Removes the peer from the swarm of `release_id` (a STOPPED release).
  absl::Status StopPeer(const v1::AnnounceRequest& request,
                        const std::string& release_id);
  // The record of the peer in the swarm of `release_id`, noting its
  // progress in the memo.
  PeerPut PeerRecord(const v1::AnnounceRequest& request,
                     const std::string& release_id,
                     const v1::ReleaseAnnounce& release, absl::Time now);
  absl::Duration Jittered(absl::Duration d);
  // Live peers of the release in every datacenter.
  absl::StatusOr<std::vector<v1::StoredPeer>> ListSwarm(
      const std::string& release_id, absl::Time now);
  // TryAcquireLease with this tracker's K and lease TTL.
  absl::StatusOr<bool> AcquireLease(const LeaseKey& key,
                                    const std::string& peer_id, absl::Time now);
  // The release ids a health request covers.
  absl::StatusOr<std::vector<std::string>> HealthReleases(
      const std::string& release);
  // One release's swarms by datacenter; this tracker's always when
  // `include_own_datacenter`.
  absl::StatusOr<std::vector<v1::SwarmHealth>> ReleaseHealth(
      const std::string& release_id, bool include_own_datacenter);

  // tracker_catalog.cc: releases and channels.
  // The catalog entry for a release id, or nullopt when not registered.
  absl::StatusOr<std::optional<v1::StoredRelease>> FindRelease(
      const std::string& release_id);
  // A release named by id or name@version; NOT_FOUND when not registered.
  absl::StatusOr<v1::StoredRelease> ResolveRelease(absl::string_view release);
  // The registered signings of name@version.
  absl::StatusOr<std::vector<v1::StoredRelease>> ListVersion(
      const std::string& name, const std::string& version);
  // The piece count of a registered release, or nullopt.
  absl::StatusOr<std::optional<uint32_t>> TotalPiecesOf(
      const std::string& release_id);
  // FAILED_PRECONDITION unless `manifest` has a higher sequence than every
  // other registered signing of its name@version.
  absl::Status CheckNewestSigning(const Manifest& manifest);
  // The release id a SetRollout request names: registered, of the
  // channel's name, and verifying now.
  absl::StatusOr<std::string> RolloutTarget(
      const ChannelName& channel, const v1::SetRolloutRequest& request);
  absl::StatusOr<std::optional<ChannelRecord>> ReadChannel(
      const std::string& channel);

  Store& store_;
  const TrustPolicy& trust_;
  const Clock& clock_;
  const TrackerOptions options_;
  PeerMemo memo_;

  // Piece counts of registered releases: a release id names one manifest,
  // so an entry never goes stale. Bounded by kMaxCachedReleases.
  absl::Mutex cache_mu_;
  absl::flat_hash_map<std::string, uint32_t> total_pieces_
      ABSL_GUARDED_BY(cache_mu_);

  absl::Mutex rng_mu_;
  absl::BitGen rng_ ABSL_GUARDED_BY(rng_mu_);
};

}  // namespace shoal::tracker
