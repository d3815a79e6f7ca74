// hostile_peer: a member of a swarm that misbehaves on purpose, for tests of
// honest agents (tests/e2e/hostile_peer_test.sh). It serves one release, read
// from an origin tree that the publisher wrote, announces itself to the
// tracker as a seed holding every piece, and answers piece requests in the
// wrong way its --mode chooses (agent/testing/hostile_service.h).
//
//   hostile_peer --origin=DIR --release=ID|NAME@VERSION --mode=flip
//       --tracker=HOST:PORT --datacenter=DC --rack=RACK --tls_cert=...
//       --ready_file=FILE --stats_file=FILE
//
// Stops on SIGINT or SIGTERM, and by itself once --lifetime has passed.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/testing/hostile_release.h"
#include "agent/testing/hostile_service.h"
#include "agent/tracker_client.h"
#include "common/daemon.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/hex.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/server_builder.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, origin, "", "origin tree the publisher wrote (a directory)");
ABSL_FLAG(std::string, release, "", "release to serve: its id or NAME@VERSION");
ABSL_FLAG(std::string, mode, "flip", "flip, wrong_piece, bogus_proof, lie, stall or oversize");
ABSL_FLAG(std::string, tracker, "", "tracker replicas to announce to, HOST:PORT,...");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "peer data plane HOST:PORT (port 0 picks one)");
ABSL_FLAG(std::string, datacenter, "", "the datacenter to claim (required)");
ABSL_FLAG(std::string, rack, "", "the rack to claim (required)");
ABSL_FLAG(std::string, ready_file, "", "file to write the bound address to (JSON) once announced");
ABSL_FLAG(std::string, stats_file, "", "file kept up to date with the requests answered (JSON)");
ABSL_FLAG(absl::Duration, hold_limit, absl::Minutes(2), "longest a Watch or a stalled fetch is held");
ABSL_FLAG(absl::Duration, lifetime, absl::Minutes(10), "exit by itself after this long");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate of this peer");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM fleet CA");
ABSL_FLAG(bool, insecure, false, "plaintext, loopback only");

namespace shoal::agent::hostile {
namespace {

// How often the housekeeper wakes, and the bounds on the announce interval.
constexpr absl::Duration kTick = absl::Milliseconds(200);
constexpr absl::Duration kMinAnnounce = absl::Seconds(1);
constexpr absl::Duration kMaxAnnounce = absl::Seconds(30);
// How long the first announce may take to be accepted.
constexpr absl::Duration kFirstAnnounceWithin = absl::Seconds(10);

std::string NewPeerId() {
  absl::BitGen bitgen;
  std::string bytes(16, '\0');
  for (char& c : bytes) c = static_cast<char>(absl::Uniform<uint32_t>(bitgen));
  return HexEncode(bytes);
}

// The announce of a seed holding every piece of `release`.
v1::AnnounceRequest SeedAnnounce(const HostileRelease& release,
                                 const v1::PeerAddress& self) {
  v1::AnnounceRequest request;
  request.set_peer_id(self.peer_id());
  request.set_address(self.address());
  request.set_datacenter(self.datacenter());
  request.set_rack(self.rack());
  v1::ReleaseAnnounce* held = request.add_releases();
  held->set_release_id(release.release_id());
  held->set_state(v1::PEER_STATE_SEEDING);
  held->set_bitfield(release.FullBitfield().bytes());
  return request;
}

// Announces until the tracker accepts, for at most kFirstAnnounceWithin.
absl::Status FirstAnnounce(TrackerClient& tracker,
                           const v1::AnnounceRequest& request) {
  const absl::Time give_up = absl::Now() + kFirstAnnounceWithin;
  while (true) {
    absl::Status status = tracker.Announce(request).status();
    if (status.ok() || absl::Now() >= give_up) return status;
    LOG(WARNING) << "announce failed, trying again: " << status;
    absl::SleepFor(kTick);
  }
}

// Keeps the tracker told that the peer holds everything and the stats file
// current, and ends the process (SIGTERM to itself) once its lifetime is
// over. Owns one thread; the destructor joins it, writes the stats a last
// time and tells the tracker the peer stopped. Only that thread and the
// destructor use it.
class Housekeeper {
 public:
  Housekeeper(TrackerClient& tracker, v1::AnnounceRequest announce,
              const HostilePeerService& service, std::string stats_file,
              absl::Duration lifetime)
      : tracker_(tracker),
        announce_(std::move(announce)),
        service_(service),
        stats_file_(std::move(stats_file)),
        end_(absl::Now() + lifetime),
        thread_([this] { Loop(); }) {}

  ~Housekeeper() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
    WriteStats();
    for (v1::ReleaseAnnounce& r : *announce_.mutable_releases()) {
      r.set_state(v1::PEER_STATE_STOPPED);
    }
    tracker_.Announce(announce_).IgnoreError();
  }

