#include "tracker/channel_watch.h"

#include <vector>

#include "glog/logging.h"

namespace shoal::tracker {

ChannelWatchHub::ChannelWatchHub(Tracker& tracker, absl::Duration poll_interval)
    : tracker_(tracker), poll_interval_(poll_interval) {
  thread_ = std::thread([this] { PollLoop(); });
}

ChannelWatchHub::~ChannelWatchHub() {
  stop_.Notify();
  thread_.join();
}

void ChannelWatchHub::Register(const std::string& channel,
                               ChannelWatcher* watcher) {
  v1::GetRolloutRequest request;
  request.set_channel(channel);
  absl::StatusOr<v1::Rollout> current = tracker_.GetRollout(request);
  absl::MutexLock lock(&mu_);
  watchers_[channel].insert(watcher);
  if (current.ok()) watcher->Deliver(*current);
}

void ChannelWatchHub::Unregister(const std::string& channel,
                                 ChannelWatcher* watcher) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(channel);
  if (it == watchers_.end()) return;
  it->second.erase(watcher);
  if (it->second.empty()) {
    watchers_.erase(it);
    last_generation_.erase(channel);
  }
}

void ChannelWatchHub::PollLoop() {
  while (!stop_.WaitForNotificationWithTimeout(poll_interval_)) PollOnce();
}

void ChannelWatchHub::PollOnce() {
  std::vector<std::string> channels;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [channel, set] : watchers_) channels.push_back(channel);
  }
  for (const std::string& channel : channels) {
    v1::GetRolloutRequest request;
    request.set_channel(channel);
    absl::StatusOr<v1::Rollout> rollout = tracker_.GetRollout(request);
    if (!rollout.ok()) {
      if (!absl::IsNotFound(rollout.status())) {
        LOG_EVERY_N(WARNING, 100) << "watching " << channel << ": " << rollout.status();
      }
      continue;
    }
    absl::MutexLock lock(&mu_);
    auto it = watchers_.find(channel);
    if (it == watchers_.end()) continue;
    uint64_t& last = last_generation_[channel];
    if (rollout->generation() <= last) continue;
    last = rollout->generation();
    for (ChannelWatcher* watcher : it->second) watcher->Deliver(*rollout);
  }
}

}  // namespace shoal::tracker
