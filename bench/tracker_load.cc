// tracker_load: drives a shoal-tracker with simulated agents and prints
// announces per second and latency percentiles.
//
//   tracker_load --phase=setup --target=HOST:PORT --key=KEY --releases_file=F
//       signs --releases manifests of --pieces pieces with KEY, registers
//       them with the tracker and writes their ids to F.
//   tracker_load --phase=populate --target=... --releases_file=F
//       announces every simulated peer once: the tracker then holds them all.
//   tracker_load --phase=load --target=... --releases_file=F
//       announces for --warmup, then measures for --duration.
//
// Each simulated peer has a fixed id, address, datacenter and rack, and
// 1 to 3 of the releases; its bitfields fill a few random pieces per announce
// until it seeds. Peers announce in round-robin order, so with 10,000 peers a
// peer's next announce comes 10,000 announces after its last.
//
// Load is closed-loop by default: --in_flight calls spread over --channels
// connections stay outstanding, each answer starting the next call; the rate
// is what the tracker sustains. With --interval=D it is open-loop instead:
// every peer announces once per D on a fixed schedule, and latency counts
// from the scheduled time, so a tracker that falls behind shows it.
//
// Localhost only (plaintext gRPC). Prints a summary; --json_out=FILE also
// writes it as one JSON object for scripts.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/load_model.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/grpc_security.h"
#include "common/manifest.h"
#include "common/merkle.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "shoal/v1/manifest.pb.h"
#include "shoal/v1/tracker.grpc.pb.h"

ABSL_FLAG(std::string, phase, "load", "setup, populate or load");
ABSL_FLAG(std::string, target, "", "tracker gRPC address, loopback HOST:PORT");
ABSL_FLAG(std::string, releases_file, "",
          "release ids: written by setup, read by the other phases");
ABSL_FLAG(std::string, key, "",
          "setup: private key (shoal-publish keygen) trusted by the tracker");
ABSL_FLAG(int, releases, 100, "setup: releases to register");
ABSL_FLAG(uint32_t, pieces, 256, "setup: pieces (16 KiB each) per release");
ABSL_FLAG(int, peers, 10000, "simulated peers");
ABSL_FLAG(std::string, datacenter, "bench-dc", "the peers' datacenter");
ABSL_FLAG(int, racks, 40, "racks the peers are spread over");
ABSL_FLAG(int, channels, 8, "gRPC connections to the tracker");
ABSL_FLAG(int, in_flight, 64,
          "closed loop: calls outstanding over all connections");
ABSL_FLAG(
    absl::Duration, interval, absl::ZeroDuration(),
    "open loop: each peer announces once per this interval (0: closed loop)");
ABSL_FLAG(int, max_in_flight, 4096,
          "open loop: calls outstanding at most; the schedule waits beyond");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(3),
          "load: unmeasured time first");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "load: measured time");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(5), "deadline of each call");
ABSL_FLAG(uint64_t, seed, 1,
          "seeds the simulated peers; the same in every phase");
ABSL_FLAG(std::string, json_out, "",
          "also write the summary as JSON to this file");

namespace shoal::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

int64_t NanosSince(SteadyClock::time_point start, SteadyClock::time_point end) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(end - start)
      .count();
}

// What a run measured.
struct Summary {
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // by gRPC code name
  LatencyHistogram latency;               // of every call, failed or not
  double seconds = 0;
  std::string first_error;
  bool drained = true;  // every call ended before Run returned

  int64_t error_count() const {
    int64_t n = 0;
    for (const auto& [code, count] : errors) n += count;
    return n;
  }
};

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

struct DriveOptions {
  int in_flight = 64;
  absl::Duration interval;  // > 0: open loop
  int max_in_flight = 4096;
  absl::Duration warmup;
  absl::Duration duration;
  absl::Duration deadline;
  // > 0: stop after this many calls (and measure them all).
  int64_t max_calls = 0;
};

// Sends announces of `peers` over `stubs` and measures them. Construct, call
// Run once. Callbacks run on gRPC's threads; Run waits for every call.
class Driver {
 public:
  Driver(std::vector<std::unique_ptr<v1::Tracker::Stub>> stubs,
         std::vector<std::unique_ptr<SimPeer>>& peers, std::string datacenter,
         DriveOptions options)
      : stubs_(std::move(stubs)),
        peers_(peers),
        datacenter_(std::move(datacenter)),
        options_(options) {}

