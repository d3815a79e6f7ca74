#include "common/trust.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/ed25519.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shoal/v1/manifest.pb.h"

namespace shoal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

PublicKey NewPublicKey() { return PrivateKey::Generate().value().public_key(); }

std::string TempPath(const std::string& name) {
  return MakeTestDir("trust_test") + "/" + name;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(TrustPolicyTest, CreateRefusesNoKeys) {
  EXPECT_EQ(TrustPolicy::Create({}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrustPolicyTest, CreateRefusesDuplicateKeys) {
  PublicKey key = NewPublicKey();
  absl::Status status = TrustPolicy::Create({key, key}, 1).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("listed twice"));
}

TEST(TrustPolicyTest, CreateRefusesThresholdZeroOrAboveKeyCount) {
  std::vector<PublicKey> keys = {NewPublicKey(), NewPublicKey()};
  EXPECT_EQ(TrustPolicy::Create(keys, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(TrustPolicy::Create(keys, 3).status().message()),
              HasSubstr("threshold 3 must be between 1 and 2"));
  EXPECT_TRUE(TrustPolicy::Create(keys, 2).ok());
}

TEST(TrustPolicyTest, FindKeyReturnsOnlyTrustedKeys) {
  PublicKey trusted = NewPublicKey();
  TrustPolicy policy = TrustPolicy::Create({trusted}, 1).value();
  ASSERT_NE(policy.FindKey(trusted.key_id()), nullptr);
  EXPECT_EQ(*policy.FindKey(trusted.key_id()), trusted);
  EXPECT_EQ(policy.FindKey(NewPublicKey().key_id()), nullptr);
  EXPECT_EQ(policy.FindKey(""), nullptr);
}

TEST(TrustPolicyTest, ProtoRoundTrip) {
  TrustPolicy policy =
      TrustPolicy::Create({NewPublicKey(), NewPublicKey(), NewPublicKey()}, 2)
          .value();
  TrustPolicy copy = TrustPolicy::FromProto(policy.ToProto()).value();
  EXPECT_EQ(copy.keys(), policy.keys());
  EXPECT_EQ(copy.threshold(), 2u);
}

TEST(TrustPolicyTest, FromProtoRefusesMismatchedKeyId) {
  v1::TrustFile file = TrustPolicy::Create({NewPublicKey(), NewPublicKey()}, 1)
                           .value()
                           .ToProto();
  file.mutable_keys(1)->set_key_id(file.keys(0).key_id());
  absl::Status status = TrustPolicy::FromProto(file).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("trusted key #2"));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("does not match its public_key"));
}

TEST(TrustPolicyTest, FromProtoRefusesWrongLengthKey) {
  v1::TrustFile file;
  v1::TrustedKey* key = file.add_keys();
  key->set_public_key("too short");
  file.set_threshold(1);
  EXPECT_EQ(TrustPolicy::FromProto(file).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrustFileTest, JsonRoundTripThroughFile) {
  TrustPolicy policy =
      TrustPolicy::Create({NewPublicKey(), NewPublicKey()}, 2).value();
  std::string path = TempPath("trust.json");
  ASSERT_TRUE(WriteTrustFile(path, policy).ok());
  TrustPolicy loaded = TrustPolicy::Load(path).value();
  EXPECT_EQ(loaded.keys(), policy.keys());
  EXPECT_EQ(loaded.threshold(), 2u);
}

TEST(TrustFileTest, JsonNamesFieldsAsInTheSchema) {
  PublicKey key = NewPublicKey();
  std::string json = TrustPolicy::Create({key}, 1).value().ToJson();
  EXPECT_THAT(json, HasSubstr("\"key_id\": \"" + key.key_id() + "\""));
  EXPECT_THAT(json, HasSubstr("\"public_key\": \"" +
                              absl::Base64Escape(key.raw()) + "\""));
  EXPECT_THAT(json, HasSubstr("\"threshold\": 1"));
}

TEST(TrustFileTest, LoadsHandWrittenCamelCaseJson) {
  PublicKey key = NewPublicKey();
  std::string path = TempPath("trust.json");
  WriteText(path,
            absl::StrCat("{\"keys\": [{\"keyId\": \"", key.key_id(),
                         "\", \"publicKey\": \"", absl::Base64Escape(key.raw()),
                         "\"}], \"threshold\": 1}"));
  TrustPolicy policy = TrustPolicy::Load(path).value();
  EXPECT_THAT(policy.keys(), ElementsAre(key));
}

TEST(TrustFileTest, LoadOfPublicKeyPemTrustsThatKeyAlone) {
  PublicKey key = NewPublicKey();
  std::string path = TempPath("publisher.pub");
  ASSERT_TRUE(WritePublicKeyFile(path, key).ok());
  TrustPolicy policy = TrustPolicy::Load(path).value();
  EXPECT_THAT(policy.keys(), ElementsAre(key));
  EXPECT_EQ(policy.threshold(), 1u);
}

TEST(TrustFileTest, LoadRefusesMismatchedKeyIdNamingPath) {
  TrustPolicy policy = TrustPolicy::Create({NewPublicKey()}, 1).value();
  std::string json = policy.ToJson();
  const std::string key_id = policy.keys()[0].key_id();
  json.replace(json.find(key_id), key_id.size(), std::string(64, '0'));
  std::string path = TempPath("trust.json");
  WriteText(path, json);
  absl::Status status = TrustPolicy::Load(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
  EXPECT_THAT(std::string(status.message()), HasSubstr("does not match"));
}

TEST(TrustFileTest, LoadRefusesMisspelledField) {
  std::string path = TempPath("trust.json");
  WriteText(path, "{\"keys\": [], \"treshold\": 1}");
  absl::Status status = TrustPolicy::Load(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

TEST(TrustFileTest, LoadRefusesMissingThreshold) {
  TrustPolicy policy = TrustPolicy::Create({NewPublicKey()}, 1).value();
  v1::TrustFile file = policy.ToProto();
  std::string path = TempPath("trust.json");
  WriteText(path, absl::StrCat("{\"keys\": [{\"key_id\": \"",
                               file.keys(0).key_id(), "\", \"public_key\": \"",
                               absl::Base64Escape(file.keys(0).public_key()),
                               "\"}]}"));
  EXPECT_THAT(std::string(TrustPolicy::Load(path).status().message()),
              HasSubstr("threshold 0"));
}

TEST(TrustFileTest, LoadRefusesPrivateKeyFile) {
  std::string path = TempPath("publisher.key");
  ASSERT_TRUE(WritePrivateKeyFile(path, PrivateKey::Generate().value()).ok());
  absl::Status status = TrustPolicy::Load(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("private key"));
}

TEST(TrustFileTest, LoadOfMissingFileIsNotFoundNamingPath) {
  std::string path = TempPath("absent.json");
  absl::Status status = TrustPolicy::Load(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr(path));
}

}  // namespace
}  // namespace shoal
