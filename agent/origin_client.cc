#include "agent/origin_client.h"

#include "common/hex.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/cleanup/cleanup.h"
#include "absl/memory/memory.h"
#include "absl/random/distributions.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/origin_layout.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace shoal::agent {

namespace origin_internal {

// What one call fetches.
struct Request {
  std::string path;     // relative to a base URL (common/origin_layout.h)
  uint64_t size = 0;    // ranged: the object's signed size; else a cap
  bool ranged = false;  // byte ranges, resumed after a cut
  // Run on a complete body; a failure counts against the base that sent it.
  std::function<absl::Status(absl::string_view body)> check;
};

enum class Verdict { kOk, kRetry, kFail };

// The outcome of one HTTP attempt.
struct Attempt {
  Verdict verdict = Verdict::kOk;
  absl::Status status;  // why it failed, naming the URL
  std::optional<absl::Duration> retry_after;
};

}  // namespace origin_internal

namespace {

using origin_internal::Attempt;
using origin_internal::Request;
using origin_internal::Verdict;

constexpr uint64_t kMaxNamePointerBytes = 1024;
// Error pages are read and dropped up to this size, which keeps the
// connection; a longer one is cut off.
constexpr uint64_t kMaxErrorBodyBytes = 64 * 1024;
constexpr long kMaxRedirects = 5;

absl::once_flag curl_init_once;

// One response as it arrives. Body bytes go to `body` only while the status
// is the one wanted, and never past `limit` bytes in all.
struct Receiver {
  CURL* handle;
  std::string* body;
  uint64_t limit;
  long want_status;
  uint64_t received = 0;  // body bytes off the wire, kept or not
  uint64_t dropped = 0;   // body bytes of an unwanted status
  bool overflow = false;
};

long ResponseCode(CURL* h) {
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

// Returning less than `count` aborts the transfer (CURLE_WRITE_ERROR).
size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto& r = *static_cast<Receiver*>(user);
  const size_t length = size * count;
  r.received += length;
  if (ResponseCode(r.handle) != r.want_status) {
    r.dropped += length;
    return r.dropped > kMaxErrorBodyBytes ? 0 : length;
  }
  if (length > r.limit - r.body->size()) {
    r.overflow = true;
    return 0;
  }
  r.body->append(data, length);
  return length;
}

// A header of the final response (after redirects); "" if absent.
std::string Header(CURL* h, const char* name) {
  curl_header* header = nullptr;
  if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &header) != CURLHE_OK) {
    return "";
  }
  return header->value;
}

absl::Status ContentRangeError(const std::string& url,
                               absl::string_view content_range,
                               absl::string_view why) {
  return absl::DataLossError(absl::StrCat(url, " answered Content-Range \"",
                                          content_range, "\": ", why));
}

// OK iff `value` is "bytes FIRST-LAST/SIZE" (or ".../*") for exactly the
// range asked: from `first` to the end of an object of `size` bytes.
absl::Status CheckContentRange(absl::string_view value, uint64_t first,
                               uint64_t size, const std::string& url) {
  absl::string_view rest = value;
  if (!absl::ConsumePrefix(&rest, "bytes ")) {
    return ContentRangeError(url, value, "not a byte range");
  }
  const std::pair<absl::string_view, absl::string_view> range_total =
      absl::StrSplit(rest, absl::MaxSplits('/', 1));
  const std::pair<absl::string_view, absl::string_view> ends =
      absl::StrSplit(range_total.first, absl::MaxSplits('-', 1));
  uint64_t a = 0, b = 0, total = 0;
  if (!absl::SimpleAtoi(ends.first, &a) || !absl::SimpleAtoi(ends.second, &b)) {
    return ContentRangeError(url, value, "not a byte range");
  }
  if (range_total.second != "*" &&
      (!absl::SimpleAtoi(range_total.second, &total) || total != size)) {
    return ContentRangeError(
        url, value, absl::StrCat("the signed size is ", size, " bytes"));
  }
  if (a != first || b != size - 1) {
    return ContentRangeError(
        url, value, absl::StrCat("asked for bytes ", first, "-", size - 1));
  }
  return absl::OkStatus();
}

Attempt Retry(absl::Status status) {
  return {Verdict::kRetry, std::move(status), std::nullopt};
}

Attempt Fail(absl::Status status) {
  return {Verdict::kFail, std::move(status), std::nullopt};
}

