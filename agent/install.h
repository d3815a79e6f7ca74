#pragma once

// Installing a completed release into a destination directory (a fetch's
// --dest or a channel's DIR), so that applications run it from a path that
// only ever holds complete versions:
//
//   DEST/<name>@<version>/     one directory per installed version: the
//                              release's files with the manifest's modes,
//                              and the marker file kInstallMarker
//   DEST/current               symlink to the current version's directory
//                              (relative: "<name>@<version>")
//   DEST/.shoal-*              work in progress; whatever a killed install
//                              left is removed by the next one
//
// An install copies the files from the agent's store (reflinked where the
// filesystem can, so that an installed copy costs no space until either side
// changes it) into DEST/.shoal-partial.<name>@<version>.<id>, applies the
// modes, syncs, renames the directory to DEST/<name>@<version> and then
// renames a new symlink over DEST/current. Each rename is atomic, so after a
// crash or kill -9 at any moment DEST/current names a complete version or
// is absent (only if no install ever completed), and every visible
// <name>@<version> directory is complete. The previous version stays, for
// rollback, until RemoveInstalled(). The store keeps its own copy, so what
// an application does to its installed files never changes what peers are
// served.
//
// A version directory is "complete" when its marker names the release id
// being installed and every file of the manifest is there as a regular file
// of the signed size. Installing a complete version again copies nothing
// and only switches DEST/current. An incomplete one made by Shoal (the
// marker is there, for another release id, or files are missing or
// truncated) is replaced by a fresh copy and deleted; a directory of that
// name that Shoal did not make (no marker) is replaced too but kept as
// DEST/.shoal-displaced.<name>@<version>.<id> for its owner to look at.
// The replacement is an atomic exchange (renameat2 RENAME_EXCHANGE); on a
// filesystem without it, the old directory is moved aside first, and the
// name is briefly absent.
//
// Installs, removals and leftover cleaning of one DEST are serialized by an
// exclusive flock(2) on the DEST directory, across threads and processes;
// listing takes no lock. DEST/current is never replaced unless it is a
// symlink: a file or directory there is the user's, and installs refuse it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/install_files.h"
#include "agent/post_install.h"
#include "common/manifest.h"

namespace shoal::agent {

// The symlink in DEST that names the current version.
inline constexpr char kCurrentLink[] = "current";
// In each installed version directory: "<release id>\n<name>@<version>\n".
// A manifest with a file of this name (or a directory of it) cannot be
// installed.
inline constexpr char kInstallMarker[] = ".shoal-release";

struct InstallOptions {
  // Shell command run after DEST/current switched (agent/post_install.h);
  // empty for none. It also runs when the version was already installed.
  std::string post_install;
  absl::Duration post_install_timeout = absl::Minutes(10);
  // fsync the files, the version directory and DEST at each step, so that
  // a power loss keeps the same guarantees as a killed process. Without
  // it, only a process crash is covered.
  bool durable = true;
};

struct InstallResult {
  // "<name>@<version>", and its directory: DEST/<name>@<version>.
  std::string release;
  std::string path;
  // The version was already installed and complete: nothing was copied.
  bool reused = false;
  // An incomplete or foreign directory of that name was replaced.
  bool replaced = false;
  // DEST/current was changed (false if it already named this version).
  bool switched = false;
  // What DEST/current named before, empty if it did not exist.
  std::string previous;
  // What was copied (nothing when reused).
  CopyStats copied;
  // Set when InstallOptions::post_install was.
  std::optional<PostInstallResult> post_install;
};

// One version directory in DEST.
struct InstalledVersion {
  // "<name>@<version>", the directory's name.
  std::string release;
  // From the marker.
  std::string release_id;
  // DEST/current names it.
  bool current = false;
};

// Installs releases with one FileCopier. Stateless apart from the copier;
// thread-safe if the copier is.
class Installer {
 public:
  // `copier` must outlive the installer.
  explicit Installer(FileCopier& copier) : copier_(copier) {}

  // Installs `manifest`'s files from `store_data_dir` (a ReleaseStore's
  // data_dir()) into `dest_dir` and makes it current, then runs the
  // post_install hook if one is set (its outcome is in the result; it
  // never makes the install fail or undoes it). DEST is created if missing.
  //
  // Precondition: the store holds the release completely and verified (the
  // caller checked ReleaseStore::complete()); the installer trusts those
  // bytes and only checks that each file is there at its signed size.
  //
  // Errors (DEST/current is unchanged after any of them, and no partial
  // directory is left):
  //   INVALID_ARGUMENT    a manifest path is not a valid relative path or
  //                       uses the name kInstallMarker; `dest_dir` is empty
  //   FAILED_PRECONDITION DEST exists and is not a directory; DEST/current
  //                       exists and is not a symlink; a store file is
  //                       missing, not a regular file or not of its signed
  //                       size
  //   RESOURCE_EXHAUSTED  the disk is full (ENOSPC/EDQUOT), naming the path
  //   filesystem errors otherwise, naming the path.
  // If the switch of DEST/current itself fails, the complete version
  // directory stays (the next install reuses it).
  absl::StatusOr<InstallResult> Install(const Manifest& manifest,
                                        const std::string& store_data_dir,
                                        const std::string& dest_dir,
                                        const InstallOptions& options) const;

 private:
  FileCopier& copier_;
};

// As Installer::Install with a RealFileCopier (reflink first).
absl::StatusOr<InstallResult> Install(const Manifest& manifest,
                                      const std::string& store_data_dir,
                                      const std::string& dest_dir,
                                      const InstallOptions& options);

// What DEST/current names ("<name>@<version>"), or nullopt if it does not
// exist (DEST missing included). FAILED_PRECONDITION if it exists and is
// not a symlink.
absl::StatusOr<std::optional<std::string>> CurrentRelease(
    const std::string& dest_dir);

// The version directories in DEST (those with a readable marker), sorted by
// name, with the current one flagged. Empty if DEST does not exist. For
// quota eviction: anything not `current` may go.
absl::StatusOr<std::vector<InstalledVersion>> ListInstalled(
    const std::string& dest_dir);

// Deletes DEST/<release> (renamed out of sight first, so a kill midway
// leaves no partial directory under that name). FAILED_PRECONDITION if it
// is the current version or has no marker (Shoal did not make it);
// NOT_FOUND if it is not there; INVALID_ARGUMENT if `release` is not a
// plain directory name.
absl::Status RemoveInstalled(const std::string& dest_dir,
                             absl::string_view release);

}  // namespace shoal::agent
