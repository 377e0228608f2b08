// TempHostRoot: a private, writable host root (proc/, sys/) for sampler tests that change files
// between two sample() calls. Shared by the host, disk and network sampler tests.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include <doctest/doctest.h>

#include "common/files.h"
#include "sampler.h"

namespace pi0::testing {

// Contract: the constructor makes a fresh directory under the system temporary directory, named
// uniquely for this process and object; the destructor removes it with everything in it.
// Failures to set it up fail the running test (REQUIRE), they do not throw past it.
class TempHostRoot {
 public:
  TempHostRoot() {
    static std::atomic<unsigned> counter{0};
    std::random_device random;
    root_ = std::filesystem::temp_directory_path() /
            ("pi0-sampler-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
             "-" + std::to_string(random()));
    std::error_code ec;
    std::filesystem::create_directories(root_, ec);
    REQUIRE_MESSAGE(!ec, "cannot create " << root_.string() << ": " << ec.message());
  }
  ~TempHostRoot() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  TempHostRoot(const TempHostRoot&) = delete;
  TempHostRoot& operator=(const TempHostRoot&) = delete;

  substrates::HostPaths paths() const { return substrates::HostPaths{root_}; }
  const std::filesystem::path& root() const { return root_; }

  // Copies the fixture host root `fixture` (a directory of proc/ and sys/ trees) over this one,
  // replacing files that exist in both.
  void copyTree(const std::filesystem::path& fixture) {
    std::error_code ec;
    std::filesystem::copy(fixture, root_,
                          std::filesystem::copy_options::recursive |
                              std::filesystem::copy_options::overwrite_existing,
                          ec);
    REQUIRE_MESSAGE(!ec, "cannot copy " << fixture.string() << ": " << ec.message());
  }

  // Replaces <root>/<relative> by the fixture file `from`.
  void copyFile(const std::filesystem::path& from, std::string_view relative) {
    std::error_code ec;
    auto to = root_ / relative;
    std::filesystem::create_directories(to.parent_path(), ec);
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, ec);
    REQUIRE_MESSAGE(!ec, "cannot copy " << from.string() << ": " << ec.message());
  }

  // Writes <root>/<relative> with `contents`, creating directories as needed.
  void write(std::string_view relative, std::string_view contents) {
    std::error_code ec;
    auto to = root_ / relative;
    std::filesystem::create_directories(to.parent_path(), ec);
    auto written = writeFileAtomic(to, contents);
    if (!written) FAIL(written.error().message);
  }

  void remove(std::string_view relative) {
    std::error_code ec;
    std::filesystem::remove_all(root_ / relative, ec);
    REQUIRE_MESSAGE(!ec, "cannot remove " << relative << ": " << ec.message());
  }

 private:
  std::filesystem::path root_;
};

// The ratio of `signal` in `sample`, or nothing when the sample has no such reading.
inline std::optional<double> readingOf(const substrates::Sample& sample, std::string_view signal) {
  for (const auto& reading : sample.readings) {
    if (reading.signal == signal) return reading.ratio;
  }
  return std::nullopt;
}

// The value of the gauge `kind` for `device` in `sample`, or nothing when it is absent.
inline std::optional<double> gaugeOf(const substrates::Sample& sample, substrates::GaugeKind kind,
                                     std::string_view device = {}) {
  for (const auto& gauge : sample.gauges) {
    if (gauge.kind == kind && gauge.device == device) return gauge.value;
  }
  return std::nullopt;
}

}  // namespace pi0::testing