// An answer whose status is not the one wanted.
Attempt FromHttpStatus(CURL* h, long status, long want_status,
                       const std::string& url) {
  const std::string what = absl::StrCat(url, ": HTTP ", status);
  if (status == 429 || status == 503) {
    Attempt a = Retry(status == 429 ? absl::ResourceExhaustedError(what)
                                    : absl::UnavailableError(what));
    // Delta-seconds or an HTTP-date, as libcurl reads it; 0 when absent.
    curl_off_t seconds = 0;
    curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &seconds);
    if (seconds > 0) a.retry_after = absl::Seconds(seconds);
    return a;
  }
  if (status >= 500 || status == 408) {
    return Retry(absl::UnavailableError(what));
  }
  if (status >= 400) return Fail(absl::NotFoundError(what));
  if (want_status == 206 && status == 200) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        what, ": the origin ignored the byte range (200, not 206)")));
  }
  return Fail(absl::FailedPreconditionError(
      absl::StrCat(what, ", expected ", want_status)));
}

// A transfer that failed below HTTP.
Attempt FromCurlError(CURLcode code, const char* error,
                      const std::string& url) {
  const std::string what = absl::StrCat(
      url, ": ", error[0] != '\0' ? error : curl_easy_strerror(code));
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Retry(absl::DeadlineExceededError(what));
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_TOO_MANY_REDIRECTS:
      return Fail(absl::InvalidArgumentError(what));
    default:
      return Retry(absl::UnavailableError(what));
  }
}

// Judges a finished transfer from what arrived, in order of precedence:
// too many bytes, an unwanted status, a wrong range, a transport error, too
// few bytes.
Attempt Judge(CURLcode code, const char* error, const Receiver& r,
              const Request& request, uint64_t first, const std::string& url) {
  if (r.overflow) {
    return Fail(absl::DataLossError(absl::StrCat(url, " sent more than the ",
                                                 request.size - first,
                                                 " bytes asked for")));
  }
  const long status = ResponseCode(r.handle);  // 0: no answer
  if (status != 0 && status != r.want_status) {
    return FromHttpStatus(r.handle, status, r.want_status, url);
  }
  if (request.ranged && status != 0) {
    absl::Status range_ok = CheckContentRange(Header(r.handle, "Content-Range"),
                                              first, request.size, url);
    if (!range_ok.ok()) return Fail(std::move(range_ok));
  }
  if (code != CURLE_OK) return FromCurlError(code, error, url);
  if (request.ranged && r.body->size() < request.size) {
    return Retry(absl::UnavailableError(
        absl::StrCat(url, " sent ", r.body->size() - first, " of the ",
                     request.size - first, " bytes asked for")));
  }
  return {};
}

void Configure(CURL* h, const OriginClientOptions& o, absl::Duration timeout,
               char* error) {
  auto ms = [](absl::Duration d) {
    return std::max(1L, static_cast<long>(absl::ToInt64Milliseconds(d)));
  };
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms(o.connect_timeout));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms(timeout));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT,
                   static_cast<long>(o.low_speed_bytes));
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(absl::ToInt64Seconds(o.low_speed_time)));
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, o.user_agent.c_str());
}

std::string JoinUrl(absl::string_view base, absl::string_view path) {
  return absl::StrCat(absl::StripSuffix(base, "/"), "/", path);
}

absl::Status ValidateOptions(const OriginClientOptions& o) {
  if (o.base_urls.empty()) {
    return absl::InvalidArgumentError("no origin base URL given");
  }
  for (const std::string& base : o.base_urls) {
    if (!absl::StartsWithIgnoreCase(base, "http://") &&
        !absl::StartsWithIgnoreCase(base, "https://")) {
      return absl::InvalidArgumentError(
          absl::StrCat("origin base URL \"", base,
                       "\" must start with http:// or https://"));
    }
  }
  if (o.max_attempts < 1 || o.call_deadline <= absl::ZeroDuration() ||
      o.connect_timeout <= absl::ZeroDuration() ||
      o.low_speed_time < absl::Seconds(1) || o.low_speed_bytes < 0 ||
      o.initial_backoff < absl::ZeroDuration() ||
      o.max_backoff < absl::ZeroDuration() ||
      o.max_retry_after < absl::ZeroDuration() || o.max_idle_handles < 0) {
    return absl::InvalidArgumentError(
        "origin client limits out of range: attempts, deadline, timeouts and "
        "low_speed_time (>= 1 s) must be positive, backoffs not negative");
  }
  return absl::OkStatus();
}

}  // namespace

