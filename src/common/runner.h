// Runner: what every Pi0 program does around its own logic (controller-runtime's Manager, less
// the logic): it takes SIGTERM and SIGINT, runs the program's loops and servers on threads of
// its own, answers the probes, and shuts down in order. It owns lifecycle, never logic.
//
//   Runner runner("pi0-agent");          // first: blocks the signals before any thread exists
//   runner.probes().addReadiness(...);
//   runner.add([&](std::stop_token st) { loop(st); });
//   runner.addServer("HTTP", [&] { return server.run(); }, [&] { server.stop(); });
//   return runner.run();                 // 0 after a signal, 1 after fail()
//
// run() starts the loops in the order they were added, waits for SIGTERM, SIGINT or fail(),
// then: readiness answers "shutting down" (and, with a drain, the servers keep answering that
// long), and the loops and the steps of atStop() end one at a time in the reverse order of
// adding: each loop is asked to stop and joined before the next. Nothing runs before run(), so
// a program that returns early (a bad configuration) has nothing to stop.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <pthread.h>

#include <nlohmann/json.hpp>

namespace pi0 {

// The answers of /healthz and /readyz: alive while every liveness check passes; ready while
// every readiness check passes and the program is not shutting down. A check returns "" when it
// passes, else why not ("caches not synced: nodes"), which the probe answers with 503.
// Thread-safety: add checks before the probes are served; the rest from any thread.
class Probes {
 public:
  struct Answer {
    bool ok = true;
    std::string why;  // empty when ok
  };

  void addLiveness(std::function<std::string()> check);
  void addReadiness(std::function<std::string()> check);

  // The first check that fails, in the order added ("shutting down" first, once it is).
  Answer live() const;
  Answer ready() const;

  void setShuttingDown() { shuttingDown_ = true; }

 private:
  std::vector<std::function<std::string()>> liveness_, readiness_;
  std::atomic<bool> shuttingDown_{false};
};

class Runner {
 public:
  // `program` names the process in the logs ("pi0-agent stopped"). Blocks SIGTERM and SIGINT
  // in the calling thread, so every thread started later inherits the mask and only run() (or
  // waitForSignal()) takes them: construct the Runner before any thread starts.
  explicit Runner(std::string program);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // A loop on a thread of its own from run() until shutdown, when its token is stopped.
  void add(std::function<void(std::stop_token)> loop);
  // A server whose `serve` blocks until `stop` is called, on a thread of its own; `serve`
  // returning false (the socket failed) fails the program: "the WHAT server stopped
  // unexpectedly".
  void addServer(std::string what, std::function<bool()> serve, std::function<void()> stop);
  // A server that serves on threads of its own between `start` and `stop` (both called on one
  // thread the runner keeps for it, from run() until shutdown).
  void addStartStop(std::function<void()> start, std::function<void()> stop);
  // A step of the shutdown, at this place in the reverse order (saving state, flushing Events).
  void atStop(std::function<void()> step);

  // Ends the program with exit status 1: logs `why` as an error and wakes run(). Any thread,
  // any time (before run(), run() returns at once).
  void fail(std::string_view why, const nlohmann::json& fields = {});

  // Before run(): waits up to `timeout` for SIGTERM, SIGINT or fail(); true when one came (the
  // program should end: run() is not to be called then).
  bool waitForSignal(std::chrono::milliseconds timeout);

  struct RunOptions {
    // After the signal, readiness says "shutting down" while everything keeps serving this
    // long ("shutting down: not ready, still serving"), so that a rolling restart loses no
    // request; none: stop at once.
    std::optional<std::chrono::duration<double>> drain;
  };
  // Starts the loops, blocks until SIGTERM, SIGINT or fail(), shuts down (see above) and
  // returns the exit status: 0 after a signal, 1 after fail(). At most once, from the thread
  // that constructed the Runner.
  int run(RunOptions options = {});

  Probes& probes() { return probes_; }

 private:
  struct Entry {
    std::function<void(std::stop_token)> loop;  // or
    std::function<void()> step;
    std::jthread thread;
  };
  std::string program_;
  pthread_t owner_;  // the thread that made the Runner, which run() waits on
  Probes probes_;
  std::vector<Entry> entries_;
  std::atomic<bool> failed_{false};
};

}  // namespace pi0
