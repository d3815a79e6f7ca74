// Agent: fetching, status, removal and announcing.

#include <ftw.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/agent.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  return remove(path);
}

absl::Status RemoveTree(const std::string& dir) {
  if (nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT) {
    return ErrnoToStatus(errno, "cannot delete", dir);
  }
  return absl::OkStatus();
}

}  // namespace

// The manifest bytes and origin URLs of `release`: from the tracker's
// catalog, or else from the --origin_url tree. Unverified: the caller
// verifies them.
absl::StatusOr<std::string> Agent::ResolveRelease(const std::string& release,
                                                  std::string* manifest_bytes,
                                                  std::vector<std::string>* origin_urls) {
  absl::Status tracker_error = absl::NotFoundError("no tracker configured (--tracker)");
  if (tracker_ != nullptr) {
    absl::StatusOr<v1::ReleaseInfo> info = tracker_->GetRelease(release);
    if (info.ok()) {
      *manifest_bytes = info->manifest();
      origin_urls->assign(info->origin_urls().begin(), info->origin_urls().end());
      if (origin_urls->empty() && !config_.origin_url.empty()) {
        origin_urls->push_back(config_.origin_url);
      }
      return info->release_id();
    }
    tracker_error = info.status();
    if (config_.origin_url.empty()) return tracker_error;
  }
  if (config_.origin_url.empty()) return tracker_error;
  OriginClientOptions options;
  options.base_urls = {config_.origin_url};
  ASSIGN_OR_RETURN(std::unique_ptr<OriginClient> origin,
                   OriginClient::Create(options, clock_, sleeper_, bitgen_));
  std::string id = release;
  if (!IsReleaseId(release)) {
    std::vector<std::string> parts = absl::StrSplit(release, absl::MaxSplits('@', 1));
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", release, "\" is neither NAME@VERSION nor a release id"));
    }
    ASSIGN_OR_RETURN(id, origin->ResolveName(parts[0], parts[1]));
  }
  ASSIGN_OR_RETURN(*manifest_bytes, origin->FetchManifest(id));
  *origin_urls = {config_.origin_url};
  return id;
}

absl::StatusOr<std::string> Agent::Fetch(const std::string& release,
                                          const std::string& required_name) {
  if (IsReleaseId(release)) {
    if (std::shared_ptr<Release> r = Find(release); r != nullptr) {
      TouchLocal(*r);
      return release;
    }
  }
  std::string bytes;
  std::vector<std::string> urls;
  ASSIGN_OR_RETURN(std::string id, ResolveRelease(release, &bytes, &urls));
  ASSIGN_OR_RETURN(Manifest manifest, Manifest::Verify(bytes, *trust_, clock_.Now()));
  if (manifest.release_id() != id) {
    return absl::DataLossError(absl::StrCat("the manifest served for ", release, " hashes to ",
                                            manifest.release_id(), ", not ", id));
  }
  if (!IsReleaseId(release) && manifest.display_name() != release) {
    return absl::DataLossError(absl::StrCat("asked for ", release, " but got a manifest of ",
                                            manifest.display_name()));
  }
  if (!required_name.empty() && manifest.body().name() != required_name) {
    return absl::FailedPreconditionError(absl::StrCat(
        manifest.display_name(), " is not a release of ", required_name));
  }
  if (std::shared_ptr<Release> r = Find(id); r != nullptr) {
    TouchLocal(*r);
    return id;
  }
  absl::MutexLock quota_lock(&quota_mu_);
  RETURN_IF_ERROR(MakeRoom(manifest));
  RETURN_IF_ERROR(trusted_->CheckAndRecord(manifest));
  std::string dir = absl::StrCat(config_.data_dir, "/releases/", id);
  ASSIGN_OR_RETURN(std::unique_ptr<ReleaseStore> store,
                   ReleaseStore::Create(dir, manifest, StoreOptions()));
  RETURN_IF_ERROR(WriteFileAtomically(dir + "/origin_urls", absl::StrJoin(urls, "\n") + "\n",
                                      0644, config_.durable));
  LOG(INFO) << "fetching " << manifest.display_name() << " (" << id << "), "
            << manifest.total_size() << " bytes";
  RETURN_IF_ERROR(StartRelease(manifest, std::move(store), std::move(urls)));
  RequestAnnounce();
  return id;
}

void Agent::RequestAnnounce() {
  absl::MutexLock lock(&announce_mu_);
  announce_requested_ = true;
}

absl::StatusOr<v1::ReleaseStatus> Agent::ReleaseStatusOf(const std::string& release_id) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("no release ", release_id));
  return FullStatus(*r);
}

absl::StatusOr<v1::ReleaseStatus> Agent::AwaitRelease(const std::string& release_id,
                                                      absl::Duration timeout) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("no release ", release_id));
  r->download->WaitForCompletion(timeout);
  return FullStatus(*r);
}

