// Test helpers for the GPU sampler: the state file that drives the FAKE NVML and FAKE CUDA probe
// libraries (see fake_nvml.c), and lookups into a Sample.
#pragma once

#include <dlfcn.h>
#include <stdlib.h>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "sampler.h"

namespace pi0::substrates::testing {

// A private temporary directory holding the state file; PI0_FAKE_NVML_STATE points at it while
// the object lives. Tests run one at a time in a process, so the variable is not contended.
class FakeState {
 public:
  explicit FakeState(std::string_view contents) {
    std::string pattern = (std::filesystem::temp_directory_path() / "pi0-gpu-test-XXXXXX").string();
    // Never fall back to the working directory: a test must not write (or remove_all) there.
    REQUIRE_MESSAGE(mkdtemp(pattern.data()) != nullptr,
                    "mkdtemp(" << pattern << ") failed: " << std::strerror(errno));
    dir_ = pattern;
    path_ = dir_ / "nvml-state";
    write(contents);
    setenv("PI0_FAKE_NVML_STATE", path_.c_str(), 1);
  }
  ~FakeState() {
    unsetenv("PI0_FAKE_NVML_STATE");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  FakeState(const FakeState&) = delete;
  FakeState& operator=(const FakeState&) = delete;

  void write(std::string_view contents) const {
    std::ofstream out(path_, std::ios::trunc);
    out << contents;
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

// The test hooks a fake library exports (pi0_fake_nvml_init_count, ...). Holding the handle
// also keeps the fake loaded, so its counters survive the sampler's dlclose.
class FakeHooks {
 public:
  explicit FakeHooks(const char* library) : handle_(dlopen(library, RTLD_NOW | RTLD_LOCAL)) {}
  ~FakeHooks() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  FakeHooks(const FakeHooks&) = delete;
  FakeHooks& operator=(const FakeHooks&) = delete;

  bool loaded() const { return handle_ != nullptr; }
  int call(const char* symbol) const {
    if (handle_ == nullptr) return -1;
    auto fn = reinterpret_cast<int (*)()>(dlsym(handle_, symbol));
    return fn != nullptr ? fn() : -1;
  }

 private:
  void* handle_;
};

inline std::optional<double> reading(const Sample& sample, std::string_view signal) {
  for (const Reading& r : sample.readings) {
    if (r.signal == signal) return r.ratio;
  }
  return std::nullopt;
}

inline std::optional<double> gauge(const Sample& sample, GaugeKind kind, std::string_view device) {
  for (const Gauge& g : sample.gauges) {
    if (g.kind == kind && g.device == device) return g.value;
  }
  return std::nullopt;
}

inline int gaugeCount(const Sample& sample, GaugeKind kind) {
  int n = 0;
  for (const Gauge& g : sample.gauges)
    n += g.kind == kind ? 1 : 0;
  return n;
}

}  // namespace pi0::substrates::testing
