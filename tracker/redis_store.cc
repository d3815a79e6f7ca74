#include "tracker/redis_store.h"

#include <algorithm>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tracker/redis_scripts.h"

namespace shoal::tracker {
namespace {

constexpr absl::string_view kSwarmsKey = "shoal:swarms";
constexpr absl::string_view kReleasesKey = "shoal:releases";
// Ids per MGET when listing the catalog.
constexpr size_t kMgetBatch = 128;

std::string PeersKey(absl::string_view release, absl::string_view dc) {
  return absl::StrCat("shoal:peers:", release, ":", dc);
}
std::string PeerExpiryKey(absl::string_view release, absl::string_view dc) {
  return absl::StrCat("shoal:peer-expiry:", release, ":", dc);
}
std::string DatacentersKey(absl::string_view release) {
  return absl::StrCat("shoal:datacenters:", release);
}
std::string LeaseKeyName(const LeaseKey& key) {
  return absl::StrCat("shoal:lease:", key.release_id, ":", key.piece, ":",
                      key.datacenter);
}
std::string LeasesKey(absl::string_view release, absl::string_view dc) {
  return absl::StrCat("shoal:leases:", release, ":", dc);
}
std::string ReleaseKey(absl::string_view release) {
  return absl::StrCat("shoal:release:", release);
}
std::string ReleaseNameKey(absl::string_view name) {
  return absl::StrCat("shoal:release-name:", name);
}
std::string ChannelKey(absl::string_view channel) {
  return absl::StrCat("shoal:channel:", channel);
}

std::string Ms(absl::Time t) { return absl::StrCat(absl::ToUnixMillis(t)); }

absl::string_view Text(const redisReply& reply) {
  return absl::string_view(reply.str, reply.len);
}

absl::Status Unexpected(const redisReply& reply, absl::string_view wanted) {
  return absl::InternalError(absl::StrCat(
      "unexpected Redis reply of type ", reply.type, " (wanted ", wanted, ")"));
}

absl::StatusOr<int64_t> Integer(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_INTEGER) return Unexpected(reply, "integer");
  return reply.integer;
}

// The strings of an array reply; nil elements are skipped.
absl::StatusOr<std::vector<std::string>> Strings(const redisReply& reply) {
  if (reply.type != REDIS_REPLY_ARRAY) return Unexpected(reply, "array");
  std::vector<std::string> out;
  out.reserve(reply.elements);
  for (size_t i = 0; i < reply.elements; ++i) {
    const redisReply& element = *reply.element[i];
    if (element.type == REDIS_REPLY_NIL) continue;
    if (element.type != REDIS_REPLY_STRING)
      return Unexpected(element, "string");
    out.emplace_back(Text(element));
  }
  return out;
}

template <typename Message>
absl::StatusOr<Message> Parse(absl::string_view bytes, absl::string_view what) {
  Message message;
  if (!message.ParseFromArray(bytes.data(), bytes.size())) {
    return absl::InternalError(absl::StrCat("corrupt ", what, " in Redis"));
  }
  return message;
}

bool IsNoScript(const RedisReply& reply) {
  return reply->type == REDIS_REPLY_ERROR &&
         absl::StartsWith(Text(*reply), "NOSCRIPT");
}

// Error replies that say "not now" rather than "never".
bool IsTransient(absl::string_view error) {
  for (absl::string_view prefix : {"LOADING", "BUSY", "TRYAGAIN", "READONLY",
                                   "MASTERDOWN", "NOSCRIPT", "OOM"}) {
    if (absl::StartsWith(error, prefix)) return true;
  }
  return false;
}

// Parses the HGETALL reply of a channel hash.
absl::StatusOr<ChannelRecord> ParseChannel(const std::string& name,
                                           const std::vector<std::string>& kv) {
  ChannelRecord record;
  record.channel = name;
  bool ok = kv.size() % 2 == 0;
  for (size_t i = 0; ok && i < kv.size(); i += 2) {
    const std::string& field = kv[i];
    const std::string& value = kv[i + 1];
    if (field == "release_id") {
      record.release_id = value;
    } else if (field == "percent") {
      ok = absl::SimpleAtoi(value, &record.percent);
    } else if (field == "paused") {
      record.paused = value == "1";
    } else if (field == "generation") {
      ok = absl::SimpleAtoi(value, &record.generation);
    } else if (field == "updated_ms") {
      ok = absl::SimpleAtoi(value, &record.updated_ms);
    }
  }
  if (!ok || record.generation == 0) {
    return absl::InternalError(
        absl::StrCat("corrupt channel \"", name, "\" in Redis"));
  }
  return record;
}

}  // namespace