// Easy handles not in use. Each keeps its connections alive, so handing the
// same handles out again reuses connections to the origin. Thread-safe.
class OriginClient::HandlePool {
 public:
  explicit HandlePool(int max_idle) : max_idle_(max_idle) {}
  ~HandlePool() {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  CURL* Acquire() {
    absl::MutexLock lock(&mu_);
    if (idle_.empty()) return CHECK_NOTNULL(curl_easy_init());
    CURL* h = idle_.back();
    idle_.pop_back();
    return h;
  }

  // Clears the handle's options (its connections stay) and keeps it if
  // there is room.
  void Release(CURL* h) {
    curl_easy_reset(h);
    absl::MutexLock lock(&mu_);
    if (static_cast<int>(idle_.size()) >= max_idle_)
      return curl_easy_cleanup(h);
    idle_.push_back(h);
  }

 private:
  const int max_idle_;
  absl::Mutex mu_;
  std::vector<CURL*> idle_ ABSL_GUARDED_BY(mu_);
};

OriginClient::OriginClient(OriginClientOptions options, const Clock& clock,
                           Sleeper& sleeper, absl::BitGenRef random)
    : options_(std::move(options)),
      clock_(clock),
      sleeper_(sleeper),
      handles_(std::make_unique<HandlePool>(options_.max_idle_handles)),
      random_(random) {}

OriginClient::~OriginClient() = default;

absl::StatusOr<std::unique_ptr<OriginClient>> OriginClient::Create(
    OriginClientOptions options, const Clock& clock, Sleeper& sleeper,
    absl::BitGenRef random) {
  RETURN_IF_ERROR(ValidateOptions(options));
  absl::call_once(curl_init_once, [] {
    CHECK_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
  });
  return absl::WrapUnique(
      new OriginClient(std::move(options), clock, sleeper, random));
}

absl::StatusOr<std::string> OriginClient::ResolveName(
    absl::string_view name, absl::string_view version) {
  RETURN_IF_ERROR(ValidateReleaseLabel("name", name));
  RETURN_IF_ERROR(ValidateReleaseLabel("version", version));
  Request request;
  request.path = NamePointerPath(name, version);
  request.size = kMaxNamePointerBytes;
  request.check = [&request](absl::string_view body) {
    if (IsReleaseId(absl::StripTrailingAsciiWhitespace(body))) {
      return absl::OkStatus();
    }
    return absl::DataLossError(absl::StrCat("name pointer ", request.path,
                                            " does not hold a release id"));
  };
  ASSIGN_OR_RETURN(std::string text, Fetch(request));
  return std::string(absl::StripTrailingAsciiWhitespace(text));
}

absl::StatusOr<std::string> OriginClient::FetchManifest(
    absl::string_view release_id) {
  if (!IsReleaseId(release_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "release id \"", release_id, "\" is not 64 lower-case hex digits"));
  }
  Request request;
  request.path = ManifestObjectPath(release_id);
  request.size = kMaxManifestBytes;
  return Fetch(request);
}

absl::StatusOr<std::vector<Digest>> OriginClient::FetchLayer(
    const FileGeometry& geometry, const Digest& pieces_root) {
  if (geometry.num_pieces() == 0) {
    return absl::InvalidArgumentError("an empty file has no piece layer");
  }
  std::vector<Digest> layer(geometry.num_pieces());
  Request request;
  request.path = LayerObjectPath(pieces_root);
  request.size = uint64_t{geometry.num_pieces()} * kDigestSize;
  request.ranged = true;
  request.check = [&](absl::string_view body) -> absl::Status {
    for (size_t i = 0; i < layer.size(); ++i) {
      std::memcpy(layer[i].data(), body.data() + i * kDigestSize, kDigestSize);
    }
    ASSIGN_OR_RETURN(Digest root, PiecesRoot(geometry, layer));
    if (root == pieces_root) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat(
        "piece layer ", request.path, " does not prove into its signed root"));
  };
  RETURN_IF_ERROR(Fetch(request).status());
  return layer;
}

