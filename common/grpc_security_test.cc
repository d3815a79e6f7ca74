#include "common/grpc_security.h"

#include <glog/logging.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "common/testing/test_pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shoal/testproto/echo.grpc.pb.h"

namespace shoal {
namespace {

using ::shoal::testproto::Echo;
using ::shoal::testproto::EchoRequest;
using ::shoal::testproto::EchoResponse;
using ::testing::HasSubstr;

// Echoes the message and reports who the caller was.
class EchoService final : public Echo::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* context, const EchoRequest* request,
                    EchoResponse* response) override {
    ++calls_;
    response->set_message(request->message());
    response->set_caller_identity(CallerIdentity(*context->auth_context()));
    return grpc::Status::OK;
  }
  int calls() const { return calls_; }

 private:
  std::atomic<int> calls_{0};
};

// One call with a safety deadline; the result or the call's error.
absl::StatusOr<EchoResponse> CallEcho(std::shared_ptr<grpc::Channel> channel,
                                      const std::string& message = "hello") {
  std::unique_ptr<Echo::Stub> stub = Echo::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  EchoRequest request;
  request.set_message(message);
  EchoResponse response;
  absl::Status status =
      FromGrpcStatus(stub->Echo(&context, request, &response));
  if (!status.ok()) return status;
  return response;
}

class GrpcSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTestDir("grpc_security_test");
    pki_ = MakeTestPki(dir_).value();
    other_pki_ = MakeTestPki(dir_, "other-ca").value();
    // IP SAN only: the client dials 127.0.0.1 and must match it.
    server_flags_ = IssueTestCert(pki_, "tracker", {}, {"127.0.0.1"}).value();
    client_flags_ =
        IssueTestCert(pki_, "agent-7", {"agent-7.dc1.example"}, {"127.0.0.1"})
            .value();
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  // Serves EchoService on `host`:0 with `security`; returns "host:port".
  std::string StartServer(const GrpcSecurity& security,
                          const std::string& host = "127.0.0.1") {
    const std::string listen = absl::StrCat(host, ":0");
    auto credentials = security.ServerCredentials(listen);
    CHECK(credentials.ok()) << credentials.status();
    grpc::ServerBuilder builder;
    security.ConfigureServer(builder);
    int port = 0;
    builder.AddListeningPort(listen, *credentials, &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    CHECK(server_ != nullptr && port > 0) << "cannot serve on " << listen;
    return absl::StrCat(host, ":", port);
  }

  static GrpcSecurity Security(const TlsFlags& flags) {
    absl::StatusOr<GrpcSecurity> security = GrpcSecurity::Create(flags);
    CHECK(security.ok()) << security.status();
    return *security;
  }

  static GrpcSecurity Insecure() {
    TlsFlags flags;
    flags.insecure = true;
    return Security(flags);
  }

  std::string dir_;
  TestPki pki_;
  TestPki other_pki_;
  TlsFlags server_flags_;
  TlsFlags client_flags_;
  EchoService service_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(GrpcSecurityTest, MutualTlsCallSucceedsAndServerSeesClientIdentity) {
  const std::string target = StartServer(Security(server_flags_));
  auto channel = Security(client_flags_).MakeChannel(target);
  ASSERT_TRUE(channel.ok()) << channel.status();

  absl::StatusOr<EchoResponse> response = CallEcho(*channel);

  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->message(), "hello");
  EXPECT_EQ(response->caller_identity(), "agent-7.dc1.example");
}

TEST_F(GrpcSecurityTest, CallerIdentityIsCommonNameWithoutDnsOrUriSan) {
  const std::string target = StartServer(Security(server_flags_));
  TlsFlags ip_only = IssueTestCert(pki_, "agent-8", {}, {"127.0.0.1"}).value();

  absl::StatusOr<EchoResponse> response =
      CallEcho(Security(ip_only).MakeChannel(target).value());

  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->caller_identity(), "agent-8");
}

TEST_F(GrpcSecurityTest, CallerIdentityIsFirstOfDnsAndUriSans) {
  const std::string target = StartServer(Security(server_flags_));
  TlsFlags with_uri = IssueTestCert(pki_, "agent-9", {"agent-9.example"}, {},
                                    {"spiffe://fleet/agent-9"})
                          .value();

  absl::StatusOr<EchoResponse> response =
      CallEcho(Security(with_uri).MakeChannel(target).value());

  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->caller_identity(), "spiffe://fleet/agent-9");
}

