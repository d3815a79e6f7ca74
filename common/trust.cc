#include "common/trust.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "google/protobuf/util/json_util.h"

namespace shoal {
namespace {

// Parses the text of a trust file: a public key PEM or TrustFile JSON.
absl::StatusOr<TrustPolicy> ParseTrustText(absl::string_view text) {
  if (absl::StrContains(text, "-----BEGIN PUBLIC KEY-----")) {
    ASSIGN_OR_RETURN(PublicKey key, PublicKey::FromPem(text));
    return TrustPolicy::Create({std::move(key)}, 1);
  }
  if (absl::StrContains(text, "PRIVATE KEY-----")) {
    return absl::InvalidArgumentError(
        "holds a private key; trust the public key (.pub) file instead, and "
        "keep the private key off machines that only verify");
  }
  v1::TrustFile file;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // A typo must not drop a setting.
  auto parsed = google::protobuf::util::JsonStringToMessage(std::string(text),
                                                            &file, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "is neither a public key PEM nor a trust file (JSON with \"keys\" and "
        "\"threshold\"): ",
        std::string(parsed.message())));
  }
  return TrustPolicy::FromProto(file);
}

}  // namespace

TrustPolicy::TrustPolicy(std::vector<PublicKey> keys, uint32_t threshold)
    : keys_(std::move(keys)), threshold_(threshold) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    index_by_key_id_.emplace(keys_[i].key_id(), i);
  }
}

absl::StatusOr<TrustPolicy> TrustPolicy::Create(std::vector<PublicKey> keys,
                                                uint32_t threshold) {
  if (keys.empty()) {
    return absl::InvalidArgumentError("a trust policy needs at least one key");
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (keys[i] == keys[j]) {
        return absl::InvalidArgumentError(
            absl::StrCat("key ", keys[i].short_key_id(),
                         " is listed twice; each trusted key counts once"));
      }
    }
  }
  if (threshold == 0 || threshold > keys.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold ", threshold, " must be between 1 and ",
                     keys.size(), ", the number of trusted keys"));
  }
  return TrustPolicy(std::move(keys), threshold);
}

absl::StatusOr<TrustPolicy> TrustPolicy::FromProto(const v1::TrustFile& file) {
  std::vector<PublicKey> keys;
  for (int i = 0; i < file.keys_size(); ++i) {
    const v1::TrustedKey& entry = file.keys(i);
    const std::string where = absl::StrCat("trusted key #", i + 1, ": ");
    absl::StatusOr<PublicKey> key = PublicKey::FromRaw(entry.public_key());
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "public_key: ", key.status().message()));
    }
    if (entry.key_id() != key->key_id()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "key_id \"", absl::CHexEscape(entry.key_id().substr(0, 64)),
          "\" does not match its public_key, whose key id is ", key->key_id()));
    }
    keys.push_back(*std::move(key));
  }
  return Create(std::move(keys), file.threshold());
}

absl::StatusOr<TrustPolicy> TrustPolicy::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxTrustFileBytes));
  absl::StatusOr<TrustPolicy> policy = ParseTrustText(text);
  if (!policy.ok()) {
    return absl::Status(
        policy.status().code(),
        absl::StrCat("trust file ", path, ": ", policy.status().message()));
  }
  return policy;
}

v1::TrustFile TrustPolicy::ToProto() const {
  v1::TrustFile file;
  for (const PublicKey& key : keys_) {
    v1::TrustedKey* entry = file.add_keys();
    entry->set_key_id(key.key_id());
    entry->set_public_key(key.raw());
  }
  file.set_threshold(threshold_);
  return file;
}

std::string TrustPolicy::ToJson() const {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  auto printed =
      google::protobuf::util::MessageToJsonString(ToProto(), &json, options);
  // Printing a message without Any fields cannot fail.
  CHECK(printed.ok()) << printed.message();
  if (json.empty() || json.back() != '\n') json.push_back('\n');
  return json;
}

const PublicKey* TrustPolicy::FindKey(absl::string_view key_id) const {
  auto it = index_by_key_id_.find(key_id);
  return it == index_by_key_id_.end() ? nullptr : &keys_[it->second];
}

std::string TrustPolicy::Describe() const {
  return absl::StrCat(threshold_, " of ", keys_.size(),
                      keys_.size() == 1 ? " key (" : " keys (",
                      absl::StrJoin(keys_, ", ",
                                    [](std::string* out, const PublicKey& key) {
                                      out->append(key.short_key_id());
                                    }),
                      ")");
}

absl::Status WriteTrustFile(const std::string& path,
                            const TrustPolicy& policy) {
  return WriteFileAtomically(path, policy.ToJson(), 0644);
}

}  // namespace shoal
