#include "agent/progress_line.h"

#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

constexpr uint64_t kMiB = 1 << 20;

v1::ReleaseStatus Status(uint64_t verified, uint64_t total) {
  v1::ReleaseStatus s;
  s.set_name("game");
  s.set_version("1.4.2");
  s.set_state(verified == total ? v1::RELEASE_STATE_SEEDING : v1::RELEASE_STATE_DOWNLOADING);
  s.set_total_size(total);
  s.set_bytes_verified(verified);
  return s;
}

TEST(FormatBytes, UsesBinaryUnitsWithThreeDigits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(777), "777 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(12 * kMiB + 300 * 1024), "12.3 MiB");
  EXPECT_EQ(FormatBytes(123 * kMiB), "123 MiB");
  EXPECT_EQ(FormatBytes(4096 * kMiB), "4.00 GiB");
}

TEST(FormatBytes, NeverShowsAThousandOfAUnit) {
  EXPECT_EQ(FormatBytes(1023 * 1024), "1.00 MiB");
  EXPECT_EQ(FormatBytes(999 * 1024), "999 KiB");
}

TEST(FormatRate, AppendsPerSecondAndTreatsNoRateAsZero) {
  EXPECT_EQ(FormatRate(1.5 * kMiB), "1.50 MiB/s");
  EXPECT_EQ(FormatRate(0), "0 B/s");
  EXPECT_EQ(FormatRate(-3), "0 B/s");
}

TEST(FormatEta, ShowsSecondsMinutesHours) {
  EXPECT_EQ(FormatEta(0, 0), "0s");
  EXPECT_EQ(FormatEta(42 * kMiB, kMiB), "42s");
  EXPECT_EQ(FormatEta(41 * kMiB + 1, kMiB), "42s");  // rounded up
  EXPECT_EQ(FormatEta(187 * kMiB, kMiB), "3m07s");
  EXPECT_EQ(FormatEta(7500 * kMiB, kMiB), "2h05m");
  EXPECT_EQ(FormatEta(400000 * kMiB, kMiB), ">99h");
}

TEST(FormatEta, IsUnknownWithoutARate) { EXPECT_EQ(FormatEta(kMiB, 0), "--"); }

TEST(PercentComplete, ShowsHundredOnlyWhenComplete) {
  EXPECT_DOUBLE_EQ(PercentComplete(Status(9999, 10000)), 99.9);
  EXPECT_DOUBLE_EQ(PercentComplete(Status(10000, 10000)), 100.0);
  EXPECT_DOUBLE_EQ(PercentComplete(Status(0, 0)), 100.0);
  EXPECT_DOUBLE_EQ(PercentComplete(Status(423, 1000)), 42.3);
}

TEST(PercentFromPeers, IsTheShareOfFetchedBytes) {
  v1::ReleaseStatus s = Status(100, 100);
  EXPECT_EQ(PercentFromPeers(s), 0);
  s.set_bytes_from_peers(80);
  s.set_bytes_from_origin(20);
  EXPECT_EQ(PercentFromPeers(s), 80);
  s.set_bytes_from_origin(0);
  EXPECT_EQ(PercentFromPeers(s), 100);
}

TEST(ProgressLine, ShowsEveryFigure) {
  v1::ReleaseStatus s = Status(4 * kMiB, 10 * kMiB);
  s.set_bytes_from_peers(3 * kMiB);
  s.set_bytes_from_origin(kMiB);
  s.set_peers_connected(3);
  s.set_proof_failures(2);
  s.set_peers_banned(1);
  EXPECT_EQ(ProgressLine(s, 2 * kMiB),
            "game@1.4.2   40.0%  4.00 MiB/10.0 MiB  2.00 MiB/s  ETA 3s  peers 3  "
            "75% from peers, 25% from origin  2 proof failures  1 banned");
}

TEST(ProgressLine, SaysWhenNothingWasFetchedYet) {
  const std::string line = ProgressLine(Status(0, 10 * kMiB), 0);
  EXPECT_TRUE(absl::StrContains(line, "nothing fetched yet")) << line;
  EXPECT_TRUE(absl::StrContains(line, "ETA --")) << line;
}

