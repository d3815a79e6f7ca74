#pragma once

// What every Shoal daemon's main() does the same way: wait for SIGINT or
// SIGTERM, and tell a supervisor (or a test) where it listens.

#include <signal.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shoal {

// Blocks SIGINT and SIGTERM in the calling thread. Make one before any
// thread starts, so that every thread inherits the mask and only Wait()
// receives the signals. Not thread-safe; one per process.
class StopSignals {
 public:
  StopSignals();
  // Blocks until SIGINT or SIGTERM arrives; returns its number.
  int Wait() const;

 private:
  sigset_t set_;
};

// Writes `contents` and a newline to `path` atomically (readers never see a
// part of it). OK without writing when `path` is empty.
absl::Status WriteReadyFile(const std::string& path, absl::string_view contents);

}  // namespace shoal
