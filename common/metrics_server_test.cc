#include "common/metrics_server.h"

#include <curl/curl.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Response {
  long status = 0;  // 0 when no HTTP response came back.
  std::string body;
  std::string content_type;
};

size_t AppendBody(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

Response Fetch(const std::string& url, const char* method = "GET") {
  Response response;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response.body);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) response.content_type = type;
  }
  curl_easy_cleanup(curl);
  return response;
}

// A readiness check the test flips.
class Readiness {
 public:
  void Set(absl::Status status) {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
  }
  absl::Status Get() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

class MetricsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    absl::StatusOr<std::unique_ptr<MetricsServer>> server =
        MetricsServer::Start("127.0.0.1:0", registry_,
                             [this] { return readiness_.Get(); });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://", server_->address(), path);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  Readiness readiness_;
  std::unique_ptr<MetricsServer> server_;
};

TEST_F(MetricsServerTest, PortZeroPicksAFreePort) {
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));
}

TEST_F(MetricsServerTest, MetricsShowCounterFromRegistry) {
  prometheus::BuildCounter()
      .Name("shoal_test_pieces_verified_total")
      .Help("Pieces verified.")
      .Register(*registry_)
      .Add({})
      .Increment(3);

  Response response = Fetch(Url("/metrics"));

  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.content_type, StartsWith("text/plain; version=0.0.4"));
  EXPECT_THAT(response.body, HasSubstr("shoal_test_pieces_verified_total 3"));
}

TEST_F(MetricsServerTest, HealthzIsOk) {
  Response response = Fetch(Url("/healthz"));

  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "ok\n");
}

TEST_F(MetricsServerTest, ReadyzIs503WithReasonWhileNotReady) {
  readiness_.Set(absl::UnavailableError("tracker unreachable"));

  Response response = Fetch(Url("/readyz"));

  EXPECT_EQ(response.status, 503);
  EXPECT_THAT(response.body, HasSubstr("tracker unreachable"));
}

TEST_F(MetricsServerTest, ReadyzTurns200WhenReadinessCheckPasses) {
  readiness_.Set(absl::UnavailableError("starting"));
  ASSERT_EQ(Fetch(Url("/readyz")).status, 503);

  readiness_.Set(absl::OkStatus());
  Response response = Fetch(Url("/readyz"));

  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "ready\n");
}

TEST_F(MetricsServerTest, UnknownPathIs404) {
  EXPECT_EQ(Fetch(Url("/metricsz")).status, 404);
  EXPECT_EQ(Fetch(Url("/")).status, 404);
  EXPECT_EQ(Fetch(Url("/metrics/extra")).status, 404);
}

TEST_F(MetricsServerTest, PostIs405) {
  EXPECT_EQ(Fetch(Url("/metrics"), "POST").status, 405);
}

TEST_F(MetricsServerTest, StopsServingWhenDestroyed) {
  const std::string url = Url("/healthz");
  ASSERT_EQ(Fetch(url).status, 200);

  server_.reset();

  EXPECT_EQ(Fetch(url).status, 0);
}

TEST_F(MetricsServerTest, PortInUseIsUnavailableWithReason) {
  auto second =
      MetricsServer::Start(server_->address(), registry_, /*ready=*/nullptr);

  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(server_->address()));
  EXPECT_THAT(absl::AsciiStrToLower(second.status().message()),
              HasSubstr("in use"));
}

TEST(MetricsServerStartTest, MalformedListenIsInvalidArgument) {
  auto registry = std::make_shared<prometheus::Registry>();
  for (const char* listen : {"", "9090", "localhost:9090", "127.0.0.1:99999",
                             "[::1:9090", "127.0.0.1:x"}) {
    auto server = MetricsServer::Start(listen, registry, nullptr);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument)
        << listen;
  }
}

TEST(MetricsServerStartTest, EmptyReadinessCheckMeansReady) {
  auto server = MetricsServer::Start(
      "127.0.0.1:0", std::make_shared<prometheus::Registry>(), nullptr);
  ASSERT_TRUE(server.ok()) << server.status();

  Response response =
      Fetch(absl::StrCat("http://", (*server)->address(), "/readyz"));

  EXPECT_EQ(response.status, 200);
}

}  // namespace
}  // namespace shoal
