// Small file helpers shared by the samplers and the agent's state store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace pi0 {

// Reads a whole (small) file. Fails with a message that names the path and the OS error.
Result<std::string> readFile(const std::filesystem::path& path);

// A kernel text file (/proc, /sys) that a sampler reads whole on every sample. On procfs and
// sysfs the file is opened once and each read() starts with a pread() at offset 0, which makes
// the kernel generate the text afresh; that saves the path walk of open() and the close() of
// every sample, about half of the kernel's cost of a small /proc file. On any other file
// system (a test's copy of /proc, a fixture) the file is opened anew on every read(), since
// such a file may be replaced between two reads. A kept sysfs file whose device went away
// (ENODEV) is opened again once, so a device that comes back under the same name is read from
// its new file; other read errors (EINVAL from `speed` of a link that is down) keep the
// descriptor.
// Not thread-safe: one owner, usually a sampler.
class KernelFile {
 public:
  explicit KernelFile(std::filesystem::path path) : path_(std::move(path)) {}
  ~KernelFile();
  KernelFile(KernelFile&& other) noexcept;
  KernelFile& operator=(KernelFile&& other) noexcept;
  KernelFile(const KernelFile&) = delete;
  KernelFile& operator=(const KernelFile&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // The whole file, valid until the next read() or the destruction of this object. Fails with
  // a message that names the path and the OS error.
  Result<std::string_view> read();

 private:
  Result<std::string_view> readOnce();
  void close();

  std::filesystem::path path_;
  int fd_ = -1;
  bool keep_ = false;  // fd_ stays open between reads
  std::string buf_;
};

// Writes `contents` to `path` atomically: a temporary file in the same directory is written,
// fsync'ed and renamed over `path`, then the directory is fsync'ed. A crash at any point
// leaves either the old or the new file, never a partial one.
Result<void> writeFileAtomic(const std::filesystem::path& path, std::string_view contents);

// Parses a whole decimal token; fails on empty input, junk or overflow.
Result<std::uint64_t> parseUint(std::string_view token);
Result<double> parseDouble(std::string_view token);

}  // namespace pi0
