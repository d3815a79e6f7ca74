#pragma once

// Sizes and rates as people write them on a command line.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::sim {

// "4MiB", "2GiB", "512KiB", "1000000" (bytes), "1.5GB" (decimal).
// INVALID_ARGUMENT for anything else, or a size below one byte.
absl::StatusOr<uint64_t> ParseSize(absl::string_view text);

// Bytes per second from "10Gb/s" or "10Gbps" (bits), "20MB/s" (bytes),
// "1.25e9" (bytes/s); k, M, G, T are decimal. "0" is 0. INVALID_ARGUMENT
// for anything else or a negative rate.
absl::StatusOr<double> ParseRate(absl::string_view text);

// "1.50 GiB", "10.0 Gb/s": for reports.
std::string FormatBytes(double bytes);
std::string FormatRate(double bytes_per_second);

}  // namespace shoal::sim
