#include "agent/origin_client.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/testing/faulty_origin.h"
#include "agent/testing/nginx_origin.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/origin_layout.h"
#include "common/testing/temp_dir.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using ::shoal::agent::testing::FaultyOrigin;
using ::shoal::agent::testing::NginxOrigin;
using ::shoal::agent::testing::OriginFault;

constexpr uint64_t kPieceSize = 64 * 1024;
constexpr uint64_t kBigFileSize = 3 * kPieceSize + kPieceSize / 2;
constexpr absl::Duration kInitialBackoff = absl::Milliseconds(100);

// Records the waits asked for and moves the fake clock past them.
class RecordingSleeper final : public Sleeper {
 public:
  explicit RecordingSleeper(FakeClock& clock) : clock_(clock) {}
  void SleepFor(absl::Duration duration) override {
    absl::MutexLock lock(&mu_);
    sleeps_.push_back(duration);
    clock_.Advance(duration);
  }
  std::vector<absl::Duration> sleeps() const {
    absl::MutexLock lock(&mu_);
    return sleeps_;
  }

 private:
  FakeClock& clock_;
  mutable absl::Mutex mu_;
  std::vector<absl::Duration> sleeps_ ABSL_GUARDED_BY(mu_);
};

// A generator that always draws its maximum: every jitter is the full bound.
struct MaxBits {
  using result_type = uint64_t;
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() {
    return std::numeric_limits<result_type>::max();
  }
  result_type operator()() { return max(); }
};

std::string RandomBytes(uint64_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string data(size, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  return data;
}

// A loopback port with nothing listening on it.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A release published with the real shoal-publish into a fresh origin tree.
struct Published {
  std::string origin;
  std::string release_id;
  std::optional<Manifest> manifest;
  std::map<std::string, std::string> contents;  // by path in the release
};

Published Publish() {
  Published p;
  const std::string dir = MakeTestDir("published");
  p.origin = dir + "/origin";
  const std::string input = dir + "/input";
  p.contents = {{"big.bin", RandomBytes(kBigFileSize, 1)},
                {"small.txt", "a file of one short piece\n"}};
  CHECK(MakeDirs(input).ok());
  for (const auto& [path, data] : p.contents) {
    CHECK(WriteFileAtomically(input + "/" + path, data, 0644, false).ok());
  }
  PrivateKey key = *PrivateKey::Generate();
  CHECK(WritePrivateKeyFile(dir + "/key", key).ok());
  const std::string publish =
      absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                   "/publisher/shoal-publish");
  const std::string command = absl::StrCat(
      "'", publish, "' create --key='", dir, "/key' --name=game --version=1.0",
      " --origin='", p.origin, "' --piece_size=", kPieceSize, " --threads=1 '",
      input, "' > '", dir, "/id' 2> '", dir, "/log'");
  CHECK_EQ(std::system(command.c_str()), 0) << *ReadFile(dir + "/log", 1 << 20);
  p.release_id = std::string(
      absl::StripTrailingAsciiWhitespace(*ReadFile(dir + "/id", 1024)));
  TrustPolicy trust = *TrustPolicy::Create({key.public_key()}, 1);
  std::string bytes =
      *ReadFile(p.origin + "/" + ManifestObjectPath(p.release_id), 1 << 20);
  p.manifest.emplace(*Manifest::Verify(bytes, trust, absl::Now()));
  return p;
}

const v1::FileEntry& File(const Published& p, const std::string& path) {
  for (const v1::FileEntry& f : p.manifest->body().files()) {
    if (f.path() == path) return f;
  }
  LOG(FATAL) << "no file " << path;
}

FileGeometry Geometry(const Published& p, const v1::FileEntry& f) {
  return *FileGeometry::Create(f.size(), p.manifest->body().piece_size());
}

Digest Root(const v1::FileEntry& f) {
  return *DigestFromBytes(f.pieces_root());
}

// Reads a piece's hash from the origin's own layer object.
Digest PieceHashOf(const Published& p, const v1::FileEntry& f, uint32_t i) {
  std::string layer =
      *ReadFile(p.origin + "/" + LayerObjectPath(Root(f)), 1 << 20);
  return *DigestFromBytes(layer.substr(i * kDigestSize, kDigestSize));
}

class OriginClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { published_ = new Published(Publish()); }
  static void TearDownTestSuite() { delete published_; }

  void SetUp() override {
    auto origin = FaultyOrigin::Start(published_->origin);
    ASSERT_TRUE(origin.ok()) << origin.status();
    faulty_ = *std::move(origin);
    options_.base_urls = {faulty_->base_url()};
    options_.initial_backoff = kInitialBackoff;
    options_.max_backoff = absl::Seconds(2);
    options_.max_attempts = 5;
  }

  std::unique_ptr<OriginClient> Client(absl::BitGenRef random) {
    auto client = OriginClient::Create(options_, clock_, sleeper_, random);
    CHECK(client.ok()) << client.status();
    return *std::move(client);
  }
  std::unique_ptr<OriginClient> Client() { return Client(rng_); }

  // Piece 1 of big.bin: a full piece in the middle of a file.
  absl::StatusOr<std::string> FetchBigPiece(OriginClient& client,
                                            uint32_t i = 1) {
    const v1::FileEntry& f = File(*published_, "big.bin");
    return client.FetchPiece(Geometry(*published_, f), PieceIndex(i),
                             PieceHashOf(*published_, f, i));
  }
  std::string BigPiece(uint32_t i = 1) {
    return published_->contents.at("big.bin").substr(i * kPieceSize,
                                                     kPieceSize);
  }

  static Published* published_;
  FakeClock clock_{absl::FromUnixSeconds(1700000000)};
  RecordingSleeper sleeper_{clock_};
  std::mt19937_64 rng_{42};
  OriginClientOptions options_;
  std::unique_ptr<FaultyOrigin> faulty_;
};

Published* OriginClientTest::published_ = nullptr;

TEST_F(OriginClientTest, FetchesVerifiedReleaseByteIdenticalFromNginx) {
  auto nginx = NginxOrigin::Start(published_->origin);
  ASSERT_TRUE(nginx.ok()) << nginx.status();
  options_.base_urls = {(*nginx)->base_url()};
  auto client = Client();

  absl::StatusOr<std::string> id = client->ResolveName("game", "1.0");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, published_->release_id);
  absl::StatusOr<std::string> manifest = client->FetchManifest(*id);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(Manifest::ParseUnverified(*manifest)->release_id(), *id);
  for (const v1::FileEntry& f : published_->manifest->body().files()) {
    const FileGeometry g = Geometry(*published_, f);
    absl::StatusOr<std::vector<Digest>> layer = client->FetchLayer(g, Root(f));
    ASSERT_TRUE(layer.ok()) << layer.status();
    std::string assembled;
    for (uint32_t i = 0; i < g.num_pieces(); ++i) {
      absl::StatusOr<std::string> piece =
          client->FetchPiece(g, PieceIndex(i), (*layer)[i]);
      ASSERT_TRUE(piece.ok()) << piece.status();
      assembled += *piece;
    }
    EXPECT_EQ(assembled, published_->contents.at(f.path())) << f.path();
  }
  EXPECT_EQ(client->stats().retries, 0u);
  EXPECT_EQ(client->stats().bytes_delivered, client->stats().bytes_received);
}

TEST_F(OriginClientTest, KeepsItsConnectionToNginxAliveAcrossCalls) {
  auto nginx = NginxOrigin::Start(published_->origin);
  ASSERT_TRUE(nginx.ok()) << nginx.status();
  options_.base_urls = {(*nginx)->base_url()};
  auto client = Client();
  const v1::FileEntry& f = File(*published_, "big.bin");
  const FileGeometry g = Geometry(*published_, f);
  absl::StatusOr<std::vector<Digest>> layer = client->FetchLayer(g, Root(f));
  ASSERT_TRUE(layer.ok()) << layer.status();
  for (uint32_t i = 0; i < g.num_pieces(); ++i) {
    ASSERT_TRUE(client->FetchPiece(g, PieceIndex(i), (*layer)[i]).ok());
  }
  (*nginx)->Stop();  // nginx logs a request just after answering it
  absl::StatusOr<std::string> log = (*nginx)->AccessLog();
  ASSERT_TRUE(log.ok()) << log.status();
  std::set<std::string> connections;
  int requests = 0;
  for (absl::string_view line : absl::StrSplit(*log, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StrContains(line, " 206 ")) << line;
    connections.insert(std::string(line.substr(0, line.find(' '))));
    ++requests;
  }
  EXPECT_EQ(requests, 1 + static_cast<int>(g.num_pieces()));
  EXPECT_EQ(connections.size(), 1u) << *log;
}