absl::StatusOr<std::string> OriginClient::FetchPiece(
    const FileGeometry& geometry, PieceIndex index, const Digest& piece_hash) {
  if (index.value() >= geometry.num_pieces()) {
    return absl::InvalidArgumentError(
        absl::StrCat("piece ", index.value(), " of a file of ",
                     geometry.num_pieces(), " pieces"));
  }
  Request request;
  request.path = PieceObjectPath(piece_hash);
  request.size = geometry.piece_length(index);
  request.ranged = true;
  request.check = [&](absl::string_view body) -> absl::Status {
    ASSIGN_OR_RETURN(Digest hash, PieceHash(geometry, index, body));
    if (hash == piece_hash) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat("piece object ", request.path,
                                            " does not hash to its name"));
  };
  return Fetch(request);
}

absl::StatusOr<std::string> OriginClient::Fetch(const Request& request) {
  const absl::Time deadline = clock_.Now() + options_.call_deadline;
  const size_t num_bases = options_.base_urls.size();
  size_t base = preferred_base_.load() % num_bases;
  std::string body;
  Attempt last;
  int attempts = 0;
  std::string why_stopped;
  while (attempts < options_.max_attempts) {
    // Every base gets one immediate attempt; only then does the call wait.
    if (attempts >= static_cast<int>(num_bases)) {
      const absl::Duration wait =
          Backoff(attempts - static_cast<int>(num_bases), last);
      if (clock_.Now() + wait >= deadline) {
        why_stopped = ", the call deadline would pass before the next";
        break;
      }
      sleeper_.SleepFor(wait);
    }
    const absl::Duration left = deadline - clock_.Now();
    if (left <= absl::ZeroDuration()) break;
    if (attempts++ > 0) ++retries_;
    last = Perform(options_.base_urls[base], request, left, body);
    if (last.verdict == Verdict::kOk) {
      preferred_base_.store(base);
      bytes_delivered_ += body.size();
      return body;
    }
    NoteFailure(base);
    if (last.verdict == Verdict::kFail) break;
    if (!request.ranged) body.clear();  // only ranged transfers resume
    base = (base + 1) % num_bases;
  }
  ++failed_calls_;
  if (last.verdict == Verdict::kFail || attempts == 0) return last.status;
  return absl::Status(
      last.status.code(),
      absl::StrCat("origin gave up on ", request.path, " after ", attempts,
                   " attempts", why_stopped,
                   "; last: ", last.status.message()));
}

Attempt OriginClient::Perform(const std::string& base, const Request& request,
                              absl::Duration timeout, std::string& body) {
  const std::string url = JoinUrl(base, request.path);
  const uint64_t first = request.ranged ? body.size() : 0;
  if (request.ranged) body.reserve(request.size);
  CURL* h = handles_->Acquire();
  Receiver r{h, &body, request.size, request.ranged ? 206L : 200L};
  absl::Cleanup release = [this, h] { handles_->Release(h); };
  char error[CURL_ERROR_SIZE] = "";
  Configure(h, options_, timeout, error);
  const std::string range = absl::StrCat(first, "-", request.size - 1);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  if (request.ranged) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
  ++requests_;
  const CURLcode code = curl_easy_perform(h);
  bytes_received_ += r.received;
  Attempt attempt = Judge(code, error, r, request, first, url);
  if (attempt.verdict == Verdict::kOk && request.check) {
    absl::Status checked = request.check(body);
    if (!checked.ok()) return Fail(std::move(checked));
  }
  return attempt;
}

absl::Duration OriginClient::Backoff(int sleeps, const Attempt& last) {
  if (last.retry_after.has_value()) {
    return std::min(*last.retry_after, options_.max_retry_after);
  }
  absl::Duration bound = options_.max_backoff;
  if (sleeps < 30) {
    bound = std::min(bound, options_.initial_backoff * (int64_t{1} << sleeps));
  }
  double fraction;
  {
    absl::MutexLock lock(&random_mu_);
    fraction = absl::Uniform(absl::IntervalClosedClosed, random_, 0.0, 1.0);
  }
  return bound * fraction;
}

void OriginClient::NoteFailure(size_t base_index) {
  size_t expected = base_index;
  preferred_base_.compare_exchange_strong(
      expected, (base_index + 1) % options_.base_urls.size());
}

OriginStats OriginClient::stats() const {
  return {requests_.load(), retries_.load(), failed_calls_.load(),
          bytes_received_.load(), bytes_delivered_.load()};
}

std::string OriginClient::current_base_url() const {
  return options_.base_urls[preferred_base_.load() % options_.base_urls.size()];
}

}  // namespace shoal::agent