TEST(ProgressEvents, ReportsNewProofFailuresAndBans) {
  v1::ReleaseStatus before = Status(0, 100);
  v1::ReleaseStatus after = before;
  EXPECT_EQ(ProgressEvents(before, after), "");
  after.set_proof_failures(3);
  after.set_peers_banned(1);
  EXPECT_EQ(ProgressEvents(before, after),
            "game@1.4.2: 3 pieces failed their Merkle proof (3 in all): dropped, fetching again; "
            "1 peer banned for bad pieces (1 in all)");
  before = after;
  after.set_proof_failures(4);
  EXPECT_EQ(ProgressEvents(before, after),
            "game@1.4.2: 1 piece failed its Merkle proof (4 in all): dropped, fetching again");
}

TEST(ProgressEvents, ReportsANewError) {
  v1::ReleaseStatus before = Status(0, 100);
  v1::ReleaseStatus after = before;
  after.set_error("no space left on device");
  EXPECT_EQ(ProgressEvents(before, after), "game@1.4.2: no space left on device");
  EXPECT_EQ(ProgressEvents(after, after), "");
}

TEST(RateMeter, ConvergesToASteadyRate) {
  RateMeter meter;
  const absl::Time t0 = absl::UnixEpoch();
  EXPECT_EQ(meter.BytesPerSecond(), 0);
  for (int i = 0; i <= 20; ++i) meter.Add(t0 + i * absl::Milliseconds(500), i * kMiB / 2);
  EXPECT_NEAR(meter.BytesPerSecond(), kMiB, 1);
}

TEST(RateMeter, SmoothsAStall) {
  RateMeter meter(absl::Seconds(3));
  const absl::Time t0 = absl::UnixEpoch();
  for (int i = 0; i <= 10; ++i) meter.Add(t0 + absl::Seconds(i), i * kMiB);
  // One second without progress: the rate drops, but not to zero.
  meter.Add(t0 + absl::Seconds(11), 10 * kMiB);
  EXPECT_GT(meter.BytesPerSecond(), 0.5 * kMiB);
  EXPECT_LT(meter.BytesPerSecond(), 0.9 * kMiB);
}

TEST(RateMeter, IgnoresSamplesOutOfOrder) {
  RateMeter meter;
  const absl::Time t0 = absl::UnixEpoch();
  meter.Add(t0, 0);
  meter.Add(t0 + absl::Seconds(1), kMiB);
  meter.Add(t0 + absl::Seconds(1), 50 * kMiB);
  meter.Add(t0, 90 * kMiB);
  EXPECT_NEAR(meter.BytesPerSecond(), kMiB, 1);
}

TEST(ProgressPrinter, RewritesOneLineOnATerminal) {
  std::ostringstream out;
  ProgressPrinter::Options options;
  options.tty = true;
  ProgressPrinter printer(out, options);
  const absl::Time t0 = absl::UnixEpoch();
  printer.Update(t0, Status(0, 10 * kMiB));
  printer.Update(t0 + absl::Milliseconds(100), Status(kMiB, 10 * kMiB));  // too soon
  printer.Update(t0 + absl::Milliseconds(300), Status(3 * kMiB, 10 * kMiB));
  EXPECT_EQ(out.str().find('\n'), std::string::npos);
  EXPECT_TRUE(absl::StrContains(out.str(), "\rgame@1.4.2    0.0%")) << out.str();
  EXPECT_FALSE(absl::StrContains(out.str(), " 10.0%")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "\rgame@1.4.2   30.0%")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "\033[K"));
  printer.Update(t0 + absl::Milliseconds(400), Status(10 * kMiB, 10 * kMiB));
  printer.Done();
  const std::string text = out.str();
  ASSERT_TRUE(absl::EndsWith(text, "\033[K\n")) << text;
  const std::string last = text.substr(text.rfind('\r'));
  EXPECT_TRUE(absl::StartsWith(last, "\rgame@1.4.2  100.0%  10.0 MiB/10.0 MiB")) << last;
  EXPECT_TRUE(absl::StrContains(last, "ETA 0s")) << last;
}

