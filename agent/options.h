// Command-line options of pi0-agent. parseOptions never exits the process: it returns the
// options, or an error for the caller to print with the usage hint.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/flags.h"
#include "common/log.h"
#include "common/result.h"

namespace pi0::agent {

// Where the agent serves (port 0: any free port).
using ListenAddress = HostPort;

struct Options {
  ListenAddress listen{"0.0.0.0", 9560};
  double intervalSeconds = 1.0;
  std::size_t window = 64;
  std::size_t horizon = 30;   // samples the projected peak looks ahead
  double pressureLine = 0.2;  // PSI some avg10 ratio that means trouble
  std::filesystem::path hostRoot = "/";
  std::string nodeName;            // --node-name, else $NODE_NAME, else the host name
  std::filesystem::path stateDir;  // empty: no warm restart
  double stateIntervalSeconds = 10.0;
  std::filesystem::path syntheticFile;            // --source synthetic:FILE; empty: real sources
  std::string nvmlLibrary = "libnvidia-ml.so.1";  // "none": do not sample GPUs
  double gpuProbeIntervalSeconds = 300.0;         // 0: never run the on-device probe
  log::Level logLevel = log::Level::kInfo;
  bool help = false;
  bool version = false;
};

// "HOST:PORT" as --listen takes it (parseHostPort).
Result<ListenAddress> parseListenAddress(std::string_view text);
// The flags (and, for --node-name, $NODE_NAME, else the host name).
Result<Options> parseOptions(const std::vector<std::string>& args);
// The --help text, from the same table of flags.
std::string usage();

}  // namespace pi0::agent