  Summary Run() {
    start_ = SteadyClock::now();
    measure_from_ = start_ + absl::ToChronoNanoseconds(options_.warmup);
    measure_to_ = measure_from_ + absl::ToChronoNanoseconds(options_.duration);
    if (options_.interval > absl::ZeroDuration()) {
      Pace();
    } else {
      for (int i = 0; i < options_.in_flight; ++i) {
        StartCall(SteadyClock::now());
      }
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(this, &Driver::Ended), Budget());
    }
    stopping_ = true;
    absl::MutexLock lock(&mu_);
    // Every call ends by its deadline; give the callbacks a little more.
    summary_.drained =
        mu_.AwaitWithTimeout(absl::Condition(this, &Driver::Drained),
                             options_.deadline + absl::Seconds(2));
    const auto measured =
        options_.max_calls > 0
            ? last_end_ - start_
            : std::min(last_end_, measure_to_) - measure_from_;
    summary_.seconds = absl::ToDoubleSeconds(absl::FromChrono(measured));
    return summary_;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    v1::AnnounceRequest request;
    v1::AnnounceResponse response;
    SimPeer* peer = nullptr;
    SteadyClock::time_point start;  // sent, or scheduled (open loop)
  };

  // Most time Run may take before it stops sending.
  absl::Duration Budget() const {
    if (options_.max_calls > 0) return absl::Minutes(10);
    return options_.warmup + options_.duration + absl::Seconds(1);
  }

  bool Ended() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; }
  bool Drained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ == 0;
  }

  // The next idle peer in round-robin order, marked busy; nullptr when all
  // calls are made or a full round found every peer busy.
  SimPeer* TakePeer() {
    for (size_t tries = 0; tries < peers_.size(); ++tries) {
      const int64_t n = next_peer_.fetch_add(1);
      if (options_.max_calls > 0 && n >= options_.max_calls) return nullptr;
      SimPeer& peer = *peers_[n % peers_.size()];
      if (!peer.busy.exchange(true)) return &peer;
    }
    return nullptr;
  }

  // Starts one announce counted from `start`; false when there was none to
  // make (the run is ending).
  bool StartCall(SteadyClock::time_point start) {
    SimPeer* peer = stopping_ ? nullptr : TakePeer();
    if (peer == nullptr) {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      return false;
    }
    auto* call = new Call;
    call->peer = peer;
    NextAnnounce(*peer, datacenter_, call->request);
    call->start = start;
    call->context.set_deadline(std::chrono::system_clock::now() +
                               absl::ToChronoNanoseconds(options_.deadline));
    const size_t channel = channel_turn_.fetch_add(1) % stubs_.size();
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
    }
    stubs_[channel]->async()->Announce(
        &call->context, &call->request, &call->response,
        [this, call](grpc::Status status) { Finish(call, status); });
    return true;
  }

  void Finish(Call* call, const grpc::Status& status) {
    const SteadyClock::time_point end = SteadyClock::now();
    call->peer->busy.store(false);
    const int64_t nanos = NanosSince(call->start, end);
    delete call;
    const bool closed_loop = options_.interval <= absl::ZeroDuration();
    const bool ending = options_.max_calls == 0 && end >= measure_to_;
    {
      absl::MutexLock lock(&mu_);
      last_end_ = std::max(last_end_, end);
      if (ending) ended_ = true;
      if (options_.max_calls > 0 ||
          (end >= measure_from_ && end < measure_to_)) {
        summary_.latency.Record(nanos);
        if (status.ok()) {
          ++summary_.ok;
        } else {
          ++summary_.errors[CodeName(status.error_code())];
          if (summary_.first_error.empty()) {
            summary_.first_error = status.error_message();
          }
        }
      }
    }
    if (closed_loop && !ending) StartCall(end);
    // Last: once nothing is outstanding, Run may return and destroy us.
    absl::MutexLock lock(&mu_);
    --outstanding_;
  }

  // Open loop: call k is due at start + k * interval / peers. A call that
  // waits for --max_in_flight still counts from its due time.
  void Pace() {
    const double per_second =
        peers_.size() / absl::ToDoubleSeconds(options_.interval);
    const SteadyClock::time_point stop = measure_to_;
    for (int64_t k = 0;; ++k) {
      const SteadyClock::time_point due =
          start_ +
          std::chrono::nanoseconds(static_cast<int64_t>(k * 1e9 / per_second));
      if (due >= stop) break;
      std::this_thread::sleep_until(due);
      {
        absl::MutexLock lock(&mu_);
        auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return outstanding_ < options_.max_in_flight;
        };
        const absl::Duration left = absl::FromChrono(stop - SteadyClock::now());
        if (!mu_.AwaitWithTimeout(absl::Condition(&room), left)) break;
      }
      if (!StartCall(due)) break;
    }
  }

  std::vector<std::unique_ptr<v1::Tracker::Stub>> stubs_;
  std::vector<std::unique_ptr<SimPeer>>& peers_;
  const std::string datacenter_;
  const DriveOptions options_;
  SteadyClock::time_point start_, measure_from_, measure_to_;
  std::atomic<int64_t> next_peer_{0};
  std::atomic<size_t> channel_turn_{0};
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  SteadyClock::time_point last_end_ ABSL_GUARDED_BY(mu_);
  Summary summary_ ABSL_GUARDED_BY(mu_);
};

