#include "tracker/metrics.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace shoal::tracker {
namespace {

// The value of the one sample of `name` with exactly `labels`, if any.
std::optional<double> Sample(prometheus::Registry& registry, const std::string& name,
                             const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return metric.gauge.value;
    }
  }
  return std::nullopt;
}

v1::SwarmHealth Swarm(const std::string& id, const std::string& name) {
  v1::SwarmHealth s;
  s.set_release_id(id);
  s.set_name(name);
  s.set_version("1");
  s.set_datacenter("dc1");
  s.set_peers_downloading(3);
  s.set_peers_seeding(1);
  s.set_peers_stalled(2);
  s.set_bytes_from_peers(3000);
  s.set_bytes_from_origin(1500);
  return s;
}

class TrackerMetricsTest : public testing::Test {
 protected:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  TrackerMetrics metrics_{registry_};
};

TEST_F(TrackerMetricsTest, SwarmGaugesCarryReleaseDatacenterAndState) {
  v1::SwarmHealthResponse health;
  *health.add_swarms() = Swarm("aa", "game");
  metrics_.SetSwarms(health, {{"aa", 1000}});
  const std::map<std::string, std::string> swarm = {{"release", "game@1"}, {"datacenter", "dc1"}};
  auto with = [&](const char* key, const char* value) {
    auto labels = swarm;
    labels[key] = value;
    return labels;
  };
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_peers", with("state", "downloading")), 3);
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_peers", with("state", "seeding")), 1);
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_peers", with("state", "stalled")), 2);
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_swarm_complete_ratio", swarm), 0.25);
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_swarm_bytes", with("source", "peer")), 3000);
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_swarm_bytes", with("source", "origin")), 1500);
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_release_size_bytes", {{"release", "game@1"}}), 1000);
}

TEST_F(TrackerMetricsTest, ReleaseWithoutKnownSizeHasNoSizeGauge) {
  v1::SwarmHealthResponse health;
  *health.add_swarms() = Swarm("bb", "");
  metrics_.SetSwarms(health, {});
  EXPECT_EQ(Sample(*registry_, "shoal_tracker_swarm_bytes",
                   {{"release", "bb"}, {"datacenter", "dc1"}, {"source", "origin"}}),
            1500)
      << "an unregistered release is labelled by its id";
  EXPECT_FALSE(
      Sample(*registry_, "shoal_tracker_release_size_bytes", {{"release", "bb"}}).has_value());
}

TEST_F(TrackerMetricsTest, SwarmsThatDisappearLoseTheirGauges) {
  v1::SwarmHealthResponse health;
  *health.add_swarms() = Swarm("aa", "game");
  *health.add_swarms() = Swarm("cc", "tool");
  metrics_.SetSwarms(health, {{"aa", 1000}, {"cc", 10}});
  health.mutable_swarms()->RemoveLast();
  metrics_.SetSwarms(health, {{"aa", 1000}, {"cc", 10}});
  EXPECT_TRUE(
      Sample(*registry_, "shoal_tracker_release_size_bytes", {{"release", "game@1"}}).has_value());
  EXPECT_FALSE(
      Sample(*registry_, "shoal_tracker_release_size_bytes", {{"release", "tool@1"}}).has_value());
  EXPECT_FALSE(Sample(*registry_, "shoal_tracker_swarm_bytes",
                      {{"release", "tool@1"}, {"datacenter", "dc1"}, {"source", "peer"}})
                   .has_value());
}

}  // namespace
}  // namespace shoal::tracker
