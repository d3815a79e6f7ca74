#include "agent/channel_follower.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/install.h"
#include "common/rollout.h"
#include "glog/logging.h"

namespace shoal::agent {
namespace {

// Refusals that the same rollout would meet again: shown, not retried until
// the channel changes.
bool IsFinal(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kNotFound:
      return true;
    default:
      return false;
  }
}

// The release id DIR/current holds, from its install marker; empty if none.
std::string InstalledId(const std::string& dir) {
  absl::StatusOr<std::vector<InstalledVersion>> versions = ListInstalled(dir);
  if (!versions.ok()) return "";
  for (const InstalledVersion& v : *versions) {
    if (v.current) return v.release_id;
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<ChannelSpec>> ParseFollowFlag(absl::string_view flag) {
  std::vector<ChannelSpec> specs;
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view entry : absl::StrSplit(flag, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--follow entry \"", entry, "\" is not CHANNEL=DIR"));
    }
    std::vector<absl::string_view> channel = absl::StrSplit(parts[0], absl::MaxSplits('/', 1));
    if (channel.size() != 2 || channel[0].empty() || channel[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--follow channel \"", parts[0], "\" is not <release name>/<channel>"));
    }
    if (parts[1][0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("--follow directory \"", parts[1], "\" is not an absolute path"));
    }
    if (!seen.insert(parts[0]).second) {
      return absl::InvalidArgumentError(absl::StrCat("--follow names ", parts[0], " twice"));
    }
    specs.push_back({parts[0], parts[1]});
  }
  return specs;
}

ChannelFollower::ChannelFollower(ChannelSpec spec, std::string peer_id, TrackerClient& tracker,
                                 ChannelHost& host, absl::Duration seed_time)
    : spec_(std::move(spec)),
      peer_id_(std::move(peer_id)),
      release_name_(spec_.channel.substr(0, spec_.channel.find('/'))),
      tracker_(tracker),
      host_(host),
      seed_time_(seed_time) {
  status_.set_channel(spec_.channel);
  status_.set_dir(spec_.dir);
  status_.set_installed_release_id(InstalledId(spec_.dir));
  watcher_ = std::thread([this] { WatchLoop(); });
  actor_ = std::thread([this] { ActLoop(); });
}

ChannelFollower::~ChannelFollower() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  watcher_.join();
  actor_.join();
}

v1::ChannelStatus ChannelFollower::Status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

std::string ChannelFollower::Target() const {
  absl::MutexLock lock(&mu_);
  if (!status_.in_rollout()) return status_.installed_release_id();
  return status_.release_id();
}

void ChannelFollower::SetError(const std::string& error) {
  absl::MutexLock lock(&mu_);
  if (status_.error() != error && !error.empty()) {
    LOG(WARNING) << "channel " << spec_.channel << ": " << error;
  }
  status_.set_error(error);
}

void ChannelFollower::WatchLoop() {
  absl::Duration backoff = absl::Seconds(1);
  auto stopped = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
  while (true) {
    absl::StatusOr<std::unique_ptr<ChannelWatch>> watch = tracker_.WatchChannel(spec_.channel);
    ChannelWatch* w = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (watch.ok()) {
        watch_ = *std::move(watch);
        w = watch_.get();
      }
    }
    bool renew = false;  // the stream reached its deadline: watch again now
    if (w != nullptr) {
      while (true) {
        absl::StatusOr<v1::Rollout> rollout = w->Next();
        if (!rollout.ok()) {
          renew = absl::IsDeadlineExceeded(rollout.status());
          if (!renew && !absl::IsCancelled(rollout.status())) {
            LOG_EVERY_N(WARNING, 10) << "channel " << spec_.channel << ": " << rollout.status();
          }
          break;
        }
        backoff = absl::Seconds(1);
        absl::MutexLock lock(&mu_);
        rollout_ = *rollout;
        have_rollout_ = true;
        status_.set_release_id(rollout->release_id());
        status_.set_percent(rollout->percent());
        status_.set_paused(rollout->paused());
        status_.set_generation(rollout->generation());
        status_.set_in_rollout(InRollout(spec_.channel, peer_id_, rollout->percent()));
      }
    } else {
      LOG_EVERY_N(WARNING, 10) << "channel " << spec_.channel << ": " << watch.status();
    }
    absl::MutexLock lock(&mu_);
    watch_.reset();
    if (!renew) {
      // Jittered, so that a fleet does not come back to a restarted
      // tracker in step.
      mu_.AwaitWithTimeout(absl::Condition(&stopped),
                           backoff * absl::Uniform(bitgen_, 0.5, 1.5));
      backoff = std::min(backoff * 2, absl::Seconds(30));
    }
    if (stopping_) return;
  }
}

