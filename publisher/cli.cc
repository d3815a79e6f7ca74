#include "publisher/cli.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/ed25519.h"
#include "common/file_util.h"
#include "common/manifest.h"
#include "common/metrics_server.h"
#include "common/status_macros.h"
#include "common/trust.h"
#include "glog/logging.h"
#include "prometheus/registry.h"
#include "publisher/create.h"
#include "publisher/inspect.h"
#include "publisher/origin_server.h"
#include "publisher/register.h"
#include "publisher/verify.h"

namespace shoal::publisher {
namespace {

constexpr uint64_t kMaxManifestBytes = 64 << 20;

int Fail(const absl::Status& status) {
  std::cerr << "shoal-publish: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

int Usage(absl::string_view message) {
  std::cerr << "shoal-publish: " << message << "\n(see shoal-publish --help)\n";
  return 2;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", bytes, units[u]);
}

// A progress line on stderr, redrawn at most ten times a second; only used
// when stderr is a terminal.
class ProgressLine {
 public:
  void Update(uint64_t done, uint64_t total) {
    absl::Time now = absl::Now();
    if (done < total && now - last_ < absl::Milliseconds(100)) return;
    last_ = now;
    double secs = absl::ToDoubleSeconds(now - start_);
    double pct = total == 0 ? 100.0 : 100.0 * done / total;
    std::cerr << absl::StrFormat("\r  hashing %5.1f%%  %s of %s  %s/s   ", pct,
                                 HumanBytes(done), HumanBytes(total),
                                 HumanBytes(secs > 0 ? done / secs : 0));
    if (done == total) std::cerr << "\n";
  }

 private:
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
};

absl::StatusOr<std::vector<PrivateKey>> LoadKeys(const std::vector<std::string>& paths) {
  std::vector<PrivateKey> keys;
  for (const std::string& path : paths) {
    ASSIGN_OR_RETURN(PrivateKey key, ReadPrivateKeyFile(path));
    keys.push_back(std::move(key));
  }
  return keys;
}

OriginServerOptions ServeOptions(const CliFlags& flags) {
  OriginServerOptions options;
  options.root_dir = flags.origin;
  options.listen = flags.listen;
  return options;
}

}  // namespace

int RunKeygen(const CliFlags& flags) {
  if (flags.out.empty()) return Usage("keygen needs --out=PATH");
  absl::StatusOr<PrivateKey> key = PrivateKey::Generate();
  if (!key.ok()) return Fail(key.status());
  if (absl::Status s = WritePrivateKeyFile(flags.out, *key); !s.ok()) return Fail(s);
  std::string pub = absl::StrCat(flags.out, ".pub");
  if (absl::Status s = WritePublicKeyFile(pub, key->public_key()); !s.ok()) return Fail(s);
  std::cerr << "wrote private key " << flags.out << " (mode 0600) and public key "
            << pub << "\n";
  std::cout << key->public_key().key_id() << "\n";
  return 0;
}

int RunTrust(const CliFlags& flags, const std::vector<std::string>& pubs) {
  if (flags.out.empty()) return Usage("trust needs --out=FILE");
  if (pubs.empty()) return Usage("trust needs at least one KEY.pub");
  std::vector<PublicKey> keys;
  for (const std::string& path : pubs) {
    absl::StatusOr<PublicKey> key = ReadPublicKeyFile(path);
    if (!key.ok()) return Fail(key.status());
    keys.push_back(*std::move(key));
  }
  absl::StatusOr<TrustPolicy> policy = TrustPolicy::Create(std::move(keys), flags.threshold);
  if (!policy.ok()) return Fail(policy.status());
  if (absl::Status s = WriteTrustFile(flags.out, *policy); !s.ok()) return Fail(s);
  std::cerr << "wrote " << flags.out << ": " << policy->keys().size()
            << " key(s), threshold " << policy->threshold() << "\n";
  return 0;
}

int RunSign(const CliFlags& flags, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("sign needs --key=PATH and one MANIFEST");
  if (flags.keys.empty()) return Usage("sign needs --key=PATH");
  absl::StatusOr<std::vector<PrivateKey>> keys = LoadKeys(flags.keys);
  if (!keys.ok()) return Fail(keys.status());
  absl::StatusOr<std::string> bytes = ReadFile(args[0], kMaxManifestBytes);
  if (!bytes.ok()) return Fail(bytes.status());
  v1::SignedManifest manifest;
  if (!manifest.ParseFromString(*bytes)) {
    return Fail(absl::DataLossError(absl::StrCat(args[0], " is not a Shoal manifest")));
  }
  for (const PrivateKey& key : *keys) {
    if (absl::Status s = AddSignature(manifest, key); !s.ok()) return Fail(s);
  }
  // The body bytes are untouched, so the release id and file name stay valid.
  if (absl::Status s = WriteFileAtomically(args[0], manifest.SerializeAsString(), 0644);
      !s.ok()) {
    return Fail(s);
  }
  std::cerr << args[0] << " now has " << manifest.signatures_size() << " signature(s)\n";
  return 0;
}

int RunCreate(const CliFlags& flags, const std::vector<std::string>& inputs) {
  CreateOptions options;
  options.name = flags.name;
  options.version = flags.version;
  options.origin_dir = flags.origin;
  options.inputs = inputs;
  options.piece_size = flags.piece_size;
  options.expires_in = flags.expires_in;
  options.sequence = flags.sequence;
  options.threads = flags.threads;
  options.durable = flags.durable;
  absl::StatusOr<std::vector<PrivateKey>> keys = LoadKeys(flags.keys);
  if (!keys.ok()) return Fail(keys.status());
  options.keys = *std::move(keys);
  ProgressLine progress;
  if (isatty(STDERR_FILENO)) {
    options.progress = [&progress](uint64_t done, uint64_t total) {
      progress.Update(done, total);
    };
  }
  RealClock clock;
  absl::Time start = clock.Now();
  absl::StatusOr<CreateResult> result = CreateRelease(options, clock);
  if (!result.ok()) return Fail(result.status());
  double secs = absl::ToDoubleSeconds(clock.Now() - start);
  const Manifest& m = result->manifest;
  std::cerr << absl::StrFormat(
      "published %s: %d file(s), %s, %d new piece(s), %d already in the origin, "
      "%.2f s\n",
      m.display_name(), m.body().files_size(), HumanBytes(m.total_size()),
      result->pieces_written, result->pieces_reused, secs);
  std::cout << m.release_id() << "\n";
  return 0;
}

int RunVerify(const CliFlags& flags, const std::vector<std::string>& args) {
  if (args.size() != 1 || flags.origin.empty() || flags.trust.empty()) {
    return Usage("verify needs --origin=DIR --trust=FILE and one NAME@VERSION or RELEASE_ID");
  }
  absl::StatusOr<TrustPolicy> trust = TrustPolicy::Load(flags.trust);
  if (!trust.ok()) return Fail(trust.status());
  RealClock clock;
  int threads = flags.threads > 0 ? flags.threads : std::max(1u, std::thread::hardware_concurrency());
  absl::StatusOr<VerifyReport> report = VerifyRelease(flags.origin, args[0], *trust, clock, threads);
  if (!report.ok()) return Fail(report.status());
  std::cout << absl::StrFormat("%s (%s): intact, %d piece(s), %s checked\n",
                               report->manifest.display_name(),
                               report->manifest.release_id(), report->pieces_checked,
                               HumanBytes(report->bytes_checked));
  return 0;
}

int RunInspect(const CliFlags& flags, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("inspect needs one MANIFEST file");
  absl::StatusOr<std::string> bytes = ReadFile(args[0], kMaxManifestBytes);
  if (!bytes.ok()) return Fail(bytes.status());
  bool verified = !flags.trust.empty();
  absl::StatusOr<Manifest> manifest;
  if (verified) {
    absl::StatusOr<TrustPolicy> trust = TrustPolicy::Load(flags.trust);
    if (!trust.ok()) return Fail(trust.status());
    manifest = Manifest::Verify(*bytes, *trust, absl::Now());
  } else {
    manifest = Manifest::ParseUnverified(*bytes);
  }
  if (!manifest.ok()) {
    return Fail(absl::Status(manifest.status().code(),
                             absl::StrCat(args[0], ": ", manifest.status().message())));
  }
  std::cout << (flags.json ? InspectJson(*manifest, verified) + "\n"
                           : InspectText(*manifest, verified));
  return 0;
}

int RunServe(const CliFlags& flags) {
  if (flags.origin.empty() || flags.listen.empty()) {
    return Usage("serve needs --origin=DIR and --listen=HOST:PORT");
  }
  StopSignals stop;  // before civetweb starts its threads
  // Shared with the metrics listener; outlives the server that counts into it.
  std::shared_ptr<prometheus::Registry> registry;
  OriginServerOptions options = ServeOptions(flags);
  if (!flags.metrics_listen.empty()) {
    registry = std::make_shared<prometheus::Registry>();
    options.metrics = registry.get();
  }
  absl::StatusOr<std::unique_ptr<OriginServer>> server = OriginServer::Start(options);
  if (!server.ok()) return Fail(server.status());
  std::string ready = (*server)->address();
  std::unique_ptr<MetricsServer> metrics;  // stops before the origin server
  if (registry != nullptr) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> started = MetricsServer::Start(
        flags.metrics_listen, registry, [origin = server->get()] { return origin->CheckRoot(); });
    if (!started.ok()) return Fail(started.status());
    metrics = *std::move(started);
    absl::StrAppend(&ready, "\n", metrics->address());
  }
  if (absl::Status s = WriteReadyFile(flags.ready_file, ready); !s.ok()) return Fail(s);
  LOG(INFO) << "stopping on signal " << stop.Wait();
  return 0;
}

int RunRegister(const CliFlags& flags, const std::vector<std::string>& args) {
  if (args.size() != 1) {
    return Usage("register needs --tracker=ADDRS --origin=DIR --origin_url=URL and one NAME@VERSION or RELEASE_ID");
  }
  absl::StatusOr<GrpcSecurity> security = GrpcSecurity::Create(
      TlsFlags{flags.tls_cert, flags.tls_key, flags.tls_ca, flags.insecure});
  if (!security.ok()) return Fail(security.status());
  RegisterOptions options;
  options.origin_dir = flags.origin;
  options.release = args[0];
  options.origin_urls = flags.origin_urls;
  options.trackers = flags.trackers;
  std::string id;
  absl::StatusOr<std::vector<RegisterOutcome>> outcomes =
      RegisterRelease(options, *security, &id);
  if (!outcomes.ok()) return Fail(outcomes.status());
  int failed = 0;
  for (const RegisterOutcome& o : *outcomes) {
    if (o.status.ok()) {
      std::cerr << o.tracker << ": " << (o.created ? "registered " : "already registered ")
                << id << "\n";
    } else {
      ++failed;
      std::cerr << o.tracker << ": " << absl::StatusCodeToString(o.status.code()) << ": "
                << o.status.message() << "\n";
    }
  }
  if (failed > 0) {
    std::cerr << "shoal-publish: " << failed << " of " << outcomes->size()
              << " tracker(s) did not accept the release\n";
    return 1;
  }
  std::cout << id << "\n";
  return 0;
}

}  // namespace shoal::publisher
