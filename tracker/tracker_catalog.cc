// The release catalog and channels. Swarms, leases and health are in
// tracker.cc.

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/manifest.h"
#include "common/paths.h"
#include "common/release_pieces.h"
#include "common/status_macros.h"
#include "tracker/request_checks.h"
#include "tracker/tracker.h"

namespace shoal::tracker {
namespace {

// Piece counts cached per tracker; far more than any catalog holds.
constexpr size_t kMaxCachedReleases = 1 << 16;

// Manifest::Verify's error, for a publisher: DATA_LOSS there means bytes
// that do not decode, which here is a bad request.
absl::Status RegistrationError(const absl::Status& status) {
  const absl::StatusCode code = status.code() == absl::StatusCode::kDataLoss
                                    ? absl::StatusCode::kInvalidArgument
                                    : status.code();
  return absl::Status(
      code, absl::StrCat("release not registered: ", status.message()));
}

// Origin URLs, checked, in the order given, without duplicates.
absl::StatusOr<std::vector<std::string>> CheckOriginUrls(
    const google::protobuf::RepeatedPtrField<std::string>& urls) {
  if (urls.empty() || urls.size() > kMaxOriginUrls) {
    return absl::InvalidArgumentError(
        absl::StrCat("a release needs 1 to ", kMaxOriginUrls,
                     " origin URLs, not ", urls.size()));
  }
  std::vector<std::string> result;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& url : urls) {
    RETURN_IF_ERROR(ValidateOriginUrl(url));
    if (seen.insert(url).second) result.push_back(url);
  }
  return result;
}

v1::ReleaseInfo ToReleaseInfo(const v1::StoredRelease& release,
                              bool with_manifest) {
  v1::ReleaseInfo info;
  info.set_release_id(release.release_id());
  info.set_name(release.name());
  info.set_version(release.version());
  if (with_manifest) info.set_manifest(release.manifest());
  *info.mutable_origin_urls() = release.origin_urls();
  info.set_registered_ms(release.registered_ms());
  info.set_total_pieces(release.total_pieces());
  info.set_total_size(release.total_size());
  info.set_sequence(release.sequence());
  return info;
}

v1::Rollout ToRollout(const ChannelRecord& record) {
  v1::Rollout rollout;
  rollout.set_channel(record.channel);
  rollout.set_release_id(record.release_id);
  rollout.set_percent(record.percent);
  rollout.set_paused(record.paused);
  rollout.set_generation(record.generation);
  rollout.set_updated_ms(record.updated_ms);
  return rollout;
}

std::string DisplayName(const v1::StoredRelease& release) {
  return absl::StrCat(release.name(), "@", release.version());
}

}  // namespace

absl::Status Tracker::StoreError(const absl::Status& status,
                                 absl::string_view doing) {
  return absl::Status(
      status.code(),
      absl::StrCat("tracker store failed ", doing, ": ", status.message()));
}

// --- Lookups. ---

absl::StatusOr<std::optional<v1::StoredRelease>> Tracker::FindRelease(
    const std::string& release_id) {
  absl::StatusOr<std::optional<v1::StoredRelease>> release =
      store_.GetRelease(release_id);
  if (!release.ok()) {
    return StoreError(release.status(),
                      absl::StrCat("reading release ", release_id));
  }
  if (release->has_value()) {
    absl::MutexLock lock(&cache_mu_);
    if (total_pieces_.size() >= kMaxCachedReleases) total_pieces_.clear();
    total_pieces_[release_id] = (*release)->total_pieces();
  }
  return release;
}

