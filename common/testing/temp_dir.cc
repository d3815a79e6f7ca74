#include "common/testing/temp_dir.h"

#include <stdlib.h>
#include <string.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace shoal {

std::string MakeTestDir(absl::string_view prefix) {
  std::string dir = absl::StrCat(::testing::TempDir(), "/", prefix, ".XXXXXX");
  CHECK(mkdtemp(dir.data()) != nullptr)
      << "cannot create " << dir << ": " << strerror(errno);
  return dir;
}

}  // namespace shoal
