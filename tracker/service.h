#pragma once

// The gRPC face of a Tracker: unpacks requests, checks who may change state,
// calls the domain object, records metrics, packs answers. No policy here.

#include <string>

#include "absl/container/flat_hash_set.h"
#include "common/clock.h"
#include "shoal/v1/tracker.grpc.pb.h"
#include "tracker/channel_watch.h"
#include "tracker/metrics.h"
#include "tracker/tracker.h"

namespace shoal::tracker {

struct ServiceOptions {
  // Certificate identities (first DNS/URI SAN, else CN) allowed to register
  // releases and change rollouts.
  absl::flat_hash_set<std::string> admin_identities;
  // Set when the server runs with --insecure (loopback only): every caller
  // may then change state, as in a local demo.
  bool insecure = false;
};

// Thread-safe; handlers run on gRPC's callback threads. Everything passed in
// must outlive the service.
class TrackerService final : public v1::Tracker::CallbackService {
 public:
  TrackerService(Tracker& tracker, TrackerMetrics& metrics,
                 ChannelWatchHub& hub, const Clock& clock,
                 ServiceOptions options);

  grpc::ServerUnaryReactor* Announce(grpc::CallbackServerContext* ctx,
                                     const v1::AnnounceRequest* request,
                                     v1::AnnounceResponse* response) override;
  grpc::ServerUnaryReactor* GetPeers(grpc::CallbackServerContext* ctx,
                                     const v1::GetPeersRequest* request,
                                     v1::GetPeersResponse* response) override;
  grpc::ServerUnaryReactor* RequestOriginLease(
      grpc::CallbackServerContext* ctx, const v1::OriginLeaseRequest* request,
      v1::OriginLeaseResponse* response) override;
  grpc::ServerUnaryReactor* RegisterRelease(
      grpc::CallbackServerContext* ctx,
      const v1::RegisterReleaseRequest* request,
      v1::RegisterReleaseResponse* response) override;
  grpc::ServerUnaryReactor* GetRelease(grpc::CallbackServerContext* ctx,
                                       const v1::GetReleaseRequest* request,
                                       v1::ReleaseInfo* response) override;
  grpc::ServerUnaryReactor* ListReleases(
      grpc::CallbackServerContext* ctx, const v1::ListReleasesRequest* request,
      v1::ListReleasesResponse* response) override;
  grpc::ServerUnaryReactor* SetRollout(grpc::CallbackServerContext* ctx,
                                       const v1::SetRolloutRequest* request,
                                       v1::Rollout* response) override;
  grpc::ServerUnaryReactor* GetRollout(grpc::CallbackServerContext* ctx,
                                       const v1::GetRolloutRequest* request,
                                       v1::Rollout* response) override;
  grpc::ServerWriteReactor<v1::Rollout>* WatchChannel(
      grpc::CallbackServerContext* ctx,
      const v1::GetRolloutRequest* request) override;
  grpc::ServerUnaryReactor* GetSwarmHealth(
      grpc::CallbackServerContext* ctx, const v1::SwarmHealthRequest* request,
      v1::SwarmHealthResponse* response) override;

 private:
  template <typename Response, typename Call>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                  const char* method, Response* response,
                                  Call call);
  // PERMISSION_DENIED unless the caller may change state.
  absl::Status CheckAdmin(grpc::CallbackServerContext* ctx) const;

  Tracker& tracker_;
  TrackerMetrics& metrics_;
  ChannelWatchHub& hub_;
  const Clock& clock_;
  const ServiceOptions options_;
};

}  // namespace shoal::tracker
