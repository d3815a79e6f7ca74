#pragma once

// Follows one release channel for the agent (--follow=CHANNEL=DIR): watches
// the tracker's channel stream and, when the channel points at a release and
// this agent falls inside the rollout percentage (common/rollout.h), fetches
// the release and installs it as DIR/current. Paused channels start nothing
// new. A channel may point back at an older release: that is a rollback and
// goes the same way. A release of another name than the channel's, or one
// whose manifest is not trusted (unsigned, unknown key, expired, replayed),
// is refused and the reason shown in the channel's status.
//
// After a restart the follower reads what DIR/current holds and the tracker
// sends the channel's current rollout first, so nothing is fetched or
// installed twice. Releases a channel moved away from stay in the store,
// seeding, for `seed_time`, then are removed (unless pinned or installed as
// current somewhere, or another channel's target).
//
// Two threads: one reads the stream (and watches again, with backoff, when
// it ends), one acts on the latest rollout. Thread-safe.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/tracker_client.h"
#include "shoal/v1/agent.pb.h"
#include "shoal/v1/tracker.pb.h"

namespace shoal::agent {

// What the follower asks of the agent.
class ChannelHost {
 public:
  virtual ~ChannelHost() = default;
  // Starts or joins the download; the release id. The manifest is verified
  // (trust, expiry, replay) by the agent.
  virtual absl::StatusOr<std::string> FetchForChannel(const std::string& release_id,
                                                      const std::string& channel_name) = 0;
  // Waits at most `timeout` for the release; true once complete.
  virtual absl::StatusOr<bool> AwaitComplete(const std::string& release_id,
                                             absl::Duration timeout) = 0;
  virtual absl::Status InstallForChannel(const std::string& release_id,
                                         const std::string& dir) = 0;
  // Removes a release the channel left, if nothing else holds it.
  virtual void Retire(const std::string& release_id) = 0;
};

struct ChannelSpec {
  std::string channel;  // "<release name>/<channel>"
  std::string dir;      // absolute
};

// Parses "CHANNEL=DIR[,CHANNEL=DIR...]"; INVALID_ARGUMENT naming the bad
// entry (no '=', a channel without '/', a relative DIR, a channel twice).
absl::StatusOr<std::vector<ChannelSpec>> ParseFollowFlag(absl::string_view flag);

class ChannelFollower {
 public:
  ChannelFollower(ChannelSpec spec, std::string peer_id, TrackerClient& tracker,
                  ChannelHost& host, absl::Duration seed_time);
  // Stops both threads (cancels the stream).
  ~ChannelFollower();
  ChannelFollower(const ChannelFollower&) = delete;
  ChannelFollower& operator=(const ChannelFollower&) = delete;

  v1::ChannelStatus Status() const;
  // The release the channel targets for this agent (in rollout, not
  // paused or paused after it started), if any: it is not evicted.
  std::string Target() const;

 private:
  void WatchLoop();
  void ActLoop();
  // One step towards `rollout`; false if it should be retried later.
  bool Act(const v1::Rollout& rollout);
  void SetError(const std::string& error);
  void RetireExpired(absl::Time now);

  const ChannelSpec spec_;
  const std::string peer_id_;
  const std::string release_name_;  // the part of the channel before '/'
  TrackerClient& tracker_;
  ChannelHost& host_;
  const absl::Duration seed_time_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool have_rollout_ ABSL_GUARDED_BY(mu_) = false;
  v1::Rollout rollout_ ABSL_GUARDED_BY(mu_);
  uint64_t acted_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool acted_ ABSL_GUARDED_BY(mu_) = false;
  v1::ChannelStatus status_ ABSL_GUARDED_BY(mu_);
  // Releases the channel moved away from, and when they may go.
  std::vector<std::pair<std::string, absl::Time>> leaving_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ChannelWatch> watch_ ABSL_GUARDED_BY(mu_);

  absl::BitGen bitgen_;  // the watcher's
  std::thread watcher_;
  std::thread actor_;
};

}  // namespace shoal::agent
