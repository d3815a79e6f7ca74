#include "publisher/origin_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace shoal::publisher {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "outside-the-origin-secret";
constexpr char kImmutable[] = "public, max-age=31536000, immutable";

struct Response {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // Names in lower case.
  long new_connections = 0;
};

struct Request {
  std::string method = "GET";
  std::vector<std::string> headers;  // "Name: value"
};

size_t AppendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t AppendHeader(char* data, size_t size, size_t count, void* out) {
  absl::string_view line(data, size * count);
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    (*static_cast<std::map<std::string, std::string>*>(
        out))[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * count;
}

// One libcurl handle: consecutive requests reuse its connection when the
// server keeps it alive. Paths are sent exactly as given (no "../" folding).
class Client {
 public:
  Client() : curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }

  Response Fetch(const std::string& url, const Request& request = {}) {
    Response response;
    curl_slist* headers = nullptr;
    for (const std::string& h : request.headers) {
      headers = curl_slist_append(headers, h.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_NOBODY, request.method == "HEAD" ? 1L : 0L);
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST,
                     request.method == "POST" ? "POST" : nullptr);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &AppendBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &AppendHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &response.headers);
    const CURLcode code = curl_easy_perform(curl_);
    EXPECT_EQ(code, CURLE_OK) << curl_easy_strerror(code) << " for " << url;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &response.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &response.new_connections);
    curl_slist_free_all(headers);
    return response;
  }

 private:
  CURL* curl_;
};

// Sends `request` on a fresh loopback connection and returns every byte the
// server wrote until it closed the connection.
std::string RawExchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(write(fd, request.data(), request.size()),
            static_cast<ssize_t>(request.size()));
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) {
    reply.append(buffer, n);
  }
  close(fd);
  return reply;
}

void WriteFile(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), content.size());
  ASSERT_TRUE(out.good()) << path;
}

// Bytes 0..255 repeated: every byte value, including NUL, appears.
std::string AllBytes(size_t size) {
  std::string content(size, '\0');
  for (size_t i = 0; i < size; ++i) content[i] = static_cast<char>(i % 256);
  return content;
}

class OriginServerTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string dir = testing::TempDir() + "/origin_server_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    base_ = dir;
    root_ = base_ / "origin";
    fs::create_directories(root_);
    WriteFile(base_ / "secret.txt", kSecret);
    WriteFile(root_ / "pieces" / "p1", AllBytes(1000));
  }

  void TearDown() override {
    server_.reset();
    fs::remove_all(base_);
  }

  void StartServer() {
    auto server = OriginServer::Start({root_.string(), "127.0.0.1:0"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  std::string Url(absl::string_view path) const {
    return absl::StrCat("http://", server_->address(), path);
  }

  Response Fetch(absl::string_view path, const Request& request = {}) {
    return Client().Fetch(Url(path), request);
  }

  Response FetchRange(absl::string_view path, absl::string_view range) {
    return Fetch(path, {"GET", {absl::StrCat("Range: ", range)}});
  }

  fs::path base_;
  fs::path root_;
  std::unique_ptr<OriginServer> server_;
};

TEST_F(OriginServerTest, GetReturnsWholeFileByteForByte) {
  StartServer();
  Response r = Fetch("/pieces/p1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, AllBytes(1000));
  EXPECT_EQ(r.headers["content-length"], "1000");
  EXPECT_EQ(r.headers["accept-ranges"], "bytes");
  EXPECT_EQ(r.headers["content-type"], "application/octet-stream");
}

TEST_F(OriginServerTest, EmptyFileIsServedWithZeroLength) {
  WriteFile(root_ / "pieces" / "empty", "");
  StartServer();
  Response r = FetchRange("/pieces/empty", "bytes=0-");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.headers["content-length"], "0");
}

TEST_F(OriginServerTest, HeadSendsHeadersWithoutBody) {
  StartServer();
  const std::string reply = RawExchange(
      server_->port(),
      "HEAD /pieces/p1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 200")) << reply;
  EXPECT_THAT(reply, HasSubstr("Content-Length: 1000\r\n"));
  EXPECT_THAT(reply, HasSubstr("ETag: \""));
  EXPECT_TRUE(absl::EndsWith(reply, "\r\n\r\n")) << "body after headers";
}

TEST_F(OriginServerTest, RangeWithFirstAndLastReturnsThoseBytes) {
  StartServer();
  Response r = FetchRange("/pieces/p1", "bytes=10-19");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, AllBytes(1000).substr(10, 10));
  EXPECT_EQ(r.headers["content-range"], "bytes 10-19/1000");
  EXPECT_EQ(r.headers["content-length"], "10");
}

