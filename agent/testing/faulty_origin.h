#pragma once

// An HTTP origin that misbehaves on demand, for tests of origin clients. It
// serves a directory (GET, one byte range per request, as a static server
// would) on a free 127.0.0.1 port, except that the next N requests can be
// told to get one of the faults below; after those it serves correctly again.
//
// Thread-safe. The destructor releases stalled requests and stops the server.

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/civetweb_util.h"

namespace shoal::agent::testing {

enum class OriginFault {
  kNone,
  // 500 with a short error page.
  kServerError,
  // 429, with the Retry-After given to SetRetryAfter if any.
  kTooManyRequests,
  // The right status and headers, half of the promised body, then the
  // connection closes.
  kShortBody,
  // The right status and range, then kExtraBytes more than the range, all
  // announced in Content-Length.
  kLongBody,
  // 200 and the whole object, ignoring the Range header.
  kOkInsteadOfPartial,
  // 206 with the right bytes under a Content-Range one byte off.
  kWrongContentRange,
  // The right headers, a little of the body, then silence until the server
  // stops (or a minute passes).
  kStall,
};

class FaultyOrigin {
 public:
  // Bytes a kLongBody answer sends past the range.
  static constexpr size_t kExtraBytes = 1 << 20;

  // Serves the directory `root`. Errors as HttpServer::Start.
  static absl::StatusOr<std::unique_ptr<FaultyOrigin>> Start(std::string root);

  ~FaultyOrigin();
  FaultyOrigin(const FaultyOrigin&) = delete;
  FaultyOrigin& operator=(const FaultyOrigin&) = delete;

  // "http://127.0.0.1:PORT".
  std::string base_url() const;

  // The next `count` requests get `fault`, replacing any fault still pending.
  void InjectFault(OriginFault fault, int count);
  // The Retry-After header of 429 answers; empty (the default) for none.
  void SetRetryAfter(std::string value);

  // Requests received so far.
  int requests() const;
  // The Range header of each request received, in order ("" for none).
  std::vector<std::string> ranges() const;

 private:
  explicit FaultyOrigin(std::string root) : root_(std::move(root)) {}

  int Handle(mg_connection* conn);
  // Records the request and returns the fault it gets.
  OriginFault NextFault(const std::string& range);
  int Serve(mg_connection* conn, OriginFault fault, const std::string& object,
            const std::string& range);

  const std::string root_;
  absl::Notification stopping_;
  std::unique_ptr<HttpServer> server_;

  mutable absl::Mutex mu_;
  OriginFault fault_ ABSL_GUARDED_BY(mu_) = OriginFault::kNone;
  int fault_count_ ABSL_GUARDED_BY(mu_) = 0;
  std::string retry_after_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> ranges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::agent::testing
