#pragma once

// Pushes channel changes to WatchChannel streams. One thread polls the store
// for each channel that somebody watches (once per channel, however many
// watchers) and hands every newer generation to the watchers of that channel.
// Polling, rather than a notification from SetRollout, is what lets replicas
// sharing a Redis store see each other's changes.

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/tracker.h"

namespace shoal::tracker {

// Receives rollouts of one channel. Implementations must not call back into
// the hub from Deliver.
class ChannelWatcher {
 public:
  virtual ~ChannelWatcher() = default;
  virtual void Deliver(const v1::Rollout& rollout) = 0;
};

// Thread-safe. Owns its polling thread; the destructor stops and joins it.
// Watchers must unregister before they are destroyed.
class ChannelWatchHub {
 public:
  // `tracker` must outlive the hub.
  ChannelWatchHub(Tracker& tracker, absl::Duration poll_interval);
  ~ChannelWatchHub();

  // Delivers the channel's current rollout (if it exists) at once, then every
  // newer generation.
  void Register(const std::string& channel, ChannelWatcher* watcher);
  // After this returns, the hub never touches `watcher` again.
  void Unregister(const std::string& channel, ChannelWatcher* watcher);

 private:
  void PollLoop();
  void PollOnce();

  Tracker& tracker_;
  const absl::Duration poll_interval_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, absl::flat_hash_set<ChannelWatcher*>>
      watchers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> last_generation_
      ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace shoal::tracker
