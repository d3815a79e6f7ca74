#include "agent/shoalctl_fetch.h"

#include <stdlib.h>
#include <unistd.h>

#include <sstream>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "agent/control_client.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

v1::ReleaseStatus Release(v1::ReleaseState state, uint64_t verified) {
  v1::ReleaseStatus s;
  s.set_release_id(std::string(64, 'a'));
  s.set_name("game");
  s.set_version("1");
  s.set_state(state);
  s.set_total_size(1000);
  s.set_bytes_verified(verified);
  s.set_bytes_from_origin(verified);
  return s;
}

// An agent's control service that ends its first `failures` Fetch calls as
// the agent does for a FAILED release, then ends with `final_status` after
// a complete release.
class FakeAgent final : public v1::AgentControl::Service {
 public:
  FakeAgent(int failures, grpc::Status final_status)
      : failures_(failures), final_status_(std::move(final_status)) {}

  grpc::Status Fetch(grpc::ServerContext*, const v1::FetchRequest* request,
                     grpc::ServerWriter<v1::ReleaseStatus>* writer) override {
    int call;
    {
      absl::MutexLock lock(&mu_);
      call = calls_++;
      last_dest_ = request->dest();
    }
    if (call < failures_) {
      v1::ReleaseStatus failed = Release(v1::RELEASE_STATE_FAILED, 400);
      failed.set_error("no space left on device");
      writer->Write(failed);
      return grpc::Status(grpc::StatusCode::ABORTED, "no space left on device");
    }
    writer->Write(Release(v1::RELEASE_STATE_DOWNLOADING, 600));
    writer->Write(Release(v1::RELEASE_STATE_SEEDING, 1000));
    return final_status_;
  }

  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  const int failures_;
  const grpc::Status final_status_;
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_dest_ ABSL_GUARDED_BY(mu_);
};

// A FakeAgent served on a unix socket in a fresh directory under /tmp (the
// test's own temporary directory may be too long for a socket address).
class ShoalctlFetchTest : public testing::Test {
 protected:
  void Serve(int failures, grpc::Status final_status = grpc::Status::OK) {
    char dir[] = "/tmp/shoalctl_fetch_test.XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/agent.sock";
    agent_ = std::make_unique<FakeAgent>(failures, std::move(final_status));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(agent_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    absl::StatusOr<std::unique_ptr<ControlClient>> client = ControlClient::Create(socket_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    unlink(socket_.c_str());
    rmdir(dir_.c_str());
  }

  FetchOptions Options() {
    FetchOptions options;
    options.release = "game@1";
    options.json = true;
    options.first_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(2);
    return options;
  }

  std::string dir_;
  std::string socket_;
  std::unique_ptr<FakeAgent> agent_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ControlClient> client_;
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(ShoalctlFetchTest, PrintsTheJsonSummaryOnceComplete) {
  Serve(0);
  EXPECT_EQ(RunFetch(*client_, Options(), out_, err_), 0) << err_.str();
  EXPECT_TRUE(absl::StartsWith(out_.str(), "{\"bytes_from_origin\":1000,\"bytes_from_peers\":0,"))
      << out_.str();
  EXPECT_TRUE(absl::StrContains(out_.str(), "\"size\":1000")) << out_.str();
  EXPECT_TRUE(absl::StrContains(err_.str(), "game@1 complete and verified in ")) << err_.str();
}

TEST_F(ShoalctlFetchTest, AsksAgainWhileTheAgentReportsTheReleaseFailed) {
  Serve(2);
  EXPECT_EQ(RunFetch(*client_, Options(), out_, err_), 0) << err_.str();
  EXPECT_EQ(agent_->calls(), 3);
  const std::string err = err_.str();
  const std::string note =
      "shoalctl: game@1 failed on the agent: no space left on device; asking again in ";
  const size_t first = err.find(note);
  ASSERT_NE(first, std::string::npos) << err;
  EXPECT_NE(err.find(note, first + 1), std::string::npos) << err;
}

TEST_F(ShoalctlFetchTest, GivesUpOnAFailedReleaseAtTheTimeout) {
  Serve(1 << 30);
  FetchOptions options = Options();
  options.timeout = absl::Milliseconds(300);
  EXPECT_EQ(RunFetch(*client_, options, out_, err_), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(absl::StrContains(
      err_.str(), "shoalctl: game@1 not complete after --timeout=300ms: 40.0% verified"))
      << err_.str();
  EXPECT_TRUE(absl::EndsWith(err_.str(), "; the agent reports: no space left on device\n"))
      << err_.str();
}

TEST_F(ShoalctlFetchTest, StopsAtOnceOnOtherErrors) {
  Serve(0, grpc::Status(grpc::StatusCode::DATA_LOSS, "manifest hashes to something else"));
  EXPECT_EQ(RunFetch(*client_, Options(), out_, err_), 1);
  EXPECT_EQ(agent_->calls(), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_TRUE(absl::EndsWith(err_.str(),
                             "shoalctl: cannot fetch game@1: manifest hashes to something else\n"))
      << err_.str();
}

TEST_F(ShoalctlFetchTest, SaysWhenACompleteReleaseWasNotInstalled) {
  Serve(0, grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "/srv/game/current is a directory"));
  FetchOptions options = Options();
  options.dest = "/srv/game";
  EXPECT_EQ(RunFetch(*client_, options, out_, err_), 1);
  EXPECT_TRUE(absl::EndsWith(err_.str(),
                             "shoalctl: game@1 is complete and verified but was not installed into "
                             "/srv/game: /srv/game/current is a directory\n"))
      << err_.str();
}

TEST_F(ShoalctlFetchTest, SaysTheAgentIsNotRunningWhenItGoesAway) {
  Serve(0);
  server_->Shutdown();
  server_.reset();
  unlink(socket_.c_str());
  EXPECT_EQ(RunFetch(*client_, Options(), out_, err_), 1);
  EXPECT_TRUE(absl::StrContains(err_.str(), "agent not running at " + socket_)) << err_.str();
}

}  // namespace
}  // namespace shoal::agent
