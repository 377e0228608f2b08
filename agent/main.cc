// pi0-agent: the node agent. See `pi0-agent --help` and README.md.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "agent/agent_metrics.h"
#include "agent/collector.h"
#include "agent/http_server.h"
#include "agent/options.h"
#include "agent/sources.h"
#include "agent/state_store.h"
#include "common/log.h"
#include "common/program.h"
#include "common/runner.h"

#ifndef PI0_VERSION
#define PI0_VERSION "dev"
#endif

namespace pi0::agent {
namespace {

// The sampling loop's heartbeat, read by /healthz.
std::atomic<substrates::Clock::rep> gLastStep{0};

SavedState toSaved(const Options& options, const Collector& collector) {
  return SavedState{options.nodeName, std::chrono::system_clock::now(), options.window,
                    options.intervalSeconds, collector.windows()};
}

void saveState(const StateStore& store, const Options& options, const Collector& collector,
               AgentMetrics& metrics) {
  auto saved = store.save(toSaved(options, collector));
  metrics.countStateWrite(saved.has_value());
  if (!saved) log::warn("cannot save the window", {{"error", saved.error().message}});
}

void restoreState(const StateStore& store, const Options& options, Collector& collector,
                  AgentMetrics& metrics) {
  // A window saved longer ago than it spans holds nothing current.
  const auto maxAge =
      std::chrono::duration<double>(static_cast<double>(options.window) * options.intervalSeconds);
  auto saved =
      store.load(options.window, options.intervalSeconds, std::chrono::system_clock::now(), maxAge);
  if (!saved) {
    log::info("no usable saved window; starting empty", {{"reason", saved.error().message}});
    metrics.setStateRestored(false);
    return;
  }
  collector.restore(saved->signals);
  metrics.setStateRestored(true);
  log::info("window restored",
            {{"file", store.file().string()}, {"signals", saved->signals.size()}});
}

void samplingLoop(std::stop_token stop, const Options& options, Collector& collector,
                  AgentMetrics& metrics, const StateStore* store) {
  using namespace std::chrono;
  const auto interval =
      duration_cast<substrates::Clock::duration>(duration<double>(options.intervalSeconds));
  const auto stateEvery =
      duration_cast<substrates::Clock::duration>(duration<double>(options.stateIntervalSeconds));
  std::mutex m;
  std::condition_variable_any wake;
  auto next = substrates::Clock::now();
  auto nextSave = next + stateEvery;
  while (!stop.stop_requested()) {
    const auto now = substrates::Clock::now();
    collector.step(now, system_clock::now());
    gLastStep.store(now.time_since_epoch().count());
    if (store && now >= nextSave) {
      saveState(*store, options, collector, metrics);
      nextSave = now + stateEvery;
    }
    // Fixed-rate schedule; after a stall (suspend, a slow disk) skip missed rounds rather
    // than sampling in a burst.
    next += interval;
    if (next < substrates::Clock::now()) next = substrates::Clock::now() + interval;
    std::unique_lock lock(m);
    wake.wait_until(lock, stop, next, [] { return false; });
  }
}

int run(const Options& options) {
  log::setLevel(options.logLevel);
  Runner runner("pi0-agent");

  AgentMetrics metrics(PI0_VERSION);
  CollectorConfig config;
  config.node = options.nodeName;
  config.window = options.window;
  config.intervalSeconds = options.intervalSeconds;
  config.forecast.horizon = options.horizon;
  config.troubleLines.pressure = options.pressureLine;
  auto collector = Collector::create(std::move(config), metrics);
  if (!collector) {
    log::error("invalid configuration", {{"error", collector.error().message}});
    return 2;
  }
  auto sourcesAdded = addSources(options, **collector);
  if (!sourcesAdded) {
    log::error("cannot start sampling", {{"error", sourcesAdded.error().message}});
    return 1;
  }

  std::optional<StateStore> store;
  if (!options.stateDir.empty()) {
    store.emplace(options.stateDir);
    restoreState(*store, options, **collector, metrics);
  }

  const auto stallLimit = std::chrono::duration_cast<substrates::Clock::duration>(
      std::chrono::duration<double>(std::max(10 * options.intervalSeconds, 30.0)));
  auto alive = [stallLimit] {
    const auto last = substrates::Clock::time_point(substrates::Clock::duration(gLastStep.load()));
    return substrates::Clock::now() - last < stallLimit;
  };
  gLastStep.store(substrates::Clock::now().time_since_epoch().count());
  auto server = HttpServer::create(options.listen, **collector, metrics, alive);
  if (!server) {
    log::error("cannot serve", {{"error", server.error().message}});
    return 1;
  }
  log::info("pi0-agent started", {{"version", PI0_VERSION},
                                  {"node", options.nodeName},
                                  {"host", options.listen.host},
                                  {"port", (*server)->port()},
                                  {"intervalSeconds", options.intervalSeconds},
                                  {"window", options.window}});

  // Shutdown runs these backwards: the sampler stops, then the server, then the window is
  // saved. A server that stops on its own leaves the node unobserved: the agent exits 1 so
  // that it is restarted, rather than sample for nobody.
  if (store) runner.atStop([&] { saveState(*store, options, **collector, metrics); });
  runner.addServer(
      "HTTP", [&] { return (*server)->run(); }, [&] { (*server)->stop(); });
  runner.add([&](std::stop_token stop) {
    samplingLoop(stop, options, **collector, metrics, store ? &*store : nullptr);
  });
  return runner.run();
}

}  // namespace
}  // namespace pi0::agent

int main(int argc, char** argv) {
  return pi0::programMain(
      "pi0-agent", PI0_VERSION, argc, argv,
      [](const std::vector<std::string>& args) { return pi0::agent::parseOptions(args); },
      [] { return pi0::agent::usage(); },
      [](const auto& options) { return pi0::agent::run(options); });
}
