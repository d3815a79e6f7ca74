#include "agent/shoalctl_tracker.h"

#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/shoalctl_tracker_output.h"
#include "agent/tracker_client.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "shoal/v1/tracker.grpc.pb.h"

namespace shoal::agent {
namespace {

// One tracker address while a command runs on it.
struct TrackerCall {
  const std::string& address;
  v1::Tracker::Stub& stub;
  absl::Time deadline;     // for all calls of this command on this tracker
  absl::Duration timeout;  // what the deadline was made from, for messages
};

void SetDeadline(grpc::ClientContext& ctx, absl::Time deadline) {
  ctx.set_deadline(absl::ToChronoTime(deadline));
}

// A failed call, worded for the person at the terminal and naming the
// address. Codes whose meaning depends on the command (NOT_FOUND) are the
// caller's to word first.
absl::Status CallError(const TrackerCall& call, const grpc::Status& s) {
  const std::string& message = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat(
          "tracker not reachable at ", call.address, " (", message, ")"));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(
          absl::StrCat("tracker at ", call.address, " did not answer within ",
                       absl::FormatDuration(call.timeout)));
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(
          absl::StrCat("tracker ", call.address, " refused: ", message));
    default:
      return absl::Status(
          FromGrpcStatus(s).code(),
          absl::StrCat("tracker ", call.address, ": ", message));
  }
}

// Runs `run` on every address at once, one thread each; results in address
// order. A channel that cannot be made (--insecure to a remote address) is
// that address's failure.
template <typename T>
std::vector<absl::StatusOr<T>> OnEveryTracker(
    const std::vector<std::string>& addresses, const GrpcSecurity& security,
    absl::Duration timeout,
    const std::function<absl::StatusOr<T>(const TrackerCall&)>& run) {
  std::vector<absl::StatusOr<T>> results(addresses.size(),
                                         absl::UnknownError("not asked"));
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<std::thread> threads;
  for (size_t i = 0; i < addresses.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
          security.MakeChannel(addresses[i]);
      if (!channel.ok()) {
        results[i] = absl::Status(channel.status().code(),
                                  absl::StrCat("tracker ", addresses[i], ": ",
                                               channel.status().message()));
        return;
      }
      std::unique_ptr<v1::Tracker::Stub> stub = v1::Tracker::NewStub(*channel);
      results[i] = run(TrackerCall{addresses[i], *stub, deadline, timeout});
    });
  }
  for (std::thread& thread : threads) thread.join();
  return results;
}

// Prints each failure and a summary naming the failed addresses; the exit
// code.
template <typename T>
int ReportFailures(absl::string_view what,
                   const std::vector<std::string>& addresses,
                   const std::vector<absl::StatusOr<T>>& results,
                   std::ostream& err) {
  std::vector<std::string> failed;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    err << "shoalctl: " << results[i].status().message() << "\n";
    failed.push_back(addresses[i]);
  }
  if (failed.empty()) return kExitOk;
  err << "shoalctl: " << what << " failed on " << failed.size() << " of "
      << addresses.size() << " tracker(s): " << absl::StrJoin(failed, ", ")
      << "\n";
  return kExitFailed;
}

std::string ShortId(const std::string& release_id) {
  return release_id.substr(0, 8);
}

// --- rollout ---

struct RolloutRow {
  v1::Rollout rollout;
  std::string release;  // name@version, or "" when the catalog lacks it
};

std::string ChannelReleaseName(const std::string& channel) {
  return channel.substr(0, channel.find('/'));
}

// The name@version of the release a channel points at, from the tracker's
// catalog; "" when it cannot say (the rollout itself still stands).
std::string ReleaseName(const TrackerCall& call, const v1::Rollout& rollout) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, call.deadline);
  v1::ListReleasesRequest request;
  request.set_name(ChannelReleaseName(rollout.channel()));
  v1::ListReleasesResponse response;
  if (!call.stub.ListReleases(&ctx, request, &response).ok()) return "";
  for (const v1::ReleaseInfo& info : response.releases()) {
    if (info.release_id() == rollout.release_id()) {
      return absl::StrCat(info.name(), "@", info.version());
    }
  }
  return "";
}

absl::StatusOr<RolloutRow> SetOn(const TrackerCall& call,
                                 const v1::SetRolloutRequest& request) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, call.deadline);
  v1::Rollout rollout;
  grpc::Status s = call.stub.SetRollout(&ctx, request, &rollout);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    if (!request.release().empty()) {
      return absl::NotFoundError(
          absl::StrCat("release ", request.release(), " not found on tracker ",
                       call.address, "; register it there first (shoal-publish",
                       " register --tracker=", call.address, " ...)"));
    }
    return absl::NotFoundError(absl::StrCat(
        "channel ", request.channel(), " has no rollout on tracker ",
        call.address, "; start one with `shoalctl rollout set`"));
  }
  if (!s.ok()) return CallError(call, s);
  return RolloutRow{rollout, ReleaseName(call, rollout)};
}