TEST_F(OriginServerTest, RangeFromOffsetReturnsRestOfFile) {
  StartServer();
  Response r = FetchRange("/pieces/p1", "bytes=990-");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, AllBytes(1000).substr(990));
  EXPECT_EQ(r.headers["content-range"], "bytes 990-999/1000");
}

TEST_F(OriginServerTest, SuffixRangeReturnsFinalBytes) {
  StartServer();
  Response r = FetchRange("/pieces/p1", "bytes=-7");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, AllBytes(1000).substr(993));
  EXPECT_EQ(r.headers["content-range"], "bytes 993-999/1000");
}

TEST_F(OriginServerTest, RangePastEndIsCutAtEndOfFile) {
  StartServer();
  Response r = FetchRange("/pieces/p1", "bytes=995-5000");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, AllBytes(1000).substr(995));
  EXPECT_EQ(r.headers["content-range"], "bytes 995-999/1000");
}

TEST_F(OriginServerTest, RangeSpanningSeveralChunksIsExact) {
  const std::string content = AllBytes(3 << 20);
  WriteFile(root_ / "layers" / "big", content);
  StartServer();
  Response r = FetchRange("/layers/big", "bytes=262000-1049000");
  EXPECT_EQ(r.status, 206);
  EXPECT_TRUE(r.body == content.substr(262000, 1049000 - 262000 + 1));
}

TEST_F(OriginServerTest, UnsatisfiableRangeReturns416WithSize) {
  StartServer();
  Response r = FetchRange("/pieces/p1", "bytes=1000-");
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.headers["content-range"], "bytes */1000");
}

TEST_F(OriginServerTest, MultipleRangesReturnWholeFile) {
  StartServer();
  Response r = FetchRange("/pieces/p1", "bytes=0-1,5-6");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, AllBytes(1000));
}

TEST_F(OriginServerTest, MalformedRangesReturnWholeFile) {
  StartServer();
  for (const char* range : {"bytes=5-2", "bytes=a-b", "bytes=-", "items=0-1",
                            "bytes=1-2-3", "bytes=+1-2"}) {
    Response r = FetchRange("/pieces/p1", range);
    EXPECT_EQ(r.status, 200) << range;
    EXPECT_EQ(r.body.size(), 1000u) << range;
  }
}

TEST_F(OriginServerTest, SendsEtagAndLastModified) {
  StartServer();
  Response r = Fetch("/pieces/p1");
  EXPECT_THAT(r.headers["etag"], testing::MatchesRegex("\"[0-9a-f-]+\""));
  EXPECT_THAT(r.headers["last-modified"], HasSubstr(" GMT"));
}

TEST_F(OriginServerTest, MatchingIfNoneMatchReturns304) {
  StartServer();
  const std::string etag = Fetch("/pieces/p1").headers["etag"];
  Response r =
      Fetch("/pieces/p1", {"GET", {absl::StrCat("If-None-Match: ", etag)}});
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.body, "");
}

TEST_F(OriginServerTest, DotDotSegmentIsRejected) {
  StartServer();
  Response r = Fetch("/../secret.txt");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, Not(HasSubstr(kSecret)));
  EXPECT_EQ(Fetch("/../etc/passwd").status, 400);
}

TEST_F(OriginServerTest, PercentEncodedDotDotIsRejected) {
  StartServer();
  Response r = Fetch("/%2e%2e/secret.txt");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, Not(HasSubstr(kSecret)));
  EXPECT_EQ(Fetch("/pieces%2F%2E%2E%2F%2E%2E%2Fsecret.txt").status, 400);
}

TEST_F(OriginServerTest, DotDotAfterPrefixIsRejected) {
  StartServer();
  Response r = Fetch("/pieces/../../secret.txt");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, Not(HasSubstr(kSecret)));
}

TEST_F(OriginServerTest, DotAndEmptySegmentsAreRejected) {
  StartServer();
  EXPECT_EQ(Fetch("/./pieces/p1").status, 400);
  EXPECT_EQ(Fetch("//pieces/p1").status, 400);
  EXPECT_EQ(Fetch("/pieces//p1").status, 400);
}

