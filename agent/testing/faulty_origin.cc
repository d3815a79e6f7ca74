#include "agent/testing/faulty_origin.h"

#include <civetweb.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace shoal::agent::testing {
namespace {

constexpr uint64_t kMaxObjectBytes = uint64_t{1} << 30;
constexpr size_t kStallPrefixBytes = 1024;
constexpr absl::Duration kMaxStall = absl::Minutes(1);

struct ByteRange {
  uint64_t first = 0;
  uint64_t length = 0;
};

// "bytes=A-B" or "bytes=A-" within an object of `size` bytes; nullopt for
// anything else (served as the whole object) or a range past the end.
std::optional<ByteRange> ParseRange(absl::string_view header, uint64_t size) {
  if (size == 0 || !absl::ConsumePrefix(&header, "bytes=")) {
    return std::nullopt;
  }
  std::pair<absl::string_view, absl::string_view> ends =
      absl::StrSplit(header, absl::MaxSplits('-', 1));
  uint64_t first = 0, last = size - 1;
  if (!absl::SimpleAtoi(ends.first, &first) ||
      (!ends.second.empty() && !absl::SimpleAtoi(ends.second, &last)) ||
      first >= size || last < first) {
    return std::nullopt;
  }
  last = std::min(last, size - 1);
  return ByteRange{first, last - first + 1};
}

// Only plain relative paths under the root; nothing that could climb out.
bool IsServablePath(absl::string_view path) {
  return !path.empty() && !absl::StrContains(path, "..") &&
         !absl::StrContains(path, "//") && !absl::StrContains(path, "%");
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultyOrigin>> FaultyOrigin::Start(
    std::string root) {
  auto origin = absl::WrapUnique(new FaultyOrigin(std::move(root)));
  HttpServerOptions options;
  options.name = "faulty origin";
  options.listen = "127.0.0.1:0";
  options.num_threads = 8;  // a stalled request holds one
  FaultyOrigin* self = origin.get();
  ASSIGN_OR_RETURN(origin->server_,
                   HttpServer::Start(options, [self](mg_connection* conn) {
                     return self->Handle(conn);
                   }));
  return origin;
}

FaultyOrigin::~FaultyOrigin() {
  stopping_.Notify();
  server_.reset();
}

std::string FaultyOrigin::base_url() const {
  return absl::StrCat("http://", server_->address());
}

void FaultyOrigin::InjectFault(OriginFault fault, int count) {
  absl::MutexLock lock(&mu_);
  fault_ = fault;
  fault_count_ = count;
}

void FaultyOrigin::SetRetryAfter(std::string value) {
  absl::MutexLock lock(&mu_);
  retry_after_ = std::move(value);
}

int FaultyOrigin::requests() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(ranges_.size());
}

std::vector<std::string> FaultyOrigin::ranges() const {
  absl::MutexLock lock(&mu_);
  return ranges_;
}

OriginFault FaultyOrigin::NextFault(const std::string& range) {
  absl::MutexLock lock(&mu_);
  ranges_.push_back(range);
  if (fault_count_ <= 0) return OriginFault::kNone;
  --fault_count_;
  return fault_;
}

int FaultyOrigin::Handle(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const char* range_header = mg_get_header(conn, "Range");
  const std::string range = range_header == nullptr ? "" : range_header;
  const OriginFault fault = NextFault(range);
  if (fault == OriginFault::kServerError) {
    return SendHttpResponse(conn, 500, "text/plain", "injected failure\n",
                            false);
  }
  if (fault == OriginFault::kTooManyRequests) {
    std::string retry_after;
    {
      absl::MutexLock lock(&mu_);
      retry_after = retry_after_;
    }
    HttpHeaders headers = {{"Content-Length", "0"}};
    if (!retry_after.empty()) headers["Retry-After"] = retry_after;
    SendHttpHeaders(conn, 429, headers);
    return 429;
  }
  absl::string_view path = info->local_uri_raw ? info->local_uri_raw : "";
  absl::ConsumePrefix(&path, "/");
  absl::StatusOr<std::string> object =
      IsServablePath(path)
          ? ReadFile(absl::StrCat(root_, "/", path), kMaxObjectBytes)
          : absl::NotFoundError("not servable");
  if (!object.ok()) {
    return SendHttpResponse(conn, 404, "text/plain", "not found\n", false);
  }
  return Serve(conn, fault, *object, range);
}

int FaultyOrigin::Serve(mg_connection* conn, OriginFault fault,
                        const std::string& object, const std::string& range) {
  ByteRange part{0, object.size()};
  int status = 200;
  HttpHeaders headers = {{"Content-Type", "application/octet-stream"}};
  if (!range.empty() && fault != OriginFault::kOkInsteadOfPartial) {
    std::optional<ByteRange> asked = ParseRange(range, object.size());
    if (!asked.has_value()) {
      return SendHttpResponse(conn, 416, "text/plain", "bad range\n", false);
    }
    part = *asked;
    status = 206;
    const uint64_t shift = fault == OriginFault::kWrongContentRange ? 1 : 0;
    headers["Content-Range"] =
        absl::StrCat("bytes ", part.first + shift, "-",
                     part.first + part.length - 1 + shift, "/", object.size());
  }
  std::string body = object.substr(part.first, part.length);
  if (fault == OriginFault::kLongBody) body.append(kExtraBytes, 'x');
  headers["Content-Length"] = absl::StrCat(body.size());
  SendHttpHeaders(conn, status, headers);
  size_t send = body.size();
  if (fault == OriginFault::kShortBody) send /= 2;
  if (fault == OriginFault::kStall)
    send = std::min(send / 2, kStallPrefixBytes);
  mg_write(conn, body.data(), send);
  if (fault == OriginFault::kStall) {
    stopping_.WaitForNotificationWithTimeout(kMaxStall);
  }
  // The body fell short of its Content-Length: only closing ends it.
  if (send < body.size()) mg_disable_connection_keep_alive(conn);
  return status;
}

}  // namespace shoal::agent::testing
