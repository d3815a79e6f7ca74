// Swarm coordination: announces, peers, origin leases and health. The
// catalog and channels are in tracker_catalog.cc.

#include "tracker/tracker.h"

#include <algorithm>
#include <map>
#include <random>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "common/bitfield.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "tracker/lease_policy.h"
#include "tracker/peer_selection.h"
#include "tracker/request_checks.h"
#include "tracker/swarm_health.h"

namespace shoal::tracker {
namespace {

absl::Status Positive(absl::string_view name, absl::Duration d) {
  if (d > absl::ZeroDuration()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be positive, not ", absl::FormatDuration(d)));
}

absl::Status AtLeastOne(absl::string_view name, int64_t value) {
  if (value >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be at least 1, not ", value));
}

const TrackerOptions& CheckedOptions(const TrackerOptions& options) {
  const absl::Status status = ValidateTrackerOptions(options);
  CHECK(status.ok()) << status;
  return options;
}

absl::BitGen MakeGenerator(uint64_t seed) {
  if (seed == 0) return absl::BitGen();
  std::seed_seq seq{static_cast<uint32_t>(seed),
                    static_cast<uint32_t>(seed >> 32)};
  return absl::BitGen(seq);
}

// The asker's own record in `peers`, or nullptr.
const v1::StoredPeer* FindPeer(const std::vector<v1::StoredPeer>& peers,
                               const std::string& peer_id) {
  for (const v1::StoredPeer& peer : peers) {
    if (peer.peer_id() == peer_id) return &peer;
  }
  return nullptr;
}

// Union of the bitfields of `datacenter`'s peers other than `asker` that
// have `byte_length` bytes (those announced before the release was
// registered may not).
std::string HeldInDatacenter(const std::vector<v1::StoredPeer>& peers,
                             const std::string& datacenter,
                             const std::string& asker, size_t byte_length) {
  std::string held(byte_length, '\0');
  for (const v1::StoredPeer& peer : peers) {
    if (peer.datacenter() != datacenter || peer.peer_id() == asker) continue;
    const std::string& bits = peer.bitfield();
    if (bits.size() != byte_length) continue;
    for (size_t i = 0; i < byte_length; ++i) held[i] |= bits[i];
  }
  return held;
}

v1::PeerInfo ToPeerInfo(const v1::StoredPeer& peer) {
  v1::PeerInfo info;
  info.set_peer_id(peer.peer_id());
  info.set_address(peer.address());
  info.set_datacenter(peer.datacenter());
  info.set_rack(peer.rack());
  info.set_state(peer.state());
  info.set_pieces_have(peer.pieces_have());
  return info;
}

}  // namespace

absl::Status ValidateTrackerOptions(const TrackerOptions& options) {
  RETURN_IF_ERROR(ValidateLocalityLabel("datacenter", options.datacenter));
  RETURN_IF_ERROR(Positive("announce_interval", options.announce_interval));
  RETURN_IF_ERROR(Positive("peer_ttl", options.peer_ttl));
  RETURN_IF_ERROR(Positive("lease_ttl", options.lease_ttl));
  RETURN_IF_ERROR(Positive("stall_threshold", options.stall_threshold));
  RETURN_IF_ERROR(AtLeastOne("lease_holders", options.lease_holders));
  RETURN_IF_ERROR(AtLeastOne("max_peers_returned", options.max_peers_returned));
  RETURN_IF_ERROR(AtLeastOne("max_pieces_per_lease_request",
                             options.max_pieces_per_lease_request));
  RETURN_IF_ERROR(AtLeastOne("max_releases_per_announce",
                             options.max_releases_per_announce));
  RETURN_IF_ERROR(AtLeastOne("max_announces_per_interval",
                             options.max_announces_per_interval));
  return AtLeastOne("max_remembered_peers", options.max_remembered_peers);
}

Tracker::Tracker(Store& store, const TrustPolicy& trust, const Clock& clock,
                 TrackerOptions options)
    : store_(store),
      trust_(trust),
      clock_(clock),
      options_(CheckedOptions(options)),
      memo_(options_.max_remembered_peers, options_.announce_interval,
            options_.max_announces_per_interval,
            std::max(options_.peer_ttl, options_.announce_interval)),
      rng_(MakeGenerator(options_.random_seed)) {}

// --- Announce. ---

absl::StatusOr<v1::AnnounceResponse> Tracker::Announce(
    const v1::AnnounceRequest& request) {
  RETURN_IF_ERROR(ValidatePeerId(request.peer_id()));
  const absl::Time now = clock_.Now();
  RETURN_IF_ERROR(memo_.Admit(request.peer_id(), now));
  ASSIGN_OR_RETURN(std::vector<std::string> release_ids,
                   CheckAnnounce(request));
  std::vector<PeerPut> puts;
  for (int i = 0; i < request.releases_size(); ++i) {
    const v1::ReleaseAnnounce& release = request.releases(i);
    if (release.state() == v1::PEER_STATE_STOPPED) {
      RETURN_IF_ERROR(StopPeer(request, release_ids[i]));
    } else {
      puts.push_back(PeerRecord(request, release_ids[i], release, now));
    }
  }
  // One store call for all releases: one round trip to Redis, which is what
  // bounds a Redis-backed tracker's announce rate.
  if (absl::Status status = store_.PutPeers(puts); !status.ok()) {
    const std::string what = puts.size() == 1
                                 ? puts[0].release_id
                                 : absl::StrCat(puts.size(), " releases");
    return StoreError(status, absl::StrCat("recording a peer of ", what));
  }
  v1::AnnounceResponse response;
  response.set_next_announce_ms(
      absl::ToInt64Milliseconds(Jittered(options_.announce_interval)));
  response.set_peer_ttl_ms(absl::ToInt64Milliseconds(options_.peer_ttl));
  return response;
}

absl::StatusOr<std::vector<std::string>> Tracker::CheckAnnounce(
    const v1::AnnounceRequest& request) {
  RETURN_IF_ERROR(ValidateAddress(request.address()));
  RETURN_IF_ERROR(ValidateLocalityLabel("datacenter", request.datacenter()));
  RETURN_IF_ERROR(ValidateLocalityLabel("rack", request.rack()));
  if (request.releases_size() > options_.max_releases_per_announce) {
    return absl::InvalidArgumentError(absl::StrCat(
        "announce lists ", request.releases_size(), " releases; the limit is ",
        options_.max_releases_per_announce));
  }
  std::vector<std::string> ids;
  absl::flat_hash_set<std::string> seen;
  for (const v1::ReleaseAnnounce& release : request.releases()) {
    ASSIGN_OR_RETURN(std::string id, ParseReleaseId(release.release_id()));
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("announce lists release ", id, " twice"));
    }
    if (release.state() != v1::PEER_STATE_DOWNLOADING &&
        release.state() != v1::PEER_STATE_SEEDING &&
        release.state() != v1::PEER_STATE_STOPPED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "release ", id, ": state must be DOWNLOADING, SEEDING or STOPPED"));
    }
    if (release.state() != v1::PEER_STATE_STOPPED) {
      RETURN_IF_ERROR(CheckBitfield(id, release.bitfield()));
    }
    ids.push_back(std::move(id));
  }
  return ids;
}

