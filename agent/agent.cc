#include "agent/agent.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/control_service.h"
#include "agent/identity.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/server_builder.h"
#include "nlohmann/json.hpp"

namespace shoal::agent {

class Agent::HaveHandle final : public HaveSubscription {
 public:
  HaveHandle(std::shared_ptr<Release> release, HaveListener* listener)
      : release_(std::move(release)), listener_(listener) {}
  ~HaveHandle() override {
    absl::MutexLock lock(&release_->hub_mu);
    release_->listeners.erase(listener_);
  }

 private:
  std::shared_ptr<Release> release_;
  HaveListener* listener_;
};

// Ends one upload admitted by a release's UploadGate.
class Agent::GateTicket final : public UploadTicket {
 public:
  GateTicket(std::shared_ptr<Release> release, ReleasePieceIndex piece)
      : release_(std::move(release)), piece_(piece) {}
  ~GateTicket() override {
    absl::MutexLock lock(&release_->gate_mu);
    release_->gate->Finish(piece_);
  }

 private:
  std::shared_ptr<Release> release_;
  ReleasePieceIndex piece_;
};

namespace {

constexpr uint64_t kMaxManifestBytes = 64 << 20;

}  // namespace

Agent::Agent(const AgentConfig& config, const Clock& clock) : config_(config), clock_(clock) {}

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(const AgentConfig& config,
                                                    const Clock& clock) {
  if (config.datacenter.empty() || config.rack.empty()) {
    return absl::InvalidArgumentError("--datacenter and --rack are required");
  }
  if (config.trust_path.empty()) {
    return absl::InvalidArgumentError("--trust is required: the agent verifies every manifest");
  }
  std::unique_ptr<Agent> a(new Agent(config, clock));
  RETURN_IF_ERROR(MakeDirs(config.data_dir + "/releases"));
  ASSIGN_OR_RETURN(TrustPolicy trust, TrustPolicy::Load(config.trust_path));
  a->trust_ = std::make_unique<TrustPolicy>(std::move(trust));
  a->trusted_ = std::make_unique<TrustedManifests>(config.data_dir + "/trusted");
  ASSIGN_OR_RETURN(GrpcSecurity security, GrpcSecurity::Create(config.tls));
  a->security_ = std::make_unique<GrpcSecurity>(std::move(security));
  a->metrics_ = std::make_unique<AgentMetrics>(std::make_shared<prometheus::Registry>());
  if (!config.trackers.empty()) {
    TrackerClientOptions options;
    options.addresses = config.trackers;
    ASSIGN_OR_RETURN(a->tracker_, TrackerClient::Create(*a->security_, options));
  }
  a->transport_ = std::make_unique<GrpcTransport>(*a->security_);
  ASSIGN_OR_RETURN(std::string peer_id, LoadOrCreatePeerId(config.data_dir));
  a->self_.set_peer_id(peer_id);
  a->self_.set_datacenter(config.datacenter);
  a->self_.set_rack(config.rack);
  RETURN_IF_ERROR(a->StartServers());
  RETURN_IF_ERROR(a->RecoverReleases());
  if (!config.follow.empty()) {
    if (a->tracker_ == nullptr) {
      return absl::InvalidArgumentError("--follow needs --tracker: channels live on the tracker");
    }
    absl::MutexLock lock(&a->followers_mu_);
    for (const ChannelSpec& spec : config.follow) {
      a->followers_.push_back(std::make_unique<ChannelFollower>(
          spec, peer_id, *a->tracker_, *a, config.seed_time));
    }
  }
  a->announcer_ = std::thread([raw = a.get()] { raw->AnnounceLoop(); });
  LOG(INFO) << "agent " << peer_id << " (" << config.datacenter << "/" << config.rack
            << ") serving peers on " << a->self_.address() << ", control on "
            << a->control_address_
            << (a->metrics_address_.empty() ? "" : ", metrics on http://" + a->metrics_address_);
  return a;
}

absl::Status Agent::StartServers() {
  uploads_ = std::make_unique<PacedUploads>(clock_, waiter_, config_.upload_limit);
  downloads_ = std::make_unique<DownloadPacer>(clock_, config_.download_limit);
  PeerServiceOptions peer_options = config_.peer_service;
  peer_options.pacer = uploads_.get();
  peer_service_ = std::make_unique<PeerService>(*this, peer_options);
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                   security_->ServerCredentials(config_.listen));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config_.listen, creds, &port);
  builder.RegisterService(peer_service_.get());
  security_->ConfigureServer(builder);
  peer_server_ = builder.BuildAndStart();
  if (peer_server_ == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve peers on ", config_.listen));
  }
  self_.set_address(config_.advertise.empty() ? BoundAddress(config_.listen, port)
                                              : config_.advertise);
  // The control socket: local only; the file mode (0600) is its access control.
  std::string socket = config_.control.empty() ? config_.data_dir + "/agent.sock" : config_.control;
  struct stat st;
  if (lstat(socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(socket.c_str());
  control_address_ = "unix:" + socket;
  ASSIGN_OR_RETURN(GrpcSecurity local, GrpcSecurity::Create(TlsFlags{"", "", "", true}));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> local_creds,
                   local.ServerCredentials(control_address_));
  control_service_ = std::make_unique<ControlService>(*this);
  grpc::ServerBuilder control;
  control.AddListeningPort(control_address_, local_creds);
  control.RegisterService(control_service_.get());
  control_server_ = control.BuildAndStart();
  if (control_server_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on control socket ", socket));
  }
  chmod(socket.c_str(), 0600);
  if (!config_.metrics_listen.empty()) {
    std::function<absl::Status()> ready;  // without a tracker, always ready
    if (tracker_ != nullptr) ready = [m = metrics_.get()] { return m->TrackerReadiness(); };
    ASSIGN_OR_RETURN(metrics_server_,
                     MetricsServer::Start(config_.metrics_listen, metrics_->registry(), ready));
    metrics_address_ = metrics_server_->address();
  }
  return absl::OkStatus();
}

