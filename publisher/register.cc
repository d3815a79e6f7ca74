#include "publisher/register.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/origin_layout.h"
#include "common/status_macros.h"
#include "publisher/verify.h"
#include "shoal/v1/tracker.grpc.pb.h"

namespace shoal::publisher {
namespace {

constexpr uint64_t kMaxManifestBytes = 64 << 20;

absl::Status CheckOptions(const RegisterOptions& o) {
  if (o.trackers.empty()) {
    return absl::InvalidArgumentError("register needs --tracker=HOST:PORT[,HOST:PORT...]");
  }
  if (o.origin_urls.empty()) {
    return absl::InvalidArgumentError(
        "register needs --origin_url=URL, the base URL agents fetch the origin tree from");
  }
  for (const std::string& url : o.origin_urls) {
    if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--origin_url ", url, " is not an http:// or https:// URL"));
    }
  }
  if (o.origin_dir.empty()) {
    return absl::InvalidArgumentError("register needs --origin=DIR to read the manifest from");
  }
  return absl::OkStatus();
}

RegisterOutcome RegisterWith(const std::string& tracker,
                             const v1::RegisterReleaseRequest& request,
                             const GrpcSecurity& security,
                             absl::Duration deadline) {
  RegisterOutcome outcome{tracker, absl::OkStatus(), false};
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = security.MakeChannel(tracker);
  if (!channel.ok()) {
    outcome.status = channel.status();
    return outcome;
  }
  std::unique_ptr<v1::Tracker::Stub> stub = v1::Tracker::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(deadline));
  v1::RegisterReleaseResponse response;
  outcome.status = FromGrpcStatus(stub->RegisterRelease(&ctx, request, &response));
  outcome.created = response.created();
  return outcome;
}

}  // namespace

absl::StatusOr<std::vector<RegisterOutcome>> RegisterRelease(
    const RegisterOptions& options, const GrpcSecurity& security,
    std::string* release_id) {
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(*release_id, ResolveReleaseId(options.origin_dir, options.release));
  ASSIGN_OR_RETURN(std::string manifest,
                   ReadFile(absl::StrCat(options.origin_dir, "/",
                                         ManifestObjectPath(*release_id)),
                            kMaxManifestBytes));
  v1::RegisterReleaseRequest request;
  request.set_manifest(manifest);
  for (const std::string& url : options.origin_urls) request.add_origin_urls(url);
  std::vector<RegisterOutcome> outcomes;
  for (const std::string& tracker : options.trackers) {
    outcomes.push_back(RegisterWith(tracker, request, security, options.deadline));
  }
  return outcomes;
}

}  // namespace shoal::publisher