TEST_F(OriginServerTest, EncodedNulIsRejectedNotTruncated) {
  StartServer();
  Response r = Fetch("/pieces/p1%00.txt");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body, AllBytes(1000));
}

TEST_F(OriginServerTest, BackslashIsRejected) {
  StartServer();
  EXPECT_EQ(Fetch("/pieces%5C..%5C..%5Csecret.txt").status, 400);
  EXPECT_EQ(Fetch("/pieces\\p1").status, 400);
}

TEST_F(OriginServerTest, BadPercentEscapeIsRejected) {
  StartServer();
  EXPECT_EQ(Fetch("/pieces/p%zz").status, 400);
  EXPECT_EQ(Fetch("/pieces/p%1").status, 400);
}

TEST_F(OriginServerTest, SymlinkOutsideRootIsNotServed) {
  fs::create_symlink(base_ / "secret.txt", root_ / "pieces" / "evil");
  fs::create_directory_symlink(base_, root_ / "layers");
  StartServer();
  Response file = Fetch("/pieces/evil");
  EXPECT_EQ(file.status, 404);
  EXPECT_THAT(file.body, Not(HasSubstr(kSecret)));
  Response through_dir = Fetch("/layers/secret.txt");
  EXPECT_EQ(through_dir.status, 404);
  EXPECT_THAT(through_dir.body, Not(HasSubstr(kSecret)));
}

TEST_F(OriginServerTest, SymlinkInsideRootIsServed) {
  fs::create_symlink(root_ / "pieces" / "p1", root_ / "pieces" / "alias");
  StartServer();
  Response r = Fetch("/pieces/alias");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, AllBytes(1000));
}

TEST_F(OriginServerTest, DirectoryReturns404) {
  StartServer();
  EXPECT_EQ(Fetch("/pieces").status, 404);
  EXPECT_EQ(Fetch("/").status, 404);
}

TEST_F(OriginServerTest, MissingFileReturns404) {
  StartServer();
  Response r = Fetch("/pieces/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("not found"));
  EXPECT_EQ(r.headers["content-length"], absl::StrCat(r.body.size()));
}

TEST_F(OriginServerTest, PostReturns405WithAllowHeader) {
  StartServer();
  Response r = Fetch("/pieces/p1", {"POST", {}});
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET, HEAD");
}

TEST_F(OriginServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  StartServer();
  Client client;
  EXPECT_EQ(client.Fetch(Url("/pieces/p1")).new_connections, 1);
  std::vector<Response> later = {
      client.Fetch(Url("/pieces/p1"), {"GET", {"Range: bytes=0-9"}}),
      client.Fetch(Url("/pieces/missing")),
      client.Fetch(Url("/pieces/p1"), {"HEAD", {}}),
      client.Fetch(Url("/pieces/p1")),
  };
  for (const Response& r : later) {
    EXPECT_EQ(r.new_connections, 0) << "status " << r.status;
  }
  EXPECT_EQ(later.back().body, AllBytes(1000));
}

TEST_F(OriginServerTest, LargeFileStreamsIntact) {
  std::string content(64 << 20, '\0');
  std::mt19937_64 random(42);
  for (size_t i = 0; i < content.size(); i += 8) {
    const uint64_t word = random();
    std::memcpy(&content[i], &word, 8);
  }
  WriteFile(root_ / "layers" / "large", content);
  StartServer();
  Response r = Fetch("/layers/large");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), content.size());
  EXPECT_TRUE(r.body == content) << "64 MiB body differs";
}

TEST_F(OriginServerTest, ContentAddressedObjectsAreImmutable) {
  WriteFile(root_ / "layers" / "l1", "layer");
  WriteFile(root_ / "releases" / "r1", "release");
  StartServer();
  for (const char* path : {"/pieces/p1", "/layers/l1", "/releases/r1"}) {
    EXPECT_EQ(Fetch(path).headers["cache-control"], kImmutable) << path;
  }
}

TEST_F(OriginServerTest, NamesAreNoCachePlainText) {
  WriteFile(root_ / "names" / "game" / "stable", "abc123\n");
  StartServer();
  Response r = Fetch("/names/game/stable");
  EXPECT_EQ(r.body, "abc123\n");
  EXPECT_EQ(r.headers["cache-control"], "no-cache");
  EXPECT_EQ(r.headers["content-type"], "text/plain");
}

