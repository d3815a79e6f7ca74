#include "bench/sim/units.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal::sim {
namespace {

// Splits "1.5GiB" into 1.5 and "GiB".
bool SplitNumber(absl::string_view text, double* number,
                 absl::string_view* unit) {
  text = absl::StripAsciiWhitespace(text);
  size_t end = 0;
  while (end < text.size() &&
         (absl::ascii_isdigit(text[end]) || text[end] == '.' ||
          text[end] == 'e' || text[end] == '+' || text[end] == '-')) {
    ++end;
  }
  // An exponent needs a digit after it; "1e" is not a number.
  while (end > 0 && !absl::ascii_isdigit(text[end - 1]) &&
         text[end - 1] != '.') {
    --end;
  }
  *unit = absl::StripAsciiWhitespace(text.substr(end));
  return end > 0 && absl::SimpleAtod(text.substr(0, end), number) &&
         std::isfinite(*number);
}

}  // namespace

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  double number;
  absl::string_view unit;
  if (SplitNumber(text, &number, &unit)) {
    const std::pair<absl::string_view, double> units[] = {
        {"", 1},          {"B", 1},         {"KiB", 1 << 10},
        {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1ull << 40},
        {"kB", 1e3},      {"KB", 1e3},      {"MB", 1e6},
        {"GB", 1e9},      {"TB", 1e12}};
    for (const auto& [name, scale] : units) {
      if (unit != name) continue;
      const double bytes = std::round(number * scale);
      if (bytes >= 1 && bytes < 1.8e19) return static_cast<uint64_t>(bytes);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", text, "\" is not a size such as 4MiB, 2GiB or 1000000"));
}

absl::StatusOr<double> ParseRate(absl::string_view text) {
  double number;
  absl::string_view unit;
  if (SplitNumber(text, &number, &unit) && number >= 0) {
    double scale = 1;
    if (!unit.empty() && (unit[0] == 'k' || unit[0] == 'K' || unit[0] == 'M' ||
                          unit[0] == 'G' || unit[0] == 'T')) {
      scale = unit[0] == 'T'   ? 1e12
              : unit[0] == 'G' ? 1e9
              : unit[0] == 'M' ? 1e6
                               : 1e3;
      unit.remove_prefix(1);
    }
    if (unit.empty() || unit == "B/s" || unit == "Bps") return number * scale;
    if (unit == "b/s" || unit == "bps") return number * scale / 8;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", text, "\" is not a rate such as 10Gb/s, 20MB/s or 1.25e9"));
}

std::string FormatBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (i < 4 && std::fabs(bytes) >= 1024) {
    bytes /= 1024;
    ++i;
  }
  return absl::StrFormat("%.2f %s", bytes, units[i]);
}

std::string FormatRate(double bytes_per_second) {
  const double bits = bytes_per_second * 8;
  if (bits >= 1e9) return absl::StrFormat("%.1f Gb/s", bits / 1e9);
  if (bits >= 1e6) return absl::StrFormat("%.1f Mb/s", bits / 1e6);
  return absl::StrFormat("%.0f b/s", bits);
}

}  // namespace shoal::sim
