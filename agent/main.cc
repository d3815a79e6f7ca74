// shoal-agent: downloads releases from nearby peers (and the origin when it
// must), verifies every piece, serves them on, and answers shoalctl.

#include <malloc.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "agent/agent.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "glog/logging.h"

ABSL_FLAG(std::string, tracker, "", "tracker replicas of this datacenter, HOST:PORT,...");
ABSL_FLAG(std::string, listen, "127.0.0.1:7080", "peer data plane HOST:PORT (port 0 picks one)");
ABSL_FLAG(std::string, advertise, "", "HOST:PORT peers dial (default: the bound --listen)");
ABSL_FLAG(std::string, control, "", "control socket path (default <data_dir>/agent.sock)");
ABSL_FLAG(std::string, data_dir, "/var/lib/shoal", "where releases and state are kept");
ABSL_FLAG(std::string, datacenter, "", "this machine's datacenter (required)");
ABSL_FLAG(std::string, rack, "", "this machine's rack (required)");
ABSL_FLAG(std::string, trust, "", "trust file or publisher .pub key (required)");
ABSL_FLAG(std::string, origin, "", "origin base URL when the tracker names none");
ABSL_FLAG(std::string, metrics_listen, "", "HOST:PORT for /metrics, /healthz, /readyz");
ABSL_FLAG(std::string, ready_file, "", "file to write the bound addresses to (JSON) once serving");
ABSL_FLAG(int, max_peers, 16, "peer sessions per downloading release");
ABSL_FLAG(int, max_uploads, 32, "pieces served at once");
ABSL_FLAG(uint64_t, upload_limit, 0, "bytes per second served to peers (0: no limit)");
ABSL_FLAG(uint64_t, download_limit, 0, "bytes per second fetched from peers (0: no limit)");
ABSL_FLAG(bool, durable, true, "fdatasync pieces before recording them (survives power loss)");
ABSL_FLAG(bool, direct_io, true,
          "write and read whole pieces with O_DIRECT, past the page cache (off for disks much "
          "slower than the network)");
ABSL_FLAG(uint64_t, disk_quota, 0,
          "bytes the release store may take; least recently used releases that are complete, "
          "unpinned, not installed as current and not a followed channel's target are evicted "
          "to make room (0: no limit)");
ABSL_FLAG(std::string, follow, "",
          "CHANNEL=DIR[,CHANNEL=DIR...]: install each channel's release (name/channel) into DIR "
          "as it rolls out");
ABSL_FLAG(absl::Duration, seed_time, absl::Hours(24),
          "how long a release keeps seeding after its channel moved on");
ABSL_FLAG(std::string, post_install, "",
          "shell command run after each install, with the new version's path as $1 and "
          "$SHOAL_INSTALL_PATH");
ABSL_FLAG(absl::Duration, post_install_timeout, absl::Minutes(10),
          "the --post_install command is killed after this long");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate of this agent");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM fleet CA");
ABSL_FLAG(bool, insecure, false, "plaintext, loopback only (demos)");

int main(int argc, char** argv) {
  // Piece buffers are 1-4 MiB. glibc maps and unmaps every block of 128 KiB
  // or more by default, so each piece would pay page faults and zeroing.
  // bench/data_plane_bench.sh: 3.05 -> 2.85 CPU s/GB (both agents) with this.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  absl::SetProgramUsageMessage(
      "shoal-agent --tracker=HOST:PORT --datacenter=DC --rack=RACK --trust=FILE [flags]");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);

  shoal::agent::AgentConfig config;
  config.trackers = absl::StrSplit(absl::GetFlag(FLAGS_tracker), ',', absl::SkipEmpty());
  config.listen = absl::GetFlag(FLAGS_listen);
  config.advertise = absl::GetFlag(FLAGS_advertise);
  config.control = absl::GetFlag(FLAGS_control);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.datacenter = absl::GetFlag(FLAGS_datacenter);
  config.rack = absl::GetFlag(FLAGS_rack);
  config.trust_path = absl::GetFlag(FLAGS_trust);
  config.origin_url = absl::GetFlag(FLAGS_origin);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.download.max_peers = absl::GetFlag(FLAGS_max_peers);
  config.peer_service.max_uploads = absl::GetFlag(FLAGS_max_uploads);
  config.durable = absl::GetFlag(FLAGS_durable);
  config.direct_io = absl::GetFlag(FLAGS_direct_io);
  config.post_install = absl::GetFlag(FLAGS_post_install);
  config.disk_quota = absl::GetFlag(FLAGS_disk_quota);
  config.seed_time = absl::GetFlag(FLAGS_seed_time);
  if (!absl::GetFlag(FLAGS_follow).empty()) {
    absl::StatusOr<std::vector<shoal::agent::ChannelSpec>> follow =
        shoal::agent::ParseFollowFlag(absl::GetFlag(FLAGS_follow));
    if (!follow.ok()) {
      std::cerr << "shoal-agent: " << follow.status().message() << "\n";
      return 2;
    }
    config.follow = *std::move(follow);
  }
  config.post_install_timeout = absl::GetFlag(FLAGS_post_install_timeout);
  config.upload_limit = absl::GetFlag(FLAGS_upload_limit);
  config.download_limit = absl::GetFlag(FLAGS_download_limit);
  if (config.upload_limit > (uint64_t{1} << 40) || config.download_limit > (uint64_t{1} << 40)) {
    std::cerr << "shoal-agent: --upload_limit and --download_limit must be at most 2^40 bytes/s\n";
    return 2;
  }
  config.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_insecure)};

  shoal::StopSignals stop;  // before any thread starts

  shoal::RealClock clock;
  absl::StatusOr<std::unique_ptr<shoal::agent::Agent>> agent =
      shoal::agent::Agent::Start(config, clock);
  if (!agent.ok()) {
    std::cerr << "shoal-agent: " << agent.status().message() << "\n";
    return 1;
  }
  absl::Status ready = shoal::WriteReadyFile(absl::GetFlag(FLAGS_ready_file), (*agent)->ReadyJson());
  if (!ready.ok()) {
    std::cerr << "shoal-agent: " << ready.message() << "\n";
    return 1;
  }
  LOG(INFO) << "stopping on signal " << stop.Wait();
  agent->reset();
  return 0;
}
