// One agent's download engine, as agent/download.cc runs it: events feed
// the Scheduler as they arrive; then Periodic (here Engine) reports
// timeouts and drops, refreshes peers, connects, asks for leases and sends
// the requests the Scheduler decides. Blocking calls (tracker, origin) run
// on a small worker pool.

#include <algorithm>

#include "bench/sim/swarm_internal.h"
#include "glog/logging.h"

namespace shoal::sim::internal {
namespace {

// Known peers kept per release (ReleaseDownload::Learn).
constexpr size_t kMaxKnownPeers = 1024;
// A dropped peer is not dialled again for this long (DropPeer).
constexpr absl::Duration kDialBackoff = absl::Seconds(5);
// Shortest deadline the transport is given (IssueRequests).
constexpr absl::Duration kMinCallTimeout = absl::Milliseconds(100);

}  // namespace

void Swarm::StartFetch(int a) {
  SimAgent& agent = agents_[a];
  agent.started = now_;
  agent.engine_running = true;
  RequestAnnounce(a);  // Agent::Fetch
  // The engine's first pass comes after one tick without events.
  agent.next_tick = now_ + s_.engine_tick;
  ScheduleTick(a);
}

void Swarm::ScheduleTick(int a) {
  SimAgent& agent = agents_[a];
  if (agent.tick_pending) return;
  agent.tick_pending = true;
  Event e;
  e.kind = EventKind::kTick;
  e.agent = a;
  Push(agent.next_tick, e);
}

void Swarm::OnTick(const Event& e) {
  SimAgent& agent = agents_[e.agent];
  agent.tick_pending = false;
  if (!agent.engine_running) return;
  if (now_ >= agent.next_tick) {
    Wake(e.agent);
  } else {
    ScheduleTick(e.agent);  // the engine ran since; wait from then
  }
}

// ReleaseDownload::Periodic, then the loop's completion check.
void Swarm::Engine(int a) {
  SimAgent& agent = agents_[a];
  agent::Scheduler& s = *agent.scheduler;
  ++result_.engine_runs;
  for (const agent::Cancel& c : s.Expired(Now())) {
    s.OnPieceFailed(c.peer, c.piece, agent::FailureReason::kTimeout, Now());
  }
  for (const agent::Drop& d : s.PeersToDrop(Now())) {
    ++result_.drops[static_cast<int>(d.reason)];
    const int peer = static_cast<int>(d.peer.value());
    if (agent.sessions.contains(peer)) DropPeer(a, peer);
  }
  RefreshPeers(a);
  ConnectMore(a);
  AskForOrigin(a);
  IssueRequests(a);
  if (s.complete()) {
    StopEngine(a);
    return;
  }
  agent.next_tick = now_ + s_.engine_tick;
  ScheduleTick(a);
}

// The engine's loop ends with the release: every session is closed.
void Swarm::StopEngine(int a) {
  SimAgent& agent = agents_[a];
  std::vector<int> peers;
  for (const auto& [peer, unused] : agent.sessions) peers.push_back(peer);
  std::sort(peers.begin(), peers.end());
  for (int peer : peers) DropPeer(a, peer);
  agent.engine_running = false;
}

void Swarm::RefreshPeers(int a) {
  SimAgent& agent = agents_[a];
  if (agent.refresh_in_flight) return;
  // Soon while without peers, sooner than usual while short of them.
  absl::Duration wait = s_.peer_refresh;
  if (agent.sessions.empty()) {
    wait = absl::Seconds(1);
  } else if (static_cast<int>(agent.sessions.size()) < s_.max_peers / 2) {
    wait = s_.peer_refresh / 2;
  }
  if (now_ < agent.last_refresh + wait) return;
  agent.last_refresh = now_;
  agent.refresh_in_flight = true;
  RunOnWorker(a, Task{Task::kGetPeers, {}, 0});
}

void Swarm::ConnectMore(int a) {
  SimAgent& agent = agents_[a];
  if (static_cast<int>(agent.sessions.size()) >= s_.max_peers) return;
  std::vector<int> candidates = agent.known;
  std::shuffle(candidates.begin(), candidates.end(), *agent.rng);
  std::stable_sort(candidates.begin(), candidates.end(), [&](int x, int y) {
    return LocalityOf(a, x) < LocalityOf(a, y);
  });
  // The cross_rack_peers what-if: rack peers leave room for others.
  int rack_sessions = 0;
  for (const auto& [peer, session] : agent.sessions) {
    rack_sessions += session.locality == agent::Locality::kRack;
  }
  const int rack_cap = s_.max_peers - s_.cross_rack_peers;
  for (int peer : candidates) {
    if (static_cast<int>(agent.sessions.size()) >= s_.max_peers) break;
    const bool rack = LocalityOf(a, peer) == agent::Locality::kRack;
    if (rack && rack_sessions >= rack_cap) continue;
    auto backoff = agent.dial_backoff.find(peer);
    if (agent.sessions.contains(peer) ||
        agent.scheduler->IsBanned(PeerKey(peer)) ||
        (backoff != agent.dial_backoff.end() && backoff->second > now_)) {
      continue;
    }
    if (!agent.scheduler->AddPeer(PeerKey(peer), LocalityOf(a, peer)).ok()) {
      continue;
    }
    Connect(a, peer);
    rack_sessions += rack;
  }
}

void Swarm::Connect(int a, int b) {
  SimAgent& agent = agents_[a];
  const uint32_t generation = ++agent.session_generation;
  agent.sessions[b] = Session{LocalityOf(a, b), generation};
  ++result_.sessions_opened;
  Event watch;
  watch.kind = EventKind::kWatch;
  watch.agent = b;
  watch.peer = a;
  watch.generation = generation;
  Push(now_ + Latency(a, b), watch);
}

// Closing a session cancels its fetches (their failures reach a scheduler
// that has already forgotten the peer) and ends its Watch.
void Swarm::DropPeer(int a, int b) {
  SimAgent& agent = agents_[a];
  agent.dial_backoff[b] = now_ + kDialBackoff;
  agent.sessions.erase(b);
  agent.scheduler->RemovePeer(PeerKey(b));
  std::vector<uint32_t> cancelled;
  for (uint32_t slot : agent.calls) {
    if (calls_[slot].server == b) cancelled.push_back(slot);
  }
  for (uint32_t slot : cancelled) EndCall(slot);
  std::vector<int>& watchers = agents_[b].watchers;
  watchers.erase(std::remove(watchers.begin(), watchers.end(), a),
                 watchers.end());
}

void Swarm::AskForOrigin(int a) {
  SimAgent& agent = agents_[a];
  // With every origin slot fetching, PiecesWantingOrigin returns nothing
  // (and changes nothing): skip its walk over every piece.
  if (agent.lease_in_flight ||
      agent.origin_fetches >= s_.scheduler.max_origin_in_flight) {
    return;
  }
  std::vector<agent::OriginWant> wants =
      agent.scheduler->PiecesWantingOrigin(Now(), s_.lease_batch);
  if (wants.empty()) return;
  if (s_.origin_rate <= 0) {  // no origin: peers only
    for (const agent::OriginWant& w : wants) {
      agent.scheduler->OnOriginLease(w.piece, false, Now()).IgnoreError();
    }
    return;
  }
  agent.lease_in_flight = true;
  RunOnWorker(a, Task{Task::kLease, std::move(wants), 0});
}

void Swarm::IssueRequests(int a) {
  SimAgent& agent = agents_[a];
  for (const agent::Assignment& asg : agent.scheduler->NextRequests(Now())) {
    const int server = static_cast<int>(asg.peer.value());
    if (!agent.sessions.contains(server)) continue;
    ++result_.requests;
    if (asg.endgame) ++result_.endgame_requests;
    const uint32_t slot = NewCall(a, server, asg.piece.value(), asg.length);
    Event fetch;
    fetch.kind = EventKind::kFetch;
    fetch.agent = server;
    fetch.id = slot;
    fetch.generation = calls_[slot].generation;
    Push(now_ + Latency(a, server), fetch);
    Event deadline = fetch;
    deadline.kind = EventKind::kCallDeadline;
    deadline.agent = a;
    Push(now_ + std::max(asg.deadline - Now(), kMinCallTimeout), deadline);
  }
}

// ReleaseDownload::HandlePiece.
void Swarm::HandleFailure(int a, int peer, uint32_t piece,
                          agent::FailureReason reason) {
  SimAgent& agent = agents_[a];
  if (!agent.engine_running) return;
  const agent::PeerVerdict verdict = agent.scheduler->OnPieceFailed(
      PeerKey(peer), ReleasePieceIndex(piece), reason, Now());
  if (verdict == agent::PeerVerdict::kBan) ++result_.bans;
  if (verdict != agent::PeerVerdict::kKeep && agent.sessions.contains(peer)) {
    DropPeer(a, peer);
  }
  Wake(a);
}

void Swarm::Learn(int a, const std::vector<int>& peers) {
  SimAgent& agent = agents_[a];
  for (int p : peers) {
    if (p == a) continue;
    if (agent.known_set.size() >= kMaxKnownPeers &&
        !agent.known_set.contains(p)) {
      continue;
    }
    if (agent.known_set.insert(p).second) agent.known.push_back(p);
  }
}

// ReleaseDownload::KnownPeers: the server remembers the asker, and answers
// with members it knows, the asker's datacenter first. Its map has no
// useful order; a random sample stands for it.
std::vector<int> Swarm::KnownPeers(int server, int asker) {
  Learn(server, {asker});
  SimAgent& agent = agents_[server];
  std::vector<int> out;
  for (int p : agent.known) {
    if (p != asker) out.push_back(p);
  }
  std::shuffle(out.begin(), out.end(), agent.pex_rng);
  std::stable_partition(out.begin(), out.end(), [&](int p) {
    return agents_[p].datacenter == agents_[asker].datacenter;
  });
  if (out.size() > static_cast<size_t>(s_.pex_limit)) out.resize(s_.pex_limit);
  return out;
}

// --- Worker pool. ---

void Swarm::RunOnWorker(int a, Task task) {
  SimAgent& agent = agents_[a];
  if (agent.idle_workers == 0) {
    agent.queued_tasks.push_back(std::move(task));
    return;
  }
  --agent.idle_workers;
  StartTask(a, std::move(task));
}

void Swarm::StartTask(int a, Task task) {
  if (task.kind == Task::kOrigin) {
    const uint32_t slot = NewCall(a, -1, task.piece, lengths_[task.piece]);
    Event request;
    request.kind = EventKind::kOriginRequest;
    request.agent = a;
    request.id = slot;
    request.generation = calls_[slot].generation;
    Push(now_ + s_.origin_latency, request);
    return;
  }
  const uint32_t id = NewPayload();
  payloads_[id].call = task.kind == Task::kGetPeers ? TrackerCall::kGetPeers
                                                    : TrackerCall::kLease;
  payloads_[id].task = std::move(task);
  SendToTracker(a, id);
}

void Swarm::FinishTask(int a) {
  SimAgent& agent = agents_[a];
  if (agent.queued_tasks.empty()) {
    ++agent.idle_workers;
    return;
  }
  Task next = std::move(agent.queued_tasks.front());
  agent.queued_tasks.pop_front();
  StartTask(a, std::move(next));
}

void Swarm::OnTrackerReply(const Event& e) {
  const int a = e.agent;
  FinishTask(a);
  SimAgent& agent = agents_[a];
  const Payload& p = payloads_[e.id];
  if (p.task.kind == Task::kGetPeers) {
    agent.refresh_in_flight = false;
    Learn(a, p.peers);
  } else {
    agent.lease_in_flight = false;
    if (agent.engine_running) OnLeaseAnswer(a, p);
  }
  Wake(a);
  FreePayload(e.id);
}

void Swarm::OnLeaseAnswer(int a, const Payload& p) {
  SimAgent& agent = agents_[a];
  for (uint32_t piece : p.granted) {
    if (agent.scheduler->OnOriginLease(ReleasePieceIndex(piece), true, Now())
            .ok()) {
      ++agent.origin_fetches;
      RunOnWorker(a, Task{Task::kOrigin, {}, piece});
    }
  }
  for (uint32_t piece : p.denied) {
    agent.scheduler->OnOriginLease(ReleasePieceIndex(piece), false, Now())
        .IgnoreError();
  }
}

// --- Results. ---

SimResult Swarm::Collect(absl::Duration wall) {
  SimResult r = std::move(result_);
  r.completed = completed_;
  r.end_seconds = absl::ToDoubleSeconds(now_);
  for (const SimAgent& a : agents_) {
    if (!a.seed && a.completed) {
      r.completion_seconds.push_back(absl::ToDoubleSeconds(*a.completed));
    }
  }
  std::sort(r.completion_seconds.begin(), r.completion_seconds.end());
  r.bound = ComputeFluidBound(s_);
  absl::Duration waited;
  uint64_t calls = 0;
  for (const auto& t : trackers_) {
    r.lease_requests += t->lease_requests();
    r.leases_granted += t->leases_granted();
    r.peer_requests += t->peer_requests();
    r.announces += t->announces();
    r.tracker_max_wait_seconds = std::max(r.tracker_max_wait_seconds,
                                          absl::ToDoubleSeconds(t->max_wait()));
    waited += t->total_wait();
    calls += t->calls();
  }
  if (calls > 0) {
    r.tracker_mean_wait_seconds = absl::ToDoubleSeconds(waited) / calls;
  }
  r.network = net_.stats();
  r.wall_seconds = absl::ToDoubleSeconds(wall);
  return r;
}

}  // namespace shoal::sim::internal