void ChannelFollower::ActLoop() {
  while (true) {
    v1::Rollout rollout;
    bool act = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || (have_rollout_ && (!acted_ || rollout_.generation() != acted_generation_));
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stopping_) return;
      if (ready()) {
        rollout = rollout_;
        act = true;
      }
    }
    RetireExpired(absl::Now());
    if (!act) continue;
    if (Act(rollout)) {
      absl::MutexLock lock(&mu_);
      acted_ = true;
      acted_generation_ = rollout.generation();
    } else {
      // Try again in a while, or at once if the channel changes.
      absl::MutexLock lock(&mu_);
      const uint64_t generation = rollout.generation();
      auto changed = [this, generation]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || rollout_.generation() != generation;
      };
      mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Seconds(5));
    }
  }
}

bool ChannelFollower::Act(const v1::Rollout& rollout) {
  const std::string& id = rollout.release_id();
  if (id.empty() || rollout.paused()) return true;
  if (!InRollout(spec_.channel, peer_id_, rollout.percent())) return true;
  {
    absl::MutexLock lock(&mu_);
    if (status_.installed_release_id() == id && InstalledId(spec_.dir) == id) {
      status_.set_error("");
      return true;
    }
  }
  absl::StatusOr<std::string> fetched = host_.FetchForChannel(id, release_name_);
  if (!fetched.ok()) {
    SetError(absl::StrCat("release ", id, " refused: ", fetched.status().message()));
    return IsFinal(fetched.status());
  }
  LOG(INFO) << "channel " << spec_.channel << ": fetching " << id << " for " << spec_.dir;
  // Bounded by the agent stopping or the channel moving on.
  while (true) {
    absl::StatusOr<bool> complete = host_.AwaitComplete(id, absl::Seconds(1));
    if (!complete.ok()) {
      SetError(std::string(complete.status().message()));
      return false;
    }
    if (*complete) break;
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    if (rollout_.release_id() != id) return true;  // the next generation decides
  }
  absl::Status installed = host_.InstallForChannel(id, spec_.dir);
  if (!installed.ok()) {
    SetError(absl::StrCat("cannot install ", id, " into ", spec_.dir, ": ", installed.message()));
    return false;
  }
  absl::MutexLock lock(&mu_);
  const std::string previous = status_.installed_release_id();
  if (!previous.empty() && previous != id) {
    leaving_.emplace_back(previous, absl::Now() + seed_time_);
  }
  leaving_.erase(std::remove_if(leaving_.begin(), leaving_.end(),
                                [&id](const auto& l) { return l.first == id; }),
                 leaving_.end());
  status_.set_installed_release_id(id);
  status_.set_error("");
  LOG(INFO) << "channel " << spec_.channel << ": " << id << " is current in " << spec_.dir;
  return true;
}

void ChannelFollower::RetireExpired(absl::Time now) {
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = leaving_.begin(); it != leaving_.end();) {
      if (it->second <= now) {
        due.push_back(it->first);
        it = leaving_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const std::string& id : due) host_.Retire(id);
}

}  // namespace shoal::agent
