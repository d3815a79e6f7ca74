#pragma once

// The agent's bandwidth limits (--upload_limit, --download_limit, in bytes
// per second; 0 means unlimited): a token bucket on an injected clock, the
// pacer the peer service asks before each chunk it sends, and the admission
// check the download engine makes before each piece request it issues.
//
// Typical wiring in the agent:
//
//   RealWaiter waiter;
//   PacedUploads uploads(clock, waiter, config.upload_limit);
//   PeerServiceOptions peer_options{.pacer = &uploads};
//   DownloadPacer downloads(clock, config.download_limit);  // all releases
//   ...
//   uploads.Shutdown();         // grants the chunks still waiting, so that
//   peer_service.Shutdown();
//   peer_server->Shutdown();    // need not wait for their turn

#include <cstdint>
#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/peer_service.h"
#include "common/clock.h"

namespace shoal::agent {

// The smallest default burst: one whole chunk of the peer protocol.
inline constexpr uint64_t kMinBurstBytes = kMaxChunkBytes;

// The burst a bucket gets unless told otherwise: 100 ms at the rate, and at
// least kMinBurstBytes.
uint64_t DefaultBurstBytes(uint64_t bytes_per_second);

// A token bucket: refills at `bytes_per_second`, holds at most `burst_bytes`,
// starts full. Callers take bytes with Reserve (wait, then send) or
// TryAcquire (send now or not at all). Either may run the bucket into debt,
// so a request larger than the burst is delayed, never starved; the debt is
// paid off by the refill before anyone else gets through, which keeps the
// long-run rate at the limit. Over any period T a caller that honours the
// answers gets at most `bytes_per_second` x T + `burst_bytes` through with
// Reserve, plus one request more with TryAcquire.
//
// Reads the clock on every call. If the clock steps back, the bucket keeps
// the debt it had rather than adding the step to it.
//
// Thread-safe.
class TokenBucket {
 public:
  // `clock` must outlive the bucket. A rate of 0 means unlimited. The burst
  // is DefaultBurstBytes(bytes_per_second). CHECK-fails on a rate above
  // INT64_MAX (validate flags before).
  TokenBucket(const Clock& clock, uint64_t bytes_per_second);
  // Also CHECK-fails on a zero burst with a nonzero rate.
  TokenBucket(const Clock& clock, uint64_t bytes_per_second,
              uint64_t burst_bytes);

  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes `bytes` and returns how long the caller must wait before sending
  // them: zero while the bucket covers them, otherwise until the refill has
  // paid them off. Each reservation is paid off after every earlier one, so
  // callers go in the order they reserved. Always zero when unlimited.
  absl::Duration Reserve(uint64_t bytes);

  // Admission without waiting: while the bucket is not in debt, takes
  // `bytes` (into debt if need be) and returns true; otherwise takes nothing
  // and returns false. Always true when unlimited.
  bool TryAcquire(uint64_t bytes);

  // When the bucket is out of debt, that is from when TryAcquire succeeds if
  // nobody takes bytes first: at or before the clock's Now() when it would
  // succeed now. absl::InfinitePast() when unlimited.
  absl::Time NextAllowed() const;

  uint64_t bytes_per_second() const { return rate_; }
  uint64_t burst_bytes() const { return burst_; }
  bool unlimited() const { return rate_ == 0; }

 private:
  // The time the refill needs to bring `bytes`.
  absl::Duration TimeFor(uint64_t bytes) const;
  // Brings empty_at_ up to `now` (see below) and returns it.
  absl::Time Settle(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  const uint64_t rate_;
  const uint64_t burst_;
  const absl::Duration burst_time_;  // TimeFor(burst_)

  mutable absl::Mutex mu_;
  // The bucket holds rate_ x (now - empty_at_) bytes: it is in debt while
  // empty_at_ is ahead of now. Never more than burst_time_ behind the last
  // Settle, which is how the bucket caps what idle time earns.
  absl::Time empty_at_ ABSL_GUARDED_BY(mu_);
  // The clock's reading at the last Settle, to notice it stepping back.
  absl::Time last_now_ ABSL_GUARDED_BY(mu_);
};

// How PacedUploads' timer thread waits for a reservation to be paid off: in
// real time, or in tests on a FakeClock the test advances.
// Implementations are thread-safe.
class Waiter {
 public:
  virtual ~Waiter() = default;

