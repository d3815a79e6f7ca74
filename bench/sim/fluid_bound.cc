#include "bench/sim/fluid_bound.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal::sim {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

double Ratio(double bytes, double rate) {
  return rate > 0 ? bytes / rate : kInfinity;
}

// Per datacenter or rack: downloaders, seeds and their upload.
struct Group {
  int downloaders = 0;
  int seeds = 0;
  double upload = 0;  // of every agent in it
};

}  // namespace

FluidBound ComputeFluidBound(const Scenario& s) {
  const double f = static_cast<double>(s.release_bytes);
  std::vector<Group> dcs(s.datacenters), racks(s.num_racks());
  double all_upload = 0;
  for (int i = 0; i < s.num_agents(); ++i) {
    const bool seed = i >= s.agents;
    for (Group* g : {&dcs[s.datacenter_of(i)], &racks[s.rack_of(i)]}) {
      (seed ? g->seeds : g->downloaders) += 1;
      g->upload += s.upload_rate();
    }
    all_upload += s.upload_rate();
  }
  int without_seed = 0;  // datacenters with downloaders and no seed
  for (const Group& g : dcs) without_seed += g.downloaders > 0 && g.seeds == 0;

  FluidBound bound;
  auto add = [&](std::string name, std::string reason, double seconds) {
    bound.terms.push_back({std::move(name), std::move(reason), seconds});
  };
  if (without_seed > 0) {
    add("origin",
        absl::StrFormat("%d datacenter(s) without a seed each need every "
                        "byte from the origin once (peers are named within a "
                        "datacenter only): %d x F / origin rate",
                        without_seed, without_seed),
        Ratio(without_seed * f, s.origin_rate));
    add("datacenter link",
        "every byte enters a datacenter without a seed through its link: "
        "F / link rate",
        Ratio(f, s.datacenter_uplink_rate));
  }
  // A datacenter with a seed gets nothing from the origin: the tracker
  // leases only pieces no peer of the datacenter holds.
  double slowest_seeded = 0;
  for (const Group& g : dcs) {
    if (g.downloaders > 0 && g.seeds > 0) {
      slowest_seeded =
          std::max(slowest_seeded, Ratio(f, g.seeds * s.upload_rate()));
    }
  }
  if (slowest_seeded > 0) {
    add("seeds",
        "in a datacenter with seeds every byte leaves one of its seeds once "
        "(the origin is leased only pieces no peer holds): F / seeds' upload",
        slowest_seeded);
  }
  add("download", "every downloader receives F through its NIC: F / NIC",
      Ratio(f, s.nic_rate));
  add("swarm upload",
      "N x F bytes leave the origin or some agent: N x F / (origin, if it "
      "serves, + every agent's upload)",
      Ratio(s.agents * f, (without_seed > 0 ? s.origin_rate : 0) + all_upload));
  double busiest_dc = 0;
  for (const Group& g : dcs) {
    if (g.downloaders == 0) continue;
    const double inflow =
        g.seeds > 0 ? 0 : std::min(s.datacenter_uplink_rate, s.origin_rate);
    busiest_dc =
        std::max(busiest_dc, Ratio(g.downloaders * f, g.upload + inflow));
  }
  add("busiest datacenter",
      "its downloaders receive n x F from its own agents or the origin: "
      "n x F / (their upload + min(link, origin))",
      busiest_dc);
  double busiest_rack = 0, rack_import = 0;
  for (const Group& g : racks) {
    if (g.downloaders == 0) continue;
    busiest_rack = std::max(
        busiest_rack, Ratio(g.downloaders * f, g.upload + s.rack_uplink_rate));
    if (g.seeds == 0) rack_import = Ratio(f, s.rack_uplink_rate);
  }
  if (rack_import > 0) {
    add("rack uplink",
        "every byte enters a rack without a seed through its uplink: F / "
        "uplink rate",
        rack_import);
  }
  add("busiest rack",
      "its downloaders receive n x F from the rack's agents or through its "
      "uplink: n x F / (their upload + uplink)",
      busiest_rack);
  for (size_t i = 0; i < bound.terms.size(); ++i) {
    if (bound.terms[i].seconds > bound.seconds) {
      bound.seconds = bound.terms[i].seconds;
      bound.binding = i;
    }
  }
  return bound;
}

}  // namespace shoal::sim