TEST_F(GrpcSecurityTest, ServerRefusesClientCertFromAnotherCa) {
  const std::string target = StartServer(Security(server_flags_));
  // The client trusts both CAs, so only the server can be the one refusing.
  TlsFlags foreign =
      IssueTestCert(other_pki_, "intruder", {"intruder"}, {}).value();
  foreign.ca = dir_ + "/both-cas.pem";
  ASSERT_TRUE(WriteCaBundle({pki_, other_pki_}, foreign.ca).ok());

  absl::StatusOr<EchoResponse> response =
      CallEcho(Security(foreign).MakeChannel(target).value());

  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable)
      << response.status();
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(GrpcSecurityTest, ServerRefusesClientWithoutCert) {
  const std::string target = StartServer(Security(server_flags_));
  grpc::SslCredentialsOptions no_cert;
  std::ifstream ca(pki_.ca_cert);
  no_cert.pem_root_certs.assign(std::istreambuf_iterator<char>(ca), {});
  auto channel = grpc::CreateChannel(target, grpc::SslCredentials(no_cert));

  absl::StatusOr<EchoResponse> response = CallEcho(channel);

  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable)
      << response.status();
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(GrpcSecurityTest, ClientRefusesServerCertFromAnotherCa) {
  TlsFlags impostor =
      IssueTestCert(other_pki_, "impostor", {}, {"127.0.0.1"}).value();
  const std::string target = StartServer(Security(impostor));

  absl::StatusOr<EchoResponse> response =
      CallEcho(Security(client_flags_).MakeChannel(target).value());

  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable)
      << response.status();
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(GrpcSecurityTest, ClientRefusesServerCertForAnotherHost) {
  TlsFlags elsewhere =
      IssueTestCert(pki_, "elsewhere", {"elsewhere.example"}, {"10.9.9.9"})
          .value();
  const std::string target = StartServer(Security(elsewhere));

  absl::StatusOr<EchoResponse> response =
      CallEcho(Security(client_flags_).MakeChannel(target).value());

  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable)
      << response.status();
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(GrpcSecurityTest, InsecureCallOnLoopbackSucceedsWithoutIdentity) {
  const std::string target = StartServer(Insecure());
  auto channel = Insecure().MakeChannel(target);
  ASSERT_TRUE(channel.ok()) << channel.status();

  absl::StatusOr<EchoResponse> response = CallEcho(*channel);

  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->caller_identity(), "");
}

TEST_F(GrpcSecurityTest, InsecureServerOnWildcardOrRemoteAddressIsRefused) {
  const GrpcSecurity insecure = Insecure();
  for (const char* listen :
       {"0.0.0.0:0", "[::]:50051", "10.1.2.3:50051", "tracker.example:443"}) {
    auto credentials = insecure.ServerCredentials(listen);
    EXPECT_EQ(credentials.status().code(),
              absl::StatusCode::kFailedPrecondition)
        << listen;
    EXPECT_THAT(credentials.status().message(), HasSubstr("--tls_cert"));
  }
}

TEST_F(GrpcSecurityTest, InsecureServerOnLoopbackOrUnixSocketIsAllowed) {
  const GrpcSecurity insecure = Insecure();
  for (const char* listen : {"127.0.0.1:0", "[::1]:0", "localhost:50051",
                             "unix:/run/shoal/agent.sock"}) {
    EXPECT_TRUE(insecure.ServerCredentials(listen).ok()) << listen;
  }
}

TEST_F(GrpcSecurityTest, InsecureChannelToRemoteAddressIsRefused) {
  auto channel = Insecure().MakeChannel("192.0.2.10:50051");

  EXPECT_EQ(channel.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(GrpcSecurityTest, CarriesMessagesLargerThanGrpcDefaultLimit) {
  const std::string target = StartServer(Security(server_flags_));
  const std::string ten_mib(10 << 20, 'x');

  absl::StatusOr<EchoResponse> response =
      CallEcho(Security(client_flags_).MakeChannel(target).value(), ten_mib);

  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->message().size(), ten_mib.size());
}

TEST_F(GrpcSecurityTest, RefusesMessagesOverTheLimit) {
  const std::string target = StartServer(Insecure());
  const std::string too_big(kMaxMessageBytes + 1, 'x');

  absl::StatusOr<EchoResponse> response =
      CallEcho(Insecure().MakeChannel(target).value(), too_big);

  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted)
      << response.status();
  EXPECT_EQ(service_.calls(), 0);
}

// --- Create: flag validation. ---

TEST_F(GrpcSecurityTest, CreateRefusesNoFlags) {
  auto security = GrpcSecurity::Create(TlsFlags{});

  EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(security.status().message(),
              HasSubstr("--tls_cert, --tls_key and --tls_ca, or --insecure "
                        "for a loopback-only demo"));
}