TEST_F(OriginClientTest, ServesConcurrentCallsFromSeveralThreads) {
  auto nginx = NginxOrigin::Start(published_->origin);
  ASSERT_TRUE(nginx.ok()) << nginx.status();
  options_.base_urls = {(*nginx)->base_url()};
  auto client = Client();
  const FileGeometry g = Geometry(*published_, File(*published_, "big.bin"));
  std::atomic<int> identical{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint32_t i = 0; i < g.num_pieces(); ++i) {
        absl::StatusOr<std::string> piece = FetchBigPiece(*client, i);
        if (piece.ok() && *piece == BigPiece(i)) ++identical;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(identical.load(), 4 * static_cast<int>(g.num_pieces()));
}

TEST_F(OriginClientTest, RetriesServerErrorsWithJitteredGrowingBackoff) {
  faulty_->InjectFault(OriginFault::kServerError, 4);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_EQ(*piece, BigPiece());
  EXPECT_EQ(client->stats().retries, 4u);
  EXPECT_EQ(faulty_->requests(), 5);
  const std::vector<absl::Duration> sleeps = sleeper_.sleeps();
  ASSERT_EQ(sleeps.size(), 4u);
  bool jittered = false;
  for (size_t k = 0; k < sleeps.size(); ++k) {
    const absl::Duration bound = kInitialBackoff * (1 << k);
    EXPECT_GE(sleeps[k], absl::ZeroDuration()) << k;
    EXPECT_LE(sleeps[k], bound) << k;
    if (sleeps[k] < bound * 0.99) jittered = true;
  }
  EXPECT_TRUE(jittered) << "every wait was its full bound";
}

TEST_F(OriginClientTest, BackoffBoundDoublesUpToTheCap) {
  options_.max_backoff = 4 * kInitialBackoff;
  options_.max_attempts = 6;
  faulty_->InjectFault(OriginFault::kServerError, 5);
  MaxBits max_bits;
  auto client = Client(max_bits);
  ASSERT_TRUE(FetchBigPiece(*client).ok());
  const std::vector<absl::Duration> sleeps = sleeper_.sleeps();
  const std::vector<int> factors = {1, 2, 4, 4, 4};
  ASSERT_EQ(sleeps.size(), factors.size());
  for (size_t k = 0; k < sleeps.size(); ++k) {
    EXPECT_GE(sleeps[k], kInitialBackoff * factors[k] * 0.99) << k;
    EXPECT_LE(sleeps[k], kInitialBackoff * factors[k]) << k;
  }
}

TEST_F(OriginClientTest, HonoursRetryAfterOnTooManyRequests) {
  faulty_->SetRetryAfter("7");
  faulty_->InjectFault(OriginFault::kTooManyRequests, 1);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_EQ(sleeper_.sleeps(), std::vector<absl::Duration>{absl::Seconds(7)});
}

TEST_F(OriginClientTest, CapsRetryAfter) {
  options_.max_retry_after = absl::Seconds(30);
  faulty_->SetRetryAfter("3600");
  faulty_->InjectFault(OriginFault::kTooManyRequests, 1);
  auto client = Client();
  ASSERT_TRUE(FetchBigPiece(*client).ok());
  EXPECT_EQ(sleeper_.sleeps(), std::vector<absl::Duration>{absl::Seconds(30)});
}

TEST_F(OriginClientTest, GivesUpWhenTheNextWaitWouldPassTheCallDeadline) {
  options_.call_deadline = absl::Seconds(5);
  faulty_->SetRetryAfter("10");
  faulty_->InjectFault(OriginFault::kTooManyRequests, 100);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kResourceExhausted)
      << piece.status();
  EXPECT_TRUE(absl::StrContains(piece.status().message(), "deadline"))
      << piece.status();
  EXPECT_EQ(faulty_->requests(), 1);
  EXPECT_TRUE(sleeper_.sleeps().empty());
}

TEST_F(OriginClientTest, ResumesShortBodyWithARangeForTheRest) {
  faulty_->InjectFault(OriginFault::kShortBody, 1);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_EQ(*piece, BigPiece());
  EXPECT_EQ(faulty_->ranges(),
            (std::vector<std::string>{
                absl::StrCat("bytes=0-", kPieceSize - 1),
                absl::StrCat("bytes=", kPieceSize / 2, "-", kPieceSize - 1)}));
}

TEST_F(OriginClientTest, PersistentShortBodyFailsAfterMaxAttempts) {
  options_.max_attempts = 3;
  faulty_->InjectFault(OriginFault::kShortBody, 100);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kUnavailable)
      << piece.status();
  EXPECT_TRUE(absl::StrContains(piece.status().message(), "after 3 attempts"))
      << piece.status();
  EXPECT_EQ(faulty_->requests(), 3);
  EXPECT_EQ(client->stats().failed_calls, 1u);
}

TEST_F(OriginClientTest, AbortsABodyLongerThanTheRangeAtTheCap) {
  faulty_->InjectFault(OriginFault::kLongBody, 100);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kDataLoss)
      << piece.status();
  EXPECT_EQ(faulty_->requests(), 1);
  EXPECT_LE(client->stats().bytes_received, kPieceSize + CURL_MAX_WRITE_SIZE);
}

TEST_F(OriginClientTest, RefusesOkInsteadOfPartialContent) {
  faulty_->InjectFault(OriginFault::kOkInsteadOfPartial, 100);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kFailedPrecondition)
      << piece.status();
  EXPECT_TRUE(absl::StrContains(piece.status().message(), "200"))
      << piece.status();
  EXPECT_EQ(faulty_->requests(), 1);
}

