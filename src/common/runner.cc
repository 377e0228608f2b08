#include "common/runner.h"

#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <ctime>
#include <mutex>

#include "common/log.h"

namespace pi0 {
namespace {

sigset_t terminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

// Blocks the calling thread until `stop` is requested.
void waitUntilStopped(std::stop_token stop) {
  std::mutex m;
  std::condition_variable_any wake;
  std::unique_lock lock(m);
  wake.wait(lock, stop, [] { return false; });
}

}  // namespace

void Probes::addLiveness(std::function<std::string()> check) {
  liveness_.push_back(std::move(check));
}

void Probes::addReadiness(std::function<std::string()> check) {
  readiness_.push_back(std::move(check));
}

Probes::Answer Probes::live() const {
  for (const auto& check : liveness_) {
    if (auto why = check(); !why.empty()) return {false, std::move(why)};
  }
  return {};
}

Probes::Answer Probes::ready() const {
  if (shuttingDown_) return {false, "shutting down"};
  for (const auto& check : readiness_) {
    if (auto why = check(); !why.empty()) return {false, std::move(why)};
  }
  return {};
}

Runner::Runner(std::string program) : program_(std::move(program)), owner_(pthread_self()) {
  const sigset_t signals = terminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

Runner::~Runner() {
  // A signal fail() sent this thread that nobody took (run() was never called) must not end a
  // later wait in the same process (tests make several Runners). The mask stays: a signal
  // after this point is taken by nobody rather than ending the process half-way out.
  const sigset_t signals = terminationSignals();
  const timespec now{0, 0};
  while (sigtimedwait(&signals, nullptr, &now) > 0) {
  }
}

void Runner::add(std::function<void(std::stop_token)> loop) {
  entries_.push_back(Entry{std::move(loop), {}, {}});
}

void Runner::addServer(std::string what, std::function<bool()> serve, std::function<void()> stop) {
  add([this, what = std::move(what), serve = std::move(serve),
       stop = std::move(stop)](std::stop_token token) {
    std::stop_callback onStop(token, stop);
    if (!serve() && !token.stop_requested()) {
      fail("the " + what + " server stopped unexpectedly; shutting down");
    }
  });
}

void Runner::addStartStop(std::function<void()> start, std::function<void()> stop) {
  add([start = std::move(start), stop = std::move(stop)](std::stop_token token) {
    start();
    waitUntilStopped(token);
    stop();
  });
}

void Runner::atStop(std::function<void()> step) {
  entries_.push_back(Entry{{}, std::move(step), {}});
}

void Runner::fail(std::string_view why, const nlohmann::json& fields) {
  failed_ = true;
  log::error(why, fields);
  // To the thread that waits in run() (it blocks SIGTERM, so the signal waits for it there):
  // not to the process, whose other threads (a test's) may not block it.
  pthread_kill(owner_, SIGTERM);
}

bool Runner::waitForSignal(std::chrono::milliseconds timeout) {
  const sigset_t signals = terminationSignals();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const timespec wait{static_cast<time_t>(seconds.count()),
                      static_cast<long>((timeout - seconds).count() * 1000000)};
  return sigtimedwait(&signals, nullptr, &wait) > 0 || failed_;
}

int Runner::run(RunOptions options) {
  for (auto& e : entries_) {
    if (e.loop) e.thread = std::jthread(e.loop);
  }
  const sigset_t signals = terminationSignals();
  int received = 0;
  sigwait(&signals, &received);
  probes_.setShuttingDown();
  if (!failed_) {
    const char* name = received == SIGTERM ? "SIGTERM" : "SIGINT";
    if (options.drain) {
      log::info("shutting down: not ready, still serving",
                {{"signal", name}, {"delaySeconds", options.drain->count()}});
      std::this_thread::sleep_for(*options.drain);
    } else {
      log::info("shutting down", {{"signal", name}});
    }
  }
  for (auto e = entries_.rbegin(); e != entries_.rend(); ++e) {
    if (e->thread.joinable()) {
      e->thread.request_stop();
      e->thread.join();
    }
    if (e->step) e->step();
  }
  entries_.clear();
  log::info(program_ + " stopped");
  return failed_ ? 1 : 0;
}

}  // namespace pi0