absl::StatusOr<std::optional<uint32_t>> Tracker::TotalPiecesOf(
    const std::string& release_id) {
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = total_pieces_.find(release_id);
    if (it != total_pieces_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(std::optional<v1::StoredRelease> release,
                   FindRelease(release_id));
  if (!release) return std::nullopt;
  return release->total_pieces();
}

absl::StatusOr<v1::StoredRelease> Tracker::ResolveRelease(
    absl::string_view release) {
  ASSIGN_OR_RETURN(ReleaseRef ref, ParseReleaseRef(release));
  if (!ref.id.empty()) {
    ASSIGN_OR_RETURN(std::optional<v1::StoredRelease> found,
                     FindRelease(ref.id));
    if (found) return *std::move(found);
    return absl::NotFoundError(absl::StrCat(
        "release ", ref.id, " is not registered with this tracker"));
  }
  ASSIGN_OR_RETURN(std::vector<v1::StoredRelease> same_version,
                   ListVersion(ref.name, ref.version));
  if (same_version.empty()) {
    return absl::NotFoundError(absl::StrCat("release ", ref.name, "@",
                                            ref.version,
                                            " is not registered with this "
                                            "tracker"));
  }
  return *std::max_element(
      same_version.begin(), same_version.end(),
      [](const v1::StoredRelease& a, const v1::StoredRelease& b) {
        return std::make_tuple(a.sequence(), a.registered_ms()) <
               std::make_tuple(b.sequence(), b.registered_ms());
      });
}

absl::StatusOr<std::vector<v1::StoredRelease>> Tracker::ListVersion(
    const std::string& name, const std::string& version) {
  absl::StatusOr<std::vector<v1::StoredRelease>> releases =
      store_.ListReleases(name);
  if (!releases.ok()) {
    return StoreError(releases.status(),
                      absl::StrCat("listing the releases of ", name));
  }
  std::vector<v1::StoredRelease> result;
  for (v1::StoredRelease& release : *releases) {
    if (release.version() == version) result.push_back(std::move(release));
  }
  return result;
}

// --- Catalog. ---

absl::Status Tracker::CheckNewestSigning(const Manifest& manifest) {
  const v1::ManifestBody& body = manifest.body();
  ASSIGN_OR_RETURN(std::vector<v1::StoredRelease> same_version,
                   ListVersion(body.name(), body.version()));
  for (const v1::StoredRelease& other : same_version) {
    if (other.release_id() == manifest.release_id()) continue;
    if (body.sequence() <= other.sequence()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "release not registered: ", manifest.display_name(), " sequence ",
          body.sequence(), " is not newer than the registered signing ",
          other.release_id(), " (sequence ", other.sequence(),
          "); re-sign it with a higher sequence"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::RegisterReleaseResponse> Tracker::RegisterRelease(
    const v1::RegisterReleaseRequest& request) {
  ASSIGN_OR_RETURN(std::vector<std::string> urls,
                   CheckOriginUrls(request.origin_urls()));
  const absl::Time now = clock_.Now();
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(request.manifest(), trust_, now);
  if (!manifest.ok()) return RegistrationError(manifest.status());
  const uint32_t total_pieces = TotalPieces(*manifest);
  if (total_pieces > kMaxBitfieldBytes * 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "release not registered: ", manifest->display_name(),
        " has more pieces than the limit of ", kMaxBitfieldBytes * 8,
        " (a 1 MiB bitfield); publish it with a larger piece size"));
  }
  ASSIGN_OR_RETURN(std::optional<v1::StoredRelease> existing,
                   FindRelease(manifest->release_id()));
  if (!existing) RETURN_IF_ERROR(CheckNewestSigning(*manifest));
  v1::StoredRelease stored;
  stored.set_release_id(manifest->release_id());
  stored.set_name(manifest->body().name());
  stored.set_version(manifest->body().version());
  stored.set_sequence(manifest->body().sequence());
  stored.set_manifest(request.manifest());
  for (std::string& url : urls) stored.add_origin_urls(std::move(url));
  stored.set_registered_ms(existing ? existing->registered_ms()
                                    : absl::ToUnixMillis(now));
  stored.set_total_pieces(total_pieces);
  stored.set_total_size(manifest->total_size());
  absl::Status put = store_.PutRelease(stored);
  if (!put.ok()) {
    return StoreError(put, absl::StrCat("registering ", stored.release_id()));
  }
  v1::RegisterReleaseResponse response;
  response.set_release_id(stored.release_id());
  response.set_created(!existing.has_value());
  return response;
}

absl::StatusOr<v1::ReleaseInfo> Tracker::GetRelease(
    const v1::GetReleaseRequest& request) {
  ASSIGN_OR_RETURN(v1::StoredRelease release,
                   ResolveRelease(request.release()));
  return ToReleaseInfo(release, /*with_manifest=*/true);
}

absl::StatusOr<v1::ListReleasesResponse> Tracker::ListReleases(
    const v1::ListReleasesRequest& request) {
  if (!request.name().empty()) {
    RETURN_IF_ERROR(ValidateReleaseLabel("name", request.name()));
  }
  absl::StatusOr<std::vector<v1::StoredRelease>> releases =
      store_.ListReleases(request.name());
  if (!releases.ok()) {
    return StoreError(releases.status(), "listing releases");
  }
  std::sort(releases->begin(), releases->end(),
            [](const v1::StoredRelease& a, const v1::StoredRelease& b) {
              return std::make_tuple(a.name(), a.version(), a.sequence()) <
                     std::make_tuple(b.name(), b.version(), b.sequence());
            });
  v1::ListReleasesResponse response;
  for (const v1::StoredRelease& release : *releases) {
    *response.add_releases() = ToReleaseInfo(release, /*with_manifest=*/false);
  }
  return response;
}

// --- Channels. ---

absl::StatusOr<std::string> Tracker::RolloutTarget(
    const ChannelName& channel, const v1::SetRolloutRequest& request) {
  ASSIGN_OR_RETURN(v1::StoredRelease release,
                   ResolveRelease(request.release()));
  if (release.name() != channel.release_name) {
    return absl::InvalidArgumentError(
        absl::StrCat("channel ", request.channel(), " cannot point at ",
                     DisplayName(release)));
  }
  absl::StatusOr<Manifest> manifest =
      Manifest::Verify(release.manifest(), trust_, clock_.Now());
  if (!manifest.ok()) {
    return absl::Status(
        manifest.status().code(),
        absl::StrCat("channel ", request.channel(), " cannot point at ",
                     DisplayName(release), ": ", manifest.status().message()));
  }
  return release.release_id();
}

absl::StatusOr<std::optional<ChannelRecord>> Tracker::ReadChannel(
    const std::string& channel) {
  absl::StatusOr<std::optional<ChannelRecord>> record =
      store_.GetChannel(channel);
  if (record.ok()) return record;
  return StoreError(record.status(), absl::StrCat("reading channel ", channel));
}

absl::StatusOr<v1::Rollout> Tracker::SetRollout(
    const v1::SetRolloutRequest& request) {
  ASSIGN_OR_RETURN(ChannelName channel, ParseChannel(request.channel()));
  if (!request.keep_percent() && request.percent() > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rollout percent must be 0 to 100, not ", request.percent()));
  }
  // What is kept comes from one read of the channel.
  std::optional<ChannelRecord> current;
  if (request.release().empty() || request.keep_percent()) {
    ASSIGN_OR_RETURN(current, ReadChannel(request.channel()));
    if (!current) {
      return absl::NotFoundError(absl::StrCat(
          "channel ", request.channel(),
          " has no release yet; name one and a percent to create the channel"));
    }
  }
  ChannelRecord record;
  record.channel = request.channel();
  if (request.release().empty()) {
    record.release_id = current->release_id;
  } else {
    ASSIGN_OR_RETURN(record.release_id, RolloutTarget(channel, request));
  }
  record.percent =
      request.keep_percent() ? current->percent : request.percent();
  record.paused = request.paused();
  record.updated_ms = absl::ToUnixMillis(clock_.Now());
  absl::StatusOr<ChannelRecord> stored = store_.PutChannel(record);
  if (!stored.ok()) {
    return StoreError(stored.status(),
                      absl::StrCat("storing channel ", record.channel));
  }
  return ToRollout(*stored);
}

absl::StatusOr<v1::Rollout> Tracker::GetRollout(
    const v1::GetRolloutRequest& request) {
  RETURN_IF_ERROR(ParseChannel(request.channel()).status());
  ASSIGN_OR_RETURN(std::optional<ChannelRecord> record,
                   ReadChannel(request.channel()));
  if (!record) {
    return absl::NotFoundError(
        absl::StrCat("channel ", request.channel(), " has no rollout"));
  }
  return ToRollout(*record);
}

}  // namespace shoal::tracker
