#pragma once

// The Lua scripts RedisStore runs; see redis_store.h for the keys they touch.
// Redis runs each script atomically, which is what makes a lease grant or a
// swarm trim hold across tracker replicas. PEXPIRE only ever lengthens a
// TTL: keys are shared by entries of different lifetimes.

namespace shoal::tracker {

enum RedisScript : int {
  kPutPeerScript,
  kRemovePeerScript,
  kListPeersScript,
  kAcquireLeaseScript,
  kPutReleaseScript,
  kPutChannelScript,
  kRedisScriptCount,
};

// Sources, indexed by RedisScript.
inline constexpr const char* kRedisScriptSources[kRedisScriptCount] = {
    // kPutPeerScript. KEYS: peers, peer-expiry, datacenters, swarms.
    // ARGV: peer id, StoredPeer bytes, expiry ms, key TTL ms, release id,
    // datacenter.
    R"lua(
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[6])
local latest = redis.call('ZSCORE', KEYS[4], ARGV[5])
if not latest or tonumber(latest) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[5])
end
for i = 1, 3 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  end
end
return 1
)lua",
    // kRemovePeerScript. KEYS: peers, peer-expiry, datacenters.
    // ARGV: peer id, datacenter.
    R"lua(
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[3], ARGV[2])
end
return 1
)lua",
    // kListPeersScript: trims the expired peers, returns the live ones.
    // KEYS: peers, peer-expiry, datacenters. ARGV: now ms, datacenter.
    R"lua(
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
  for i = 1, #dead, 1000 do
    redis.call('HDEL', KEYS[1], unpack(dead, i, math.min(i + 999, #dead)))
  end
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[3], ARGV[2])
  return {}
end
return redis.call('HVALS', KEYS[1])
)lua",
    // kAcquireLeaseScript. KEYS: lease (one piece), leases (the swarm).
    // ARGV: peer id, max holders, now ms, expiry ms, key TTL ms,
    // "piece:peer id".
    R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
    redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[5]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[5])
  end
end
return 1
)lua",
    // kPutReleaseScript. KEYS: release, releases, release-name.
    // ARGV: release id, StoredRelease bytes.
    R"lua(
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
)lua",
    // kPutChannelScript: returns the new generation. KEYS: channel.
    // ARGV: release id, percent, paused (0/1), updated ms.
    R"lua(
local generation = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'release_id', ARGV[1], 'percent', ARGV[2],
           'paused', ARGV[3], 'updated_ms', ARGV[4])
return generation
)lua",
};
static_assert(kRedisScriptSources[kRedisScriptCount - 1] != nullptr,
              "a script source is missing");

}  // namespace shoal::tracker