TEST_F(OriginServerTest, StatsCountResponsesAndBodyBytes) {
  StartServer();
  Client client;
  client.Fetch(Url("/pieces/p1"));
  const Response missing = client.Fetch(Url("/pieces/missing"));
  // One connection is served in order: once this answer arrives, the
  // requests before it are fully accounted.
  client.Fetch(Url("/pieces/p1"), {"HEAD", {}});
  const OriginServerStats stats = server_->stats();
  EXPECT_EQ(stats.body_bytes_sent, 1000 + missing.body.size());
  EXPECT_EQ(stats.responses_by_status.at(200), 2u);
  EXPECT_EQ(stats.responses_by_status.at(404), 1u);
}

TEST_F(OriginServerTest, PortZeroBindsARealPort) {
  StartServer();
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));
  EXPECT_EQ(Fetch("/pieces/p1").status, 200);
}

TEST_F(OriginServerTest, StartFailsOnMissingRoot) {
  const std::string missing = (base_ / "no-such-dir").string();
  auto server = OriginServer::Start({missing, "127.0.0.1:0"});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(server.status().message(), HasSubstr(missing));
}

TEST_F(OriginServerTest, StartFailsOnRootThatIsAFile) {
  auto server =
      OriginServer::Start({(base_ / "secret.txt").string(), "127.0.0.1:0"});
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(server.status().message(), HasSubstr("not a directory"));
}

TEST_F(OriginServerTest, StartFailsWhenAddressInUse) {
  StartServer();
  auto second = OriginServer::Start({root_.string(), server_->address()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  EXPECT_THAT(second.status().message(), HasSubstr(server_->address()));
}

TEST_F(OriginServerTest, StartRejectsMalformedListen) {
  for (const char* listen :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536",
        "localhost:0", "1.2.3:0", ":0", "[::1:0", "::1:0", "127.0.0.1:-1"}) {
    auto server = OriginServer::Start({root_.string(), listen});
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument)
        << "\"" << listen << "\": " << server.status();
  }
}

// Debian's civetweb 1.15 is built without IPv6: an IPv6 listen address must
// then be refused with a clear error; with IPv6 it must serve.
TEST_F(OriginServerTest, Ipv6ListenServesOrIsRefusedClearly) {
  auto server = OriginServer::Start({root_.string(), "[::1]:0"});
  if (mg_check_feature(MG_FEATURES_IPV6) == 0) {
    EXPECT_EQ(server.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_THAT(server.status().message(), HasSubstr("IPv6"));
    return;
  }
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  EXPECT_EQ(server_->address(), absl::StrCat("[::1]:", server_->port()));
  EXPECT_EQ(Fetch("/pieces/p1").body, AllBytes(1000));
}

// The value of one sample of `name` whose labels include `labels`; -1 when
// there is none.
double Sample(prometheus::Registry& registry, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const prometheus::ClientMetric::Label& l : metric.label) {
        have[l.name] = l.value;
      }
      bool match = true;
      for (const auto& [key, value] : labels) match &= have[key] == value;
      if (match) return metric.counter.value;
    }
  }
  return -1;
}

TEST_F(OriginServerTest, MetricsCountBodyBytesAndResponsesByStatus) {
  prometheus::Registry registry;
  OriginServerOptions options{root_.string(), "127.0.0.1:0"};
  options.metrics = &registry;
  auto server = OriginServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  absl::Cleanup stop = [this] { server_.reset(); };  // before `registry` goes
  ASSERT_EQ(Fetch("/pieces/p1").status, 200);
  ASSERT_EQ(FetchRange("/pieces/p1", "bytes=10-19").status, 206);
  ASSERT_EQ(Fetch("/pieces/missing").status, 404);
  EXPECT_EQ(Sample(registry, "shoal_origin_requests_total", {{"code", "200"}}), 1);
  EXPECT_EQ(Sample(registry, "shoal_origin_requests_total", {{"code", "206"}}), 1);
  EXPECT_EQ(Sample(registry, "shoal_origin_requests_total", {{"code", "404"}}), 1);
  const double sent = Sample(registry, "shoal_origin_sent_bytes_total");
  EXPECT_GE(sent, 1010);
  EXPECT_EQ(sent, server_->stats().body_bytes_sent);
}

TEST_F(OriginServerTest, CheckRootFailsOnceTheRootIsGone) {
  StartServer();
  EXPECT_TRUE(server_->CheckRoot().ok());
  fs::remove_all(root_);
  const absl::Status status = server_->CheckRoot();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("origin root"));
}

}  // namespace
}  // namespace shoal::publisher
