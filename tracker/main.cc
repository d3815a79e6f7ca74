// shoal-tracker: coordinates the swarms of one datacenter.

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "glog/logging.h"
#include "tracker/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "gRPC address HOST:PORT (port 0 picks one)");
ABSL_FLAG(std::string, datacenter, "", "this tracker's datacenter (required)");
ABSL_FLAG(std::string, trust, "", "trust file or publisher .pub key (required)");
ABSL_FLAG(std::string, store, "memory", "\"memory\" or redis://HOST:PORT[/DB] shared by replicas");
ABSL_FLAG(std::string, metrics_listen, "", "HOST:PORT for /metrics, /healthz, /readyz");
ABSL_FLAG(std::string, admin_identities, "", "comma-separated certificate identities allowed to register releases and change rollouts");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate of this tracker");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM fleet CA that signs agents' and admins' certificates");
ABSL_FLAG(bool, insecure, false, "plaintext, no client authentication; loopback addresses only");
ABSL_FLAG(std::string, ready_file, "", "file to write {\"grpc\":..,\"metrics\":..} to once serving");
ABSL_FLAG(int, lease_holders, 1, "agents per datacenter that may fetch one piece from the origin at once");
ABSL_FLAG(absl::Duration, announce_interval, absl::Seconds(30), "how often agents announce");
ABSL_FLAG(absl::Duration, peer_ttl, absl::Seconds(90), "peers not announcing for this long are forgotten");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(60), "how long an origin lease lasts");
ABSL_FLAG(bool, return_other_datacenters, false, "also hand out peers of other datacenters");
ABSL_FLAG(uint32_t, max_peers_returned, 50, "cap on peers per GetPeers answer");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("shoal-tracker --datacenter=NAME --trust=FILE [flags]");
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex deadlock
  // detection on: every lock and unlock, gRPC's own per-call mutexes
  // included, then goes through one process-wide lock graph. Tests keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  shoal::tracker::TrackerConfig config;
  config.listen = absl::GetFlag(FLAGS_listen);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.trust_path = absl::GetFlag(FLAGS_trust);
  config.store = absl::GetFlag(FLAGS_store);
  config.admin_identities =
      absl::StrSplit(absl::GetFlag(FLAGS_admin_identities), ',', absl::SkipEmpty());
  config.tls = {absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_insecure)};
  config.options.datacenter = absl::GetFlag(FLAGS_datacenter);
  config.options.lease_holders = absl::GetFlag(FLAGS_lease_holders);
  config.options.announce_interval = absl::GetFlag(FLAGS_announce_interval);
  config.options.peer_ttl = absl::GetFlag(FLAGS_peer_ttl);
  config.options.lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  config.options.return_other_datacenters = absl::GetFlag(FLAGS_return_other_datacenters);
  config.options.max_peers_returned = absl::GetFlag(FLAGS_max_peers_returned);

  shoal::StopSignals stop;  // before any thread starts

  shoal::RealClock clock;
  absl::StatusOr<std::unique_ptr<shoal::tracker::TrackerServer>> server =
      shoal::tracker::TrackerServer::Start(config, clock);
  if (!server.ok()) {
    std::cerr << "shoal-tracker: " << server.status().message() << "\n";
    return 1;
  }
  absl::Status ready = shoal::WriteReadyFile(absl::GetFlag(FLAGS_ready_file), (*server)->ReadyJson());
  if (!ready.ok()) {
    std::cerr << "shoal-tracker: " << ready.message() << "\n";
    return 1;
  }
  LOG(INFO) << "stopping on signal " << stop.Wait();
  (*server)->Shutdown();
  return 0;
}
