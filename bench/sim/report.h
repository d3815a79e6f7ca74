#pragma once

// What a simulation run prints: a table for people, JSON for the benchmark
// runner. Both carry the goals of issue 7 and whether they were met.

#include <string>

#include "bench/sim/scenario.h"
#include "bench/sim/swarm.h"

namespace shoal::sim {

// p99 completion at most this many times the fluid bound.
inline constexpr double kCompletionGoal = 1.3;
// Origin bytes per datacenter at most this many release sizes.
inline constexpr double kOriginGoal = 1.05;

std::string FormatTable(const Scenario& s, const SimResult& r);
std::string FormatJson(const Scenario& s, const SimResult& r);

}  // namespace shoal::sim
