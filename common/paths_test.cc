#include "common/paths.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal {
namespace {

using ::testing::HasSubstr;

// Expects `path` to be refused with a message containing `reason`.
void ExpectRefused(absl::string_view path, absl::string_view reason) {
  absl::Status status = ValidateRelativePath(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
      << "path: " << path;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(reason)))
      << "path: " << path;
}

TEST(ValidateRelativePathTest, AcceptsNormalizedRelativePaths) {
  for (absl::string_view path :
       {"a", "bin/server", "a/b/c.txt", ".hidden", "a/..b", "a/b..", "...",
        "données/été.txt", "emoji/\xf0\x9f\x90\x9f", "a b/c d"}) {
    EXPECT_TRUE(ValidateRelativePath(path).ok()) << path;
  }
}

TEST(ValidateRelativePathTest, RefusesEmptyPath) {
  ExpectRefused("", "is empty");
}

TEST(ValidateRelativePathTest, RefusesParentSegment) {
  ExpectRefused("..", "\"..\" segment");
  ExpectRefused("../x", "\"..\" segment");
  ExpectRefused("a/../b", "\"..\" segment");
  ExpectRefused("a/..", "\"..\" segment");
}

TEST(ValidateRelativePathTest, RefusesDotSegment) {
  ExpectRefused(".", "\".\" segment");
  ExpectRefused("./a", "\".\" segment");
  ExpectRefused("a/./b", "\".\" segment");
}

TEST(ValidateRelativePathTest, RefusesAbsolutePath) {
  ExpectRefused("/abs", "absolute");
  ExpectRefused("/", "absolute");
}

TEST(ValidateRelativePathTest, RefusesEmptySegments) {
  ExpectRefused("a//b", "empty segment");
  ExpectRefused("a/", "empty segment");
}

TEST(ValidateRelativePathTest, RefusesBackslash) {
  ExpectRefused("a\\b", "backslash");
  ExpectRefused("..\\x", "backslash");
}

TEST(ValidateRelativePathTest, RefusesControlCharacters) {
  ExpectRefused(std::string("a\0b", 3), "control character at byte 1");
  ExpectRefused("a\nb", "control character");
  ExpectRefused("a\x7f", "control character");
  ExpectRefused("a\xc2\x85", "control character");  // U+0085, a C1 control.
}

TEST(ValidateRelativePathTest, RefusesInvalidUtf8) {
  ExpectRefused("\xff", "not valid UTF-8 at byte 0");
  ExpectRefused("a\x80", "not valid UTF-8 at byte 1");
  ExpectRefused("\xe2\x82", "not valid UTF-8");  // Truncated sequence.
}

TEST(ValidateRelativePathTest, RefusesOverlongEncodings) {
  ExpectRefused("\xc0\xaf", "not valid UTF-8");  // '/' in 2 bytes.
  ExpectRefused(
      "a\xe0\x80\xaf"
      "b",
      "not valid UTF-8");                                  // '/' in 3 bytes.
  ExpectRefused("\xc0\xae\xc0\xae/x", "not valid UTF-8");  // ".." in 4 bytes.
}

TEST(ValidateRelativePathTest, RefusesSurrogatesAndOutOfRangeCodePoints) {
  ExpectRefused("\xed\xa0\x80", "not valid UTF-8");      // U+D800.
  ExpectRefused("\xf4\x90\x80\x80", "not valid UTF-8");  // U+110000.
}

TEST(ValidateRelativePathTest, AcceptsMaximumLengthAndRefusesLonger) {
  std::string longest(kMaxRelativePathBytes, 'x');
  EXPECT_TRUE(ValidateRelativePath(longest).ok());
  ExpectRefused(longest + "x", "longer than 4096 bytes");
}

TEST(ValidateRelativePathTest, MessageQuotesEscapedPath) {
  absl::Status status = ValidateRelativePath("a/\xff/b");
  EXPECT_THAT(std::string(status.message()), HasSubstr("path \"a/\\xff/b\""));
}

TEST(ValidateReleaseLabelTest, AcceptsTypicalNamesAndVersions) {
  for (absl::string_view label :
       {"game-server", "1.4.2", "2.0.0-rc.1+build.5", "a", "_x", "0"}) {
    EXPECT_TRUE(ValidateReleaseLabel("version", label).ok()) << label;
  }
}

TEST(ValidateReleaseLabelTest, RefusesEmptyAndTooLongLabels) {
  EXPECT_EQ(ValidateReleaseLabel("name", "").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateReleaseLabel("name", std::string(128, 'a')).ok());
  EXPECT_EQ(ValidateReleaseLabel("name", std::string(129, 'a')).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateReleaseLabelTest, RefusesLeadingDotOrDash) {
  EXPECT_THAT(std::string(ValidateReleaseLabel("name", ".x").message()),
              HasSubstr("must not start with"));
  EXPECT_THAT(std::string(ValidateReleaseLabel("version", "-1").message()),
              HasSubstr("must not start with"));
}

TEST(ValidateReleaseLabelTest, RefusesSeparatorsAndSpacesNamingTheLabel) {
  absl::Status status = ValidateReleaseLabel("name", "my/app");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("release name \"my/app\""));
  EXPECT_THAT(std::string(ValidateReleaseLabel("version", "1 0").message()),
              HasSubstr("release version"));
  EXPECT_FALSE(ValidateReleaseLabel("name", "..").ok());
  EXPECT_FALSE(ValidateReleaseLabel("name", "a\\b").ok());
}

}  // namespace
}  // namespace shoal
