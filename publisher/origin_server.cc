#include "publisher/origin_server.h"

#include <civetweb.h>
#include <fcntl.h>
#include <glog/logging.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace shoal::publisher {
namespace {

// Bodies go out in chunks of this size, so memory per request is bounded.
constexpr uint64_t kChunkBytes = 256 * 1024;
constexpr char kImmutable[] = "public, max-age=31536000, immutable";
constexpr char kNoCache[] = "no-cache";
constexpr char kAllowedMethods[] = "GET, HEAD";

// The origin-relative path named by a raw (still percent-encoded) URL path,
// or INVALID_ARGUMENT saying what is wrong with it.
absl::StatusOr<std::string> DecodeRequestPath(absl::string_view raw) {
  if (!absl::ConsumePrefix(&raw, "/")) {
    return absl::InvalidArgumentError("path must start with /");
  }
  std::string path;
  path.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      path.push_back(raw[i]);
      continue;
    }
    if (i + 2 >= raw.size() || !absl::ascii_isxdigit(raw[i + 1]) ||
        !absl::ascii_isxdigit(raw[i + 2])) {
      return absl::InvalidArgumentError("bad percent escape");
    }
    path += absl::HexStringToBytes(raw.substr(i + 1, 2));
    i += 2;
  }
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError("empty, '.' or '..' path segment");
    }
    if (segment.find('\0') != absl::string_view::npos ||
        segment.find('\\') != absl::string_view::npos) {
      return absl::InvalidArgumentError("NUL or backslash in path");
    }
  }
  return path;
}

bool IsUnder(const std::string& root, absl::string_view resolved) {
  if (root == "/") return true;
  return resolved == root ||
         (absl::StartsWith(resolved, root) && resolved[root.size()] == '/');
}

// What a failed realpath() or open() means to the client.
absl::Status FileError(int error) {
  if (error == EACCES || error == EPERM) {
    return absl::PermissionDeniedError("permission denied");
  }
  if (error == ENOENT || error == ENOTDIR || error == ELOOP ||
      error == ENAMETOOLONG) {
    return absl::NotFoundError("not found");
  }
  return absl::InternalError(std::strerror(error));
}

