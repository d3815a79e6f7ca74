// Agent: what it keeps about each release besides the store — pins,
// installs, last use — and installing releases.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent.h"
#include "agent/install.h"
#include "common/file_util.h"
#include "common/hex.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

std::string LocalPath(const ReleaseStore& store) { return store.dir() + "/local"; }

// Space a release takes or will take in the store: its files at full size
// (a download grows to that) or what the disk says, if more.
uint64_t Footprint(const ReleaseStore& store) {
  return std::max<uint64_t>(store.disk_bytes(), store.manifest().total_size());
}

}  // namespace

absl::StatusOr<std::string> Agent::HeldReleaseId(const std::string& release) {
  absl::MutexLock lock(&mu_);
  if (IsReleaseId(release)) {
    if (releases_.contains(release)) return release;
  } else {
    for (const auto& [id, r] : releases_) {
      if (r->download->store().manifest().display_name() == release) return id;
    }
  }
  return absl::NotFoundError(absl::StrCat("this agent holds no release ", release));
}

void Agent::LoadLocal(Release& r) {
  const std::string path = LocalPath(r.download->store());
  absl::StatusOr<std::string> bytes = ReadFile(path, 1 << 20);
  absl::MutexLock lock(&r.local_mu);
  if (bytes.ok() && !r.local.ParseFromString(*bytes)) {
    LOG(WARNING) << path << " is unreadable; the release's pins and installs are forgotten";
    r.local.Clear();
  }
  if (r.local.last_used_unix_ms() == 0) {
    r.local.set_last_used_unix_ms(absl::ToUnixMillis(clock_.Now()));
  }
  r.last_used_ms = r.local.last_used_unix_ms();
  r.earlier_from_peers = r.local.bytes_from_peers();
  r.earlier_from_origin = r.local.bytes_from_origin();
}

absl::Status Agent::SaveLocal(Release& r) {
  r.local.set_last_used_unix_ms(r.last_used_ms.load());
  const v1::ReleaseStatus run = r.download->Status();
  r.local.set_bytes_from_peers(r.earlier_from_peers + run.bytes_from_peers());
  r.local.set_bytes_from_origin(r.earlier_from_origin + run.bytes_from_origin());
  return WriteFileAtomically(LocalPath(r.download->store()), r.local.SerializeAsString(), 0644,
                             config_.durable);
}

void Agent::TouchLocal(Release& r) {
  r.last_used_ms = absl::ToUnixMillis(clock_.Now());
  absl::MutexLock lock(&r.local_mu);
  absl::Status s = SaveLocal(r);
  if (!s.ok()) LOG(WARNING) << "cannot record the use of a release: " << s;
}

v1::ReleaseStatus Agent::FullStatus(Release& r) {
  v1::ReleaseStatus status = r.download->Status();
  const std::string name = r.download->store().manifest().display_name();
  status.set_bytes_from_peers(r.earlier_from_peers + status.bytes_from_peers());
  status.set_bytes_from_origin(r.earlier_from_origin + status.bytes_from_origin());
  {
    const absl::Time now = clock_.Now();
    absl::MutexLock lock(&r.meter_mu);
    status.set_download_rate(r.download_meter.Sample(now, status.bytes_verified()));
    status.set_upload_rate(r.upload_meter.Sample(now, status.bytes_sent()));
  }
  absl::MutexLock lock(&r.local_mu);
  status.set_pinned(r.local.pinned());
  status.set_last_used_unix_ms(r.last_used_ms.load());
  {
    absl::MutexLock followers_lock(&followers_mu_);
    for (const auto& follower : followers_) {
      if (follower->Target() == status.release_id()) {
        status.add_channels(follower->Status().channel());
      }
    }
  }
  for (const v1::Installation& installed : r.local.installs()) {
    v1::Installation* out = status.add_installs();
    *out = installed;
    absl::StatusOr<std::optional<std::string>> current = CurrentRelease(installed.dir());
    out->set_current(current.ok() && current->has_value() && **current == name);
  }
  return status;
}

absl::StatusOr<v1::ReleaseStatus> Agent::Pin(const std::string& release, bool pinned) {
  ASSIGN_OR_RETURN(std::string id, HeldReleaseId(release));
  std::shared_ptr<Release> r = Find(id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("this agent holds no release ", release));
  {
    absl::MutexLock lock(&r->local_mu);
    r->local.set_pinned(pinned);
    RETURN_IF_ERROR(SaveLocal(*r));
  }
  LOG(INFO) << (pinned ? "pinned " : "unpinned ") << r->download->store().manifest().display_name();
  return FullStatus(*r);
}