absl::Status Tracker::CheckBitfield(const std::string& release_id,
                                    const std::string& bitfield) {
  ASSIGN_OR_RETURN(std::optional<uint32_t> total, TotalPiecesOf(release_id));
  if (total.has_value()) {
    absl::StatusOr<Bitfield> parsed = Bitfield::FromBytes(bitfield, *total);
    if (parsed.ok()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("release ", release_id, ": ", parsed.status().message()));
  }
  if (bitfield.size() <= kMaxBitfieldBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("release ", release_id, ": bitfield is ", bitfield.size(),
                   " bytes, more than the limit of ", kMaxBitfieldBytes));
}

absl::Status Tracker::StopPeer(const v1::AnnounceRequest& request,
                               const std::string& release_id) {
  memo_.ForgetRelease(request.peer_id(), release_id);
  absl::Status status =
      store_.RemovePeer(release_id, request.datacenter(), request.peer_id());
  if (status.ok()) return status;
  return StoreError(status, absl::StrCat("removing a peer of ", release_id));
}

PeerPut Tracker::PeerRecord(const v1::AnnounceRequest& request,
                            const std::string& release_id,
                            const v1::ReleaseAnnounce& release,
                            absl::Time now) {
  PeerPut put;
  put.release_id = release_id;
  put.expires = now + options_.peer_ttl;
  v1::StoredPeer& peer = put.peer;
  peer.set_peer_id(request.peer_id());
  peer.set_address(request.address());
  peer.set_datacenter(request.datacenter());
  peer.set_rack(request.rack());
  peer.set_state(release.state());
  peer.set_bitfield(release.bitfield());
  peer.set_pieces_have(CountPieces(release.bitfield()));
  peer.set_bytes_from_peers(release.bytes_from_peers());
  peer.set_bytes_from_origin(release.bytes_from_origin());
  peer.set_last_announce_ms(absl::ToUnixMillis(now));
  const absl::Time progress = memo_.RecordProgress(
      request.peer_id(), release_id, peer.pieces_have(), now);
  peer.set_last_progress_ms(absl::ToUnixMillis(progress));
  return put;
}

