// The controller runner: keys from stores into the queue, workers reconciling one key at a time,
// retries with backoff, requeue-after, secondary mappings and resync.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fakes/fake_clock.h"
#include "kube/controller.h"

using namespace pi0;
using namespace pi0::kube;

namespace {

Json object(const std::string& ns, const std::string& name, const std::string& rv = "1") {
  return {{"metadata", {{"namespace", ns}, {"name", name}, {"resourceVersion", rv}}}};
}

// Waits (real time, as a guard only) until pred holds.
template <class Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 3000 && !pred(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return pred();
}

struct Recorder {
  std::mutex mu;
  std::map<std::string, int> calls;
  std::set<std::string> running;
  bool overlapped = false;
  int count(const std::string& key) {
    std::lock_guard lock(mu);
    return calls[key];
  }
  void enter(const std::string& key) {
    std::lock_guard lock(mu);
    ++calls[key];
    if (!running.insert(key).second) overlapped = true;
  }
  void leave(const std::string& key) {
    std::lock_guard lock(mu);
    running.erase(key);
  }
};

}  // namespace

TEST_CASE("changes in the primary and secondary stores reach reconcile, one key at a time") {
  Recorder rec;
  Controller::Options options;
  options.name = "test";
  options.workers = 4;
  Controller controller(options,
                        [&](const std::string& key, std::stop_token) -> Result<ReconcileResult> {
                          rec.enter(key);
                          std::this_thread::sleep_for(std::chrono::milliseconds(1));
                          rec.leave(key);
                          return ReconcileResult{};
                        });
  Store primary;
  Store secondary;
  controller.watchPrimary(primary);
  // A "Deployment" maps to the channel named in its label.
  controller.watchSecondary(secondary, [](const Json& o) {
    return std::vector<std::string>{"ns/" + o["metadata"].value("channel", std::string("none"))};
  });
  std::jthread run([&](std::stop_token stop) { controller.start(stop); });

  primary.replace({object("ns", "a"), object("ns", "b")});
  CHECK(eventually([&] { return rec.count("ns/a") >= 1 && rec.count("ns/b") >= 1; }));
  for (int i = 2; i < 50; ++i)
    primary.apply(WatchEventType::kModified, object("ns", "a", std::to_string(i)));
  auto deployment = object("ns", "web");
  deployment["metadata"]["channel"] = "b";
  secondary.apply(WatchEventType::kAdded, deployment);
  CHECK(eventually([&] { return rec.count("ns/b") >= 2; }));
  CHECK(eventually([&] { return controller.queue().len() == 0; }));
  std::lock_guard lock(rec.mu);
  CHECK_FALSE(rec.overlapped);
  CHECK(rec.calls["ns/a"] < 50);  // duplicates collapsed while queued
}

TEST_CASE(
    "a failing reconcile is retried with backoff until it succeeds; requeueAfter calls again") {
  std::atomic<int> calls{0};
  std::atomic<int> later{0};
  Controller controller({"test", 1, std::chrono::minutes(5)},
                        [&](const std::string& key, std::stop_token) -> Result<ReconcileResult> {
                          if (key == "ns/later") {
                            ReconcileResult r;
                            if (later++ == 0) r.requeueAfter = std::chrono::milliseconds(20);
                            return r;
                          }
                          if (++calls < 4) return fail("the apiserver said no");
                          return ReconcileResult{};
                        });
  Store primary;
  controller.watchPrimary(primary);
  std::jthread run([&](std::stop_token stop) { controller.start(stop); });
  primary.apply(WatchEventType::kAdded, object("ns", "flaky"));
  primary.apply(WatchEventType::kAdded, object("ns", "later"));
  CHECK(eventually([&] { return calls == 4; }));
  CHECK(eventually([&] { return later == 2; }));
  CHECK(controller.queue().numRequeues("ns/flaky") == 0);  // forgotten after the success
  CHECK(calls == 4);  // three failures retried, then nothing more after the success
}

TEST_CASE("a throwing reconcile is an error, retried, not a crash") {
  std::atomic<int> calls{0};
  Controller controller({"test", 1, std::chrono::minutes(5)},
                        [&](const std::string&, std::stop_token) -> Result<ReconcileResult> {
                          if (calls++ == 0) throw std::runtime_error("boom");
                          return ReconcileResult{};
                        });
  Store primary;
  controller.watchPrimary(primary);
  std::jthread run([&](std::stop_token stop) { controller.start(stop); });
  primary.apply(WatchEventType::kAdded, object("ns", "x"));
  CHECK(eventually([&] { return calls >= 2; }));
  CHECK(calls == 2);  // the throw retried once, the success not again
}

TEST_CASE("every resync period every key is reconciled again") {
  testing::FakeClock clock;
  Recorder rec;
  Controller controller(
      {"test", 1, std::chrono::minutes(5)},
      [&](const std::string& key, std::stop_token) -> Result<ReconcileResult> {
        rec.enter(key);
        rec.leave(key);
        return ReconcileResult{};
      },
      clock);
  Store primary;
  controller.watchPrimary(primary);
  primary.replace({object("ns", "a"), object("ns", "b")});  // before start: queued, then handled
  std::jthread run([&](std::stop_token stop) { controller.start(stop); });
  CHECK(eventually([&] { return rec.count("ns/a") == 1 && rec.count("ns/b") == 1; }));
  REQUIRE(clock.awaitSleeper(clock.now() + std::chrono::minutes(5)));
  clock.advance(std::chrono::minutes(5));
  CHECK(eventually([&] { return rec.count("ns/a") == 2 && rec.count("ns/b") == 2; }));
}
