#include <doctest/doctest.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "common/runner.h"

using pi0::Probes;
using pi0::Runner;

namespace {

// What the runner's loops and steps did, in order.
struct Journal {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(std::string line) {
    std::lock_guard lock(mu);
    lines.push_back(std::move(line));
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mu);
    return lines;
  }
};

// A loop that notes its start and its end.
std::function<void(std::stop_token)> loop(Journal& journal, std::string name,
                                          std::atomic<int>* started = nullptr) {
  return [&journal, name, started](std::stop_token stop) {
    journal.add("start " + name);
    if (started) ++*started;
    while (!stop.stop_requested())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    journal.add("stop " + name);
  };
}

}  // namespace

TEST_CASE("probes answer with the first check that fails") {
  Probes probes;
  std::string cache = "caches not synced: nodes", leader;
  probes.addReadiness([&] { return cache; });
  probes.addReadiness([&] { return leader; });
  CHECK(probes.live().ok);
  CHECK_FALSE(probes.ready().ok);
  CHECK(probes.ready().why == "caches not synced: nodes");
  cache.clear();
  leader = "leader election not running";
  CHECK(probes.ready().why == "leader election not running");
  leader.clear();
  CHECK(probes.ready().ok);
  probes.addLiveness([] { return std::string("sampling loop stalled"); });
  CHECK(probes.live().why == "sampling loop stalled");
  probes.setShuttingDown();
  CHECK(probes.ready().why == "shutting down");
}

TEST_CASE("a signal stops the loops and steps in the reverse order of adding; exit 0") {
  Runner runner("test");
  Journal journal;
  std::atomic<int> started{0};
  runner.atStop([&] { journal.add("step first"); });
  runner.add(loop(journal, "a", &started));
  runner.atStop([&] { journal.add("step between"); });
  runner.add(loop(journal, "b", &started));
  const pthread_t self = pthread_self();
  std::thread signaller([&] {
    while (started < 2)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    pthread_kill(self, SIGINT);
  });
  const int status = runner.run();
  signaller.join();
  CHECK(status == 0);
  CHECK(runner.probes().ready().why == "shutting down");
  const auto lines = journal.get();
  REQUIRE(lines.size() == 6);
  // Both loops start (in either order: each on its own thread), then all ends backwards.
  CHECK(std::vector<std::string>(lines.begin() + 2, lines.end()) ==
        std::vector<std::string>{"stop b", "step between", "stop a", "step first"});
}

TEST_CASE("fail() from a loop ends the program with 1") {
  Runner runner("test");
  Journal journal;
  runner.add(loop(journal, "a"));
  runner.add([&](std::stop_token) { runner.fail("the thing broke"); });
  CHECK(runner.run() == 1);
  CHECK(journal.get().back() == "stop a");
}

TEST_CASE("a server that stops on its own fails the program; one stopped does not") {
  SUBCASE("stops on its own") {
    Runner runner("test");
    runner.addServer(
        "probe", [] { return false; }, [] {});
    CHECK(runner.run() == 1);
  }
  SUBCASE("stopped at shutdown") {
    Runner runner("test");
    std::atomic<bool> stopped{false}, serving{false};
    runner.addServer(
        "probe",
        [&] {
          serving = true;
          while (!stopped)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          return true;
        },
        [&] { stopped = true; });
    const pthread_t self = pthread_self();
    std::thread signaller([&] {
      while (!serving)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      pthread_kill(self, SIGTERM);
    });
    CHECK(runner.run() == 0);
    signaller.join();
    CHECK(stopped);
  }
}

TEST_CASE("start and stop of a server run on one thread of their own") {
  Runner runner("test");
  std::thread::id starter, stopper;
  std::atomic<bool> started{false};
  runner.addStartStop(
      [&] {
        starter = std::this_thread::get_id();
        started = true;
      },
      [&] { stopper = std::this_thread::get_id(); });
  const pthread_t self = pthread_self();
  std::thread signaller([&] {
    while (!started)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    pthread_kill(self, SIGTERM);
  });
  CHECK(runner.run() == 0);
  signaller.join();
  CHECK(starter == stopper);
  CHECK(starter != std::this_thread::get_id());
}

TEST_CASE("with a drain, the program is not ready but still runs for that long") {
  Runner runner("test");
  Journal journal;
  runner.add(loop(journal, "a"));
  const auto begin = std::chrono::steady_clock::now();
  pthread_kill(pthread_self(), SIGTERM);  // waits, blocked, for run()
  CHECK(runner.run({.drain = std::chrono::milliseconds(200)}) == 0);
  CHECK(std::chrono::steady_clock::now() - begin >= std::chrono::milliseconds(200));
}

TEST_CASE("waiting for a signal before run()") {
  Runner runner("test");
  CHECK_FALSE(runner.waitForSignal(std::chrono::milliseconds(20)));
  pthread_kill(pthread_self(), SIGTERM);
  CHECK(runner.waitForSignal(std::chrono::seconds(5)));
  runner.fail("broken before the start");
  CHECK(runner.waitForSignal(std::chrono::seconds(5)));
}