 private:
  void Loop() {
    absl::Time next_announce = absl::Now() + kMinAnnounce;
    bool ended = false;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), kTick)) return;
      }
      WriteStats();
      const absl::Time now = absl::Now();
      if (now >= next_announce) next_announce = now + Announce();
      if (now >= end_ && !ended) {
        LOG(WARNING) << "lifetime over: stopping";
        kill(getpid(), SIGTERM);  // main() waits for it
        ended = true;
      }
    }
  }

  // Announces once; returns when to announce again.
  absl::Duration Announce() {
    absl::StatusOr<v1::AnnounceResponse> answer = tracker_.Announce(announce_);
    if (!answer.ok()) {
      LOG(WARNING) << "announce failed: " << answer.status();
      return kMinAnnounce;
    }
    return std::clamp(absl::Milliseconds(answer->next_announce_ms()),
                      kMinAnnounce, kMaxAnnounce);
  }

  void WriteStats() {
    const HostileStats stats = service_.stats();
    if (stats_file_.empty() || stats.requests + stats.watches + stats.invalid ==
                                   written_) {
      return;
    }
    written_ = stats.requests + stats.watches + stats.invalid;
    nlohmann::json j = {{"mode", ModeName(service_.mode())},
                        {"peer_id", announce_.peer_id()},
                        {"watches", stats.watches},
                        {"requests", stats.requests},
                        {"invalid", stats.invalid}};
    absl::Status s = WriteFileAtomically(stats_file_, j.dump() + "\n", 0644,
                                         /*durable=*/false);
    if (!s.ok()) LOG(WARNING) << s;
  }

  TrackerClient& tracker_;
  v1::AnnounceRequest announce_;
  const HostilePeerService& service_;
  const std::string stats_file_;
  const absl::Time end_;
  // Sum of the counters last written; the thread's, then the destructor's.
  uint64_t written_ = ~uint64_t{0};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts once the rest is set.
};

// The peer's gRPC server; cancels the calls it holds when destroyed, so
// that shutting down never waits for a held Watch or a stalled fetch.
struct Server {
  std::unique_ptr<grpc::Server> server;
  std::string address;
  ~Server() {
    if (server != nullptr) server->Shutdown(std::chrono::system_clock::now());
  }
};

absl::Status StartServer(const GrpcSecurity& security,
                         HostilePeerService& service, const std::string& listen,
                         Server& out) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   security.ServerCredentials(listen));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  builder.RegisterService(&service);
  security.ConfigureServer(builder);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve peers on ", listen));
  }
  out.address = BoundAddress(listen, port);
  return absl::OkStatus();
}

absl::Status CheckRequiredFlags() {
  for (const auto& [name, value] :
       {std::pair<const char*, std::string>{"origin", absl::GetFlag(FLAGS_origin)},
        {"release", absl::GetFlag(FLAGS_release)},
        {"tracker", absl::GetFlag(FLAGS_tracker)},
        {"datacenter", absl::GetFlag(FLAGS_datacenter)},
        {"rack", absl::GetFlag(FLAGS_rack)}}) {
    if (value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
    }
  }
  return absl::OkStatus();
}

absl::Status Run(const StopSignals& stop) {
  RETURN_IF_ERROR(CheckRequiredFlags());
  ASSIGN_OR_RETURN(Mode mode, ParseMode(absl::GetFlag(FLAGS_mode)));
  ASSIGN_OR_RETURN(std::unique_ptr<HostileRelease> release,
                   HostileRelease::Load(absl::GetFlag(FLAGS_origin),
                                        absl::GetFlag(FLAGS_release)));
  ASSIGN_OR_RETURN(GrpcSecurity security,
                   GrpcSecurity::Create({absl::GetFlag(FLAGS_tls_cert),
                                         absl::GetFlag(FLAGS_tls_key),
                                         absl::GetFlag(FLAGS_tls_ca),
                                         absl::GetFlag(FLAGS_insecure)}));
  HostilePeerService service(*release,
                             {mode, absl::GetFlag(FLAGS_hold_limit)});
  Server server;  // After the service, which must outlive it.
  RETURN_IF_ERROR(StartServer(security, service, absl::GetFlag(FLAGS_listen), server));
  TrackerClientOptions options;
  ASSIGN_OR_RETURN(options.addresses,
                   ParseTrackerAddresses(absl::GetFlag(FLAGS_tracker)));
  ASSIGN_OR_RETURN(std::unique_ptr<TrackerClient> tracker,
                   TrackerClient::Create(security, options));
  v1::PeerAddress self;
  self.set_peer_id(NewPeerId());
  self.set_address(server.address);
  self.set_datacenter(absl::GetFlag(FLAGS_datacenter));
  self.set_rack(absl::GetFlag(FLAGS_rack));
  v1::AnnounceRequest announce = SeedAnnounce(*release, self);
  RETURN_IF_ERROR(FirstAnnounce(*tracker, announce));
  Housekeeper keeper(*tracker, announce, service,
                     absl::GetFlag(FLAGS_stats_file),
                     absl::GetFlag(FLAGS_lifetime));
  nlohmann::json ready = {{"peer", server.address},
                          {"peer_id", self.peer_id()},
                          {"mode", ModeName(mode)},
                          {"release_id", release->release_id()}};
  RETURN_IF_ERROR(WriteReadyFile(absl::GetFlag(FLAGS_ready_file), ready.dump()));
  LOG(INFO) << "hostile peer " << self.peer_id() << " (" << ModeName(mode)
            << ") serving " << release->display_name() << " on "
            << server.address;
  LOG(INFO) << "stopping on signal " << stop.Wait();
  return absl::OkStatus();
}

}  // namespace
}  // namespace shoal::agent::hostile

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "hostile_peer --origin=DIR --release=ID --mode=MODE --tracker=HOST:PORT "
      "--datacenter=DC --rack=RACK [flags]");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  shoal::StopSignals stop;  // before any thread starts
  absl::Status status = shoal::agent::hostile::Run(stop);
  if (!status.ok()) {
    std::cerr << "hostile_peer: " << status << "\n";
    return 1;
  }
  return 0;
}
