#pragma once

// Fresh directories for hermetic tests.

#include <string>

#include "absl/strings/string_view.h"

namespace shoal {

// Creates a new, empty directory "<prefix>.XXXXXX" under the test's temporary
// directory (gtest's TempDir(), which Bazel points into the sandbox) and
// returns its path. Crashes if it cannot be created: the test could not run.
std::string MakeTestDir(absl::string_view prefix);

}  // namespace shoal