absl::StatusOr<RolloutRow> ShowOn(const TrackerCall& call,
                                  const std::string& channel) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, call.deadline);
  v1::GetRolloutRequest request;
  request.set_channel(channel);
  v1::Rollout rollout;
  grpc::Status s = call.stub.GetRollout(&ctx, request, &rollout);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::NotFoundError(
        absl::StrCat("channel ", channel, " has no rollout on tracker ",
                     call.address, "; start one with `shoalctl rollout set`"));
  }
  if (!s.ok()) return CallError(call, s);
  return RolloutRow{rollout, ReleaseName(call, rollout)};
}

void PrintRollouts(const std::vector<std::string>& addresses,
                   const std::vector<absl::StatusOr<RolloutRow>>& results,
                   bool json, std::ostream& out) {
  std::vector<std::vector<std::string>> table = {
      {"TRACKER", "CHANNEL", "RELEASE", "ID", "PERCENT", "STATE", "GENERATION",
       "UPDATED"}};
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) continue;
    const v1::Rollout& r = results[i]->rollout;
    const std::string& release = results[i]->release;
    if (json) {
      out << nlohmann::json{{"tracker", addresses[i]},
                            {"channel", r.channel()},
                            {"release", release},
                            {"release_id", r.release_id()},
                            {"percent", r.percent()},
                            {"paused", r.paused()},
                            {"generation", r.generation()},
                            {"updated_ms", r.updated_ms()}}
                 .dump()
          << "\n";
      continue;
    }
    table.push_back({addresses[i], r.channel(), release.empty() ? "?" : release,
                     ShortId(r.release_id()), absl::StrCat(r.percent(), "%"),
                     r.paused() ? "paused" : "rolling",
                     absl::StrCat(r.generation()),
                     absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                      absl::FromUnixMillis(r.updated_ms()),
                                      absl::UTCTimeZone())});
  }
  if (!json && table.size() > 1) out << FormatTable(table);
}

// The request of `rollout set|pause|resume`, or a usage error.
absl::StatusOr<v1::SetRolloutRequest> ChangeRequest(
    absl::Span<char* const> operands, const std::string& sub,
    const TrackerCommandFlags& flags) {
  v1::SetRolloutRequest request;
  request.set_channel(operands[0]);
  if (sub == "set") {
    if (!flags.percent.has_value() || *flags.percent > 100) {
      return absl::InvalidArgumentError(
          "rollout set needs --percent=P with P from 0 to 100");
    }
    request.set_release(operands[1]);
    request.set_percent(*flags.percent);
    // Staged: agents see the new release and percent but start nothing
    // until `rollout resume`.
    request.set_paused(flags.paused);
    return request;
  }
  if (flags.paused) {
    return absl::InvalidArgumentError(
        absl::StrCat("--paused applies to rollout set; use rollout pause"));
  }
  if (flags.percent.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--percent applies to rollout set; rollout ", sub,
                     " keeps the channel's percent"));
  }
  request.set_keep_percent(true);
  request.set_paused(sub == "pause");
  return request;
}

int RunRollout(absl::Span<char* const> args, const TrackerCommandFlags& flags,
               const std::vector<std::string>& addresses,
               const GrpcSecurity& security, std::ostream& out,
               std::ostream& err) {
  const std::string sub = args[2];
  const absl::Span<char* const> operands = args.subspan(3);
  const bool is_change = sub == "set" || sub == "pause" || sub == "resume";
  std::function<absl::StatusOr<RolloutRow>(const TrackerCall&)> run;
  if (sub == "show" && operands.size() == 1) {
    const std::string channel = operands[0];
    run = [channel](const TrackerCall& call) { return ShowOn(call, channel); };
  } else if (is_change && operands.size() == (sub == "set" ? 2u : 1u)) {
    absl::StatusOr<v1::SetRolloutRequest> request =
        ChangeRequest(operands, sub, flags);
    if (!request.ok()) {
      err << "shoalctl: " << request.status().message() << "\n";
      return kExitUsage;
    }
    run = [request = *std::move(request)](const TrackerCall& call) {
      return SetOn(call, request);
    };
  } else {
    err << RolloutHelp(sub);
    return kExitUsage;
  }
  if (!absl::StrContains(operands[0], '/')) {
    err << "shoalctl: CHANNEL is <release name>/<label>, e.g. "
           "game-server/stable, not \""
        << operands[0] << "\"\n";
    return kExitUsage;
  }
  std::vector<absl::StatusOr<RolloutRow>> results =
      OnEveryTracker(addresses, security, flags.call_timeout, run);
  PrintRollouts(addresses, results, flags.json, out);
  return ReportFailures(absl::StrCat("rollout ", sub), addresses, results, err);
}

// --- swarm ---

struct SwarmReport {
  v1::SwarmHealthResponse health;
  // Release sizes from the catalog, by id; missing when it cannot say.
  absl::flat_hash_map<std::string, uint64_t> sizes;
};

