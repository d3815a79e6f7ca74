#include "agent/rate_limiter.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t k10MBps = 10'000'000;
constexpr uint64_t k100MBps = 100'000'000;
constexpr uint64_t k1GBps = 1'000'000'000;
const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
// A guard against a broken pacer hanging a test; no test waits this long
// when the code is right.
constexpr absl::Duration kTestTimeout = absl::Seconds(30);

// The time `bytes` take at `rate` bytes/s (exact for the values used here).
absl::Duration At(uint64_t rate, uint64_t bytes) {
  return absl::Seconds(static_cast<int64_t>(bytes)) /
         static_cast<int64_t>(rate);
}

// Bytes/s a sender that always has data gets through in `period`, sending
// `request` bytes at a time and waiting as the bucket says. Stops early once
// past twice the limit, so that a bucket that never says wait fails instead
// of looping forever.
double GreedyReserveRate(FakeClock& clock, TokenBucket& bucket,
                         uint64_t request, absl::Duration period) {
  const absl::Time end = clock.Now() + period;
  const double cap =
      2 * bucket.bytes_per_second() * absl::ToDoubleSeconds(period);
  uint64_t sent = 0;
  while (sent < cap) {
    const absl::Duration wait = bucket.Reserve(request);
    if (clock.Now() + wait >= end) break;
    clock.Advance(wait);
    sent += request;
  }
  return sent / absl::ToDoubleSeconds(period);
}

// The same for the download engine's way: try, and when refused sleep until
// NextAllowed().
double GreedyDownloadRate(FakeClock& clock, DownloadPacer& pacer,
                          uint64_t request, absl::Duration period,
                          uint64_t limit) {
  const absl::Time end = clock.Now() + period;
  const double cap = 2 * limit * absl::ToDoubleSeconds(period);
  uint64_t started = 0;
  while (started < cap && clock.Now() < end) {
    if (pacer.TryStart(request)) {
      started += request;
    } else {
      clock.Set(std::max(pacer.NextAllowed(), clock.Now()));
    }
  }
  return started / absl::ToDoubleSeconds(period);
}

// The download engine's way: once NextAllowed() has come, a round of
// `batch` requests, each charged.
double GreedyEngineRate(FakeClock& clock, DownloadPacer& pacer,
                        uint64_t request, int batch, absl::Duration period) {
  const absl::Time end = clock.Now() + period;
  uint64_t started = 0;
  while (true) {
    clock.Set(std::max(pacer.NextAllowed(), clock.Now()));
    if (clock.Now() >= end) break;
    for (int i = 0; i < batch; ++i) pacer.Charge(request);
    started += batch * request;
  }
  return started / absl::ToDoubleSeconds(period);
}

// --- TokenBucket -----------------------------------------------------------

class LongRunRateTest
    : public ::testing::TestWithParam<std::tuple<uint64_t, uint64_t>> {};

TEST_P(LongRunRateTest, ReserveHoldsTheLimitWithinFivePercentOverTenSeconds) {
  const auto [rate, request] = GetParam();
  FakeClock clock(kStart);
  TokenBucket bucket(clock, rate);
  EXPECT_NEAR(GreedyReserveRate(clock, bucket, request, absl::Seconds(10)),
              rate, 0.05 * rate);
}

TEST_P(LongRunRateTest,
       DownloadPacerHoldsTheLimitWithinFivePercentOverTenSeconds) {
  const auto [rate, request] = GetParam();
  FakeClock clock(kStart);
  DownloadPacer pacer(clock, rate);
  EXPECT_NEAR(
      GreedyDownloadRate(clock, pacer, request, absl::Seconds(10), rate), rate,
      0.05 * rate);
}

INSTANTIATE_TEST_SUITE_P(RatesAndRequests, LongRunRateTest,
                         ::testing::Combine(::testing::Values(k10MBps, k100MBps,
                                                              k1GBps),
                                            ::testing::Values(kMiB, 16 * 1024)),
                         [](const auto& info) {
                           return absl::StrCat(
                               std::get<0>(info.param) / 1'000'000, "MBps_",
                               std::get<1>(info.param) / 1024, "KiB");
                         });

TEST(DownloadPacerTest, RoundsOfChargedRequestsHoldTheLimit) {
  FakeClock clock(kStart);
  DownloadPacer pacer(clock, k10MBps);
  // Eight requests of 256 KiB a round, as the engine issues them.
  EXPECT_NEAR(GreedyEngineRate(clock, pacer, 256 * 1024, 8, absl::Seconds(10)),
              k10MBps, 0.05 * k10MBps);
}