Agent::~Agent() {
  {
    absl::MutexLock lock(&announce_mu_);
    stopping_ = true;
  }
  if (announcer_.joinable()) announcer_.join();
  // A deadline of now cancels the calls in progress: a Fetch streams until
  // its release completes, and Shutdown() alone would wait for that.
  if (control_server_ != nullptr) control_server_->Shutdown(std::chrono::system_clock::now());
  std::vector<std::unique_ptr<ChannelFollower>> followers;
  {
    absl::MutexLock lock(&followers_mu_);
    followers.swap(followers_);
  }
  followers.clear();  // joins their threads; they may call into the agent meanwhile
  if (uploads_ != nullptr) uploads_->Shutdown();  // queued chunks go at once
  if (peer_service_ != nullptr) peer_service_->Shutdown();
  if (peer_server_ != nullptr) peer_server_->Shutdown();
  absl::flat_hash_map<std::string, std::shared_ptr<Release>> releases;
  {
    absl::MutexLock lock(&mu_);
    releases.swap(releases_);
  }
  for (auto& [id, r] : releases) {
    absl::MutexLock lock(&r->local_mu);
    absl::Status saved = SaveLocal(*r);  // counts by source, last use
    if (!saved.ok()) LOG(WARNING) << "cannot save the state of release " << id << ": " << saved;
  }
  releases.clear();  // joins every download
  metrics_server_.reset();
}

std::shared_ptr<Agent::Release> Agent::Find(const std::string& release_id) {
  absl::MutexLock lock(&mu_);
  auto it = releases_.find(release_id);
  return it == releases_.end() ? nullptr : it->second;
}

void Agent::Notify(const std::string& release_id, ReleasePieceIndex piece) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return;
  {
    absl::MutexLock lock(&r->hub_mu);
    for (HaveListener* l : r->listeners) l->OnHave(piece);
  }
  // Seeders are what the tracker most needs to hear about, and at once.
  if (r->download->store().complete()) RequestAnnounce();
}

absl::Status Agent::StartRelease(const Manifest& manifest, std::unique_ptr<ReleaseStore> store,
                                 std::vector<std::string> origin_urls) {
  std::unique_ptr<OriginClient> origin;
  if (!origin_urls.empty()) {
    OriginClientOptions options;
    options.base_urls = std::move(origin_urls);
    ASSIGN_OR_RETURN(origin, OriginClient::Create(options, clock_, sleeper_, bitgen_));
  }
  DownloadContext context;
  context.transport = transport_.get();
  context.tracker = tracker_.get();
  context.clock = &clock_;
  context.metrics = metrics_.get();
  context.download_pacer = downloads_.get();
  context.self = self_;
  std::string id = manifest.release_id();
  {
    absl::MutexLock lock(&mu_);
    if (releases_.contains(id)) return absl::OkStatus();
  }
  // Complete before it is visible: other threads use `download` at once.
  auto release = std::make_shared<Release>();
  release->download = std::make_unique<ReleaseDownload>(
      context, config_.download, std::move(store), std::move(origin),
      [this, id](ReleasePieceIndex piece) { Notify(id, piece); });
  LoadLocal(*release);
  {
    absl::MutexLock lock(&release->gate_mu);
    release->gate = std::make_unique<UploadGate>(
        release->download->store().pieces().total_pieces(),
        std::max(config_.peer_service.max_uploads, 1), /*distinct_first=*/true);
  }
  absl::MutexLock lock(&mu_);
  releases_.try_emplace(id, std::move(release));  // a racing twin stays
  return absl::OkStatus();
}

