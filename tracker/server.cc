#include "tracker/server.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/server_builder.h"
#include "nlohmann/json.hpp"
#include "tracker/memory_store.h"
#include "tracker/redis_store.h"

namespace shoal::tracker {
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& spec) {
  if (spec.empty() || spec == "memory") return std::make_unique<MemoryStore>();
  if (absl::StartsWith(spec, "redis://")) {
    ASSIGN_OR_RETURN(std::unique_ptr<RedisStore> redis,
                     RedisStore::Connect(spec, RedisOptions{}));
    return std::unique_ptr<Store>(std::move(redis));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--store=", spec, " is neither \"memory\" nor redis://HOST:PORT"));
}

absl::StatusOr<std::unique_ptr<TrackerServer>> TrackerServer::Start(
    const TrackerConfig& config, const Clock& clock) {
  if (config.options.datacenter.empty()) {
    return absl::InvalidArgumentError("--datacenter is required");
  }
  if (config.trust_path.empty()) {
    return absl::InvalidArgumentError(
        "--trust is required: the tracker verifies every registered manifest");
  }
  RETURN_IF_ERROR(ValidateTrackerOptions(config.options));
  std::unique_ptr<TrackerServer> s(new TrackerServer());
  ASSIGN_OR_RETURN(TrustPolicy trust, TrustPolicy::Load(config.trust_path));
  s->trust_ = std::make_unique<TrustPolicy>(std::move(trust));
  ASSIGN_OR_RETURN(s->store_, OpenStore(config.store));
  ASSIGN_OR_RETURN(GrpcSecurity security, GrpcSecurity::Create(config.tls));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   security.ServerCredentials(config.listen));

  s->tracker_ = std::make_unique<Tracker>(*s->store_, *s->trust_, clock, config.options);
  s->metrics_ = std::make_unique<TrackerMetrics>(std::make_shared<prometheus::Registry>());
  s->hub_ = std::make_unique<ChannelWatchHub>(*s->tracker_, config.watch_poll);
  ServiceOptions service_options;
  service_options.insecure = security.insecure();
  service_options.admin_identities.insert(config.admin_identities.begin(),
                                          config.admin_identities.end());
  s->service_ = std::make_unique<TrackerService>(*s->tracker_, *s->metrics_, *s->hub_,
                                                 clock, std::move(service_options));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen, creds, &port);
  builder.RegisterService(s->service_.get());
  security.ConfigureServer(builder);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve gRPC on ", config.listen, " (address in use or invalid?)"));
  }
  s->grpc_address_ = BoundAddress(config.listen, port);
  if (!config.metrics_listen.empty()) {
    Store* store = s->store_.get();
    ASSIGN_OR_RETURN(s->metrics_server_,
                     MetricsServer::Start(config.metrics_listen, s->metrics_->registry(),
                                          [store] { return store->Ping(); }));
    s->metrics_address_ = s->metrics_server_->address();
  }
  s->datacenter_ = config.options.datacenter;
  s->gauge_refresh_ = config.gauge_refresh;
  s->gauge_thread_ = std::thread([raw = s.get()] { raw->RefreshGauges(); });
  LOG(INFO) << "tracker for datacenter " << s->datacenter_ << " serving gRPC on "
            << s->grpc_address_
            << (s->metrics_address_.empty() ? "" : ", metrics on http://" + s->metrics_address_)
            << ", store " << config.store;
  return s;
}

void TrackerServer::RefreshGauges() {
  do {
    absl::StatusOr<v1::SwarmHealthResponse> health =
        tracker_->GetSwarmHealth(v1::SwarmHealthRequest());
    if (health.ok()) {
      v1::SwarmHealthResponse local;
      for (const v1::SwarmHealth& swarm : health->swarms()) {
        if (swarm.datacenter() != datacenter_) continue;
        *local.add_swarms() = swarm;
        LearnReleaseSize(swarm.release_id());
      }
      metrics_->SetSwarms(local, release_sizes_);
    } else {
      LOG_EVERY_N(WARNING, 10) << "cannot refresh swarm gauges: " << health.status();
    }
  } while (!stop_.WaitForNotificationWithTimeout(gauge_refresh_));
}

void TrackerServer::LearnReleaseSize(const std::string& release_id) {
  if (release_sizes_.contains(release_id)) return;
  v1::GetReleaseRequest request;
  request.set_release(release_id);
  absl::StatusOr<v1::ReleaseInfo> info = tracker_->GetRelease(request);
  // Not registered (yet): the size gauge waits for a later refresh.
  if (info.ok()) release_sizes_[release_id] = info->total_size();
}

std::string TrackerServer::ReadyJson() const {
  nlohmann::json j;
  j["grpc"] = grpc_address_;
  j["metrics"] = metrics_address_;
  return j.dump();
}

void TrackerServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Streams (WatchChannel) are cancelled at the deadline; unary calls finish.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_->Wait();
  stop_.Notify();
  if (gauge_thread_.joinable()) gauge_thread_.join();
  metrics_server_.reset();
  hub_.reset();
}

TrackerServer::~TrackerServer() {
  if (server_ != nullptr) Shutdown();
}

}  // namespace shoal::tracker