absl::StatusOr<v1::Installation> Agent::InstallRelease(const std::string& release_id,
                                                       const std::string& dest) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("this agent holds no release ", release_id));
  const ReleaseStore& store = r->download->store();
  const std::string name = store.manifest().display_name();
  if (!store.complete()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is not complete: ", store.verified_count(), " of ",
                     store.pieces().total_pieces(), " pieces verified"));
  }
  if (dest.empty() || dest[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("install directory \"", dest, "\" is not an absolute path"));
  }
  InstallOptions options;
  options.post_install = config_.post_install;
  options.post_install_timeout = config_.post_install_timeout;
  options.durable = config_.durable;
  const absl::Time start = clock_.Now();
  absl::StatusOr<InstallResult> result = Install(store.manifest(), store.data_dir(), dest, options);
  metrics_->CountInstall(result.ok(), absl::ToDoubleSeconds(clock_.Now() - start));
  if (!result.ok()) {
    LOG(ERROR) << "cannot install " << name << " into " << dest << ": " << result.status();
    return result.status();
  }
  v1::Installation installed;
  installed.set_dir(dest);
  installed.set_path(result->path);
  installed.set_current(true);
  installed.set_installed_unix_ms(absl::ToUnixMillis(clock_.Now()));
  if (result->post_install.has_value()) {
    installed.set_post_install(result->post_install->Describe());
    installed.set_post_install_ok(result->post_install->ok());
    metrics_->CountPostInstall(result->post_install->ok());
    if (!result->post_install->ok()) {
      LOG(WARNING) << name << ": post-install command " << installed.post_install();
    }
  }
  LOG(INFO) << "installed " << name << " as " << dest << "/current"
            << (result->reused ? " (already there)" : "");
  r->last_used_ms = absl::ToUnixMillis(clock_.Now());
  absl::MutexLock lock(&r->local_mu);
  auto* installs = r->local.mutable_installs();
  for (int i = 0; i < installs->size(); ++i) {
    if (installs->Get(i).dir() == dest) {
      installs->DeleteSubrange(i, 1);
      break;
    }
  }
  *installs->Add() = installed;
  RETURN_IF_ERROR(SaveLocal(*r));
  return installed;
}

std::string Agent::EvictionBlocker(Release& r, const v1::ReleaseStatus& status) {
  if (status.state() != v1::RELEASE_STATE_SEEDING) return "not complete";
  if (status.pinned()) return "pinned";
  for (const v1::Installation& installed : status.installs()) {
    if (installed.current()) return absl::StrCat("current in ", installed.dir());
  }
  if (status.channels_size() > 0) return absl::StrCat("target of channel ", status.channels(0));
  return "";
}

absl::Status Agent::MakeRoom(const Manifest& manifest) {
  if (config_.disk_quota == 0) return absl::OkStatus();
  const uint64_t need = manifest.total_size();
  const std::string name = manifest.display_name();
  if (need > config_.disk_quota) {
    return absl::ResourceExhaustedError(absl::StrCat(
        name, " needs ", need, " bytes; --disk_quota is ", config_.disk_quota, " bytes"));
  }
  // Bounded: each round removes a release or returns.
  for (int round = 0; round < 100000; ++round) {
    std::vector<std::shared_ptr<Release>> held;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, r] : releases_) held.push_back(r);
    }
    uint64_t used = 0;
    std::shared_ptr<Release> victim;
    int64_t victim_used = 0;
    std::vector<std::string> blocked;
    for (const std::shared_ptr<Release>& r : held) {
      used += Footprint(r->download->store());
      const v1::ReleaseStatus status = FullStatus(*r);
      const std::string why = EvictionBlocker(*r, status);
      if (!why.empty()) {
        blocked.push_back(absl::StrCat(r->download->store().manifest().display_name(), " (", why, ")"));
      } else if (victim == nullptr || status.last_used_unix_ms() < victim_used) {
        victim = r;
        victim_used = status.last_used_unix_ms();
      }
    }
    if (used + need <= config_.disk_quota) return absl::OkStatus();
    if (victim == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "no room for ", name, " (", need, " bytes) under --disk_quota=", config_.disk_quota,
          ": ", used, " bytes held by releases that may not be evicted: ",
          absl::StrJoin(blocked, ", ")));
    }
    const std::string victim_id = victim->download->store().manifest().release_id();
    const std::string victim_name = victim->download->store().manifest().display_name();
    victim.reset();
    absl::StatusOr<std::string> removed = Remove(victim_id);
    if (!removed.ok()) return removed.status();
    metrics_->CountEviction();
    LOG(INFO) << "evicted " << victim_name << " to make room for " << name;
  }
  return absl::InternalError("eviction did not converge");
}

absl::StatusOr<std::string> Agent::FetchForChannel(const std::string& release_id,
                                                   const std::string& channel_name) {
  return Fetch(release_id, channel_name);
}

absl::StatusOr<bool> Agent::AwaitComplete(const std::string& release_id,
                                          absl::Duration timeout) {
  ASSIGN_OR_RETURN(v1::ReleaseStatus status, AwaitRelease(release_id, timeout));
  return status.state() == v1::RELEASE_STATE_SEEDING;
}

absl::Status Agent::InstallForChannel(const std::string& release_id, const std::string& dir) {
  return InstallRelease(release_id, dir).status();
}

void Agent::Retire(const std::string& release_id) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return;
  const std::string why = EvictionBlocker(*r, FullStatus(*r));
  const std::string name = r->download->store().manifest().display_name();
  r.reset();
  if (!why.empty()) {
    LOG(INFO) << "keeping " << name << " past its seed time: " << why;
    return;
  }
  absl::StatusOr<std::string> removed = Remove(release_id);
  if (removed.ok()) {
    LOG(INFO) << "removed " << name << ": its channel moved on more than --seed_time ago";
  }
}

}  // namespace shoal::agent