// Sizes of the releases of `health`, so that origin bytes read as copies.
// Best effort: a release the catalog cannot name has no size.
absl::flat_hash_map<std::string, uint64_t> ReleaseSizes(
    const TrackerCall& call, const v1::SwarmHealthResponse& health) {
  absl::flat_hash_map<std::string, uint64_t> sizes;
  absl::flat_hash_set<std::string> names;
  for (const v1::SwarmHealth& swarm : health.swarms()) {
    if (!swarm.name().empty()) names.insert(swarm.name());
  }
  for (const std::string& name : names) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, call.deadline);
    v1::ListReleasesRequest request;
    request.set_name(name);
    v1::ListReleasesResponse response;
    if (!call.stub.ListReleases(&ctx, request, &response).ok()) continue;
    for (const v1::ReleaseInfo& info : response.releases()) {
      sizes[info.release_id()] = info.total_size();
    }
  }
  return sizes;
}

absl::StatusOr<SwarmReport> SwarmOn(const TrackerCall& call,
                                    const std::string& release) {
  grpc::ClientContext ctx;
  SetDeadline(ctx, call.deadline);
  v1::SwarmHealthRequest request;
  request.set_release(release);
  SwarmReport report;
  grpc::Status s = call.stub.GetSwarmHealth(&ctx, request, &report.health);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::NotFoundError(
        absl::StrCat("release ", release, " not found on tracker ",
                     call.address, " (", s.error_message(), ")"));
  }
  if (!s.ok()) return CallError(call, s);
  report.sizes = ReleaseSizes(call, report.health);
  return report;
}

int RunSwarm(absl::Span<char* const> args, const TrackerCommandFlags& flags,
             const std::vector<std::string>& addresses,
             const GrpcSecurity& security, std::ostream& out,
             std::ostream& err) {
  if (args.size() > 3) {
    err << SwarmHelp();
    return kExitUsage;
  }
  if (flags.percent.has_value()) {
    err << "shoalctl: --percent applies to rollout set only\n";
    return kExitUsage;
  }
  const std::string release = args.size() == 3 ? args[2] : "";
  std::vector<absl::StatusOr<SwarmReport>> results =
      OnEveryTracker<SwarmReport>(addresses, security, flags.call_timeout,
                                  [&release](const TrackerCall& call) {
                                    return SwarmOn(call, release);
                                  });
  std::vector<SwarmRow> rows;
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) continue;
    for (const v1::SwarmHealth& swarm : results[i]->health.swarms()) {
      auto size = results[i]->sizes.find(swarm.release_id());
      rows.push_back(SwarmRow{addresses[i], swarm,
                              size == results[i]->sizes.end()
                                  ? std::nullopt
                                  : std::optional<uint64_t>(size->second)});
    }
  }
  PrintSwarms(rows, flags.json, out);
  return ReportFailures("swarm", addresses, results, err);
}

// The words of argv that are not flags or flag values, and whether a help
// flag is among the flags.
std::pair<std::vector<absl::string_view>, bool> Words(int argc,
                                                      const char* const* argv) {
  std::vector<absl::string_view> words;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") {
      words.insert(words.end(), argv + i + 1, argv + argc);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      words.push_back(arg);
    } else if (arg == "--help" || arg == "-help" || arg == "-h") {
      help = true;
    } else if (!absl::StrContains(arg, '=')) {
      absl::string_view name = absl::StripPrefix(arg.substr(1), "-");
      const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
      if (flag != nullptr && !flag->IsOfType<bool>()) ++i;  // "--flag value"
    }
  }
  return {words, help};
}

}  // namespace

bool IsTrackerCommand(absl::string_view command) {
  return command == "rollout" || command == "swarm";
}

std::optional<std::string> TrackerCommandHelp(int argc,
                                              const char* const* argv) {
  auto [words, help] = Words(argc, argv);
  if (!help || words.empty()) return std::nullopt;
  if (words[0] == "swarm") return SwarmHelp();
  if (words[0] != "rollout") return std::nullopt;
  return RolloutHelp(words.size() > 1 ? std::string(words[1]) : "");
}

int RunTrackerCommand(absl::Span<char* const> args,
                      const TrackerCommandFlags& flags, std::ostream& out,
                      std::ostream& err) {
  CHECK_GE(args.size(), 2u);
  const std::string command = args[1];
  if (command == "rollout" && args.size() < 3) {
    err << RolloutHelp("");
    return kExitUsage;
  }
  absl::StatusOr<std::vector<std::string>> listed =
      ParseTrackerAddresses(flags.trackers);
  if (flags.trackers.empty() || !listed.ok()) {
    err << "shoalctl: " << command
        << " needs --tracker=HOST:PORT[,HOST:PORT...], the trackers to ask\n";
    return kExitUsage;
  }
  // Each tracker once: a repeated address would apply a change twice.
  std::vector<std::string> addresses;
  absl::flat_hash_set<std::string> seen;
  for (std::string& address : *listed) {
    if (seen.insert(address).second) addresses.push_back(std::move(address));
  }
  absl::StatusOr<GrpcSecurity> security = GrpcSecurity::Create(flags.tls);
  if (!security.ok()) {
    err << "shoalctl: " << security.status().message() << "\n";
    return kExitUsage;
  }
  if (command == "swarm") {
    return RunSwarm(args, flags, addresses, *security, out, err);
  }
  return RunRollout(args, flags, addresses, *security, out, err);
}

}  // namespace shoal::agent
