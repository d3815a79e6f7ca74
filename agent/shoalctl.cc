// shoalctl: the human's command line to a local shoal-agent.
//
//   shoalctl [--agent=SOCKET] fetch NAME@VERSION|ID [--timeout=DURATION] [--json]
//   shoalctl [--agent=SOCKET] status [--json]
//   shoalctl [--agent=SOCKET] remove NAME@VERSION|ID

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/grpc_security.h"
#include "nlohmann/json.hpp"
#include "shoal/v1/agent.grpc.pb.h"

ABSL_FLAG(std::string, agent, "", "control socket of the agent (default $SHOAL_AGENT, else /var/lib/shoal/agent.sock)");
ABSL_FLAG(absl::Duration, timeout, absl::InfiniteDuration(), "fetch: give up after this long");
ABSL_FLAG(bool, json, false, "print one JSON object on stdout");

namespace {

constexpr char kUsage[] =
    "shoalctl [--agent=SOCKET] COMMAND\n"
    "  fetch NAME@VERSION|ID [--timeout=D] [--json]   download and verify a release\n"
    "  status [--json]                                what the agent holds\n"
    "  remove NAME@VERSION|ID                         stop and delete a release";

std::string SocketPath() {
  std::string flag = absl::GetFlag(FLAGS_agent);
  if (!flag.empty()) return flag;
  const char* env = getenv("SHOAL_AGENT");
  return env != nullptr && *env != '\0' ? env : "/var/lib/shoal/agent.sock";
}

std::unique_ptr<shoal::v1::AgentControl::Stub> Connect(const std::string& socket) {
  auto security = shoal::GrpcSecurity::Create(shoal::TlsFlags{"", "", "", true});
  auto channel = security->MakeChannel("unix:" + socket);
  if (!channel.ok()) return nullptr;
  return shoal::v1::AgentControl::NewStub(*channel);
}

int Fail(const std::string& socket, const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::cerr << "shoalctl: agent not running at " << socket << " (" << s.error_message()
              << ")\n";
  } else {
    std::cerr << "shoalctl: " << s.error_message() << "\n";
  }
  return 1;
}

std::string Line(const shoal::v1::ReleaseStatus& s, double seconds) {
  double pct = s.total_size() == 0 ? 100.0 : 100.0 * s.bytes_verified() / s.total_size();
  uint64_t got = s.bytes_from_peers() + s.bytes_from_origin();
  double peer_share = got == 0 ? 0 : 100.0 * s.bytes_from_peers() / got;
  return absl::StrFormat(
      "%s@%s %5.1f%% %d/%d pieces, %.1f MiB, %.1f MiB/s, %d peers, %.0f%% from peers, "
      "%d proof failures, %d banned",
      s.name(), s.version(), pct, s.pieces_verified(), s.total_pieces(),
      s.bytes_verified() / 1048576.0, seconds > 0 ? s.bytes_verified() / 1048576.0 / seconds : 0,
      s.peers_connected(), peer_share, s.proof_failures(), s.peers_banned());
}

int RunFetch(shoal::v1::AgentControl::Stub& stub, const std::string& socket,
             const std::string& release) {
  grpc::ClientContext ctx;
  absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout != absl::InfiniteDuration()) {
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  }
  shoal::v1::FetchRequest request;
  request.set_release(release);
  auto reader = stub.Fetch(&ctx, request);
  absl::Time start = absl::Now();
  bool tty = isatty(STDERR_FILENO);
  shoal::v1::ReleaseStatus last;
  absl::Time last_print = absl::InfinitePast();
  while (reader->Read(&last)) {
    absl::Time now = absl::Now();
    std::string line = Line(last, absl::ToDoubleSeconds(now - start));
    if (tty) {
      std::cerr << "\r" << line << "\033[K";
    } else if (now - last_print >= absl::Seconds(5)) {
      std::cerr << line << "\n";
      last_print = now;
    }
  }
  if (tty) std::cerr << "\n";
  grpc::Status s = reader->Finish();
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::cerr << "shoalctl: " << release << " not complete after --timeout\n";
      return 1;
    }
    return Fail(socket, s);
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::cerr << Line(last, seconds) << "\ncomplete and verified: " << last.release_id() << "\n";
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"release_id", last.release_id()},   {"name", last.name()},
                        {"version", last.version()},         {"size", last.total_size()},
                        {"seconds", seconds},                {"bytes_from_peers", last.bytes_from_peers()},
                        {"bytes_from_origin", last.bytes_from_origin()}};
    std::cout << j.dump() << "\n";
  }
  return 0;
}

int RunStatus(shoal::v1::AgentControl::Stub& stub, const std::string& socket) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  shoal::v1::StatusResponse response;
  grpc::Status s = stub.Status(&ctx, shoal::v1::StatusRequest(), &response);
  if (!s.ok()) return Fail(socket, s);
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j;
    j["peer_id"] = response.peer_id();
    j["advertise"] = response.advertise();
    j["disk_bytes"] = response.disk_bytes();
    j["releases"] = nlohmann::json::array();
    for (const auto& r : response.releases()) {
      j["releases"].push_back({{"release_id", r.release_id()},
                               {"name", r.name()},
                               {"version", r.version()},
                               {"state", shoal::v1::ReleaseState_Name(r.state())},
                               {"pieces_verified", r.pieces_verified()},
                               {"total_pieces", r.total_pieces()},
                               {"bytes_from_peers", r.bytes_from_peers()},
                               {"bytes_from_origin", r.bytes_from_origin()},
                               {"bytes_sent", r.bytes_sent()},
                               {"error", r.error()}});
    }
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << "agent " << response.peer_id() << " at " << response.advertise() << " ("
            << response.datacenter() << "/" << response.rack() << "), "
            << response.disk_bytes() / 1048576 << " MiB on disk\n";
  for (const auto& r : response.releases()) {
    std::cout << "  " << shoal::v1::ReleaseState_Name(r.state()) << "  " << Line(r, 0) << "\n";
  }
  return 0;
}

int RunRemove(shoal::v1::AgentControl::Stub& stub, const std::string& socket,
              const std::string& release) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  shoal::v1::RemoveRequest request;
  request.set_release(release);
  shoal::v1::RemoveResponse response;
  grpc::Status s = stub.Remove(&ctx, request, &response);
  if (!s.ok()) return Fail(socket, s);
  std::cerr << "removed " << response.release_id() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  std::string command = args[1];
  std::string socket = SocketPath();
  auto stub = Connect(socket);
  if (stub == nullptr) {
    std::cerr << "shoalctl: cannot use control socket " << socket << "\n";
    return 1;
  }
  if (command == "fetch" && args.size() == 3) return RunFetch(*stub, socket, args[2]);
  if (command == "status" && args.size() == 2) return RunStatus(*stub, socket);
  if (command == "remove" && args.size() == 3) return RunRemove(*stub, socket, args[2]);
  std::cerr << kUsage << "\n";
  return 2;
}
