#include "common/daemon.h"

#include <pthread.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace shoal {

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

int StopSignals::Wait() const {
  int sig = 0;
  sigwait(&set_, &sig);
  return sig;
}

absl::Status WriteReadyFile(const std::string& path, absl::string_view contents) {
  if (path.empty()) return absl::OkStatus();
  return WriteFileAtomically(path, absl::StrCat(contents, "\n"), 0644);
}

}  // namespace shoal
