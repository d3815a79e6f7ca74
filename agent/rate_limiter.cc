#include "agent/rate_limiter.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "glog/logging.h"

namespace shoal::agent {

uint64_t DefaultBurstBytes(uint64_t bytes_per_second) {
  return std::max(bytes_per_second / 10, kMinBurstBytes);
}

TokenBucket::TokenBucket(const Clock& clock, uint64_t bytes_per_second)
    : TokenBucket(clock, bytes_per_second,
                  DefaultBurstBytes(bytes_per_second)) {}

TokenBucket::TokenBucket(const Clock& clock, uint64_t bytes_per_second,
                         uint64_t burst_bytes)
    : clock_(clock),
      rate_(bytes_per_second),
      burst_(burst_bytes),
      burst_time_(TimeFor(burst_bytes)) {
  CHECK_LE(rate_, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  CHECK(rate_ == 0 || burst_ > 0) << "a limited bucket needs a burst";
  const absl::Time now = clock_.Now();
  empty_at_ = now - burst_time_;  // Full.
  last_now_ = now;
}

absl::Duration TokenBucket::TimeFor(uint64_t bytes) const {
  if (rate_ == 0) return absl::ZeroDuration();
  // Whole seconds apart from the rest keeps the arithmetic exact to
  // absl::Duration's resolution: no drift however many requests add up.
  const auto rate = static_cast<int64_t>(rate_);
  return absl::Seconds(static_cast<int64_t>(bytes / rate_)) +
         absl::Seconds(static_cast<int64_t>(bytes % rate_)) / rate;
}

absl::Time TokenBucket::Settle(absl::Time now) {
  if (now < last_now_) empty_at_ -= last_now_ - now;  // Keep the debt only.
  last_now_ = now;
  empty_at_ = std::max(empty_at_, now - burst_time_);
  return empty_at_;
}

absl::Duration TokenBucket::Reserve(uint64_t bytes) {
  if (unlimited()) return absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  empty_at_ = Settle(now) + TimeFor(bytes);
  return std::max(empty_at_ - now, absl::ZeroDuration());
}

bool TokenBucket::TryAcquire(uint64_t bytes) {
  if (unlimited()) return true;
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  if (Settle(now) > now) return false;
  empty_at_ += TimeFor(bytes);
  return true;
}

absl::Time TokenBucket::NextAllowed() const {
  if (unlimited()) return absl::InfinitePast();
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  // As Settle would have it, without changing anything.
  const absl::Duration step_back =
      now < last_now_ ? last_now_ - now : absl::ZeroDuration();
  return empty_at_ - step_back;
}

PacedUploads::PacedUploads(const Clock& clock, Waiter& waiter,
                           uint64_t bytes_per_second)
    : clock_(clock),
      waiter_(waiter),
      bucket_(clock, bytes_per_second),
      timer_([this] { Run(); }) {}

PacedUploads::~PacedUploads() {
  Shutdown();
  timer_.join();
}

void PacedUploads::Acquire(uint64_t bytes, Proceed proceed) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopped_) {
      const absl::Time now = clock_.Now();
      const absl::Duration wait = bucket_.Reserve(bytes);
      // Behind anyone already waiting even when due at once: FIFO.
      if (wait > absl::ZeroDuration() || !queue_.empty()) {
        queue_.push_back({now + wait, wait, std::move(proceed)});
        return;
      }
    }
  }
  std::move(proceed)();
}

void PacedUploads::Shutdown() {
  std::deque<Waiting> waiting;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    waiting.swap(queue_);
  }
  for (Waiting& w : waiting) std::move(w.proceed)();
}

size_t PacedUploads::waiting() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void PacedUploads::Run() {
  for (;;) {
    std::optional<Proceed> next = NextDue();
    if (!next.has_value()) return;
    Proceed proceed = *std::move(next);
    std::move(proceed)();
  }
}

bool PacedUploads::StoppedOrWaiting() const {
  return stopped_ || !queue_.empty();
}

std::optional<PacedUploads::Proceed> PacedUploads::NextDue() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &PacedUploads::StoppedOrWaiting));
  if (stopped_) return std::nullopt;
  // Only this thread takes from the queue; Shutdown empties it but also sets
  // stopped_, so `front` stays valid for as long as stopped_ is false.
  Waiting& front = queue_.front();
  // The wait it was given bounds the one left, should the clock step back.
  const absl::Duration left = std::min(front.due - clock_.Now(), front.wait);
  if (left > absl::ZeroDuration() &&
      waiter_.AwaitWithTimeout(mu_, absl::Condition(&stopped_), left)) {
    return std::nullopt;
  }
  Proceed proceed = std::move(front.proceed);
  queue_.pop_front();
  return proceed;
}

}  // namespace shoal::agent
