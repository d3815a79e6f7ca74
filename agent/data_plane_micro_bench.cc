// Loopback throughput of the gRPC data plane alone: one GrpcTransport
// session fetching pieces from a PeerService over a FakePieceSource in the
// same process, for several connection counts. Prints GB/s and CPU seconds
// per GB (both ends). A benchmark, not a test; bench/data_plane_bench.sh
// measures whole agents.
//
//   bazel run -c opt //agent:data_plane_micro_bench -- --connections=1,2,4

#include <malloc.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/data_plane_test_util.h"
#include "agent/fake_piece_source.h"
#include "agent/grpc_transport.h"
#include "agent/peer_service.h"
#include "common/sha256.h"
#include "common/testing/test_pki.h"

ABSL_FLAG(std::vector<std::string>, connections,
          std::vector<std::string>({"1", "2", "4"}),
          "connection counts per remote to measure");
ABSL_FLAG(int, piece_mib, 4, "piece size in MiB");
ABSL_FLAG(int, pieces, 32, "distinct pieces the source holds");
ABSL_FLAG(int, total_mib, 2048, "MiB fetched per measurement");
ABSL_FLAG(int, in_flight, 4, "fetches outstanding at once");
ABSL_FLAG(bool, sha256, false, "hash every received piece in its callback");
ABSL_FLAG(bool, malloc_tuning, true,
          "keep large buffers in the heap instead of mmap/munmap each one");
ABSL_FLAG(std::string, tls_dir, "",
          "use mutual TLS with a throwaway CA written here (must exist)");

namespace shoal::agent {
namespace {

constexpr char kRelease[] = "bench";

class IgnoringListener final : public SessionListener {
 public:
  void OnBitfield(std::string) override {}
  void OnHave(std::vector<ReleasePieceIndex>) override {}
  void OnPeers(std::vector<v1::PeerAddress>) override {}
  void OnClosed(absl::Status) override {}
};

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Fetches `total` bytes with `in_flight` fetches outstanding; false on any
// error.
bool FetchAll(PeerSession& session, uint64_t piece_bytes, int pieces,
              uint64_t total, int in_flight, bool hash) {
  absl::Mutex mu;
  int outstanding = 0;
  bool failed = false;
  for (uint64_t sent = 0; sent < total; sent += piece_bytes) {
    {
      absl::MutexLock lock(&mu);
      auto room = [&] { return outstanding < in_flight; };
      mu.Await(absl::Condition(&room));
      ++outstanding;
    }
    const uint32_t piece = (sent / piece_bytes) % pieces;
    session.FetchPiece(ReleasePieceIndex(piece), piece_bytes, absl::Seconds(60),
                       [&, hash](absl::StatusOr<ReceivedPiece> result) {
                         if (result.ok() && hash) Sha256(result->data.view());
                         absl::MutexLock lock(&mu);
                         if (!result.ok()) {
                           fprintf(stderr, "fetch failed: %s\n",
                                   result.status().ToString().c_str());
                           failed = true;
                         }
                         --outstanding;
                       });
  }
  absl::MutexLock lock(&mu);
  auto idle = [&] { return outstanding == 0; };
  mu.Await(absl::Condition(&idle));
  return !failed;
}

struct Securities {
  GrpcSecurity server;
  GrpcSecurity client;
};

Securities MakeSecurities() {
  const std::string dir = absl::GetFlag(FLAGS_tls_dir);
  if (dir.empty()) return {InsecureSecurity(), InsecureSecurity()};
  TestPki pki = *MakeTestPki(dir);
  return {
      *GrpcSecurity::Create(*IssueTestCert(pki, "seed", {}, {"127.0.0.1"})),
      *GrpcSecurity::Create(*IssueTestCert(pki, "leech", {}, {"127.0.0.1"}))};
}

// One measurement over a fresh transport; false on a failed fetch.
bool Measure(const GrpcSecurity& security, const v1::PeerAddress& remote,
             int connections, uint64_t piece_bytes, int pieces) {
  GrpcTransport transport(security, {.connections_per_remote = connections});
  IgnoringListener listener;
  auto session =
      transport.Connect(remote, kRelease, TestPeer("leech"), listener);
  const int in_flight = absl::GetFlag(FLAGS_in_flight);
  const bool hash = absl::GetFlag(FLAGS_sha256);
  const uint64_t total = uint64_t(absl::GetFlag(FLAGS_total_mib)) << 20;
  FetchAll(*session, piece_bytes, pieces, 4 * piece_bytes, in_flight, hash);
  const double cpu0 = CpuSeconds();
  const absl::Time start = absl::Now();
  const bool ok =
      FetchAll(*session, piece_bytes, pieces, total, in_flight, hash);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double gb = total / 1e9;
  printf(
      "connections=%d in_flight=%d piece=%dMiB sha256=%d tls=%d: "
      "%.2f GB/s, %.2f CPU s/GB\n",
      connections, in_flight, absl::GetFlag(FLAGS_piece_mib), hash,
      !absl::GetFlag(FLAGS_tls_dir).empty(), gb / seconds,
      (CpuSeconds() - cpu0) / gb);
  fflush(stdout);
  return ok;
}

int Run() {
  if (absl::GetFlag(FLAGS_malloc_tuning)) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  Securities securities = MakeSecurities();
  const uint64_t piece_bytes = uint64_t(absl::GetFlag(FLAGS_piece_mib)) << 20;
  const int pieces = absl::GetFlag(FLAGS_pieces);
  FakePieceSource source;
  source.AddRelease(kRelease, pieces);
  for (int i = 0; i < pieces; ++i) {
    source.AddPiece(kRelease, ReleasePieceIndex(i), TestBytes(piece_bytes, i),
                    TestProof(12, i));
  }
  PeerService service(source, {.max_uploads = 64});
  RunningServer running = ServeOnLoopback(service, securities.server);
  v1::PeerAddress remote = TestPeer("seed");
  remote.set_address(running.address);
  int status = 0;
  for (const std::string& text : absl::GetFlag(FLAGS_connections)) {
    if (!Measure(securities.client, remote, std::stoi(text), piece_bytes,
                 pieces)) {
      status = 1;
    }
  }
  service.Shutdown();
  running.server->Shutdown();
  return status;
}

}  // namespace
}  // namespace shoal::agent

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return shoal::agent::Run();
}
