#pragma once

// A Store in Redis, so that several replicas of one datacenter's tracker
// share swarm, lease, catalog and channel state. Every decision that must
// hold across replicas (granting a lease, trimming a swarm, bumping a
// channel's generation) runs as one Lua script, which Redis executes
// atomically.
//
// Key schema (R = release id, DC = datacenter, P = piece, all ms are the
// caller's clock, Unix epoch):
//
//   shoal:peers:R:DC        hash  peer id -> serialized v1::StoredPeer
//   shoal:peer-expiry:R:DC  zset  peer id, score = expiry ms
//   shoal:datacenters:R     set   datacenters with a swarm of R
//   shoal:swarms            zset  R, score = latest peer expiry ms
//   shoal:lease:R:P:DC      zset  holder peer id, score = expiry ms
//   shoal:leases:R:DC       zset  "P:peer id" for every lease of the swarm,
//                                 score = expiry ms (for CountLeases)
//   shoal:release:R         string serialized v1::StoredRelease
//   shoal:releases          set   every R in the catalog
//   shoal:release-name:NAME set   every R of one release name
//   shoal:channel:NAME      hash  release_id, percent, paused, generation,
//                                 updated_ms
//
// Release ids must not contain ':' (they are hex digests); a datacenter is
// always the last component of a key and may be any string.
//
// Liveness is always judged against the `now` the caller passes, never
// Redis' own clock, so the store behaves like MemoryStore under a fake
// clock. Expired peers and leases are trimmed lazily when their swarm or
// piece is read or written. Redis key TTLs are garbage collection only: every
// write extends the TTL of the swarm and lease keys it touches (never shortens
// it) to `key_ttl` past the write, plus the entry's remaining lifetime where
// the call tells it (leases). A swarm nobody announces to anymore thus
// disappears from Redis on its own. `key_ttl` must exceed the longest peer
// lifetime the tracker grants. The catalog and channels never expire.
// shoal:swarms has no TTL; ListSwarms trims it by score.
//
// Errors: UNAVAILABLE, naming the server, when Redis cannot be reached, times
// out, or answers with a transient error (LOADING, BUSY, READONLY, ...); the
// caller may retry. INTERNAL for a reply that makes no sense (a corrupt
// entry, an unexpected reply type). See RedisClient for how connections are
// pooled and recovered. The link is plain TCP without authentication (hiredis
// 0.14 has no TLS): keep Redis on a private network.
//
// Thread-safe.

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/v1/tracker.pb.h"
#include "tracker/redis_client.h"
#include "tracker/redis_scripts.h"
#include "tracker/store.h"

namespace shoal::tracker {

struct RedisOptions {
  // Bounds for dialing and for each command batch.
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration command_timeout = absl::Seconds(1);
  // Most connections open at once; concurrent calls beyond it wait.
  int pool_size = 4;
  // Garbage-collection TTL of swarm and lease keys; see above.
  absl::Duration key_ttl = absl::Hours(1);
};

class RedisStore final : public Store {
 public:
  // `url` is "redis://HOST:PORT[/DB]". Loads the store's Lua scripts, so
  // UNAVAILABLE when the server cannot be reached now; INVALID_ARGUMENT for
  // a malformed URL or options.
  static absl::StatusOr<std::unique_ptr<RedisStore>> Connect(
      const std::string& url, RedisOptions options);

  absl::Status PutPeer(const std::string& release_id,
                       const v1::StoredPeer& peer, absl::Time expires) override;
  absl::Status PutPeers(absl::Span<const PeerPut> puts) override;
  absl::Status RemovePeer(const std::string& release_id,
                          const std::string& datacenter,
                          const std::string& peer_id) override;
  absl::StatusOr<std::vector<v1::StoredPeer>> ListPeers(
      const std::string& release_id, const std::string& datacenter,
      absl::Time now) override;
  absl::StatusOr<std::vector<std::string>> ListSwarms(absl::Time now) override;

  absl::StatusOr<bool> TryAcquireLease(const LeaseKey& key,
                                       const std::string& peer_id,
                                       int max_holders, absl::Time now,
                                       absl::Time expires) override;
  absl::StatusOr<uint32_t> CountLeases(const std::string& release_id,
                                       const std::string& datacenter,
                                       absl::Time now) override;

  absl::Status PutRelease(const v1::StoredRelease& release) override;
  absl::StatusOr<std::optional<v1::StoredRelease>> GetRelease(
      const std::string& release_id) override;
  absl::StatusOr<std::vector<v1::StoredRelease>> ListReleases(
      const std::string& name) override;

  absl::StatusOr<ChannelRecord> PutChannel(
      const ChannelRecord& channel) override;
  absl::StatusOr<std::optional<ChannelRecord>> GetChannel(
      const std::string& channel) override;

  absl::Status Ping() override;

 private:
  RedisStore(std::unique_ptr<RedisClient> client, RedisOptions options);

  // Loads every script into Redis and records their digests. A reload after
  // a Redis restart (which forgets scripts) yields the same digests, since
  // they are those of the sources.
  absl::Status LoadScripts();
  // An EVALSHA of `script`.
  RedisCommand Eval(RedisScript script, std::vector<std::string> keys,
                    std::vector<std::string> args) const;
  // The EVALSHA that puts one peer.
  RedisCommand PutPeerCommand(const std::string& release_id,
                              const v1::StoredPeer& peer,
                              absl::Time expires) const;
  // Runs the batch; if Redis has forgotten the scripts, loads them and runs
  // it once more. Every reply is checked for errors.
  absl::StatusOr<std::vector<RedisReply>> Run(
      const std::vector<RedisCommand>& commands);
  absl::Status ReplyError(const redisReply& reply) const;
  absl::Status Internal(absl::string_view what) const;

  // Live peers of the swarms of `release_id` in `datacenters`, trimming
  // the expired ones; one round trip.
  absl::StatusOr<std::vector<v1::StoredPeer>> ListPeersIn(
      const std::string& release_id,
      const std::vector<std::string>& datacenters, absl::Time now);
  // The datacenters with a swarm of `release_id`.
  absl::StatusOr<std::vector<std::string>> Datacenters(
      const std::string& release_id);
  // Of `releases`, those with a live peer in some datacenter.
  absl::StatusOr<std::vector<std::string>> WithLivePeers(
      const std::vector<std::string>& releases, absl::Time now);

  const std::unique_ptr<RedisClient> client_;
  const RedisOptions options_;
  mutable absl::Mutex digests_mu_;
  std::array<std::string, kRedisScriptCount> digests_
      ABSL_GUARDED_BY(digests_mu_);
};

}  // namespace shoal::tracker