ReleaseStoreOptions Agent::StoreOptions() const {
  ReleaseStoreOptions options;
  options.durable = config_.durable;
  options.direct_io = config_.direct_io;
  return options;
}

absl::Status Agent::RecoverReleases() {
  std::string dir = config_.data_dir + "/releases";
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(dir.c_str()), closedir);
  if (d == nullptr) return ErrnoToStatus(errno, "cannot list", dir);
  std::vector<std::string> ids;
  while (struct dirent* e = readdir(d.get())) {
    if (e->d_name[0] != '.') ids.push_back(e->d_name);
  }
  for (const std::string& id : ids) {
    std::string rdir = absl::StrCat(dir, "/", id);
    absl::StatusOr<std::string> bytes = ReleaseStore::ReadStoredManifest(rdir);
    absl::StatusOr<Manifest> manifest =
        bytes.ok() ? Manifest::Verify(*bytes, *trust_, clock_.Now()) : bytes.status();
    absl::StatusOr<std::unique_ptr<ReleaseStore>> store =
        manifest.ok() ? ReleaseStore::Open(rdir, *manifest, StoreOptions())
                      : manifest.status();
    if (!store.ok()) {
      LOG(WARNING) << "not resuming release " << id << ": " << store.status();
      continue;
    }
    std::vector<std::string> urls;
    absl::StatusOr<std::string> saved = ReadFile(rdir + "/origin_urls", 1 << 16);
    if (saved.ok()) urls = absl::StrSplit(*saved, '\n', absl::SkipEmpty());
    if (urls.empty() && !config_.origin_url.empty()) urls.push_back(config_.origin_url);
    LOG(INFO) << "resuming " << manifest->display_name() << ": " << (*store)->verified_count()
              << " of " << (*store)->pieces().total_pieces() << " pieces verified";
    RETURN_IF_ERROR(StartRelease(*manifest, *std::move(store), std::move(urls)));
  }
  return absl::OkStatus();
}

std::string Agent::ReadyJson() const {
  nlohmann::json j;
  j["peer"] = self_.address();
  j["control"] = control_address_;
  j["metrics"] = metrics_address_;
  j["peer_id"] = self_.peer_id();
  return j.dump();
}

absl::StatusOr<ServedPiece> Agent::ReadPiece(const std::string& release_id,
                                             ReleasePieceIndex piece) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("no release ", release_id));
  const ReleaseStore& store = r->download->store();
  if (piece.value() >= store.pieces().total_pieces() || !store.Has(piece)) {
    return absl::NotFoundError(absl::StrCat("piece ", piece.value(), " is not held"));
  }
  {
    absl::MutexLock lock(&r->gate_mu);
    if (!r->gate->TryStart(piece, store.bitfield())) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "piece ", piece.value(), " is on its way to another peer; this agent holds pieces "
          "nobody has had from it yet: ask for another piece"));
    }
  }
  auto ticket = std::make_unique<GateTicket>(r, piece);
  ASSIGN_OR_RETURN(ServedPiece served, store.Read(piece));
  served.ticket = std::move(ticket);
  r->last_used_ms.store(absl::ToUnixMillis(clock_.Now()), std::memory_order_relaxed);
  r->download->CountSent(served.data.size());
  metrics_->CountSent(served.data.size());
  return served;
}

absl::StatusOr<Subscription> Agent::Subscribe(const std::string& release_id,
                                              HaveListener& listener) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return absl::NotFoundError(absl::StrCat("no release ", release_id));
  absl::MutexLock lock(&r->hub_mu);
  Bitfield now = r->download->store().bitfield();
  r->listeners.insert(&listener);
  return Subscription{std::move(now), std::make_unique<HaveHandle>(r, &listener)};
}

std::vector<v1::PeerAddress> Agent::ExchangePeers(const std::string& release_id,
                                                  const v1::PeerAddress& asker, size_t limit) {
  std::shared_ptr<Release> r = Find(release_id);
  if (r == nullptr) return {};
  return r->download->KnownPeers(asker, limit);
}

}  // namespace shoal::agent
