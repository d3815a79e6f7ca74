#include "agent/task_pool.h"

#include <algorithm>
#include <utility>

namespace shoal::agent {

TaskPool::TaskPool(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

TaskPool::~TaskPool() { Stop(); }

void TaskPool::Run(absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  if (!stop_) tasks_.push_back(std::move(task));
}

void TaskPool::Stop() {
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    dropped.swap(tasks_);
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  // `dropped` is destroyed here, outside the lock: tasks may own buffers
  // whose destructors take other locks.
}

size_t TaskPool::queued() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

void TaskPool::Loop() {
  while (true) {
    absl::AnyInvocable<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace shoal::agent