RedisStore::RedisStore(std::unique_ptr<RedisClient> client,
                       RedisOptions options)
    : client_(std::move(client)), options_(options) {}

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::Connect(
    const std::string& url, RedisOptions options) {
  ASSIGN_OR_RETURN(RedisAddress address, ParseRedisUrl(url));
  if (options.pool_size < 1 ||
      options.connect_timeout <= absl::ZeroDuration() ||
      options.command_timeout <= absl::ZeroDuration() ||
      options.key_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "Redis options: pool size and durations must be positive");
  }
  RedisClient::Options client_options;
  client_options.connect_timeout = options.connect_timeout;
  client_options.command_timeout = options.command_timeout;
  client_options.max_connections = options.pool_size;
  auto store = absl::WrapUnique(new RedisStore(
      std::make_unique<RedisClient>(std::move(address), client_options),
      options));
  RETURN_IF_ERROR(store->LoadScripts());
  return store;
}

absl::Status RedisStore::LoadScripts() {
  std::vector<RedisCommand> commands;
  for (const char* source : kRedisScriptSources) {
    commands.push_back({"SCRIPT", "LOAD", source});
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, client_->Run(commands));
  absl::MutexLock lock(&digests_mu_);
  for (int i = 0; i < kRedisScriptCount; ++i) {
    RETURN_IF_ERROR(ReplyError(*replies[i]));
    if (replies[i]->type != REDIS_REPLY_STRING) {
      return Unexpected(*replies[i], "script digest");
    }
    digests_[i] = std::string(Text(*replies[i]));
  }
  return absl::OkStatus();
}

RedisCommand RedisStore::Eval(RedisScript script, std::vector<std::string> keys,
                              std::vector<std::string> args) const {
  RedisCommand command;
  command.reserve(3 + keys.size() + args.size());
  {
    absl::MutexLock lock(&digests_mu_);
    command = {"EVALSHA", digests_[script], absl::StrCat(keys.size())};
  }
  for (std::string& key : keys) command.push_back(std::move(key));
  for (std::string& arg : args) command.push_back(std::move(arg));
  return command;
}

absl::StatusOr<std::vector<RedisReply>> RedisStore::Run(
    const std::vector<RedisCommand>& commands) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, client_->Run(commands));
  if (std::any_of(replies.begin(), replies.end(), IsNoScript)) {
    // Redis restarted or its script cache was flushed. The digests are
    // those of the sources, so the commands stay valid once reloaded.
    RETURN_IF_ERROR(LoadScripts());
    ASSIGN_OR_RETURN(replies, client_->Run(commands));
  }
  for (const RedisReply& reply : replies) RETURN_IF_ERROR(ReplyError(*reply));
  return replies;
}

absl::Status RedisStore::ReplyError(const redisReply& reply) const {
  if (reply.type != REDIS_REPLY_ERROR) return absl::OkStatus();
  const std::string message = absl::StrCat(
      "Redis at ", client_->address().ToString(), ": ", Text(reply));
  return IsTransient(Text(reply)) ? absl::UnavailableError(message)
                                  : absl::InternalError(message);
}

RedisCommand RedisStore::PutPeerCommand(const std::string& release_id,
                                        const v1::StoredPeer& peer,
                                        absl::Time expires) const {
  const std::string& dc = peer.datacenter();
  const std::string ttl_ms =
      absl::StrCat(absl::ToInt64Milliseconds(options_.key_ttl));
  return Eval(kPutPeerScript,
              {PeersKey(release_id, dc), PeerExpiryKey(release_id, dc),
               DatacentersKey(release_id), std::string(kSwarmsKey)},
              {peer.peer_id(), peer.SerializeAsString(), Ms(expires), ttl_ms,
               release_id, dc});
}

absl::Status RedisStore::PutPeer(const std::string& release_id,
                                 const v1::StoredPeer& peer,
                                 absl::Time expires) {
  return Run({PutPeerCommand(release_id, peer, expires)}).status();
}

absl::Status RedisStore::PutPeers(absl::Span<const PeerPut> puts) {
  if (puts.empty()) return absl::OkStatus();
  std::vector<RedisCommand> commands;
  commands.reserve(puts.size());
  for (const PeerPut& put : puts) {
    commands.push_back(PutPeerCommand(put.release_id, put.peer, put.expires));
  }
  return Run(commands).status();
}

