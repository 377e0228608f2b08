// pi0-ledger-bench: what the truth ledger (src/ledger/ledger.h) costs the operator leader, on a
// real SQLite file: how fast batches of decisions are stored (as POST /ledger/decisions stores
// them, 1,000 at a time, each with eight gate rows), how long the reads take that run beside the
// writes (the gates' ratios over every decision, as stored and judged again with other
// thresholds as a calibration round reads them, a pod's decisions, the figures), how long
// retention takes to drop a tenth, and the file's size per decision. A read runs on the ledger's
// read connection: the bench also times a batch stored while the ratios are being read, which
// it must not wait for.
//
//   build/release/bench/ledger/pi0-ledger-bench DIR [--decisions N] [--keep 1]
//
// DIR must exist; the bench writes DIR/ledger-bench.db and removes it at the end (not with
// --keep 1: then it is left for sqlite3 to look into).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ledger/ledger.h"

namespace {

using namespace pi0;
using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from) {
  return std::chrono::duration<double>(Clock::now() - from).count();
}

ledger::Decision decision(std::int64_t i, ledger::Time at) {
  ledger::Decision d;
  d.id = "pi0-webhook-" + std::to_string(i % 3) + "/1780000000000/" + std::to_string(i);
  d.at = at;
  d.replica = "pi0-webhook-" + std::to_string(i % 3);
  d.ns = "shop";
  d.pod = "web-7d9f-" + std::to_string(i);
  d.podUid = "0b5e4a9c-" + std::to_string(i);
  d.ownerKind = "ReplicaSet";
  d.ownerName = "web-7d9f";
  d.channel = "shop/web";
  d.mode = "Enforce";
  d.verdict = d.allowed = i % 10 != 0;
  d.reason = d.allowed ? "Passed" : "GatesFailed";
  d.node = "node-" + std::to_string(i % 5000);
  d.candidates = 40;
  for (const char* resource : {"cpu", "memory"})
    for (const char* gate : {"fit_error", "gluing_delta", "psi", "isolation"})
      d.gates.push_back({resource, gate, 0.05, 0.1, 0.02, d.allowed || gate[0] != 'i'});
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: pi0-ledger-bench DIR [--decisions N] [--keep 1]\n");
    return 2;
  }
  std::int64_t n = 200000;
  bool keep = false;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--decisions") n = std::atoll(argv[i + 1]);
    if (std::string(argv[i]) == "--keep") keep = std::string(argv[i + 1]) == "1";
  }
  if (n < 10000) {
    std::fprintf(stderr, "pi0-ledger-bench: --decisions must be at least 10000\n");
    return 2;
  }
  const std::filesystem::path file = std::filesystem::path(argv[1]) / "ledger-bench.db";
  for (const char* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(file.string() + suffix);
  ledger::Options options;
  options.path = file;
  options.maxBytes = 1ull << 40;
  auto opened = ledger::Ledger::open(options);
  if (!opened) {
    std::fprintf(stderr, "pi0-ledger-bench: %s\n", opened.error().message.c_str());
    return 1;
  }
  ledger::Ledger& l = **opened;
  const ledger::Time t0 = std::chrono::system_clock::now() - std::chrono::hours(1);

  // Store, in batches of 1,000; then give each its node verdict and the admitted a Ready.
  std::vector<ledger::Decision> batch;
  const auto storeStart = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    batch.push_back(decision(i, t0 + std::chrono::milliseconds(i * 10)));
    if (batch.size() == 1000 || i == n - 1) {
      if (auto r = l.record(batch); !r) {
        std::fprintf(stderr, "pi0-ledger-bench: %s\n", r.error().message.c_str());
        return 1;
      }
      batch.clear();
    }
  }
  const double store = seconds(storeStart);
  std::vector<std::pair<std::string, ledger::Outcome>> verdicts;
  const auto judgeStart = Clock::now();
  for (std::int64_t i = 0; i < n; ++i) {
    const ledger::Decision d = decision(i, t0);
    verdicts.push_back({d.id, {i % 7 == 0 ? "node_trouble" : "node_fine", t0, ""}});
    if (verdicts.size() == 1000 || i == n - 1) {
      if (auto r = l.addOutcomes(verdicts); !r) return 1;
      verdicts.clear();
    }
  }
  const double judge = seconds(judgeStart);

  const auto ratesStart = Clock::now();
  auto rates = l.gateRates(t0 - std::chrono::hours(1));
  const double ratesTime = seconds(ratesStart);
  if (!rates || rates->size() != 8) return 1;

  // The same, each gate judged again with another threshold and its admissions within 0.02 of
  // it counted: what a calibration round reads.
  std::map<std::string, ledger::GateNow> now;
  for (const char* gate : {"fit_error", "gluing_delta", "psi", "isolation"})
    now[gate] = {0.04, t0 + std::chrono::milliseconds(n * 5), 0.02};
  const auto againStart = Clock::now();
  auto again = l.gateRates(t0 - std::chrono::hours(1), now);
  const double againTime = seconds(againStart);
  if (!again || again->size() != 8) return 1;

  // A batch stored while the ratios are read on the other connection.
  double concurrentStore = 0;
  {
    std::jthread reader([&] { (void)l.gateRates(t0 - std::chrono::hours(1)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (std::int64_t i = n; i < n + 1000; ++i)
      batch.push_back(decision(i, t0 + std::chrono::milliseconds(i * 10)));
    const auto start = Clock::now();
    if (!l.record(batch)) return 1;
    concurrentStore = seconds(start);
    batch.clear();
  }

  ledger::Query q;
  q.ns = "shop";
  q.pod = "web-7d9f-" + std::to_string(n / 2);
  const auto queryStart = Clock::now();
  auto found = l.decisions(q);
  const double query = seconds(queryStart);
  if (!found || found->size() != 1) return 1;

  const auto statsStart = Clock::now();
  auto stats = l.stats();
  const double statsTime = seconds(statsStart);
  if (!stats) return 1;

  // Retention: a tenth of the decisions are past the age bound.
  const auto pruneStart = Clock::now();
  auto pruned = l.prune(t0 + options.maxAge + std::chrono::milliseconds(n));
  const double prune = seconds(pruneStart);
  if (!pruned) return 1;

  std::printf("pi0-ledger-bench: %lld decisions, 8 gates each, batches of 1,000\n",
              static_cast<long long>(n));
  std::printf("  store       %9.0f decisions/s  (%.2f ms a batch)\n",
              static_cast<double>(n) / store, store * 1000 / (static_cast<double>(n) / 1000));
  std::printf("  judge       %9.0f outcomes/s\n", static_cast<double>(n) / judge);
  std::printf("  gate ratios %9.1f ms over every decision\n", ratesTime * 1000);
  std::printf("  judged again %8.1f ms over every decision (a calibration round)\n",
              againTime * 1000);
  std::printf("  a batch stored while the ratios are read: %.2f ms\n", concurrentStore * 1000);
  std::printf("  a pod's decisions %6.2f ms\n", query * 1000);
  std::printf("  figures     %9.1f ms\n", statsTime * 1000);
  std::printf("  prune       %9.1f ms  (%lld decisions)\n", prune * 1000,
              static_cast<long long>(pruned->decisions));
  std::printf("  file        %9.0f bytes a decision (%.1f MiB)\n",
              static_cast<double>(stats->bytes) / static_cast<double>(stats->decisions),
              static_cast<double>(stats->bytes) / (1 << 20));
  opened->reset();
  if (!keep) {
    for (const char* suffix : {"", "-wal", "-shm"})
      std::filesystem::remove(file.string() + suffix);
  }
  return 0;
}