// `count` stubs, each on a connection of its own: channels with the same
// arguments would share one connection (gRPC's global subchannel pool).
absl::StatusOr<std::vector<std::unique_ptr<v1::Tracker::Stub>>> MakeStubs(
    const std::string& target, int count) {
  if (!IsLoopbackAddress(target)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target=", target,
                     ": the benchmark talks plaintext to loopback only"));
  }
  std::vector<std::unique_ptr<v1::Tracker::Stub>> stubs;
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args = GrpcSecurity::ChannelArgs();
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("shoal.bench.connection", i);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(5))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", target));
    }
    stubs.push_back(v1::Tracker::NewStub(channel));
  }
  return stubs;
}

// --- Phases. ---

std::string SignedRelease(const PrivateKey& key, int index, uint32_t pieces) {
  v1::ManifestBody body;
  body.set_format(kManifestFormat);
  body.set_name(absl::StrFormat("bench-release-%03d", index));
  body.set_version("1.0");
  body.set_sequence(1);
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  body.set_created_unix_ms(now_ms);
  body.set_expires_unix_ms(now_ms + absl::ToInt64Milliseconds(absl::Hours(24)));
  body.set_piece_size(kBlockSize);
  v1::FileEntry* file = body.add_files();
  file->set_path("payload.bin");
  file->set_size(uint64_t{pieces} * kBlockSize);
  file->set_mode(0644);
  file->set_pieces_root(std::string(DigestBytes(Sha256(body.name()))));
  return SignManifest(body, {key}).value().SerializeAsString();
}

absl::Status Setup() {
  ASSIGN_OR_RETURN(PrivateKey key,
                   ReadPrivateKeyFile(absl::GetFlag(FLAGS_key)));
  TlsFlags tls;
  tls.insecure = true;
  ASSIGN_OR_RETURN(GrpcSecurity security, GrpcSecurity::Create(tls));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                   security.MakeChannel(absl::GetFlag(FLAGS_target)));
  std::unique_ptr<v1::Tracker::Stub> stub = v1::Tracker::NewStub(channel);
  const uint32_t pieces = absl::GetFlag(FLAGS_pieces);
  std::string listing;
  for (int i = 0; i < absl::GetFlag(FLAGS_releases); ++i) {
    v1::RegisterReleaseRequest request;
    request.set_manifest(SignedRelease(key, i, pieces));
    request.add_origin_urls("http://127.0.0.1:9/bench-origin");
    v1::RegisterReleaseResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    RETURN_IF_ERROR(
        FromGrpcStatus(stub->RegisterRelease(&context, request, &response)));
    absl::StrAppend(&listing, response.release_id(), " ", pieces, "\n");
  }
  RETURN_IF_ERROR(WriteFileAtomically(absl::GetFlag(FLAGS_releases_file),
                                      listing, 0644, /*durable=*/false));
  std::cout << "registered " << absl::GetFlag(FLAGS_releases) << " releases of "
            << pieces << " pieces\n";
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Release>> ReadReleases(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  std::vector<Release> releases;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    Release release;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[1], &release.pieces)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": bad line \"", line, "\""));
    }
    release.id = std::string(fields[0]);
    releases.push_back(std::move(release));
  }
  if (releases.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no releases"));
  }
  return releases;
}