v1::StatusResponse Agent::Status() {
  v1::StatusResponse response;
  std::vector<std::shared_ptr<Release>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : releases_) all.push_back(r);
  }
  uint64_t disk = 0;
  uint64_t connected = 0, banned = 0;
  absl::flat_hash_map<std::string, int> by_state = {
      {"downloading", 0}, {"seeding", 0}, {"failed", 0}};
  for (const auto& r : all) {
    v1::ReleaseStatus* s = response.add_releases();
    *s = FullStatus(*r);
    {
      // Keeps the counts by source across restarts (at most a few seconds
      // of them are lost to a kill).
      absl::MutexLock lock(&r->local_mu);
      if (r->local.bytes_from_peers() != s->bytes_from_peers() ||
          r->local.bytes_from_origin() != s->bytes_from_origin()) {
        absl::Status saved = SaveLocal(*r);
        if (!saved.ok()) {
          LOG_EVERY_N(WARNING, 20) << "cannot save release state: " << saved;
        }
      }
    }
    disk += r->download->store().disk_bytes();
    connected += s->peers_connected();
    banned += s->peers_banned();
    by_state[s->state() == v1::RELEASE_STATE_SEEDING  ? "seeding"
             : s->state() == v1::RELEASE_STATE_FAILED ? "failed"
                                                      : "downloading"]++;
    metrics_->SetProgress(absl::StrCat(s->name(), "@", s->version()),
                          s->total_size() == 0 ? 1.0 : double(s->bytes_verified()) / s->total_size());
  }
  for (const auto& [state, count] : by_state) metrics_->SetReleases(state, count);
  metrics_->SetPeers("connected", connected);
  metrics_->SetPeers("banned", banned);
  response.set_peer_id(self_.peer_id());
  response.set_datacenter(self_.datacenter());
  response.set_rack(self_.rack());
  response.set_advertise(self_.address());
  response.set_disk_bytes(disk);
  response.set_disk_quota(config_.disk_quota);
  {
    absl::MutexLock lock(&followers_mu_);
    for (const auto& follower : followers_) *response.add_channels() = follower->Status();
  }
  metrics_->SetDiskQuota(config_.disk_quota);
  metrics_->SetDiskUsed(disk);
  return response;
}

absl::StatusOr<std::string> Agent::Remove(const std::string& release) {
  ASSIGN_OR_RETURN(std::string id, HeldReleaseId(release));
  std::shared_ptr<Release> r;
  {
    absl::MutexLock lock(&mu_);
    auto it = releases_.find(id);
    if (it == releases_.end()) return absl::NotFoundError(absl::StrCat("no release ", release));
    r = it->second;
    releases_.erase(it);
  }
  std::string dir = r->download->store().dir();
  metrics_->ForgetRelease(r->download->store().manifest().display_name());
  r.reset();  // other holders (RPCs in flight) finish with their copy
  RETURN_IF_ERROR(RemoveTree(dir));
  LOG(INFO) << "removed " << release;
  return id;
}

v1::AnnounceRequest Agent::BuildAnnounce() {
  v1::AnnounceRequest request;
  request.set_peer_id(self_.peer_id());
  request.set_address(self_.address());
  request.set_datacenter(self_.datacenter());
  request.set_rack(self_.rack());
  absl::MutexLock lock(&mu_);
  for (const auto& [id, r] : releases_) {
    v1::ReleaseStatus status = r->download->Status();
    v1::ReleaseAnnounce* a = request.add_releases();
    a->set_release_id(id);
    a->set_state(status.state() == v1::RELEASE_STATE_SEEDING ? v1::PEER_STATE_SEEDING
                                                             : v1::PEER_STATE_DOWNLOADING);
    a->set_bitfield(r->download->store().bitfield().bytes());
    a->set_bytes_from_peers(status.bytes_from_peers());
    a->set_bytes_from_origin(status.bytes_from_origin());
  }
  return request;
}

// Announces now, then at the interval the tracker asks for (sooner while a
// release is downloading, so that peers learn what this agent holds).
void Agent::AnnounceLoop() {
  if (tracker_ == nullptr) return;
  absl::Duration interval = absl::Seconds(30);
  do {
    v1::AnnounceRequest request = BuildAnnounce();
    bool downloading = false;
    for (const v1::ReleaseAnnounce& a : request.releases()) {
      downloading |= a.state() == v1::PEER_STATE_DOWNLOADING;
    }
    absl::StatusOr<v1::AnnounceResponse> response = tracker_->Announce(request);
    metrics_->RecordAnnounce(response.status(), clock_.Now());
    if (response.ok()) {
      interval = absl::Milliseconds(std::max<int64_t>(response->next_announce_ms(), 1000));
    } else {
      LOG_EVERY_N(WARNING, 10) << "announce failed: " << response.status();
      interval = absl::Seconds(5);
    }
    if (downloading) interval = std::min(interval, absl::Seconds(5));
    Status();  // refreshes the disk gauge
    // At most one announce a second, however often one is requested.
    absl::MutexLock lock(&announce_mu_);
    announce_mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1));
    auto wake = [this]() ABSL_SHARED_LOCKS_REQUIRED(announce_mu_) {
      return stopping_ || announce_requested_;
    };
    announce_mu_.AwaitWithTimeout(absl::Condition(&wake), interval - absl::Seconds(1));
    if (stopping_) break;
    announce_requested_ = false;
  } while (true);
  v1::AnnounceRequest goodbye = BuildAnnounce();
  for (v1::ReleaseAnnounce& a : *goodbye.mutable_releases()) a.set_state(v1::PEER_STATE_STOPPED);
  if (goodbye.releases_size() > 0) tracker_->Announce(goodbye).IgnoreError();
}

}  // namespace shoal::agent