TEST(TokenBucketTest, DefaultBurstIsATenthOfASecondButAtLeastOneMiB) {
  EXPECT_EQ(DefaultBurstBytes(k1GBps), k100MBps);
  EXPECT_EQ(DefaultBurstBytes(k10MBps), kMiB);
}

TEST(TokenBucketTest, BurstLetsTheFirstChunkGoAtOnce) {
  FakeClock clock(kStart);
  TokenBucket bucket(clock, k10MBps);
  EXPECT_EQ(bucket.Reserve(kMiB), absl::ZeroDuration());
  EXPECT_EQ(bucket.Reserve(kMiB), At(k10MBps, kMiB));
}

TEST(TokenBucketTest, UnlimitedWhenTheRateIsZero) {
  FakeClock clock(kStart);
  TokenBucket bucket(clock, 0);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(bucket.Reserve(uint64_t{1} << 40), absl::ZeroDuration());
    ASSERT_TRUE(bucket.TryAcquire(uint64_t{1} << 40));
  }
  EXPECT_EQ(bucket.NextAllowed(), absl::InfinitePast());
}

TEST(TokenBucketTest, RequestLargerThanTheBurstWaitsOnlyForItsExcess) {
  FakeClock clock(kStart);
  TokenBucket bucket(clock, k10MBps);
  EXPECT_EQ(bucket.Reserve(11 * kMiB), At(k10MBps, 10 * kMiB));
}

TEST(TokenBucketTest, LaterReservationsWaitBehindEarlierOnes) {
  FakeClock clock(kStart);
  TokenBucket bucket(clock, k10MBps);
  bucket.Reserve(kMiB);  // The burst.
  EXPECT_EQ(bucket.Reserve(4 * kMiB), At(k10MBps, 4 * kMiB));
  EXPECT_EQ(bucket.Reserve(kMiB), At(k10MBps, 5 * kMiB));
  clock.Advance(At(k10MBps, 2 * kMiB));
  EXPECT_EQ(bucket.Reserve(kMiB), At(k10MBps, 4 * kMiB));
}

TEST(TokenBucketTest, IdleTimeEarnsAtMostOneBurst) {
  FakeClock clock(kStart);
  TokenBucket bucket(clock, k10MBps);
  clock.Advance(absl::Hours(1));
  EXPECT_EQ(bucket.Reserve(kMiB), absl::ZeroDuration());
  EXPECT_EQ(bucket.Reserve(kMiB), At(k10MBps, kMiB));
}

