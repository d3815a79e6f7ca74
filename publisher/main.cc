// shoal-publish: cuts, hashes and signs releases into an origin tree, checks
// them, and serves an origin tree over HTTP.

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "glog/logging.h"
#include "publisher/cli.h"
#include "publisher/create.h"

ABSL_FLAG(std::string, out, "", "keygen: private key path (PATH.pub gets the public key); trust: trust file to write");
ABSL_FLAG(std::string, key, "", "private key file; create and sign take --key several times to co-sign");
ABSL_FLAG(std::string, name, "", "create: release name");
ABSL_FLAG(std::string, version, "", "create: release version");
ABSL_FLAG(std::string, origin, "", "origin tree directory");
ABSL_FLAG(uint64_t, piece_size, shoal::publisher::kDefaultPieceSize, "create: bytes per piece, a power of two >= 16384");
ABSL_FLAG(absl::Duration, expires_in, shoal::publisher::kDefaultExpiry, "create: how long agents accept the manifest, e.g. 720h");
ABSL_FLAG(int64_t, sequence, -1, "create: signing sequence; default the publish time in milliseconds");
ABSL_FLAG(uint32_t, threshold, 1, "trust: distinct trusted signatures a manifest needs");
ABSL_FLAG(std::string, trust, "", "trust file, or a .pub key trusted alone");
ABSL_FLAG(bool, json, false, "inspect: print one JSON object");
ABSL_FLAG(std::string, listen, "127.0.0.1:8080", "serve: HOST:PORT to listen on (port 0 picks one)");
ABSL_FLAG(std::string, metrics_listen, "", "serve: HOST:PORT for /metrics, /healthz, /readyz (port 0 picks one); empty: none");
ABSL_FLAG(std::string, ready_file, "", "serve: file to write the bound address to once serving (with --metrics_listen, the metrics address on a second line)");
ABSL_FLAG(int, threads, 0, "create/verify: worker threads (0: one per core)");
ABSL_FLAG(std::vector<std::string>, tracker, {}, "register: tracker addresses HOST:PORT, comma-separated (every datacenter's, or replicas)");
ABSL_FLAG(std::vector<std::string>, origin_url, {}, "register: base URLs of the origin tree, comma-separated");
ABSL_FLAG(std::string, tls_cert, "", "register: PEM client certificate (an admin identity on the trackers)");
ABSL_FLAG(std::string, tls_key, "", "register: PEM key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "register: PEM fleet CA");
ABSL_FLAG(bool, insecure, false, "register: plaintext to loopback trackers (demos)");
ABSL_FLAG(bool, durable, false, "create: sync all objects to disk before writing the manifest (survives power loss; runs at disk speed)");

namespace {

constexpr char kUsage[] =
    "shoal-publish COMMAND [flags] [args]\n"
    "  keygen  --out=PATH                       new Ed25519 key; prints its key id\n"
    "  trust   --out=FILE [--threshold=N] KEY.pub...\n"
    "  create  --key=PATH... --name=N --version=V --origin=DIR [--piece_size=B]\n"
    "          [--expires_in=D] [--sequence=N] [--durable] INPUT...   prints the release id\n"
    "  sign    --key=PATH... MANIFEST           add co-signatures\n"
    "  verify  --origin=DIR --trust=FILE NAME@VERSION|RELEASE_ID\n"
    "  inspect [--json] [--trust=FILE] MANIFEST\n"
    "  serve   --origin=DIR --listen=HOST:PORT [--metrics_listen=HOST:PORT] [--ready_file=F]\n"
    "  register --tracker=ADDRS --origin=DIR --origin_url=URL NAME@VERSION|RELEASE_ID\n"
    "          [--tls_cert=F --tls_key=F --tls_ca=F | --insecure]";

// absl flags keep only the last occurrence of a flag; --key may be given once
// per signer, so its occurrences are taken out of argv first.
std::vector<std::string> TakeRepeatedFlag(std::vector<char*>& args, const std::string& name) {
  std::vector<std::string> values;
  std::vector<char*> rest;
  const std::string eq = "--" + name + "=";
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (absl::StartsWith(a, eq)) {
      values.push_back(a.substr(eq.size()));
    } else if (a == "--" + name && i + 1 < args.size()) {
      values.push_back(args[++i]);
    } else {
      rest.push_back(args[i]);
    }
  }
  args = rest;
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args(argv, argv + argc);
  std::vector<std::string> keys = TakeRepeatedFlag(args, "key");
  std::vector<char*> positional = absl::ParseCommandLine(args.size(), args.data());
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  if (positional.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  std::string command = positional[1];
  std::vector<std::string> rest(positional.begin() + 2, positional.end());
  shoal::publisher::CliFlags flags;
  flags.out = absl::GetFlag(FLAGS_out);
  flags.keys = keys;
  flags.name = absl::GetFlag(FLAGS_name);
  flags.version = absl::GetFlag(FLAGS_version);
  flags.origin = absl::GetFlag(FLAGS_origin);
  flags.piece_size = absl::GetFlag(FLAGS_piece_size);
  flags.expires_in = absl::GetFlag(FLAGS_expires_in);
  if (absl::GetFlag(FLAGS_sequence) >= 0) flags.sequence = absl::GetFlag(FLAGS_sequence);
  flags.threshold = absl::GetFlag(FLAGS_threshold);
  flags.trust = absl::GetFlag(FLAGS_trust);
  flags.json = absl::GetFlag(FLAGS_json);
  flags.listen = absl::GetFlag(FLAGS_listen);
  flags.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  flags.ready_file = absl::GetFlag(FLAGS_ready_file);
  flags.threads = absl::GetFlag(FLAGS_threads);
  flags.durable = absl::GetFlag(FLAGS_durable);
  flags.trackers = absl::GetFlag(FLAGS_tracker);
  flags.origin_urls = absl::GetFlag(FLAGS_origin_url);
  flags.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  flags.tls_key = absl::GetFlag(FLAGS_tls_key);
  flags.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  flags.insecure = absl::GetFlag(FLAGS_insecure);

  using namespace shoal::publisher;
  if (command == "keygen") return RunKeygen(flags);
  if (command == "trust") return RunTrust(flags, rest);
  if (command == "sign") return RunSign(flags, rest);
  if (command == "create") return RunCreate(flags, rest);
  if (command == "verify") return RunVerify(flags, rest);
  if (command == "inspect") return RunInspect(flags, rest);
  if (command == "serve") return RunServe(flags);
  if (command == "register") return RunRegister(flags, rest);
  std::cerr << "shoal-publish: unknown command \"" << command << "\"\n" << kUsage << "\n";
  return 2;
}
