#pragma once

// A fixed set of threads running queued tasks in order of arrival. The
// download engine keeps two: one for blocking calls (tracker, origin,
// commits) and one that verifies and stores received pieces, so that gRPC's
// few callback threads go back to reading sockets at once instead of hashing
// and writing (agent/download.h).

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace shoal::agent {

class TaskPool {
 public:
  // Starts `threads` (at least one) threads.
  explicit TaskPool(int threads);
  // Stop().
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  // Queues `task`; dropped if the pool is stopped.
  void Run(absl::AnyInvocable<void()> task);
  // Lets the running tasks finish, drops the queued ones and joins the
  // threads. Idempotent; must not be called from a task.
  void Stop();
  // Tasks queued and not yet started.
  size_t queued() const;

 private:
  void Loop();

  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace shoal::agent
