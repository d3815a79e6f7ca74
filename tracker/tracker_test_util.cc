#include "tracker/tracker_test_util.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bitfield.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/sha256.h"
#include "shoal/v1/manifest.pb.h"

namespace shoal::tracker::testing {

ReleaseSpec Pieces(uint32_t pieces) {
  ReleaseSpec spec;
  spec.pieces = pieces;
  return spec;
}

ReleaseSpec Release(const std::string& name, const std::string& version,
                    uint64_t sequence) {
  ReleaseSpec spec;
  spec.name = name;
  spec.version = version;
  spec.sequence = sequence;
  return spec;
}

absl::Status SwitchableStore::Check() const {
  if (down) return absl::UnavailableError("connection refused");
  return absl::OkStatus();
}

absl::Status SwitchableStore::PutPeer(const std::string& release_id,
                                      const v1::StoredPeer& peer,
                                      absl::Time expires) {
  if (down) return Check();
  return memory_.PutPeer(release_id, peer, expires);
}

absl::Status SwitchableStore::RemovePeer(const std::string& release_id,
                                         const std::string& datacenter,
                                         const std::string& peer_id) {
  if (down) return Check();
  return memory_.RemovePeer(release_id, datacenter, peer_id);
}

absl::StatusOr<std::vector<v1::StoredPeer>> SwitchableStore::ListPeers(
    const std::string& release_id, const std::string& datacenter,
    absl::Time now) {
  if (down) return Check();
  return memory_.ListPeers(release_id, datacenter, now);
}

absl::StatusOr<std::vector<std::string>> SwitchableStore::ListSwarms(
    absl::Time now) {
  if (down) return Check();
  return memory_.ListSwarms(now);
}

absl::StatusOr<bool> SwitchableStore::TryAcquireLease(
    const LeaseKey& key, const std::string& peer_id, int max_holders,
    absl::Time now, absl::Time expires) {
  if (down) return Check();
  return memory_.TryAcquireLease(key, peer_id, max_holders, now, expires);
}

absl::StatusOr<uint32_t> SwitchableStore::CountLeases(
    const std::string& release_id, const std::string& datacenter,
    absl::Time now) {
  if (down) return Check();
  return memory_.CountLeases(release_id, datacenter, now);
}

absl::Status SwitchableStore::PutRelease(const v1::StoredRelease& release) {
  if (down) return Check();
  return memory_.PutRelease(release);
}

absl::StatusOr<std::optional<v1::StoredRelease>> SwitchableStore::GetRelease(
    const std::string& release_id) {
  if (down) return Check();
  return memory_.GetRelease(release_id);
}

absl::StatusOr<std::vector<v1::StoredRelease>> SwitchableStore::ListReleases(
    const std::string& name) {
  if (down) return Check();
  return memory_.ListReleases(name);
}

absl::StatusOr<ChannelRecord> SwitchableStore::PutChannel(
    const ChannelRecord& channel) {
  if (down) return Check();
  return memory_.PutChannel(channel);
}

absl::StatusOr<std::optional<ChannelRecord>> SwitchableStore::GetChannel(
    const std::string& channel) {
  if (down) return Check();
  return memory_.GetChannel(channel);
}

absl::Status SwitchableStore::Ping() {
  if (down) return Check();
  return memory_.Ping();
}

TrackerTest::TrackerTest()
    : key_(PrivateKey::Generate().value()),
      stranger_(PrivateKey::Generate().value()),
      trust_(TrustPolicy::Create({key_.public_key()}, 1).value()),
      clock_(kStart) {
  options_.datacenter = "dc1";
  options_.random_seed = 7;
}

Tracker& TrackerTest::tracker() {
  if (tracker_ == nullptr) {
    tracker_ = std::make_unique<Tracker>(store_, trust_, clock_, options_);
  }
  return *tracker_;
}

std::string TrackerTest::SignedManifest(const ReleaseSpec& spec) const {
  return SignedManifest(spec, key_);
}

std::string TrackerTest::SignedManifest(const ReleaseSpec& spec,
                                        const PrivateKey& key) const {
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name(spec.name);
  body.set_version(spec.version);
  body.set_sequence(spec.sequence);
  body.set_created_unix_ms(kCreatedMs);
  body.set_expires_unix_ms(kCreatedMs + absl::ToInt64Milliseconds(kValidFor));
  body.set_piece_size(kBlockSize);
  v1::FileEntry* file = body.add_files();
  file->set_path("bin/server");
  file->set_size(uint64_t{spec.pieces} * kBlockSize);
  file->set_mode(0755);
  if (spec.pieces > 0) {
    file->set_pieces_root(std::string(DigestBytes(Sha256(spec.version))));
  }
  return SignManifest(body, {key}).value().SerializeAsString();
}

std::string TrackerTest::Register(const ReleaseSpec& spec) {
  v1::RegisterReleaseRequest request;
  request.set_manifest(SignedManifest(spec));
  request.add_origin_urls("https://origin.example/releases");
  absl::StatusOr<v1::RegisterReleaseResponse> response =
      tracker().RegisterRelease(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? response->release_id() : "";
}

std::string TrackerTest::PeerId(int n) { return absl::StrFormat("%032x", n); }

std::string TrackerTest::Bits(uint32_t pieces, uint32_t have) {
  Bitfield bitfield(pieces);
  for (uint32_t i = 0; i < have; ++i) bitfield.Set(ReleasePieceIndex(i));
  return bitfield.bytes();
}

v1::AnnounceRequest TrackerTest::AnnounceOf(int n,
                                            const std::string& release_id,
                                            v1::PeerState state,
                                            const std::string& bitfield,
                                            const std::string& datacenter,
                                            const std::string& rack) const {
  v1::AnnounceRequest request;
  request.set_peer_id(PeerId(n));
  request.set_address(
      absl::StrCat("10.0.", n / 250, ".", n % 250 + 1, ":7881"));
  request.set_datacenter(datacenter);
  request.set_rack(rack);
  v1::ReleaseAnnounce* release = request.add_releases();
  release->set_release_id(release_id);
  release->set_state(state);
  release->set_bitfield(bitfield);
  return request;
}

absl::Status TrackerTest::Announce(int n, const std::string& release_id,
                                   v1::PeerState state,
                                   const std::string& bitfield,
                                   const std::string& datacenter,
                                   const std::string& rack) {
  return tracker()
      .Announce(AnnounceOf(n, release_id, state, bitfield, datacenter, rack))
      .status();
}

std::vector<std::string> TrackerTest::PeersFor(int n,
                                               const std::string& release_id,
                                               uint32_t max_peers) {
  v1::GetPeersRequest request;
  request.set_peer_id(PeerId(n));
  request.set_release_id(release_id);
  request.set_max_peers(max_peers);
  absl::StatusOr<v1::GetPeersResponse> response = tracker().GetPeers(request);
  EXPECT_TRUE(response.ok()) << response.status();
  std::vector<std::string> ids;
  if (!response.ok()) return ids;
  for (const v1::PeerInfo& peer : response->peers()) {
    ids.push_back(peer.peer_id());
  }
  return ids;
}

}  // namespace shoal::tracker::testing