// Opens `relative` under `root` for reading. The real path, symlinks
// resolved, must stay under `root`; O_NOFOLLOW then keeps the last component
// from being swapped for a symlink in between. Returns an owned descriptor.
absl::StatusOr<int> OpenUnderRoot(const std::string& root,
                                  const std::string& relative) {
  const std::string joined =
      absl::StrCat(root == "/" ? "" : root, "/", relative);
  std::unique_ptr<char, decltype(&std::free)> resolved(
      realpath(joined.c_str(), nullptr), &std::free);
  if (resolved == nullptr) return FileError(errno);
  if (!IsUnder(root, resolved.get())) {
    LOG(WARNING) << "origin: refusing " << relative << ": resolves to "
                 << resolved.get() << ", outside " << root;
    return absl::NotFoundError("not found");
  }
  // O_NONBLOCK: opening a FIFO must not hang the worker.
  int fd = open(resolved.get(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return FileError(errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::NotFoundError("not a file (directories are not listed)");
  }
  return fd;
}

struct RangeRequest {
  enum Kind { kWhole, kPart, kUnsatisfiable } kind = kWhole;
  uint64_t first = 0;
  uint64_t length = 0;
};

std::optional<uint64_t> ParseDigits(absl::string_view text) {
  uint64_t value;
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(text, &value)) {
    return std::nullopt;
  }
  return value;
}

// Interprets a Range header for a file of `size` bytes (RFC 9110 section 14).
// Anything but one well-formed byte range means the whole file.
RangeRequest ParseRange(const char* header, uint64_t size) {
  RangeRequest whole;
  if (header == nullptr || size == 0) return whole;
  absl::string_view value = absl::StripAsciiWhitespace(header);
  if (!absl::StartsWithIgnoreCase(value, "bytes=")) return whole;
  value = absl::StripAsciiWhitespace(value.substr(6));
  const size_t dash = value.find('-');
  if (dash == absl::string_view::npos || absl::StrContains(value, ',')) {
    return whole;
  }
  std::optional<uint64_t> last = ParseDigits(value.substr(dash + 1));
  if (dash == 0) {  // bytes=-n: the final n bytes.
    if (!last.has_value()) return whole;
    if (*last == 0) return {RangeRequest::kUnsatisfiable};
    const uint64_t length = std::min(*last, size);
    return {RangeRequest::kPart, size - length, length};
  }
  std::optional<uint64_t> first = ParseDigits(value.substr(0, dash));
  if (!first.has_value()) return whole;
  const bool to_end = dash + 1 == value.size();  // bytes=a-
  if (!to_end && (!last.has_value() || *last < *first)) return whole;
  if (*first >= size) return {RangeRequest::kUnsatisfiable};
  const uint64_t end = to_end ? size - 1 : std::min(*last, size - 1);
  return {RangeRequest::kPart, *first, end - *first + 1};
}

std::string HttpDate(time_t t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed",
                                          "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  gmtime_r(&t, &tm);
  return absl::StrFormat("%s, %02d %s %04d %02d:%02d:%02d GMT",
                         kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// Strong: changes whenever the file is replaced or rewritten.
std::string ETagFor(const struct stat& st) {
  return absl::StrFormat(
      "\"%x-%x-%x\"", static_cast<uint64_t>(st.st_ino),
      static_cast<uint64_t>(st.st_size),
      static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000u +
          static_cast<uint64_t>(st.st_mtim.tv_nsec));
}

// If-None-Match uses the weak comparison: "W/" prefixes are ignored.
bool IfNoneMatchHits(const char* header, absl::string_view etag) {
  if (header == nullptr) return false;
  for (absl::string_view tag : absl::StrSplit(header, ',')) {
    tag = absl::StripAsciiWhitespace(tag);
    absl::ConsumePrefix(&tag, "W/");
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

bool IsImmutablePath(absl::string_view path) {
  return absl::StartsWith(path, "pieces/") ||
         absl::StartsWith(path, "layers/") ||
         absl::StartsWith(path, "releases/");
}

// Copies [first, first + length) of `fd` to the client. Returns the bytes
// written; fewer than `length` if the client went away or the file shrank,
// and then the connection is closed after this response, since its
// Content-Length promised more.
uint64_t StreamFile(mg_connection* conn, int fd, uint64_t first,
                    uint64_t length) {
  std::vector<char> buffer(std::min(length, kChunkBytes));
  uint64_t sent = 0;
  while (sent < length) {
    const size_t want = std::min<uint64_t>(buffer.size(), length - sent);
    const ssize_t got = pread(fd, buffer.data(), want, first + sent);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      LOG(WARNING) << "origin: file ended or failed at offset " << first + sent
                   << " of a promised " << first + length << " bytes";
      break;
    }
    if (mg_write(conn, buffer.data(), got) != got) break;
    sent += got;
  }
  if (sent < length) mg_disable_connection_keep_alive(conn);
  return sent;
}

// The headers every response about the file `path` carries.
HttpHeaders FileHeaders(absl::string_view path, const struct stat& st) {
  return {
      {"Accept-Ranges", "bytes"},
      {"Cache-Control", IsImmutablePath(path) ? kImmutable : kNoCache},
      {"Content-Type", absl::StartsWith(path, "names/")
                           ? "text/plain"
                           : "application/octet-stream"},
      {"ETag", ETagFor(st)},
      {"Last-Modified", HttpDate(st.st_mtim.tv_sec)},
  };
}

// The canonical path of the origin root, which must be a directory.
absl::StatusOr<std::string> ResolveRoot(const std::string& root_dir) {
  if (root_dir.empty()) {
    return absl::InvalidArgumentError("origin root directory is not set");
  }
  std::unique_ptr<char, decltype(&std::free)> root(
      realpath(root_dir.c_str(), nullptr), &std::free);
  struct stat st;
  if (root == nullptr || stat(root.get(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("origin root ", root_dir, ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("origin root ", root_dir, " is not a directory"));
  }
  return std::string(root.get());
}

}  // namespace

OriginServer::OriginServer(std::string root, prometheus::Registry* metrics)
    : root_(std::move(root)) {
  if (metrics == nullptr) return;
  sent_bytes_ = &prometheus::BuildCounter()
                     .Name("shoal_origin_sent_bytes_total")
                     .Help("Response body bytes the origin sent.")
                     .Register(*metrics)
                     .Add({});
  requests_ = &prometheus::BuildCounter()
                   .Name("shoal_origin_requests_total")
                   .Help("Responses the origin sent, by HTTP status code.")
                   .Register(*metrics);
  // The answers agents get, at zero from the start so that rate() sees the
  // first ones; other codes appear when first sent.
  for (const char* code : {"200", "206", "404"}) requests_->Add({{"code", code}});
}

absl::StatusOr<std::unique_ptr<OriginServer>> OriginServer::Start(
    const OriginServerOptions& options) {
  ASSIGN_OR_RETURN(std::string root, ResolveRoot(options.root_dir));
  auto server =
      absl::WrapUnique(new OriginServer(std::move(root), options.metrics));
  OriginServer* self = server.get();
  HttpServerOptions http_options;
  http_options.name = "origin";
  http_options.listen = options.listen;
  http_options.num_threads = options.num_threads;
  http_options.tcp_nodelay = true;
  ASSIGN_OR_RETURN(server->http_,
                   HttpServer::Start(http_options, [self](mg_connection* conn) {
                     return self->Handle(conn);
                   }));
  LOG(INFO) << "origin: serving " << server->root_ << " at http://"
            << server->address() << "/";
  return server;
}

int OriginServer::Handle(mg_connection* conn) {
  const Outcome outcome = HandleRequest(conn);
  if (requests_ != nullptr) {
    requests_->Add({{"code", absl::StrCat(outcome.status)}}).Increment();
    sent_bytes_->Increment(static_cast<double>(outcome.body_bytes));
  }
  absl::MutexLock lock(&mu_);
  stats_.body_bytes_sent += outcome.body_bytes;
  return outcome.status;
}

absl::Status OriginServer::CheckRoot() const {
  struct stat st;
  if (stat(root_.c_str(), &st) != 0) {
    return absl::UnavailableError(
        absl::StrCat("origin root ", root_, ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode) || access(root_.c_str(), R_OK | X_OK) != 0) {
    return absl::UnavailableError(
        absl::StrCat("origin root ", root_, " is not a readable directory"));
  }
  return absl::OkStatus();
}

OriginServerStats OriginServer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

OriginServer::Outcome OriginServer::HandleRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const absl::string_view method = info->request_method;
  const bool head = method == "HEAD";
  if (!head && method != "GET") {
    return SendError(conn, 405, "method not allowed: use GET or HEAD", head,
                     {{"Allow", kAllowedMethods}});
  }
  if (info->local_uri_raw == nullptr) {
    return SendError(conn, 400, "bad request target", head);
  }
  if (absl::string_view(info->local_uri_raw) == "/") {
    return SendError(conn, 404, "not found: directories are not listed", head);
  }
  absl::StatusOr<std::string> path = DecodeRequestPath(info->local_uri_raw);
  if (!path.ok()) {
    return SendError(conn, 400,
                     absl::StrCat("invalid path: ", path.status().message()),
                     head);
  }
  absl::StatusOr<int> fd = OpenUnderRoot(root_, *path);
  if (!fd.ok()) {
    const int status = absl::IsNotFound(fd.status())           ? 404
                       : absl::IsPermissionDenied(fd.status()) ? 403
                                                               : 500;
    return SendError(conn, status, std::string(fd.status().message()), head);
  }
  absl::Cleanup close_fd = [&fd] { close(*fd); };
  return ServeFile(conn, *path, *fd, head);
}

OriginServer::Outcome OriginServer::ServeFile(mg_connection* conn,
                                              const std::string& path, int fd,
                                              bool head) {
  struct stat st;
  CHECK_EQ(fstat(fd, &st), 0) << "fstat on an open regular file";
  const uint64_t size = st.st_size;
  HttpHeaders headers = FileHeaders(path, st);
  if (IfNoneMatchHits(mg_get_header(conn, "If-None-Match"), headers["ETag"])) {
    headers["Content-Length"] = absl::StrCat(size);  // As a 200 would say.
    SendHeaders(conn, 304, headers);
    return {304, 0};
  }
  RangeRequest range = ParseRange(mg_get_header(conn, "Range"), size);
  if (range.kind == RangeRequest::kUnsatisfiable) {
    return SendError(conn, 416, "range not satisfiable", head,
                     {{"Accept-Ranges", "bytes"},
                      {"Content-Range", absl::StrCat("bytes */", size)}});
  }
  int status = 200;
  if (range.kind == RangeRequest::kPart) {
    status = 206;
    headers["Content-Range"] = absl::StrCat(
        "bytes ", range.first, "-", range.first + range.length - 1, "/", size);
  } else {
    range = {RangeRequest::kWhole, 0, size};
  }
  headers["Content-Length"] = absl::StrCat(range.length);
  SendHeaders(conn, status, headers);
  if (head) return {status, 0};
  return {status, StreamFile(conn, fd, range.first, range.length)};
}

void OriginServer::SendHeaders(mg_connection* conn, int status,
                               const HttpHeaders& headers) {
  {
    absl::MutexLock lock(&mu_);
    ++stats_.responses_by_status[status];
  }
  SendHttpHeaders(conn, status, headers);
}

OriginServer::Outcome OriginServer::SendError(mg_connection* conn, int status,
                                              const std::string& text,
                                              bool head, HttpHeaders extra) {
  const std::string body = absl::StrCat(text, "\n");
  extra["Content-Type"] = "text/plain; charset=utf-8";
  extra["Content-Length"] = absl::StrCat(body.size());
  extra["Cache-Control"] = kNoCache;
  SendHeaders(conn, status, extra);
  if (head) return {status, 0};
  const int written = mg_write(conn, body.data(), body.size());
  return {status, written > 0 ? static_cast<uint64_t>(written) : 0};
}

}  // namespace shoal::publisher