absl::Status RedisStore::RemovePeer(const std::string& release_id,
                                    const std::string& datacenter,
                                    const std::string& peer_id) {
  return Run({Eval(kRemovePeerScript,
                   {PeersKey(release_id, datacenter),
                    PeerExpiryKey(release_id, datacenter),
                    DatacentersKey(release_id)},
                   {peer_id, datacenter})})
      .status();
}

absl::StatusOr<std::vector<v1::StoredPeer>> RedisStore::ListPeers(
    const std::string& release_id, const std::string& datacenter,
    absl::Time now) {
  if (!datacenter.empty()) return ListPeersIn(release_id, {datacenter}, now);
  ASSIGN_OR_RETURN(std::vector<std::string> datacenters,
                   Datacenters(release_id));
  return ListPeersIn(release_id, datacenters, now);
}

absl::StatusOr<std::vector<std::string>> RedisStore::Datacenters(
    const std::string& release_id) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   Run({{"SMEMBERS", DatacentersKey(release_id)}}));
  return Strings(*replies[0]);
}

absl::StatusOr<std::vector<v1::StoredPeer>> RedisStore::ListPeersIn(
    const std::string& release_id, const std::vector<std::string>& datacenters,
    absl::Time now) {
  std::vector<v1::StoredPeer> peers;
  if (datacenters.empty()) return peers;
  std::vector<RedisCommand> commands;
  for (const std::string& dc : datacenters) {
    commands.push_back(
        Eval(kListPeersScript,
             {PeersKey(release_id, dc), PeerExpiryKey(release_id, dc),
              DatacentersKey(release_id)},
             {Ms(now), dc}));
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, Run(commands));
  for (const RedisReply& reply : replies) {
    ASSIGN_OR_RETURN(std::vector<std::string> blobs, Strings(*reply));
    for (const std::string& blob : blobs) {
      ASSIGN_OR_RETURN(v1::StoredPeer peer,
                       Parse<v1::StoredPeer>(blob, "peer"));
      peers.push_back(std::move(peer));
    }
  }
  return peers;
}

absl::StatusOr<std::vector<std::string>> RedisStore::ListSwarms(
    absl::Time now) {
  const std::string now_ms = Ms(now);
  const std::string swarms(kSwarmsKey);
  ASSIGN_OR_RETURN(
      std::vector<RedisReply> replies,
      Run({{"ZREMRANGEBYSCORE", swarms, "-inf", now_ms},
           {"ZRANGEBYSCORE", swarms, absl::StrCat("(", now_ms), "+inf"}}));
  ASSIGN_OR_RETURN(std::vector<std::string> candidates, Strings(*replies[1]));
  // A release's score is its latest expiry ever put; its peers may since
  // have been removed or re-put with an earlier expiry.
  return WithLivePeers(candidates, now);
}

absl::StatusOr<std::vector<std::string>> RedisStore::WithLivePeers(
    const std::vector<std::string>& releases, absl::Time now) {
  std::vector<std::string> live;
  if (releases.empty()) return live;
  std::vector<RedisCommand> members;
  for (const std::string& release : releases) {
    members.push_back({"SMEMBERS", DatacentersKey(release)});
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> dc_replies, Run(members));
  std::vector<RedisCommand> counts;
  std::vector<size_t> owner;  // index into `releases` of each count
  const std::string after_now = absl::StrCat("(", Ms(now));
  for (size_t i = 0; i < releases.size(); ++i) {
    ASSIGN_OR_RETURN(std::vector<std::string> dcs, Strings(*dc_replies[i]));
    for (const std::string& dc : dcs) {
      counts.push_back(
          {"ZCOUNT", PeerExpiryKey(releases[i], dc), after_now, "+inf"});
      owner.push_back(i);
    }
  }
  if (counts.empty()) return live;
  ASSIGN_OR_RETURN(std::vector<RedisReply> count_replies, Run(counts));
  std::vector<bool> has_live(releases.size(), false);
  for (size_t j = 0; j < counts.size(); ++j) {
    ASSIGN_OR_RETURN(int64_t count, Integer(*count_replies[j]));
    if (count > 0) has_live[owner[j]] = true;
  }
  for (size_t i = 0; i < releases.size(); ++i) {
    if (has_live[i]) live.push_back(releases[i]);
  }
  return live;
}

