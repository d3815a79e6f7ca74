#include "agent/tracker_client.h"

#include <chrono>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace shoal::agent {
namespace {

// gRPC deadlines are points in real time; the timeouts are what is
// configured.
std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             absl::ToChronoNanoseconds(timeout));
}

// Errors that say "this replica did not answer", as opposed to answers.
bool IsFailover(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable ||
         code == absl::StatusCode::kDeadlineExceeded;
}

absl::Status FromReplica(const std::string& address, const grpc::Status& s) {
  const absl::Status status = FromGrpcStatus(s);
  return absl::Status(
      status.code(), absl::StrCat("tracker ", address, ": ", status.message()));
}

// Whether `channel` is connected or connects before `deadline`; false as soon
// as a connection attempt fails.
bool Connects(grpc::Channel& channel,
              std::chrono::system_clock::time_point deadline) {
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE ||
        state == GRPC_CHANNEL_SHUTDOWN ||
        !channel.WaitForStateChange(state, deadline)) {
      return false;
    }
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseTrackerAddresses(
    absl::string_view flag) {
  std::vector<std::string> addresses;
  for (absl::string_view part : absl::StrSplit(flag, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tracker=\"", flag,
          "\" must list HOST:PORT addresses separated by commas, e.g. "
          "10.0.0.1:7000,10.0.0.2:7000"));
    }
    addresses.emplace_back(part);
  }
  return addresses;
}

ChannelWatch::ChannelWatch(std::string address, absl::Duration timeout)
    : address_(std::move(address)) {
  context_.set_deadline(DeadlineIn(timeout));
}

ChannelWatch::~ChannelWatch() {
  if (ended_.has_value() || reader_ == nullptr) return;
  context_.TryCancel();
  v1::Rollout ignored;
  while (reader_->Read(&ignored)) {
  }
  reader_->Finish();
}

absl::StatusOr<v1::Rollout> ChannelWatch::Next() {
  if (ended_.has_value()) return *ended_;
  v1::Rollout rollout;
  if (reader_->Read(&rollout)) return rollout;
  const grpc::Status status = reader_->Finish();
  ended_ = status.ok() ? absl::UnavailableError(absl::StrCat(
                             "tracker ", address_, " ended the watch"))
                       : FromReplica(address_, status);
  return *ended_;
}

void ChannelWatch::Cancel() { context_.TryCancel(); }

absl::StatusOr<std::unique_ptr<TrackerClient>> TrackerClient::Create(
    const GrpcSecurity& security, TrackerClientOptions options) {
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError("no tracker address given");
  }
  if (options.call_timeout <= absl::ZeroDuration() ||
      options.watch_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("tracker timeouts must be positive");
  }
  auto client = absl::WrapUnique(new TrackerClient(options));
  for (const std::string& address : options.addresses) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        security.MakeChannel(address);
    if (!channel.ok()) {
      return absl::Status(
          channel.status().code(),
          absl::StrCat("tracker ", address, ": ", channel.status().message()));
    }
    std::unique_ptr<v1::Tracker::Stub> stub = v1::Tracker::NewStub(*channel);
    client->replicas_.push_back(
        {address, *std::move(channel), std::move(stub)});
  }
  return client;
}

template <typename Request, typename Response>
absl::StatusOr<Response> TrackerClient::Call(absl::string_view name,
                                             Method<Request, Response> method,
                                             const Request& request) {
  const size_t start = current_.load();
  std::vector<std::string> failures;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    const size_t index = (start + i) % replicas_.size();
    const Replica& replica = replicas_[index];
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(options_.call_timeout));
    Response response;
    const grpc::Status status =
        (replica.stub.get()->*method)(&context, request, &response);
    if (status.ok() || !IsFailover(FromGrpcStatus(status).code())) {
      current_.store(index);  // it answered, even if to refuse
      if (!status.ok()) return FromReplica(replica.address, status);
      return response;
    }
    failures.push_back(
        absl::StrCat(replica.address, ": ", FromGrpcStatus(status).ToString()));
  }
  return absl::UnavailableError(
      absl::StrCat("no tracker replica answered ", name, " (",
                   absl::StrJoin(failures, "; "), ")"));
}

absl::StatusOr<v1::AnnounceResponse> TrackerClient::Announce(
    const v1::AnnounceRequest& request) {
  return Call("Announce", &v1::Tracker::Stub::Announce, request);
}

absl::StatusOr<v1::GetPeersResponse> TrackerClient::GetPeers(
    const v1::GetPeersRequest& request) {
  return Call("GetPeers", &v1::Tracker::Stub::GetPeers, request);
}

absl::StatusOr<v1::OriginLeaseResponse> TrackerClient::RequestOriginLease(
    const v1::OriginLeaseRequest& request) {
  return Call("RequestOriginLease", &v1::Tracker::Stub::RequestOriginLease,
              request);
}

absl::StatusOr<v1::ReleaseInfo> TrackerClient::GetRelease(
    const std::string& release) {
  v1::GetReleaseRequest request;
  request.set_release(release);
  return Call("GetRelease", &v1::Tracker::Stub::GetRelease, request);
}

absl::StatusOr<std::unique_ptr<ChannelWatch>> TrackerClient::WatchChannel(
    const std::string& channel) {
  const size_t start = current_.load();
  std::vector<std::string> down;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    const size_t index = (start + i) % replicas_.size();
    const Replica& replica = replicas_[index];
    if (!Connects(*replica.channel, DeadlineIn(options_.call_timeout))) {
      down.push_back(replica.address);
      continue;
    }
    current_.store(index);
    auto watch = absl::WrapUnique(
        new ChannelWatch(replica.address, options_.watch_timeout));
    v1::GetRolloutRequest request;
    request.set_channel(channel);
    watch->reader_ = replica.stub->WatchChannel(&watch->context_, request);
    return watch;
  }
  return absl::UnavailableError(
      absl::StrCat("no tracker replica reachable to watch ", channel, " (",
                   absl::StrJoin(down, ", "), ")"));
}

std::string TrackerClient::current_address() const {
  return replicas_[current_.load() % replicas_.size()].address;
}

}  // namespace shoal::agent
