// pi0-forecast-replay: reads a recording (CSV, one row per agent round, signal columns as
// ratios) on stdin and writes it back with, for each signal column S, the values every
// detector of the evidence experiment reads, computed from the window of the last N rows by the
// agent's own analysis (gate::SpectrumAnalyzer):
//   S_peak      Pi0's projected peak over the horizon
//   S_ttt       Pi0's seconds to trouble (empty: none expected)
//   S_legacy    the first definition of the projected peak, max(μ + 2σ, max x̂)
//   S_trimaran  μ + σ over the window (Trimaran's LoadVariationRiskBalancing risk)
// Cells stay empty until the signal's window is full.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/files.h"
#include "gate/spectrum.h"
#include "gate/window.h"

namespace {

constexpr const char* kSignals[] = {"cpu",     "memory",     "disk",  "network",
                                    "psi_cpu", "psi_memory", "psi_io"};

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ','))
    out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

int usage(const char* why) {
  std::fprintf(stderr,
               "pi0-forecast-replay: %s\n"
               "Usage: pi0-forecast-replay [--window N] [--horizon H] [--interval SECONDS]\n"
               "                           [--pressure-line R] < recording.csv > replay.csv\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t window = 64;
  pi0::gate::ForecastOptions options;
  pi0::gate::TroubleLines lines;
  double interval = 1.0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") return usage("replays a recording through the detectors");
    if (i + 1 >= argc) return usage(("missing value for " + flag).c_str());
    const std::string value = argv[++i];
    auto count = pi0::parseUint(value);
    char* end = nullptr;
    const double real = std::strtod(value.c_str(), &end);
    const bool isReal = end && *end == '\0' && std::isfinite(real);
    if (flag == "--window" && count) {
      window = *count;
    } else if (flag == "--horizon" && count) {
      options.horizon = *count;
    } else if (flag == "--interval" && isReal && real > 0) {
      interval = real;
    } else if (flag == "--pressure-line" && isReal && real > 0 && real <= 1) {
      lines.pressure = real;
    } else {
      return usage(("bad flag or value: " + flag + " " + value).c_str());
    }
  }
  options.intervalSeconds = interval;
  auto analyzer = pi0::gate::SpectrumAnalyzer::create(window, 4, options);
  if (!analyzer) return usage(analyzer.error().message.c_str());

  std::string line;
  if (!std::getline(std::cin, line)) return usage("empty input: want a recording's CSV header");
  const auto header = split(line);
  struct Column {
    std::string name;
    std::size_t index;
    pi0::gate::RollingWindow window;
  };
  std::vector<Column> columns;
  for (const char* name : kSignals) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) columns.push_back(Column{name, i, pi0::gate::RollingWindow(window)});
    }
  }
  if (columns.empty()) return usage("the header names none of the signal columns");
  std::cout << line;
  for (const auto& c : columns)
    std::cout << ',' << c.name << "_peak," << c.name << "_ttt," << c.name << "_legacy," << c.name
              << "_trimaran";
  std::cout << '\n';

  std::vector<double> values(window);
  std::size_t row = 1;
  while (std::getline(std::cin, line)) {
    ++row;
    if (line.empty()) continue;
    const auto cells = split(line);
    std::cout << line;
    for (auto& c : columns) {
      std::string peak, ttt, legacy, trimaran;
      if (c.index < cells.size() && !cells[c.index].empty()) {
        char* end = nullptr;
        const double v = std::strtod(cells[c.index].c_str(), &end);
        if (end == cells[c.index].c_str() || !std::isfinite(v)) {
          std::fprintf(stderr, "pi0-forecast-replay: row %zu: %s is not a number: '%s'\n", row,
                       c.name.c_str(), cells[c.index].c_str());
          return 1;
        }
        c.window.push(std::clamp(v, 0.0, 1.0));
      }
      if (c.window.full()) {
        c.window.copyTo(values);
        const auto a = analyzer->analyze(values, pi0::gate::signalKind(c.name));
        peak = number(a.projectedPeak);
        if (auto samples = a.forecast.samplesUntil(pi0::gate::troubleLine(c.name, lines)))
          ttt = number(*samples * interval);
        legacy = number(std::clamp(std::max(a.mean + 2 * a.stddev, a.modelPeak), 0.0, 1.0));
        trimaran = number(a.mean + a.stddev);
      }
      std::cout << ',' << peak << ',' << ttt << ',' << legacy << ',' << trimaran;
    }
    std::cout << '\n';
  }
  return 0;
}
