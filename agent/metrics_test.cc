#include "agent/metrics.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace shoal::agent {
namespace {

using ::testing::HasSubstr;

// The value of the one sample of `name` with exactly `labels`, if any.
std::optional<double> Sample(prometheus::Registry& registry, const std::string& name,
                             const std::map<std::string, std::string>& labels = {}) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have != labels) continue;
      return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                            : metric.gauge.value;
    }
  }
  return std::nullopt;
}

class AgentMetricsTest : public testing::Test {
 protected:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  AgentMetrics metrics_{registry_};
};

TEST_F(AgentMetricsTest, NotReadyBeforeTheFirstAnnounceAnswers) {
  const absl::Status ready = metrics_.TrackerReadiness();
  EXPECT_EQ(ready.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ready.message(), HasSubstr("tracker"));
  EXPECT_FALSE(Sample(*registry_, "shoal_agent_last_announce_timestamp_seconds").has_value())
      << "an agent that never announced has no announce timestamp to alert on";
}

TEST_F(AgentMetricsTest, ReadinessFollowsTheLastAnnounce) {
  metrics_.RecordAnnounce(absl::OkStatus(), absl::FromUnixSeconds(1000));
  EXPECT_TRUE(metrics_.TrackerReadiness().ok());
  metrics_.RecordAnnounce(absl::UnavailableError("127.0.0.1:7070: connection refused"),
                          absl::FromUnixSeconds(1010));
  const absl::Status ready = metrics_.TrackerReadiness();
  EXPECT_EQ(ready.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ready.message(), HasSubstr("connection refused"));
  metrics_.RecordAnnounce(absl::OkStatus(), absl::FromUnixSeconds(1020));
  EXPECT_TRUE(metrics_.TrackerReadiness().ok());
}

TEST_F(AgentMetricsTest, AnnouncesCountedByResultWithTheLastSuccessTime) {
  metrics_.RecordAnnounce(absl::OkStatus(), absl::FromUnixSeconds(1000));
  metrics_.RecordAnnounce(absl::DeadlineExceededError("slow"), absl::FromUnixSeconds(1005));
  metrics_.RecordAnnounce(absl::UnavailableError("down"), absl::FromUnixSeconds(1010));
  EXPECT_EQ(Sample(*registry_, "shoal_agent_announces_total", {{"result", "ok"}}), 1);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_announces_total", {{"result", "failed"}}), 2);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_last_announce_timestamp_seconds"), 1000);
}

TEST_F(AgentMetricsTest, FailedFirstAnnounceLeavesTimestampAtZero) {
  metrics_.RecordAnnounce(absl::UnavailableError("down"), absl::FromUnixSeconds(1000));
  EXPECT_EQ(Sample(*registry_, "shoal_agent_last_announce_timestamp_seconds"), 0);
}

TEST_F(AgentMetricsTest, ByteSeriesExistAtZeroBeforeTheFirstPiece) {
  // rate() over a counter that appears with its first increment misses it.
  EXPECT_EQ(Sample(*registry_, "shoal_agent_verified_bytes_total",
                   {{"source", "peer"}, {"locality", "datacenter"}}),
            0);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_verified_bytes_total",
                   {{"source", "origin"}, {"locality", "origin"}}),
            0);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_received_bytes_total", {{"source", "origin"}}), 0);
}

TEST_F(AgentMetricsTest, VerifiedBytesFromTheOriginHaveOriginLocality) {
  metrics_.CountVerified(Source::kOrigin, Locality::kRemote, 100);
  metrics_.CountVerified(Source::kPeer, Locality::kRack, 40);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_verified_bytes_total",
                   {{"source", "origin"}, {"locality", "origin"}}),
            100);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_verified_bytes_total",
                   {{"source", "peer"}, {"locality", "rack"}}),
            40);
  EXPECT_EQ(Sample(*registry_, "shoal_agent_pieces_verified_total"), 2);
}

}  // namespace
}  // namespace shoal::agent
