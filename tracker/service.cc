#include "tracker/service.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_security.h"
#include "glog/logging.h"

namespace shoal::tracker {
namespace {

std::string CodeName(const absl::Status& status) {
  return absl::StatusCodeToString(status.code());
}

// One WatchChannel stream. Deletes itself when gRPC is done with it.
class WatchReactor final : public grpc::ServerWriteReactor<v1::Rollout>,
                           public ChannelWatcher {
 public:
  WatchReactor(ChannelWatchHub& hub, std::string channel)
      : hub_(hub), channel_(std::move(channel)) {
    hub_.Register(channel_, this);
  }

  void Deliver(const v1::Rollout& rollout) override {
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || rollout.generation() <= last_generation_) return;
      last_generation_ = rollout.generation();
      pending_ = rollout;
      if (writing_) return;  // OnWriteDone sends the newest pending one
      writing_ = true;
      in_flight_ = *std::move(pending_);
      pending_.reset();
    }
    StartWrite(&in_flight_);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      if (!ok || finished_) {
        writing_ = false;
        return;
      }
      if (!pending_.has_value()) {
        writing_ = false;
        return;
      }
      in_flight_ = *std::move(pending_);
      pending_.reset();
    }
    StartWrite(&in_flight_);
  }

  void OnCancel() override {
    hub_.Unregister(channel_, this);
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(grpc::Status::CANCELLED);
  }

  void OnDone() override { delete this; }

 private:
  ChannelWatchHub& hub_;
  const std::string channel_;
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t last_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<v1::Rollout> pending_ ABSL_GUARDED_BY(mu_);
  v1::Rollout in_flight_;  // owned by the write in progress
};

}  // namespace

TrackerService::TrackerService(Tracker& tracker, TrackerMetrics& metrics,
                               ChannelWatchHub& hub, const Clock& clock,
                               ServiceOptions options)
    : tracker_(tracker),
      metrics_(metrics),
      hub_(hub),
      clock_(clock),
      options_(std::move(options)) {}

template <typename Response, typename Call>
grpc::ServerUnaryReactor* TrackerService::Unary(
    grpc::CallbackServerContext* ctx, const char* method, Response* response,
    Call call) {
  absl::Time start = clock_.Now();
  absl::StatusOr<Response> result = call();
  if (result.ok()) *response = *std::move(result);
  if (absl::IsUnavailable(result.status())) metrics_.CountStoreError();
  metrics_.ObserveRpc(method, clock_.Now() - start, CodeName(result.status()));
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

absl::Status TrackerService::CheckAdmin(grpc::CallbackServerContext* ctx) const {
  if (options_.insecure) return absl::OkStatus();
  std::string identity = CallerIdentity(*ctx->auth_context());
  if (options_.admin_identities.contains(identity)) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "caller \"", identity,
      "\" may not change tracker state; add its certificate identity to "
      "--admin_identities"));
}

grpc::ServerUnaryReactor* TrackerService::Announce(
    grpc::CallbackServerContext* ctx, const v1::AnnounceRequest* request,
    v1::AnnounceResponse* response) {
  return Unary(ctx, "Announce", response, [&] {
    absl::StatusOr<v1::AnnounceResponse> r = tracker_.Announce(*request);
    if (r.ok()) metrics_.CountAnnounce();
    return r;
  });
}

grpc::ServerUnaryReactor* TrackerService::GetPeers(
    grpc::CallbackServerContext* ctx, const v1::GetPeersRequest* request,
    v1::GetPeersResponse* response) {
  return Unary(ctx, "GetPeers", response, [&] { return tracker_.GetPeers(*request); });
}

grpc::ServerUnaryReactor* TrackerService::RequestOriginLease(
    grpc::CallbackServerContext* ctx, const v1::OriginLeaseRequest* request,
    v1::OriginLeaseResponse* response) {
  return Unary(ctx, "RequestOriginLease", response, [&] {
    absl::StatusOr<v1::OriginLeaseResponse> r = tracker_.RequestOriginLease(*request);
    if (r.ok()) metrics_.CountLeases(*r);
    return r;
  });
}

grpc::ServerUnaryReactor* TrackerService::RegisterRelease(
    grpc::CallbackServerContext* ctx, const v1::RegisterReleaseRequest* request,
    v1::RegisterReleaseResponse* response) {
  return Unary(ctx, "RegisterRelease", response,
               [&]() -> absl::StatusOr<v1::RegisterReleaseResponse> {
                 if (absl::Status s = CheckAdmin(ctx); !s.ok()) return s;
                 return tracker_.RegisterRelease(*request);
               });
}

grpc::ServerUnaryReactor* TrackerService::GetRelease(
    grpc::CallbackServerContext* ctx, const v1::GetReleaseRequest* request,
    v1::ReleaseInfo* response) {
  return Unary(ctx, "GetRelease", response, [&] { return tracker_.GetRelease(*request); });
}

grpc::ServerUnaryReactor* TrackerService::ListReleases(
    grpc::CallbackServerContext* ctx, const v1::ListReleasesRequest* request,
    v1::ListReleasesResponse* response) {
  return Unary(ctx, "ListReleases", response,
               [&] { return tracker_.ListReleases(*request); });
}

grpc::ServerUnaryReactor* TrackerService::SetRollout(
    grpc::CallbackServerContext* ctx, const v1::SetRolloutRequest* request,
    v1::Rollout* response) {
  return Unary(ctx, "SetRollout", response, [&]() -> absl::StatusOr<v1::Rollout> {
    if (absl::Status s = CheckAdmin(ctx); !s.ok()) return s;
    return tracker_.SetRollout(*request);
  });
}

grpc::ServerUnaryReactor* TrackerService::GetRollout(
    grpc::CallbackServerContext* ctx, const v1::GetRolloutRequest* request,
    v1::Rollout* response) {
  return Unary(ctx, "GetRollout", response, [&] { return tracker_.GetRollout(*request); });
}

grpc::ServerWriteReactor<v1::Rollout>* TrackerService::WatchChannel(
    grpc::CallbackServerContext* ctx, const v1::GetRolloutRequest* request) {
  (void)ctx;
  return new WatchReactor(hub_, request->channel());
}

grpc::ServerUnaryReactor* TrackerService::GetSwarmHealth(
    grpc::CallbackServerContext* ctx, const v1::SwarmHealthRequest* request,
    v1::SwarmHealthResponse* response) {
  return Unary(ctx, "GetSwarmHealth", response,
               [&] { return tracker_.GetSwarmHealth(*request); });
}

}  // namespace shoal::tracker