TEST_F(GrpcSecurityTest, CreateRefusesPartialTlsFlags) {
  TlsFlags partial = client_flags_;
  partial.ca.clear();

  auto security = GrpcSecurity::Create(partial);

  EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(security.status().message(),
              HasSubstr("--tls_cert, --tls_key and --tls_ca"));
}

TEST_F(GrpcSecurityTest, CreateRefusesInsecureTogetherWithTlsFlags) {
  TlsFlags both = client_flags_;
  both.insecure = true;

  auto security = GrpcSecurity::Create(both);

  EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(security.status().message(), HasSubstr("--insecure"));
}

TEST_F(GrpcSecurityTest, CreateNamesFlagAndPathOfMissingFile) {
  TlsFlags missing = client_flags_;
  missing.key = dir_ + "/no-such.key";

  auto security = GrpcSecurity::Create(missing);

  EXPECT_EQ(security.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(security.status().message(), HasSubstr("--tls_key"));
  EXPECT_THAT(security.status().message(), HasSubstr(missing.key));
}

TEST_F(GrpcSecurityTest, CreateRefusesFileThatIsNotPem) {
  TlsFlags garbage = client_flags_;
  garbage.ca = dir_ + "/garbage.pem";
  std::ofstream(garbage.ca) << "not a certificate\n";

  auto security = GrpcSecurity::Create(garbage);

  EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(security.status().message(), HasSubstr(garbage.ca));
}

TEST_F(GrpcSecurityTest, CreateRefusesKeyNotMatchingCert) {
  TlsFlags mismatched = client_flags_;
  mismatched.key = server_flags_.key;

  auto security = GrpcSecurity::Create(mismatched);

  EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(security.status().message(), HasSubstr("not the private key"));
}

TEST_F(GrpcSecurityTest, CreateRefusesCertNotIssuedByTheCa) {
  TlsFlags foreign = IssueTestCert(other_pki_, "stray", {"stray"}, {}).value();
  foreign.ca = pki_.ca_cert;

  auto security = GrpcSecurity::Create(foreign);

  EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(security.status().message(),
              HasSubstr("does not verify against --tls_ca"));
}

TEST_F(GrpcSecurityTest, CreateAcceptsCompleteTlsFlags) {
  auto security = GrpcSecurity::Create(client_flags_);

  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_FALSE(security->insecure());
}

// --- Helpers. ---

TEST(IsLoopbackAddressTest, AcceptsLoopbackHostsWithAndWithoutPort) {
  for (const char* address :
       {"127.0.0.1", "127.0.0.1:50051", "127.8.9.10:1", "::1", "[::1]",
        "[::1]:50051", "localhost", "localhost:50051", "LocalHost:1",
        "[::ffff:127.0.0.1]:80"}) {
    EXPECT_TRUE(IsLoopbackAddress(address)) << address;
  }
}

TEST(IsLoopbackAddressTest, RefusesOtherAndMalformedAddresses) {
  for (const char* address :
       {"", "0.0.0.0:0", "[::]:0", "::", "10.0.0.1:50051", "128.0.0.1",
        "localhost.example:1", "example.com:443", "[::1", "[::1]x",
        "localhost:", "127.0.0.1:http", "[::2]:1", "unix:/tmp/sock",
        "126.255.255.255"}) {
    EXPECT_FALSE(IsLoopbackAddress(address)) << address;
  }
}

TEST(IsUnixSocketAddressTest, RecognizesGrpcUnixSchemes) {
  EXPECT_TRUE(IsUnixSocketAddress("unix:/run/shoal.sock"));
  EXPECT_TRUE(IsUnixSocketAddress("unix-abstract:shoal"));
  EXPECT_FALSE(IsUnixSocketAddress("unix:"));
  EXPECT_FALSE(IsUnixSocketAddress("127.0.0.1:1"));
}

TEST(StatusConversionTest, RoundTripKeepsCodeAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code),
                              absl::StrCat("reason ", code));
    const grpc::Status converted = ToGrpcStatus(status);

    EXPECT_EQ(static_cast<int>(converted.error_code()), code);
    EXPECT_EQ(converted.error_message(), status.message());
    EXPECT_EQ(FromGrpcStatus(converted), status);
  }
}

TEST(StatusConversionTest, OkStaysOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST(BoundAddressTest, KeepsTheHostAndTakesTheRealPort) {
  EXPECT_EQ(BoundAddress("127.0.0.1:0", 41234), "127.0.0.1:41234");
  EXPECT_EQ(BoundAddress("[::1]:0", 7), "[::1]:7");
  EXPECT_EQ(BoundAddress("localhost:7070", 7070), "localhost:7070");
}

}  // namespace
}  // namespace shoal