double Millis(int64_t nanos) { return nanos / 1e6; }

void Report(const std::string& phase, const Summary& s) {
  const int64_t calls = s.ok + s.error_count();
  const double rate = s.seconds > 0 ? s.ok / s.seconds : 0;
  const double p50 = Millis(s.latency.Quantile(0.5));
  const double p90 = Millis(s.latency.Quantile(0.9));
  const double p99 = Millis(s.latency.Quantile(0.99));
  const double p999 = Millis(s.latency.Quantile(0.999));
  const double max = Millis(s.latency.Quantile(1.0));
  std::cout << absl::StrFormat(
      "%s: %d announces in %.2f s: %.0f/s ok; latency ms p50 %.2f p90 %.2f "
      "p99 %.2f p99.9 %.2f max %.2f; errors %d\n",
      phase, calls, s.seconds, rate, p50, p90, p99, p999, max, s.error_count());
  std::string codes;
  for (const auto& [code, count] : s.errors) {
    std::cout << "  " << code << ": " << count << "\n";
    absl::StrAppend(&codes, codes.empty() ? "" : ",", "\"", code, "\":", count);
  }
  if (!s.first_error.empty()) {
    std::cout << "  first error: " << s.first_error << "\n";
  }
  const std::string json_path = absl::GetFlag(FLAGS_json_out);
  if (json_path.empty()) return;
  std::ofstream(json_path) << absl::StrFormat(
      "{\"phase\":\"%s\",\"calls\":%d,\"ok\":%d,\"seconds\":%.3f,"
      "\"rate\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
      "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%d,"
      "\"error_codes\":{%s}}\n",
      phase, calls, s.ok, s.seconds, rate, p50, p90, p99, p999, max,
      s.error_count(), codes);
}

absl::Status Drive(const std::string& phase) {
  ASSIGN_OR_RETURN(std::vector<Release> releases,
                   ReadReleases(absl::GetFlag(FLAGS_releases_file)));
  const int peer_count = absl::GetFlag(FLAGS_peers);
  if (peer_count < 1 || absl::GetFlag(FLAGS_channels) < 1 ||
      absl::GetFlag(FLAGS_in_flight) < 1) {
    return absl::InvalidArgumentError(
        "--peers, --channels and --in_flight must be at least 1");
  }
  std::vector<std::unique_ptr<SimPeer>> peers =
      MakePeers(releases, peer_count, absl::GetFlag(FLAGS_racks),
                absl::GetFlag(FLAGS_seed));
  ASSIGN_OR_RETURN(auto stubs, MakeStubs(absl::GetFlag(FLAGS_target),
                                         absl::GetFlag(FLAGS_channels)));
  DriveOptions options;
  options.in_flight = std::min(absl::GetFlag(FLAGS_in_flight), peer_count);
  options.deadline = absl::GetFlag(FLAGS_deadline);
  if (phase == "populate") {
    options.max_calls = peer_count;
  } else {
    options.interval = absl::GetFlag(FLAGS_interval);
    options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);
    options.warmup = absl::GetFlag(FLAGS_warmup);
    options.duration = absl::GetFlag(FLAGS_duration);
    if (options.duration <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("--duration must be positive");
    }
  }
  Driver driver(std::move(stubs), peers, absl::GetFlag(FLAGS_datacenter),
                options);
  const Summary summary = driver.Run();
  Report(phase, summary);
  if (!summary.drained) {
    // Late callbacks would touch the driver and the peers: leave without
    // destroying them.
    std::cerr << "tracker_load: calls outlived their deadline\n";
    std::_Exit(1);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "tracker_load --phase=setup|populate|load --target=HOST:PORT "
      "--releases_file=F [flags]");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil leaves absl::Mutex deadlock detection on, which puts
  // every lock (gRPC's included) through one process-wide graph.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string phase = absl::GetFlag(FLAGS_phase);
  absl::Status status;
  if (phase == "setup") {
    status = shoal::bench::Setup();
  } else if (phase == "populate" || phase == "load") {
    status = shoal::bench::Drive(phase);
  } else {
    status =
        absl::InvalidArgumentError("--phase must be setup, populate or load");
  }
  if (!status.ok()) {
    std::cerr << "tracker_load: " << status << "\n";
    return 1;
  }
  return 0;
}