  // Called with `mu` held; releases it while waiting and holds it again on
  // return. Returns true as soon as `cond` holds, false once `timeout` has
  // passed on the pacer's clock with `cond` still false.
  virtual bool AwaitWithTimeout(absl::Mutex& mu, const absl::Condition& cond,
                                absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;
};

// Waits in real time, for pacers on a RealClock. Thread-safe.
class RealWaiter final : public Waiter {
 public:
  bool AwaitWithTimeout(absl::Mutex& mu, const absl::Condition& cond,
                        absl::Duration timeout) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return mu.AwaitWithTimeout(cond, timeout);
  }
};

// Paces the peer service's uploads to `bytes_per_second` (--upload_limit)
// with a TokenBucket of the default burst. A chunk the bucket covers
// proceeds inline; any other waits in a FIFO queue and proceeds from the
// timer thread once its reservation is paid off, in the order asked.
// Shutdown (or the destructor) runs every waiting chunk at once.
//
// A step back of the clock delays a waiting chunk by at most the wait it was
// given when it asked.
//
// Thread-safe. Owns one timer thread, joined by the destructor. A `proceed`
// runs without any lock of the pacer held, so it may call Acquire again.
class PacedUploads final : public UploadPacer {
 public:
  // `clock` and `waiter` must outlive the pacer. A rate of 0 lets every
  // chunk proceed inline.
  PacedUploads(const Clock& clock, Waiter& waiter, uint64_t bytes_per_second);
  // Shutdown(), then joins the timer thread.
  ~PacedUploads() override;

  PacedUploads(const PacedUploads&) = delete;
  PacedUploads& operator=(const PacedUploads&) = delete;

  void Acquire(uint64_t bytes, absl::AnyInvocable<void() &&> proceed) override;

  // Stops pacing: runs every waiting `proceed` now, in order, on the calling
  // thread (except one the timer thread may be running at that moment), and
  // lets every later Acquire proceed inline. Idempotent.
  void Shutdown();

  // Chunks waiting for their turn.
  size_t waiting() const;

 private:
  using Proceed = absl::AnyInvocable<void() &&>;
  struct Waiting {
    absl::Time due;       // on the clock
    absl::Duration wait;  // as told when it asked
    Proceed proceed;
  };

  void Run();
  // Blocks until the first waiting chunk is due and hands it out; nullopt
  // once stopped.
  std::optional<Proceed> NextDue();
  bool StoppedOrWaiting() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  Waiter& waiter_;
  TokenBucket bucket_;

  mutable absl::Mutex mu_;
  std::deque<Waiting> queue_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  std::thread timer_;
};

// The --download_limit for the download engine: one per agent, shared by the
// downloads of all releases. The engine issues requests only while
// NextAllowed() has come, and then Charges every request it issues in that
// round (the scheduler has already counted them as in flight), which may
// overdraw the bucket; the debt holds back the next round. A thin layer over
// a TokenBucket of the default burst: a request may start whenever the limit
// is not already overdrawn, so a piece larger than the burst is never
// starved.
//
// Thread-safe.
class DownloadPacer {
 public:
  // `clock` must outlive the pacer. A rate of 0 means unlimited.
  DownloadPacer(const Clock& clock, uint64_t bytes_per_second)
      : bucket_(clock, bytes_per_second) {}

  // Whether a request for `bytes` may be issued now; if so, counts them.
  bool TryStart(uint64_t bytes) { return bucket_.TryAcquire(bytes); }

  // Counts `bytes` of a request issued now, into debt if need be.
  void Charge(uint64_t bytes) { (void)bucket_.Reserve(bytes); }

  // When TryStart may succeed again, and the engine issue more: at or before
  // the clock's Now() if it may now; absl::InfinitePast() when unlimited.
  absl::Time NextAllowed() const { return bucket_.NextAllowed(); }

  bool unlimited() const { return bucket_.unlimited(); }

 private:
  TokenBucket bucket_;
};

}  // namespace shoal::agent