absl::Duration Tracker::Jittered(absl::Duration d) {
  absl::MutexLock lock(&rng_mu_);
  return d * absl::Uniform(rng_, 0.9, 1.1);
}

// --- Peers. ---

absl::StatusOr<std::vector<v1::StoredPeer>> Tracker::ListSwarm(
    const std::string& release_id, absl::Time now) {
  absl::StatusOr<std::vector<v1::StoredPeer>> peers =
      store_.ListPeers(release_id, "", now);
  if (peers.ok()) return peers;
  return StoreError(peers.status(),
                    absl::StrCat("listing the peers of ", release_id));
}

absl::StatusOr<v1::GetPeersResponse> Tracker::GetPeers(
    const v1::GetPeersRequest& request) {
  RETURN_IF_ERROR(ValidatePeerId(request.peer_id()));
  ASSIGN_OR_RETURN(std::string release_id,
                   ParseReleaseId(request.release_id()));
  ASSIGN_OR_RETURN(std::vector<v1::StoredPeer> peers,
                   ListSwarm(release_id, clock_.Now()));
  Asker asker{request.peer_id(), options_.datacenter, "", ""};
  if (const v1::StoredPeer* self = FindPeer(peers, request.peer_id())) {
    asker.datacenter = self->datacenter();
    asker.rack = self->rack();
    asker.bitfield = self->bitfield();
  }
  RankOptions rank;
  rank.limit = request.max_peers() == 0
                   ? options_.max_peers_returned
                   : std::min(request.max_peers(), options_.max_peers_returned);
  rank.include_other_datacenters = options_.return_other_datacenters;
  std::vector<const v1::StoredPeer*> ranked;
  {
    absl::MutexLock lock(&rng_mu_);
    ranked = RankPeers(asker, peers, rank, rng_);
  }
  v1::GetPeersResponse response;
  for (const v1::StoredPeer* peer : ranked) {
    *response.add_peers() = ToPeerInfo(*peer);
  }
  return response;
}

// --- Origin leases. ---

absl::StatusOr<bool> Tracker::AcquireLease(const LeaseKey& key,
                                           const std::string& peer_id,
                                           absl::Time now) {
  absl::StatusOr<bool> granted = store_.TryAcquireLease(
      key, peer_id, options_.lease_holders, now, now + options_.lease_ttl);
  if (granted.ok()) return granted;
  return StoreError(granted.status(), absl::StrCat("leasing piece ", key.piece,
                                                   " of ", key.release_id));
}