TEST(TokenBucketTest, ConcurrentReservationsFromEightThreadsSumUp) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  constexpr uint64_t kRequest = 64 * 1024;  // 655.36 us at 100 MB/s
  FakeClock clock(kStart);
  TokenBucket bucket(clock, k100MBps);
  std::vector<std::vector<absl::Duration>> waits(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&bucket, &mine = waits[t]] {
      for (int i = 0; i < kPerThread; ++i) {
        mine.push_back(bucket.Reserve(kRequest));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<absl::Duration> all;
  for (const auto& mine : waits) {
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  // Every reservation paid off one request after the one before it.
  const uint64_t burst = DefaultBurstBytes(k100MBps);
  for (int k = 1; k <= kThreads * kPerThread; ++k) {
    const absl::Duration owed =
        At(k100MBps, k * kRequest) - At(k100MBps, burst);
    ASSERT_EQ(all[k - 1], std::max(owed, absl::ZeroDuration())) << k;
  }
  EXPECT_EQ(bucket.NextAllowed(),
            kStart + At(k100MBps, kThreads * kPerThread * kRequest - burst));
}

TEST(TokenBucketTest, ClockSteppingBackKeepsOnlyTheDebt) {
  FakeClock clock(kStart);
  TokenBucket bucket(clock, k10MBps);
  bucket.Reserve(kMiB);
  bucket.Reserve(kMiB);  // One MiB in debt.
  clock.Set(kStart - absl::Hours(1));
  EXPECT_EQ(bucket.Reserve(kMiB), At(k10MBps, 2 * kMiB));
}

// --- DownloadPacer ----------------------------------------------------------

TEST(DownloadPacerTest, StartsAPieceLargerThanTheBurst) {
  FakeClock clock(kStart);
  DownloadPacer pacer(clock, k10MBps);
  EXPECT_TRUE(pacer.TryStart(16 * kMiB));
}

TEST(DownloadPacerTest, RefusesUntilTheDebtIsPaidOff) {
  FakeClock clock(kStart);
  DownloadPacer pacer(clock, k10MBps);
  ASSERT_TRUE(pacer.TryStart(16 * kMiB));
  const absl::Time next = kStart + At(k10MBps, 15 * kMiB);
  EXPECT_EQ(pacer.NextAllowed(), next);
  clock.Set(next - absl::Nanoseconds(1));
  EXPECT_FALSE(pacer.TryStart(kMiB));
  clock.Set(next);
  EXPECT_TRUE(pacer.TryStart(kMiB));
}

TEST(DownloadPacerTest, UnlimitedAlwaysStarts) {
  FakeClock clock(kStart);
  DownloadPacer pacer(clock, 0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(pacer.TryStart(uint64_t{1} << 40));
  EXPECT_LT(pacer.NextAllowed(), clock.Now());
}

// --- PacedUploads -----------------------------------------------------------

// A Waiter on a FakeClock: a wait ends when the test moves the clock past its
// end with Advance. Thread-safe.
class FakeWaiter final : public Waiter {
 public:
  explicit FakeWaiter(FakeClock& clock) : clock_(clock) {}

  bool AwaitWithTimeout(absl::Mutex& mu, const absl::Condition& cond,
                        absl::Duration timeout) override {
    {
      absl::MutexLock lock(&mu_);
      sleeper_mu_ = &mu;
      deadline_ = clock_.Now() + timeout;
      expired_ = timeout <= absl::ZeroDuration();
    }
    // expired_ changes only with `mu` held (in Advance), as a condition's
    // state must.
    auto done = [&] { return cond.Eval() || expired_; };
    mu.Await(absl::Condition(&done));
    {
      absl::MutexLock lock(&mu_);
      sleeper_mu_ = nullptr;
    }
    return cond.Eval();
  }

  // Moves the clock, and ends a wait in progress that this takes past its
  // end. When this returns, a wait that has not ended will not end without
  // more time.
  void Advance(absl::Duration d) {
    absl::Mutex* mu;
    {
      absl::MutexLock lock(&mu_);
      clock_.Advance(d);
      mu = sleeper_mu_;
    }
    if (mu == nullptr) return;
    absl::MutexLock sleeper_lock(mu);  // Unlocking has the sleeper look again.
    absl::MutexLock lock(&mu_);
    if (sleeper_mu_ == mu && clock_.Now() >= deadline_) expired_ = true;
  }

  // Moves the clock without ending a wait in progress, as if the waiting
  // thread were slow to wake.
  void AdvanceWithoutWaking(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    clock_.Advance(d);
  }

  // Waits until a thread waits toward a time ahead of the clock; returns
  // that time (InfinitePast after kTestTimeout).
  absl::Time AwaitSleeper() {
    absl::MutexLock lock(&mu_);
    auto sleeping = [this] {
      mu_.AssertHeld();
      return sleeper_mu_ != nullptr && deadline_ > clock_.Now();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&sleeping), kTestTimeout)) {
      return absl::InfinitePast();
    }
    return deadline_;
  }

 private:
  FakeClock& clock_;  // Moved only under mu_.
  absl::Mutex mu_;
  absl::Mutex* sleeper_mu_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_);
  bool expired_ = false;  // Guarded by *sleeper_mu_.
};

