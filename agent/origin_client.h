#pragma once

// Fetching release objects from origin trees (common/origin_layout.h) over
// HTTP(S): any static server or CDN that serves the publisher's output.
//
// The origin is trusted for nothing. Every size the client asks for comes
// from signed metadata and caps the transfer: the moment more bytes arrive
// than were asked for, the transfer is aborted: a misbehaving origin gets at
// most one chunk (16 KiB) read past the cap, and none of it is kept. Pieces and
// layers are fetched with byte ranges; a transfer cut short is resumed from the
// bytes already received.
//
// Error policy, for every call:
//   - transient failures (connection errors, timeouts, HTTP 5xx, 408, 429,
//     a body cut short) are retried with exponential backoff and full jitter,
//     moving to the next base URL after each failure; a 429 or 503 with
//     Retry-After waits that long instead, up to a cap;
//   - a call makes at most `max_attempts` attempts within `call_deadline`;
//     it then fails with the code of its last attempt: UNAVAILABLE,
//     RESOURCE_EXHAUSTED (429) or DEADLINE_EXCEEDED (a transfer timed out);
//   - answers that retrying cannot fix fail at once: NOT_FOUND for an HTTP 4xx
//     (other than 408 and 429), naming the URL; DATA_LOSS when the object is
//     not what was signed (wrong size, more bytes than asked, a hash or root
//     that does not match); FAILED_PRECONDITION for an answer that breaks the
//     protocol (200 to a range request, a 206 where 200 was due).
//   The next call starts at the base URL after the one that last failed.
// Each base URL is tried once before the call first waits, so a mirror that
// is down costs no backoff. Redirects are followed (at most 5, http and
// https only); HTTPS uses the system's CA certificates.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/bit_gen_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/merkle.h"
#include "common/sha256.h"
#include "common/types.h"

namespace shoal::agent {

// Defined in origin_client.cc.
namespace origin_internal {
struct Request;
struct Attempt;
}  // namespace origin_internal

// Largest manifest the client accepts.
inline constexpr uint64_t kMaxManifestBytes = uint64_t{64} << 20;

// Waits between attempts: the seam that keeps backoff out of tests' wall
// time. Implementations must be thread-safe.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void SleepFor(absl::Duration duration) = 0;
};

// Sleeps for real. Thread-safe.
class RealSleeper final : public Sleeper {
 public:
  void SleepFor(absl::Duration duration) override { absl::SleepFor(duration); }
};

struct OriginClientOptions {
  // Base URLs of copies of one origin tree, "http(s)://host[:port][/prefix]",
  // tried in order, the next one after a failure. At least one.
  std::vector<std::string> base_urls;
  // Limits of one attempt.
  absl::Duration connect_timeout = absl::Seconds(5);
  // A transfer averaging under `low_speed_bytes` per second over
  // `low_speed_time` (whole seconds, at least 1) has stalled and is dropped.
  int64_t low_speed_bytes = 1024;
  absl::Duration low_speed_time = absl::Seconds(15);
  // Limits of one call, all attempts and waits included.
  absl::Duration call_deadline = absl::Minutes(2);
  int max_attempts = 5;
  // Backoff before the k-th wait (k = 0, 1, ...) is uniform in
  // [0, min(max_backoff, initial_backoff * 2^k)].
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  // Longest Retry-After honoured.
  absl::Duration max_retry_after = absl::Seconds(30);
  // Idle easy handles (each keeps its connections alive) kept for reuse.
  int max_idle_handles = 8;
  std::string user_agent = "shoal-agent";
};

// Cumulative counts since the client was created, for metrics.
struct OriginStats {
  uint64_t requests = 0;         // HTTP attempts made
  uint64_t retries = 0;          // attempts after the first of their call
  uint64_t failed_calls = 0;     // calls that asked the origin and failed
  uint64_t bytes_received = 0;   // body bytes off the wire, kept or not
  uint64_t bytes_delivered = 0;  // bytes returned by successful calls
};

// A client for one origin tree and its mirrors. Thread-safe: calls may run
// concurrently, each on its own connection; idle connections are kept alive
// and reused.
class OriginClient {
 public:
  // `clock`, `sleeper` and `random` (which draws the jitter, under a lock)
  // must outlive the client. INVALID_ARGUMENT for no base URLs, a base URL
  // that is not http:// or https://, or limits out of range.
  static absl::StatusOr<std::unique_ptr<OriginClient>> Create(
      OriginClientOptions options, const Clock& clock, Sleeper& sleeper,
      absl::BitGenRef random);

  ~OriginClient();
  OriginClient(const OriginClient&) = delete;
  OriginClient& operator=(const OriginClient&) = delete;

  // The release id the name pointer names/<name>/<version> holds. The pointer
  // is not signed: the caller checks the manifest it leads to. INVALID_ARGUMENT
  // for a malformed name or version; DATA_LOSS if the pointer holds anything
  // but a release id.
  absl::StatusOr<std::string> ResolveName(absl::string_view name,
                                          absl::string_view version);

  // The SignedManifest bytes of a release, unverified: the caller verifies
  // them and checks that they hash to `release_id`. At most
  // kMaxManifestBytes. INVALID_ARGUMENT unless `release_id` is 64 lower-case
  // hex digits.
  absl::StatusOr<std::string> FetchManifest(absl::string_view release_id);

  // A file's piece layer, checked against its signed pieces root: every
  // piece hash, in order. DATA_LOSS if the layer does not prove into
  // `pieces_root`; INVALID_ARGUMENT for an empty file (it has no layer).
  absl::StatusOr<std::vector<Digest>> FetchLayer(const FileGeometry& geometry,
                                                 const Digest& pieces_root);

  // The bytes of piece `index` of a file of `geometry`, checked to hash to
  // `piece_hash` (taken from a verified layer). DATA_LOSS if they do not;
  // INVALID_ARGUMENT if `index` is out of range.
  absl::StatusOr<std::string> FetchPiece(const FileGeometry& geometry,
                                         PieceIndex index,
                                         const Digest& piece_hash);

  OriginStats stats() const;

  // The base URL the next call tries first.
  std::string current_base_url() const;

 private:
  using Request = origin_internal::Request;
  using Attempt = origin_internal::Attempt;
  class HandlePool;

  OriginClient(OriginClientOptions options, const Clock& clock,
               Sleeper& sleeper, absl::BitGenRef random);

  // Runs `request` with retries, rotation and backoff; returns the body.
  absl::StatusOr<std::string> Fetch(const Request& request);
  // One HTTP attempt against `base`, appending to `body`.
  Attempt Perform(const std::string& base, const Request& request,
                  absl::Duration timeout, std::string& body);
  // How long to wait before the next attempt, after `sleeps` earlier waits.
  absl::Duration Backoff(int sleeps, const Attempt& last);
  void NoteFailure(size_t base_index);

  const OriginClientOptions options_;
  const Clock& clock_;
  Sleeper& sleeper_;
  std::unique_ptr<HandlePool> handles_;

  absl::Mutex random_mu_;
  absl::BitGenRef random_ ABSL_GUARDED_BY(random_mu_);

  // Index into base_urls of the base the next call starts at.
  std::atomic<size_t> preferred_base_{0};

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> failed_calls_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> bytes_delivered_{0};
};

}  // namespace shoal::agent
