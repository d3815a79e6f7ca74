#include "tracker/request_checks.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::tracker {
namespace {

using ::testing::HasSubstr;

TEST(RequestChecksTest, PeerIdIs32LowerCaseHexDigits) {
  EXPECT_TRUE(ValidatePeerId("0123456789abcdef0123456789abcdef").ok());
  EXPECT_FALSE(ValidatePeerId("0123456789ABCDEF0123456789abcdef").ok());
  EXPECT_FALSE(ValidatePeerId("0123456789abcdef").ok());
  EXPECT_FALSE(ValidatePeerId("0123456789abcdef0123456789abcdeg").ok());
}

TEST(RequestChecksTest, ReleaseIdIsLowerCased) {
  const std::string upper(64, 'A');
  absl::StatusOr<std::string> id = ParseReleaseId(upper);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, std::string(64, 'a'));
  EXPECT_FALSE(ParseReleaseId(std::string(63, 'a')).ok());
  EXPECT_FALSE(ParseReleaseId(std::string(64, 'g')).ok());
}

TEST(RequestChecksTest, AcceptsDialableAddresses) {
  EXPECT_TRUE(ValidateAddress("10.1.2.3:7881").ok());
  EXPECT_TRUE(ValidateAddress("agent-7.dc1.example:65535").ok());
  EXPECT_TRUE(ValidateAddress("[fd00::5]:1").ok());
}

TEST(RequestChecksTest, RefusesAddressesNobodyCanDial) {
  for (const char* address :
       {"10.1.2.3", "10.1.2.3:", "10.1.2.3:0", "10.1.2.3:65536", "10.1.2.3:+80",
        ":7881", "fd00::5:7881", "[fd00::5:7881", "[::]:7881", "0.0.0.0:7881",
        "host name:7881", "[]:7881"}) {
    EXPECT_EQ(ValidateAddress(address).code(),
              absl::StatusCode::kInvalidArgument)
        << address;
  }
}

TEST(RequestChecksTest, LocalityLabels) {
  EXPECT_TRUE(ValidateLocalityLabel("rack", "us-east-1.r_12").ok());
  EXPECT_FALSE(ValidateLocalityLabel("rack", "").ok());
  EXPECT_FALSE(ValidateLocalityLabel("rack", std::string(65, 'a')).ok());
  absl::Status status = ValidateLocalityLabel("datacenter", "dc 1");
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("datacenter \"dc 1\" must be 1 to 64 characters"));
}

TEST(RequestChecksTest, OriginUrls) {
  EXPECT_TRUE(ValidateOriginUrl("https://cdn.example/releases").ok());
  EXPECT_TRUE(ValidateOriginUrl("http://10.0.0.1:8080").ok());
  EXPECT_FALSE(ValidateOriginUrl("ftp://cdn.example/").ok());
  EXPECT_FALSE(ValidateOriginUrl("https:///path").ok());
  EXPECT_FALSE(ValidateOriginUrl("https://cdn.example/a b").ok());
  EXPECT_FALSE(ValidateOriginUrl("https://u:p@cdn.example/").ok());
  EXPECT_TRUE(ValidateOriginUrl("https://cdn.example/a@b").ok());
}

TEST(RequestChecksTest, ChannelIsNameSlashLabel) {
  absl::StatusOr<ChannelName> channel = ParseChannel("game-server/stable");
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(channel->release_name, "game-server");
  EXPECT_EQ(channel->label, "stable");
  EXPECT_FALSE(ParseChannel("stable").ok());
  EXPECT_FALSE(ParseChannel("/stable").ok());
  EXPECT_FALSE(ParseChannel("game-server/a/b").ok());
}

TEST(RequestChecksTest, ReleaseRefIsIdOrNameAtVersion) {
  absl::StatusOr<ReleaseRef> by_name = ParseReleaseRef("game-server@1.4.2");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_TRUE(by_name->id.empty());
  EXPECT_EQ(by_name->name, "game-server");
  EXPECT_EQ(by_name->version, "1.4.2");
  absl::StatusOr<ReleaseRef> by_id = ParseReleaseRef(std::string(64, 'B'));
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(by_id->id, std::string(64, 'b'));
  EXPECT_FALSE(ParseReleaseRef("game-server").ok());
  EXPECT_FALSE(ParseReleaseRef("@1.0").ok());
}

}  // namespace
}  // namespace shoal::tracker