absl::StatusOr<v1::OriginLeaseResponse> Tracker::RequestOriginLease(
    const v1::OriginLeaseRequest& request) {
  RETURN_IF_ERROR(ValidatePeerId(request.peer_id()));
  ASSIGN_OR_RETURN(std::string release_id,
                   ParseReleaseId(request.release_id()));
  ASSIGN_OR_RETURN(v1::StoredRelease release, ResolveRelease(release_id));
  ASSIGN_OR_RETURN(
      LeaseAsk ask,
      ParseLeaseAsk(request, release.release_id(), release.total_pieces(),
                    options_.max_pieces_per_lease_request));
  const absl::Time now = clock_.Now();
  ASSIGN_OR_RETURN(std::vector<v1::StoredPeer> peers,
                   ListSwarm(release.release_id(), now));
  const v1::StoredPeer* self = FindPeer(peers, request.peer_id());
  const std::string datacenter =
      self != nullptr ? self->datacenter() : options_.datacenter;
  const std::string held =
      HeldInDatacenter(peers, datacenter, request.peer_id(),
                       Bitfield::ByteLength(release.total_pieces()));
  v1::OriginLeaseResponse response;
  RETURN_IF_ERROR(AnswerLeaseAsk(
      ask,
      [&](uint32_t piece) { return HasPiece(held, ReleasePieceIndex(piece)); },
      [&](uint32_t piece) {
        return AcquireLease({release.release_id(), datacenter, piece},
                            request.peer_id(), now);
      },
      response));
  response.set_expires_ms(absl::ToUnixMillis(now + options_.lease_ttl));
  *response.mutable_origin_urls() = release.origin_urls();
  return response;
}

// --- Health. ---

absl::StatusOr<std::vector<std::string>> Tracker::HealthReleases(
    const std::string& release) {
  if (!release.empty()) {
    ASSIGN_OR_RETURN(ReleaseRef ref, ParseReleaseRef(release));
    if (!ref.id.empty()) return std::vector<std::string>{ref.id};
    ASSIGN_OR_RETURN(v1::StoredRelease stored, ResolveRelease(release));
    return std::vector<std::string>{stored.release_id()};
  }
  absl::StatusOr<std::vector<std::string>> ids =
      store_.ListSwarms(clock_.Now());
  if (!ids.ok()) return StoreError(ids.status(), "listing the swarms");
  std::sort(ids->begin(), ids->end());
  return ids;
}

absl::StatusOr<std::vector<v1::SwarmHealth>> Tracker::ReleaseHealth(
    const std::string& release_id, bool include_own_datacenter) {
  const absl::Time now = clock_.Now();
  ASSIGN_OR_RETURN(std::optional<v1::StoredRelease> release,
                   FindRelease(release_id));
  ASSIGN_OR_RETURN(std::vector<v1::StoredPeer> peers,
                   ListSwarm(release_id, now));
  std::map<std::string, std::vector<v1::StoredPeer>> by_datacenter;
  if (include_own_datacenter) by_datacenter[options_.datacenter];
  for (v1::StoredPeer& peer : peers) {
    by_datacenter[peer.datacenter()].push_back(std::move(peer));
  }
  std::optional<uint32_t> total_pieces;
  if (release) total_pieces = release->total_pieces();
  std::vector<v1::SwarmHealth> result;
  for (const auto& [datacenter, swarm] : by_datacenter) {
    v1::SwarmHealth health =
        SummarizeSwarm(swarm, total_pieces, now, options_.stall_threshold);
    health.set_release_id(release_id);
    health.set_datacenter(datacenter);
    if (release) {
      health.set_name(release->name());
      health.set_version(release->version());
    }
    absl::StatusOr<uint32_t> leases =
        store_.CountLeases(release_id, datacenter, now);
    if (!leases.ok()) {
      return StoreError(leases.status(),
                        absl::StrCat("counting the leases of ", release_id));
    }
    health.set_leases_outstanding(*leases);
    result.push_back(std::move(health));
  }
  return result;
}

absl::StatusOr<v1::SwarmHealthResponse> Tracker::GetSwarmHealth(
    const v1::SwarmHealthRequest& request) {
  ASSIGN_OR_RETURN(std::vector<std::string> ids,
                   HealthReleases(request.release()));
  v1::SwarmHealthResponse response;
  for (const std::string& id : ids) {
    ASSIGN_OR_RETURN(std::vector<v1::SwarmHealth> swarms,
                     ReleaseHealth(id, !request.release().empty()));
    for (v1::SwarmHealth& health : swarms) {
      *response.add_swarms() = std::move(health);
    }
  }
  return response;
}

}  // namespace shoal::tracker