// Records the order proceeds run in. Thread-safe.
class Grants {
 public:
  absl::AnyInvocable<void() &&> For(int id) {
    return [this, id] {
      absl::MutexLock lock(&mu_);
      ids_.push_back(id);
    };
  }
  std::vector<int> ids() const {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  // False after kTestTimeout without `n` grants.
  bool AwaitCount(size_t n) const {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n] {
      mu_.AssertHeld();
      return ids_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kTestTimeout);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<int> ids_ ABSL_GUARDED_BY(mu_);
};

class PacedUploadsTest : public ::testing::Test {
 protected:
  FakeClock clock_{kStart};
  FakeWaiter waiter_{clock_};
  Grants grants_;
};

TEST_F(PacedUploadsTest, GrantsInlineWithinTheLimit) {
  PacedUploads pacer(clock_, waiter_, k10MBps);
  pacer.Acquire(kMiB, grants_.For(1));
  EXPECT_THAT(grants_.ids(), ElementsAre(1));
}

TEST_F(PacedUploadsTest, GrantsEverythingInlineWhenUnlimited) {
  PacedUploads pacer(clock_, waiter_, 0);
  for (int i = 0; i < 3; ++i) pacer.Acquire(uint64_t{1} << 40, grants_.For(i));
  EXPECT_THAT(grants_.ids(), ElementsAre(0, 1, 2));
}

TEST_F(PacedUploadsTest, GrantsOverTheLimitLaterAndInOrder) {
  PacedUploads pacer(clock_, waiter_, k10MBps);
  pacer.Acquire(kMiB, grants_.For(1));
  pacer.Acquire(kMiB, grants_.For(2));
  pacer.Acquire(kMiB, grants_.For(3));
  EXPECT_THAT(grants_.ids(), ElementsAre(1));
  ASSERT_EQ(waiter_.AwaitSleeper(), kStart + At(k10MBps, kMiB));

  waiter_.Advance(At(k10MBps, kMiB) - absl::Nanoseconds(1));
  EXPECT_THAT(grants_.ids(), ElementsAre(1));
  waiter_.Advance(absl::Nanoseconds(1));
  ASSERT_TRUE(grants_.AwaitCount(2));
  EXPECT_THAT(grants_.ids(), ElementsAre(1, 2));

  ASSERT_EQ(waiter_.AwaitSleeper(), kStart + At(k10MBps, 2 * kMiB));
  waiter_.Advance(At(k10MBps, kMiB));
  ASSERT_TRUE(grants_.AwaitCount(3));
  EXPECT_THAT(grants_.ids(), ElementsAre(1, 2, 3));
  EXPECT_EQ(pacer.waiting(), 0);
}

TEST_F(PacedUploadsTest, ChunkWithinTheLimitStillWaitsBehindEarlierOnes) {
  PacedUploads pacer(clock_, waiter_, k10MBps);
  pacer.Acquire(kMiB, grants_.For(1));
  pacer.Acquire(kMiB, grants_.For(2));
  ASSERT_NE(waiter_.AwaitSleeper(), absl::InfinitePast());
  // Refills the bucket while the timer thread still waits for chunk 2.
  waiter_.AdvanceWithoutWaking(absl::Seconds(1));
  pacer.Acquire(kMiB, grants_.For(3));
  EXPECT_THAT(grants_.ids(), ElementsAre(1));
  waiter_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(grants_.AwaitCount(3));
  EXPECT_THAT(grants_.ids(), ElementsAre(1, 2, 3));
}

TEST_F(PacedUploadsTest, DestructionRunsPendingGrants) {
  auto pacer = std::make_unique<PacedUploads>(clock_, waiter_, k10MBps);
  for (int i = 1; i <= 4; ++i) pacer->Acquire(kMiB, grants_.For(i));
  ASSERT_EQ(pacer->waiting(), 3);
  pacer.reset();
  EXPECT_THAT(grants_.ids(), ElementsAre(1, 2, 3, 4));
}

TEST_F(PacedUploadsTest, AfterShutdownGrantsInline) {
  PacedUploads pacer(clock_, waiter_, k10MBps);
  pacer.Acquire(kMiB, grants_.For(1));
  pacer.Acquire(kMiB, grants_.For(2));
  pacer.Shutdown();
  EXPECT_THAT(grants_.ids(), ElementsAre(1, 2));
  pacer.Acquire(100 * kMiB, grants_.For(3));
  EXPECT_THAT(grants_.ids(), ElementsAre(1, 2, 3));
}

TEST_F(PacedUploadsTest, HoldsTheLimitWithinFivePercentOverTenSeconds) {
  // One upload that asks for its next chunk as soon as one is granted, as
  // the peer service does; the test moves time to each wait's end.
  PacedUploads pacer(clock_, waiter_, k10MBps);
  std::atomic<uint64_t> granted{0};
  std::atomic<bool> done{false};
  absl::AnyInvocable<void()> next = [&] {
    if (done.load()) return;
    pacer.Acquire(kMiB, [&] {
      granted += kMiB;
      next();
    });
  };
  // Before the locals the chain uses go, even when an assertion fails.
  absl::Cleanup stop_chain = [&] {
    done.store(true);
    pacer.Shutdown();  // Grants the last waiting chunk, which ends the chain.
  };
  next();
  const absl::Time end = kStart + absl::Seconds(10);
  for (absl::Time due = waiter_.AwaitSleeper(); due < end;
       due = waiter_.AwaitSleeper()) {
    ASSERT_NE(due, absl::InfinitePast()) << "no chunk waiting";
    waiter_.Advance(due - clock_.Now());
  }
  const double rate = granted.load() / 10.0;
  EXPECT_NEAR(rate, k10MBps, 0.05 * k10MBps);
}

}  // namespace
}  // namespace shoal::agent