TEST(ProgressPrinter, CutsLinesToTheTerminalWidth) {
  std::ostringstream out;
  ProgressPrinter::Options options;
  options.tty = true;
  options.width = 40;
  ProgressPrinter printer(out, options);
  printer.Update(absl::UnixEpoch(), Status(0, 10 * kMiB));
  EXPECT_EQ(out.str(), "\r" + ProgressLine(Status(0, 10 * kMiB), 0).substr(0, 39) + "\033[K");
}

TEST(ProgressPrinter, WritesPlainLinesEveryFewSecondsElsewhere) {
  std::ostringstream out;
  ProgressPrinter printer(out, ProgressPrinter::Options());
  const absl::Time t0 = absl::UnixEpoch();
  for (int i = 0; i <= 12; ++i) printer.Update(t0 + absl::Seconds(i), Status(i * kMiB, 20 * kMiB));
  printer.Done();
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.find('\033'), std::string::npos);
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << text;  // at 0 s, 5 s, 10 s, and the end
  EXPECT_TRUE(absl::StartsWith(lines[0], "game@1.4.2    0.0%")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "game@1.4.2   25.0%")) << lines[1];
  EXPECT_TRUE(absl::StartsWith(lines[2], "game@1.4.2   50.0%")) << lines[2];
  EXPECT_TRUE(absl::StartsWith(lines[3], "game@1.4.2   60.0%")) << lines[3];
  EXPECT_TRUE(absl::StrContains(lines[3], "1.00 MiB/s")) << lines[3];
}

TEST(ProgressPrinter, PutsEventsOnLinesOfTheirOwnAboveTheProgressLine) {
  std::ostringstream out;
  ProgressPrinter::Options options;
  options.tty = true;
  ProgressPrinter printer(out, options);
  const absl::Time t0 = absl::UnixEpoch();
  printer.Update(t0, Status(0, 10 * kMiB));
  v1::ReleaseStatus bad = Status(0, 10 * kMiB);
  bad.set_proof_failures(1);
  printer.Update(t0 + absl::Seconds(1), bad);
  EXPECT_TRUE(
      absl::StrContains(out.str(),
                        "\r\033[Kgame@1.4.2: 1 piece failed its Merkle proof (1 in all): dropped, "
                        "fetching again\n\rgame@1.4.2"))
      << out.str();
  // More failures within the event interval wait for the next event line.
  bad.set_proof_failures(2);
  printer.Update(t0 + absl::Seconds(2), bad);
  EXPECT_FALSE(absl::StrContains(out.str(), "(2 in all)"));
  bad.set_proof_failures(3);
  printer.Update(t0 + absl::Seconds(7), bad);
  EXPECT_TRUE(absl::StrContains(out.str(), "2 pieces failed their Merkle proof (3 in all)"))
      << out.str();
}

TEST(ProgressPrinter, CountersFromBeforeTheFetchAreNotNews) {
  std::ostringstream out;
  ProgressPrinter printer(out, ProgressPrinter::Options());
  v1::ReleaseStatus s = Status(0, 10 * kMiB);
  s.set_proof_failures(5);
  printer.Update(absl::UnixEpoch(), s);
  EXPECT_FALSE(absl::StrContains(out.str(), "Merkle proof")) << out.str();
  EXPECT_TRUE(absl::StrContains(out.str(), "5 proof failures")) << out.str();
}

TEST(ProgressPrinter, DoesNotRepeatAPlainLineAtTheEnd) {
  std::ostringstream out;
  ProgressPrinter printer(out, ProgressPrinter::Options());
  printer.Update(absl::UnixEpoch(), Status(10 * kMiB, 10 * kMiB));
  printer.Done();
  std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << out.str();
}

TEST(ProgressPrinter, PrintsNothingWithoutAStatus) {
  std::ostringstream out;
  ProgressPrinter printer(out, ProgressPrinter::Options());
  printer.Done();
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace shoal::agent
