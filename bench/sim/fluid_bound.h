#pragma once

// The fluid lower bound T* on the time until every downloader holds the
// release: bytes flow like a fluid (any piece can be passed on the instant
// it arrives), so T* is the largest of the times some link or group of
// uploaders needs just to carry the bytes that must cross it. Each term
// names what it counts; a run is measured against the largest.

#include <string>
#include <vector>

#include "bench/sim/scenario.h"

namespace shoal::sim {

struct BoundTerm {
  std::string name;
  std::string reason;  // what must cross what
  double seconds = 0;  // infinite when nothing can carry it
};

struct FluidBound {
  std::vector<BoundTerm> terms;
  double seconds = 0;  // T*: the largest term
  size_t binding = 0;  // index of that term
};

FluidBound ComputeFluidBound(const Scenario& s);

}  // namespace shoal::sim
