#include "agent/task_pool.h"

#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/piece_buffer.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

TEST(TaskPoolTest, RunsEveryTaskOnItsThreadsInParallel) {
  TaskPool pool(2);
  std::atomic<int> done{0};
  absl::Notification both_running, release;
  std::atomic<int> running{0};
  for (int i = 0; i < 2; ++i) {
    pool.Run([&] {
      if (++running == 2) both_running.Notify();
      release.WaitForNotification();
      ++done;
    });
  }
  // Two tasks block at once: the pool really has two threads.
  ASSERT_TRUE(both_running.WaitForNotificationWithTimeout(absl::Seconds(30)));
  release.Notify();
  absl::Notification last;
  pool.Run([&] { last.Notify(); });
  ASSERT_TRUE(last.WaitForNotificationWithTimeout(absl::Seconds(30)));
  pool.Stop();
  EXPECT_EQ(done.load(), 2);
}

TEST(TaskPoolTest, StopFinishesRunningTasksAndDropsQueuedOnes) {
  auto pool = std::make_unique<TaskPool>(1);
  absl::Notification started, release;
  std::atomic<bool> finished{false}, queued_ran{false};
  auto owned = std::make_shared<int>(7);
  pool->Run([&] {
    started.Notify();
    release.WaitForNotification();
    finished = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(30)));
  pool->Run([&, owned] { queued_ran = true; });
  EXPECT_EQ(pool->queued(), 1u);
  // Stop while the first task still runs: it drops the queue at once, then
  // waits for the running task.
  std::thread stopper([&] { pool->Stop(); });
  for (int i = 0; i < 30000 && pool->queued() != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(pool->queued(), 0u);
  release.Notify();
  stopper.join();
  EXPECT_TRUE(finished.load());
  EXPECT_FALSE(queued_ran.load());
  EXPECT_EQ(owned.use_count(), 1);  // the dropped task was destroyed
  pool->Run([&] { queued_ran = true; });  // after Stop: dropped
  pool.reset();
  EXPECT_FALSE(queued_ran.load());
}

TEST(PieceBufferTest, IsPageAlignedAndSuitsDirectIo) {
  for (size_t size : {size_t{1}, size_t{4096}, size_t{16384 + 5}, size_t{4} << 20}) {
    PieceBuffer buffer(size);
    EXPECT_EQ(buffer.size(), size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.data()) % 4096, 0u) << size;
    EXPECT_EQ(IsDirectIoAligned(buffer.data(), buffer.size()), size % 4096 == 0) << size;
  }
  const PieceBuffer copy = PieceBuffer::CopyOf("piece bytes");
  EXPECT_EQ(copy.view(), "piece bytes");
  EXPECT_TRUE(PieceBuffer().empty());
}

}  // namespace
}  // namespace shoal::agent
