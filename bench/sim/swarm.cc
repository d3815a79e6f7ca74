// The swarm simulator: virtual time, messages, the data plane, announces
// and tracker calls. The agents' engines are in swarm_engine.cc.

#include "bench/sim/swarm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/sim/swarm_internal.h"
#include "glog/logging.h"

namespace shoal::sim {

double SimResult::Percentile(double q) const {
  if (downloaders == 0) return 0;
  // Nearest rank over every downloader, the incomplete ones last.
  const size_t rank = static_cast<size_t>(
      std::max(1.0, std::ceil(q * static_cast<double>(downloaders))));
  if (rank > completion_seconds.size()) {
    return std::numeric_limits<double>::infinity();
  }
  return completion_seconds[rank - 1];
}

namespace internal {

Swarm::Swarm(const Scenario& scenario)
    : s_(scenario),
      release_id_(std::string(64, 'a')),
      net_(scenario.fairness_tolerance),
      rng_(scenario.random_seed) {}

absl::Status Swarm::Init() {
  if (absl::Status st = CheckScenario(s_); !st.ok()) return st;
  const uint32_t n = s_.num_pieces();
  for (uint32_t i = 0; i < n; ++i) {
    lengths_.push_back(std::min<uint64_t>(
        s_.piece_bytes, s_.release_bytes - uint64_t{i} * s_.piece_bytes));
  }
  for (int d = 0; d < s_.datacenters; ++d) {
    TrackerSettings t;
    t.datacenter = absl::StrCat("dc", d);
    t.release_id = release_id_;
    t.num_pieces = n;
    t.lease_holders = s_.lease_holders;
    t.lease_ttl = s_.lease_ttl;
    t.max_peers_returned = s_.max_peers_returned;
    t.random_seed = s_.random_seed * 1000003 + d;
    t.other_rack_places = 2 * s_.cross_rack_peers;
    t.threads = s_.tracker_threads;
    t.call_cost = s_.tracker_call_cost;
    t.peer_cost = s_.tracker_peer_cost;
    t.announce_cost = s_.tracker_announce_cost;
    trackers_.push_back(std::make_unique<TrackerModel>(t));
    dc_up_.push_back(net_.AddLink(s_.datacenter_uplink_rate));
    dc_down_.push_back(net_.AddLink(s_.datacenter_uplink_rate));
  }
  for (int r = 0; r < s_.num_racks(); ++r) {
    rack_up_.push_back(net_.AddLink(s_.rack_uplink_rate));
    rack_down_.push_back(net_.AddLink(s_.rack_uplink_rate));
  }
  origin_up_ = net_.AddLink(s_.origin_rate);
  Bitfield full(n);
  for (uint32_t i = 0; i < n; ++i) full.Set(ReleasePieceIndex(i));
  agents_.resize(s_.num_agents());
  for (int i = 0; i < s_.num_agents(); ++i) {
    SimAgent& a = agents_[i];
    a.datacenter = s_.datacenter_of(i);
    a.rack = s_.rack_of(i);
    a.peer_id = absl::StrFormat("%032x", i + 1);
    a.seed = i >= s_.agents;
    a.corrupt = i < s_.corrupt;
    a.held = a.seed ? full : Bitfield(n);
    a.calling.assign(n, 0);
    a.gate = std::make_unique<agent::UploadGate>(n, s_.max_uploads,
                                                 /*distinct_first=*/true);
    a.pex_rng.seed(s_.random_seed * 7919 + i);
    up_.push_back(net_.AddLink(s_.upload_rate()));
    down_.push_back(net_.AddLink(s_.nic_rate));
    if (a.seed) continue;
    a.rng = std::make_unique<std::mt19937_64>(s_.random_seed * 104729 + i);
    absl::StatusOr<std::unique_ptr<agent::Scheduler>> scheduler =
        agent::Scheduler::Create(s_.scheduler, lengths_, a.held, *a.rng);
    if (!scheduler.ok()) return scheduler.status();
    a.scheduler = *std::move(scheduler);
    a.idle_workers = s_.workers;
  }
  result_.downloaders = s_.agents;
  result_.release_bytes = s_.release_bytes;
  result_.origin_bytes_by_datacenter.assign(s_.datacenters, 0);
  result_.all_pieces_in_datacenter_seconds.assign(
      s_.datacenters, std::numeric_limits<double>::infinity());
  in_datacenter_.assign(s_.datacenters, Bitfield(n));
  for (const SimAgent& a : agents_) {
    if (a.seed) in_datacenter_[a.datacenter] = full;
  }
  return absl::OkStatus();
}

void Swarm::Push(absl::Duration at, Event e) {
  e.at = at;
  e.seq = seq_++;
  events_.push(e);
}

absl::Duration Swarm::Latency(int a, int b) const {
  return agents_[a].datacenter == agents_[b].datacenter ? s_.local_latency
                                                        : s_.datacenter_latency;
}

agent::Locality Swarm::LocalityOf(int a, int b) const {
  if (agents_[a].datacenter != agents_[b].datacenter) {
    return agent::Locality::kRemote;
  }
  return agents_[a].rack == agents_[b].rack ? agent::Locality::kRack
                                            : agent::Locality::kDatacenter;
}

void Swarm::Wake(int a) {
  SimAgent& agent = agents_[a];
  if (agent.woken || !agent.engine_running) return;
  agent.woken = true;
  woken_.push_back(a);
}

void Swarm::WakeIfUseful(int a, uint32_t piece) {
  const SimAgent& agent = agents_[a];
  if (!agent.engine_running || agent.woken) return;
  if (!s_.wake_on_every_event) {
    // Such a piece is not among NextRequests' candidates.
    if (agent.calling[piece] > 0 || agent.held.Get(ReleasePieceIndex(piece))) {
      return;
    }
    const agent::Progress p = agent.scheduler->progress();
    if (static_cast<int>(p.requests_in_flight) >= s_.scheduler.max_in_flight &&
        !p.endgame) {
      return;  // NextRequests would return nothing; ticks cover the rest
    }
  }
  Wake(a);
}

// --- The loop. ---

SimResult Swarm::Run(const ProgressFn& progress) {
  const absl::Time wall_start = absl::Now();
  for (int a = 0; a < s_.num_agents(); ++a) {
    Event e;
    e.agent = a;
    if (agents_[a].seed) {
      RequestAnnounce(a);
    } else {
      e.kind = EventKind::kStart;
      const double spread = absl::ToDoubleSeconds(s_.start_spread);
      Push(absl::Seconds(spread > 0 ? std::uniform_real_distribution<double>(
                                          0, spread)(rng_)
                                    : 0),
           e);
    }
    if (s_.peer_exchange) {
      e.kind = EventKind::kPex;
      Push(s_.pex_interval * std::uniform_real_distribution<double>(0, 1)(rng_),
           e);
    }
  }
  while (!Finished(progress)) {
    const absl::Duration next =
        events_.empty() ? net_.NextCompletion()
                        : std::min(events_.top().at, net_.NextCompletion());
    if (next == absl::InfiniteDuration()) break;
    Quantum(absl::Floor(next, s_.quantum) + s_.quantum);
  }
  return Collect(absl::Now() - wall_start);
}

bool Swarm::Finished(const ProgressFn& progress) {
  if (progress && absl::Floor(now_, absl::Seconds(1)) !=
                      absl::Floor(now_ - s_.quantum, absl::Seconds(1))) {
    progress(now_, completed_);
  }
  if (completed_ == s_.agents) return true;
  if (now_ >= s_.time_limit) {
    result_.timed_out = true;
    return true;
  }
  if (now_ - last_progress_ > s_.stall_limit) {
    result_.stalled = true;
    return true;
  }
  return false;
}

// Everything that happens before `end`, in time order; then the engines
// that heard news run, and rates are recomputed.
void Swarm::Quantum(absl::Duration end) {
  ++result_.quanta;
  while (true) {
    const absl::Duration flow_end = net_.NextCompletion();
    const absl::Duration event =
        events_.empty() ? absl::InfiniteDuration() : events_.top().at;
    if (std::min(flow_end, event) >= end) break;
    if (flow_end <= event) {
      const std::optional<FlowEnd> done = net_.PopCompletion(flow_end);
      now_ = done->at;
      OnFlowEnd(*done);
      continue;
    }
    const Event e = events_.top();
    events_.pop();
    now_ = e.at;
    ++result_.events;
    Dispatch(e);
  }
  now_ = end;
  std::vector<int> woken;
  woken.swap(woken_);
  for (int a : woken) {
    agents_[a].woken = false;
    if (agents_[a].engine_running) Engine(a);
  }
  result_.peak_flows = std::max(result_.peak_flows, net_.running_flows());
  net_.Update(now_);
}

void Swarm::Dispatch(const Event& e) {
  switch (e.kind) {
    case EventKind::kStart:
      return StartFetch(e.agent);
    case EventKind::kTick:
      return OnTick(e);
    case EventKind::kAnnounce:
      return OnAnnounce(e);
    case EventKind::kTrackerCall:
      return OnTrackerCall(e);
    case EventKind::kTrackerServe:
      return OnTrackerServe(e);
    case EventKind::kTrackerReply:
      return OnTrackerReply(e);
    case EventKind::kWatch:
      return OnWatch(e);
    case EventKind::kWatchReply:
      return OnWatchReply(e);
    case EventKind::kHave:
      return OnHave(e);
    case EventKind::kPex:
      return OnPex(e);
    case EventKind::kPeerList:
      Learn(e.agent, payloads_[e.id].peers);
      return FreePayload(e.id);
    case EventKind::kFetch:
      return OnFetch(e);
    case EventKind::kFetchRefused:
      return OnFetchRefused(e);
    case EventKind::kPieceArrive:
      return OnPieceArrive(e);
    case EventKind::kCallDeadline:
      return OnCallDeadline(e);
    case EventKind::kOriginRequest:
      return OnOriginRequest(e);
  }
}

// --- Calls and flows. ---

uint32_t Swarm::NewCall(int asker, int server, uint32_t piece,
                        uint64_t length) {
  uint32_t slot;
  if (free_calls_.empty()) {
    slot = static_cast<uint32_t>(calls_.size());
    calls_.emplace_back();
  } else {
    slot = free_calls_.back();
    free_calls_.pop_back();
  }
  Call& c = calls_[slot];
  c.asker = asker;
  c.server = server;
  c.piece = piece;
  c.length = length;
  c.flowing = false;
  c.live = true;
  agents_[asker].calls.push_back(slot);
  ++agents_[asker].calling[piece];
  return slot;
}

Call* Swarm::LiveCall(const Event& e) {
  Call& c = calls_[e.id];
  return c.live && c.generation == e.generation ? &c : nullptr;
}

void Swarm::EndCall(uint32_t slot) {
  Call& c = calls_[slot];
  StopFlow(slot);
  std::vector<uint32_t>& mine = agents_[c.asker].calls;
  mine.erase(std::find(mine.begin(), mine.end(), slot));
  --agents_[c.asker].calling[c.piece];
  c.live = false;
  ++c.generation;
  free_calls_.push_back(slot);
}

// Cuts off a transfer in progress (a deadline, a dropped session).
void Swarm::StopFlow(uint32_t slot) {
  Call& c = calls_[slot];
  if (!c.flowing) return;
  c.flowing = false;
  const double moved = net_.Stop(c.flow, now_);
  result_.wasted_bytes += moved;
  if (c.server >= 0) {
    Account(c.server, c.asker, moved);
    agents_[c.server].gate->Finish(ReleasePieceIndex(c.piece));
  } else {
    result_.origin_bytes_by_datacenter[agents_[c.asker].datacenter] += moved;
  }
}

void Swarm::Account(int server, int asker, double bytes) {
  const SimAgent& from = agents_[server];
  const SimAgent& to = agents_[asker];
  if (from.datacenter != to.datacenter) {
    result_.cross_datacenter_bytes += bytes;
  } else if (from.rack != to.rack) {
    result_.cross_rack_bytes += bytes;
  } else {
    result_.rack_bytes += bytes;
  }
}

// The server's side of FetchPiece: refuse at once or start sending.
void Swarm::OnFetch(const Event& e) {
  Call* c = LiveCall(e);
  if (c == nullptr) return;  // the asker gave up meanwhile
  SimAgent& server = agents_[c->server];
  Event reply;
  reply.agent = c->asker;
  reply.id = e.id;
  reply.generation = e.generation;
  reply.kind = EventKind::kFetchRefused;
  const ReleasePieceIndex piece(c->piece);
  if (!server.held.Get(piece)) {
    ++result_.not_found_refusals;
    Push(now_ + Latency(c->server, c->asker), reply);
    return;
  }
  if (!server.gate->TryStart(piece, server.held)) {
    ++result_.busy_refusals;
    reply.busy = true;
    Push(now_ + Latency(c->server, c->asker), reply);
    return;
  }
  const SimAgent& asker = agents_[c->asker];
  path_.clear();
  path_.push_back(up_[c->server]);
  if (server.rack != asker.rack) {
    path_.push_back(rack_up_[server.rack]);
    if (server.datacenter != asker.datacenter) {
      path_.push_back(dc_up_[server.datacenter]);
      path_.push_back(dc_down_[asker.datacenter]);
    }
    path_.push_back(rack_down_[asker.rack]);
  }
  path_.push_back(down_[c->asker]);
  c->flow = net_.Start(path_, static_cast<double>(c->length), e.id, now_);
  c->flowing = true;
}

void Swarm::OnOriginRequest(const Event& e) {
  Call* c = LiveCall(e);
  if (c == nullptr) return;
  const SimAgent& asker = agents_[c->asker];
  path_ = {origin_up_, dc_down_[asker.datacenter], rack_down_[asker.rack],
           down_[c->asker]};
  c->flow = net_.Start(path_, static_cast<double>(c->length), e.id, now_);
  c->flowing = true;
}

void Swarm::OnFlowEnd(const FlowEnd& end) {
  const uint32_t slot = static_cast<uint32_t>(end.tag);
  Call& c = calls_[slot];
  c.flowing = false;
  Event arrive;
  arrive.kind = EventKind::kPieceArrive;
  arrive.agent = c.asker;
  arrive.id = slot;
  arrive.generation = c.generation;
  if (c.server < 0) {
    result_.origin_bytes_by_datacenter[agents_[c.asker].datacenter] +=
        static_cast<double>(c.length);
    Push(end.at + s_.origin_latency, arrive);
    return;
  }
  Account(c.server, c.asker, static_cast<double>(c.length));
  agents_[c.server].gate->Finish(ReleasePieceIndex(c.piece));
  Push(end.at + Latency(c.server, c.asker), arrive);
}

void Swarm::OnPieceArrive(const Event& e) {
  Call* c = LiveCall(e);
  if (c == nullptr) return;
  const int a = c->asker, server = c->server;
  const uint32_t piece = c->piece;
  const uint64_t length = c->length;
  EndCall(e.id);
  SimAgent& agent = agents_[a];
  const bool duplicate = agent.held.Get(ReleasePieceIndex(piece));
  if (server < 0) {
    // FetchFromOrigin: stored (or already there), then reported.
    ++result_.pieces_from_origin;
    if (duplicate) result_.wasted_bytes += static_cast<double>(length);
    if (!duplicate) Store(a, piece);
    --agent.origin_fetches;
    FinishTask(a);
    if (agent.engine_running) {
      agent.scheduler->OnPieceFromOrigin(ReleasePieceIndex(piece), length,
                                         Now());
      Wake(a);
    }
    return;
  }
  if (agents_[server].corrupt) {
    result_.wasted_bytes += static_cast<double>(length);
    HandleFailure(a, server, piece, agent::FailureReason::kBadProof);
    return;
  }
  if (duplicate) {  // ALREADY_EXISTS: not held against the peer
    result_.wasted_bytes += static_cast<double>(length);
    return;
  }
  ++result_.pieces_from_peers;
  Store(a, piece);
  if (!agent.engine_running) return;
  // Copies of the piece still in flight end on their own (download.cc).
  agent.scheduler->OnPieceVerified(PeerKey(server), ReleasePieceIndex(piece),
                                   length, Now());
  Wake(a);
}

void Swarm::OnFetchRefused(const Event& e) {
  Call* c = LiveCall(e);
  if (c == nullptr) return;
  const int a = c->asker, server = c->server;
  const uint32_t piece = c->piece;
  EndCall(e.id);
  HandleFailure(
      a, server, piece,
      e.busy ? agent::FailureReason::kBusy : agent::FailureReason::kRefused);
}

void Swarm::OnCallDeadline(const Event& e) {
  Call* c = LiveCall(e);
  if (c == nullptr) return;
  const int a = c->asker, server = c->server;
  const uint32_t piece = c->piece;
  ++result_.timeouts;
  EndCall(e.id);
  HandleFailure(a, server, piece, agent::FailureReason::kTimeout);
}

// --- Availability. ---

void Swarm::Store(int a, uint32_t piece) {
  SimAgent& agent = agents_[a];
  agent.held.Set(ReleasePieceIndex(piece));
  last_progress_ = now_;
  Bitfield& there = in_datacenter_[agent.datacenter];
  if (!there.Get(ReleasePieceIndex(piece))) {
    there.Set(ReleasePieceIndex(piece));
    if (there.complete()) {
      result_.all_pieces_in_datacenter_seconds[agent.datacenter] =
          absl::ToDoubleSeconds(now_);
    }
  }
  bool local = false, remote = false;
  for (int w : agent.watchers) {
    (agents_[w].datacenter == agent.datacenter ? local : remote) = true;
  }
  Event have;
  have.kind = EventKind::kHave;
  have.agent = a;
  have.piece = piece;
  if (local) Push(now_ + s_.local_latency, have);
  have.remote = true;
  if (remote) Push(now_ + s_.datacenter_latency, have);
  if (agent.held.complete()) {
    agent.completed = now_ - agent.started;
    ++completed_;
    RequestAnnounce(a);
  }
}

void Swarm::OnHave(const Event& e) {
  const SimAgent& server = agents_[e.agent];
  for (int w : server.watchers) {
    SimAgent& watcher = agents_[w];
    if ((watcher.datacenter != server.datacenter) != e.remote) continue;
    if (!watcher.engine_running || !watcher.sessions.contains(e.agent)) {
      continue;
    }
    watcher.scheduler->OnHave(PeerKey(e.agent), ReleasePieceIndex(e.piece))
        .IgnoreError();
    WakeIfUseful(w, e.piece);
  }
}

// A Watch reaches the server: it subscribes the asker and answers with its
// bitfield and a peer-exchange list.
void Swarm::OnWatch(const Event& e) {
  const int server = e.agent, asker = e.peer;
  auto it = agents_[asker].sessions.find(server);
  if (it == agents_[asker].sessions.end() ||
      it->second.generation != e.generation) {
    return;
  }
  agents_[server].watchers.push_back(asker);
  Event reply = e;
  reply.kind = EventKind::kWatchReply;
  reply.agent = asker;
  reply.peer = server;
  reply.id = NewPayload();
  payloads_[reply.id].bitfield = agents_[server].held.bytes();
  if (s_.peer_exchange) payloads_[reply.id].peers = KnownPeers(server, asker);
  Push(now_ + Latency(server, asker), reply);
}

void Swarm::OnWatchReply(const Event& e) {
  SimAgent& a = agents_[e.agent];
  auto it = a.sessions.find(e.peer);
  if (a.engine_running && it != a.sessions.end() &&
      it->second.generation == e.generation) {
    a.scheduler->OnBitfield(PeerKey(e.peer), payloads_[e.id].bitfield)
        .IgnoreError();
    Learn(e.agent, payloads_[e.id].peers);
    Wake(e.agent);
  }
  FreePayload(e.id);
}

void Swarm::OnPex(const Event& e) {
  const int server = e.agent;
  for (int w : agents_[server].watchers) {
    Event list;
    list.kind = EventKind::kPeerList;
    list.agent = w;
    list.id = NewPayload();
    payloads_[list.id].peers = KnownPeers(server, w);
    Push(now_ + Latency(server, w), list);
  }
  Event next = e;
  Push(now_ + s_.pex_interval, next);
}

// --- Announces and tracker calls. ---

// As Agent::AnnounceLoop: at most one announce a second.
void Swarm::RequestAnnounce(int a) {
  SimAgent& agent = agents_[a];
  const absl::Duration at =
      std::max(now_, agent.last_announce + absl::Seconds(1));
  if (agent.announce_at <= at) return;
  agent.announce_at = at;
  Event e;
  e.kind = EventKind::kAnnounce;
  e.agent = a;
  e.id = ++agent.announce_version;
  Push(at, e);
}

void Swarm::OnAnnounce(const Event& e) {
  SimAgent& agent = agents_[e.agent];
  if (e.id != agent.announce_version) return;
  agent.last_announce = now_;
  SendToTracker(e.agent, NewPayload());  // an announce
  absl::Duration interval =
      trackers_[agent.datacenter]->Jittered(s_.announce_interval);
  if (!agent.seed && !agent.held.complete()) {
    interval = std::min(interval, s_.downloading_announce);
  }
  agent.announce_at = now_ + interval;
  Event next = e;
  next.id = ++agent.announce_version;
  Push(agent.announce_at, next);
}

void Swarm::SendToTracker(int a, uint32_t payload) {
  Event call;
  call.kind = EventKind::kTrackerCall;
  call.agent = a;
  call.id = payload;
  Push(now_ + s_.local_latency, call);
}

void Swarm::OnTrackerCall(const Event& e) {
  Payload& p = payloads_[e.id];
  Event serve = e;
  serve.kind = EventKind::kTrackerServe;
  Push(trackers_[agents_[e.agent].datacenter]->Admit(p.call, now_, &p.done),
       serve);
}

void Swarm::OnTrackerServe(const Event& e) {
  const SimAgent& agent = agents_[e.agent];
  TrackerModel& tracker = *trackers_[agent.datacenter];
  Payload& p = payloads_[e.id];
  switch (p.call) {
    case TrackerCall::kAnnounce:
      tracker.Announce(e.agent, agent.peer_id, absl::StrCat("r", agent.rack),
                       agent.held.bytes(), agent.held.complete(), Now());
      FreePayload(e.id);
      return;
    case TrackerCall::kGetPeers:
      p.peers = tracker.GetPeers(e.agent, agent.peer_id,
                                 static_cast<uint32_t>(2 * s_.max_peers));
      break;
    case TrackerCall::kLease: {
      v1::OriginLeaseRequest request;
      request.set_peer_id(agent.peer_id);
      request.set_release_id(release_id_);
      for (const agent::OriginWant& w : p.task.wants) {
        request.add_pieces(w.piece.value());
        if (w.holders_failed) request.add_holders_failed(w.piece.value());
      }
      const v1::OriginLeaseResponse answer =
          tracker.RequestLease(e.agent, request, Now());
      p.granted.assign(answer.granted().begin(), answer.granted().end());
      for (const agent::OriginWant& w : p.task.wants) {
        if (std::find(p.granted.begin(), p.granted.end(), w.piece.value()) ==
            p.granted.end()) {
          p.denied.push_back(w.piece.value());
        }
      }
      break;
    }
  }
  Event reply = e;
  reply.kind = EventKind::kTrackerReply;
  Push(p.done + s_.local_latency, reply);
}

uint32_t Swarm::NewPayload() {
  if (free_payloads_.empty()) {
    payloads_.emplace_back();
    return static_cast<uint32_t>(payloads_.size() - 1);
  }
  const uint32_t id = free_payloads_.back();
  free_payloads_.pop_back();
  return id;
}

void Swarm::FreePayload(uint32_t id) {
  payloads_[id] = Payload();
  free_payloads_.push_back(id);
}

}  // namespace internal

absl::StatusOr<SimResult> RunSimulation(const Scenario& scenario,
                                        const ProgressFn& progress) {
  internal::Swarm swarm(scenario);
  if (absl::Status s = swarm.Init(); !s.ok()) return s;
  return swarm.Run(progress);
}

}  // namespace shoal::sim
