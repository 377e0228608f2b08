// pi0-memory-lead-bench: does the fingerprint memory flag a load pattern it has seen before
// earlier than the first time? One node is driven second by second through the agent's Collector,
// the operator's poll and MemoryRecorder (load_run.h), through an hour of calm, a first episode,
// two hours of calm, and a second episode; and, as a control, a second episode of another kind.
// For each run it prints:
//  - onset: the second the pressure average crossed its line (the ground truth, from the shape);
//  - lead: how long before that onset seen() first called the node's state troubled (0: not
//    before the onset), for the first and the second episode;
//  - false alarms: the seconds called troubled in the calm half hour before the second
//    episode, where nothing followed.
// The figures are deterministic (the noise is seeded); the command:
//   build/release/bench/memory/pi0-memory-lead-bench
#include <cstdio>
#include <string>

#include "bench/memory/load_run.h"

using namespace pi0;
using namespace pi0::op::scenario;

namespace {

struct Episode {
  const char* name;
  Load (*shape)(int t, int start);
  double line;                          // the pressure line its onset crosses
  double (*pressure)(const Second& s);  // which pressure
};

double cpuPressure(const Second& s) {
  return s.psiCpu;
}
double memoryPressure(const Second& s) {
  return s.psiMemory;
}

const Episode kStep{"cpu step (0.30 -> 0.85, stalls building over 90 s)", stepLoad, 0.2,
                    cpuPressure};
const Episode kLeak{"memory leak (0.018 a minute into pressure)", leakLoad, 0.2, memoryPressure};

struct Lead {
  int onset = -1;  // seconds after the episode began; -1: no onset
  int lead = 0;    // seconds before the onset the memory flagged it
};

Lead leadOf(const LoadRun& run, const Episode& e, int start, int end) {
  Lead out;
  const auto onset = firstSecond(run.seconds(), start, end,
                                 [&](const Second& s) { return e.pressure(s) >= e.line; });
  if (!onset) return out;
  out.onset = *onset - start;
  if (auto flagged = firstSecond(run.seconds(), start, *onset, troubled))
    out.lead = *onset - *flagged;
  return out;
}

void scenario(const Episode& first, const Episode& second) {
  constexpr int kFirst = 3600, kGap = 7200, kLength = 2100;
  constexpr int kSecond = kFirst + kLength + kGap, kEnd = kSecond + kLength;
  LoadRun run;
  run.play(
      [&](int t) {
        return t < kFirst + kLength ? first.shape(t, kFirst) : second.shape(t, kSecond);
      },
      0, kEnd);
  const Lead a = leadOf(run, first, kFirst, kFirst + kLength);
  const Lead b = leadOf(run, second, kSecond, kEnd);
  int falseAlarms = 0;
  for (const Second& s : run.seconds())
    if (s.t >= kSecond - 1800 && s.t < kSecond && troubled(s)) ++falseAlarms;
  const auto counts = run.recorder().entriesByLabel();
  std::printf("first %s, then %s\n", first.name, second.name);
  std::printf("  first:  onset +%4d s, flagged %4d s before it\n", a.onset, a.lead);
  std::printf("  second: onset +%4d s, flagged %4d s before it\n", b.onset, b.lead);
  std::printf("  false alarms in the calm half hour before the second: %d of 1800 s\n",
              falseAlarms);
  std::printf("  memory: %zu calm, %zu before_trouble, %zu trouble_onset\n\n",
              counts.at(memory::Label::kCalm), counts.at(memory::Label::kBeforeTrouble),
              counts.at(memory::Label::kTroubleOnset));
}

}  // namespace

int main() {
  std::printf(
      "pi0-memory-lead-bench: how long before the onset of trouble the memory flags it\n\n");
  scenario(kStep, kStep);
  scenario(kLeak, kLeak);
  // The control: a second episode of another kind has not been seen before.
  scenario(kStep, kLeak);
  return 0;
}