TEST_F(OriginClientTest, RefusesAWrongContentRange) {
  faulty_->InjectFault(OriginFault::kWrongContentRange, 100);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kDataLoss)
      << piece.status();
  EXPECT_TRUE(absl::StrContains(piece.status().message(), "Content-Range"))
      << piece.status();
}

TEST_F(OriginClientTest, MissingObjectIsNotFoundAtOnceNamingTheUrl) {
  auto client = Client();
  const std::string id(64, 'e');
  absl::StatusOr<std::string> manifest = client->FetchManifest(id);
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kNotFound)
      << manifest.status();
  EXPECT_TRUE(absl::StrContains(
      manifest.status().message(),
      absl::StrCat(faulty_->base_url(), "/", ManifestObjectPath(id))))
      << manifest.status();
  EXPECT_EQ(faulty_->requests(), 1);
  EXPECT_TRUE(sleeper_.sleeps().empty());
}

TEST_F(OriginClientTest, StalledTransferTimesOut) {
  options_.low_speed_bytes = 100 * 1024;
  options_.low_speed_time = absl::Seconds(1);
  options_.max_attempts = 1;
  faulty_->InjectFault(OriginFault::kStall, 1);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kDeadlineExceeded)
      << piece.status();
}

TEST_F(OriginClientTest, StalledTransferIsResumedOnRetry) {
  options_.low_speed_bytes = 100 * 1024;
  options_.low_speed_time = absl::Seconds(1);
  faulty_->InjectFault(OriginFault::kStall, 1);
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_EQ(*piece, BigPiece());
  ASSERT_EQ(faulty_->requests(), 2);
  EXPECT_TRUE(absl::StartsWith(faulty_->ranges()[1], "bytes=1024-"))
      << faulty_->ranges()[1];
}

TEST_F(OriginClientTest, UsesTheSecondBaseWhenTheFirstIsDown) {
  const std::string down = absl::StrCat("http://127.0.0.1:", ClosedPort());
  options_.base_urls = {down, faulty_->base_url()};
  auto client = Client();
  absl::StatusOr<std::string> piece = FetchBigPiece(*client);
  ASSERT_TRUE(piece.ok()) << piece.status();
  EXPECT_EQ(*piece, BigPiece());
  EXPECT_TRUE(sleeper_.sleeps().empty());
  EXPECT_EQ(client->current_base_url(), faulty_->base_url());
  // The next call goes straight to the base that worked.
  ASSERT_TRUE(FetchBigPiece(*client, 2).ok());
  EXPECT_EQ(client->stats().requests, 3u);
}

TEST_F(OriginClientTest, PieceThatDoesNotHashToItsNameIsDataLoss) {
  Published tampered = Publish();
  const v1::FileEntry& f = File(tampered, "big.bin");
  const Digest hash = PieceHashOf(tampered, f, 1);
  const std::string path = tampered.origin + "/" + PieceObjectPath(hash);
  std::string bytes = *ReadFile(path, 1 << 20);
  bytes[100] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(path, bytes, 0644, false).ok());
  auto origin = FaultyOrigin::Start(tampered.origin);
  ASSERT_TRUE(origin.ok());
  options_.base_urls = {(*origin)->base_url()};
  auto client = Client();
  absl::StatusOr<std::string> piece =
      client->FetchPiece(Geometry(tampered, f), PieceIndex(1), hash);
  EXPECT_EQ(piece.status().code(), absl::StatusCode::kDataLoss)
      << piece.status();
  EXPECT_EQ(client->stats().bytes_delivered, 0u);
}

TEST_F(OriginClientTest, LayerThatDoesNotProveIntoItsRootIsDataLoss) {
  Published tampered = Publish();
  const v1::FileEntry& f = File(tampered, "big.bin");
  const std::string path = tampered.origin + "/" + LayerObjectPath(Root(f));
  std::string layer = *ReadFile(path, 1 << 20);
  layer[0] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(path, layer, 0644, false).ok());
  auto origin = FaultyOrigin::Start(tampered.origin);
  ASSERT_TRUE(origin.ok());
  options_.base_urls = {(*origin)->base_url()};
  auto client = Client();
  absl::StatusOr<std::vector<Digest>> fetched =
      client->FetchLayer(Geometry(tampered, f), Root(f));
  EXPECT_EQ(fetched.status().code(), absl::StatusCode::kDataLoss)
      << fetched.status();
}

TEST_F(OriginClientTest, RefusesMalformedNamesAndIdsWithoutAsking) {
  auto client = Client();
  EXPECT_EQ(client->ResolveName("../etc", "1.0").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client->FetchManifest("../../secret").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(faulty_->requests(), 0);
}

}  // namespace
}  // namespace shoal::agent