absl::StatusOr<bool> RedisStore::TryAcquireLease(const LeaseKey& key,
                                                 const std::string& peer_id,
                                                 int max_holders,
                                                 absl::Time now,
                                                 absl::Time expires) {
  const absl::Duration lifetime = std::max(expires - now, absl::ZeroDuration());
  const std::string ttl_ms =
      absl::StrCat(absl::ToInt64Milliseconds(options_.key_ttl + lifetime));
  ASSIGN_OR_RETURN(
      std::vector<RedisReply> replies,
      Run({Eval(kAcquireLeaseScript,
                {LeaseKeyName(key), LeasesKey(key.release_id, key.datacenter)},
                {peer_id, absl::StrCat(max_holders), Ms(now), Ms(expires),
                 ttl_ms, absl::StrCat(key.piece, ":", peer_id)})}));
  ASSIGN_OR_RETURN(int64_t granted, Integer(*replies[0]));
  return granted == 1;
}

absl::StatusOr<uint32_t> RedisStore::CountLeases(const std::string& release_id,
                                                 const std::string& datacenter,
                                                 absl::Time now) {
  const std::string key = LeasesKey(release_id, datacenter);
  const std::string now_ms = Ms(now);
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   Run({{"ZREMRANGEBYSCORE", key, "-inf", now_ms},
                        {"ZCOUNT", key, absl::StrCat("(", now_ms), "+inf"}}));
  ASSIGN_OR_RETURN(int64_t count, Integer(*replies[1]));
  return static_cast<uint32_t>(count);
}

absl::Status RedisStore::PutRelease(const v1::StoredRelease& release) {
  return Run({Eval(kPutReleaseScript,
                   {ReleaseKey(release.release_id()), std::string(kReleasesKey),
                    ReleaseNameKey(release.name())},
                   {release.release_id(), release.SerializeAsString()})})
      .status();
}

absl::StatusOr<std::optional<v1::StoredRelease>> RedisStore::GetRelease(
    const std::string& release_id) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   Run({{"GET", ReleaseKey(release_id)}}));
  const redisReply& reply = *replies[0];
  if (reply.type == REDIS_REPLY_NIL) return std::nullopt;
  if (reply.type != REDIS_REPLY_STRING) return Unexpected(reply, "string");
  return Parse<v1::StoredRelease>(Text(reply), "release");
}

absl::StatusOr<std::vector<v1::StoredRelease>> RedisStore::ListReleases(
    const std::string& name) {
  const std::string index =
      name.empty() ? std::string(kReleasesKey) : ReleaseNameKey(name);
  ASSIGN_OR_RETURN(std::vector<RedisReply> id_replies,
                   Run({{"SMEMBERS", index}}));
  ASSIGN_OR_RETURN(std::vector<std::string> ids, Strings(*id_replies[0]));
  std::sort(ids.begin(), ids.end());
  std::vector<v1::StoredRelease> releases;
  if (ids.empty()) return releases;
  std::vector<RedisCommand> gets;
  for (size_t i = 0; i < ids.size(); i += kMgetBatch) {
    RedisCommand mget = {"MGET"};
    for (size_t j = i; j < std::min(ids.size(), i + kMgetBatch); ++j) {
      mget.push_back(ReleaseKey(ids[j]));
    }
    gets.push_back(std::move(mget));
  }
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies, Run(gets));
  for (const RedisReply& reply : replies) {
    ASSIGN_OR_RETURN(std::vector<std::string> blobs, Strings(*reply));
    for (const std::string& blob : blobs) {
      ASSIGN_OR_RETURN(v1::StoredRelease release,
                       Parse<v1::StoredRelease>(blob, "release"));
      if (name.empty() || release.name() == name) {
        releases.push_back(std::move(release));
      }
    }
  }
  return releases;
}

absl::StatusOr<ChannelRecord> RedisStore::PutChannel(
    const ChannelRecord& channel) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   Run({Eval(kPutChannelScript, {ChannelKey(channel.channel)},
                             {channel.release_id, absl::StrCat(channel.percent),
                              channel.paused ? "1" : "0",
                              absl::StrCat(channel.updated_ms)})}));
  ASSIGN_OR_RETURN(int64_t generation, Integer(*replies[0]));
  ChannelRecord stored = channel;
  stored.generation = static_cast<uint64_t>(generation);
  return stored;
}

absl::StatusOr<std::optional<ChannelRecord>> RedisStore::GetChannel(
    const std::string& channel) {
  ASSIGN_OR_RETURN(std::vector<RedisReply> replies,
                   Run({{"HGETALL", ChannelKey(channel)}}));
  ASSIGN_OR_RETURN(std::vector<std::string> kv, Strings(*replies[0]));
  if (kv.empty()) return std::nullopt;
  return ParseChannel(channel, kv);
}

absl::Status RedisStore::Ping() { return Run({{"PING"}}).status(); }

}  // namespace shoal::tracker
