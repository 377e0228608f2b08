// FakeSampler: a test stand-in for substrates::Sampler that returns scripted samples.
#pragma once

#include <deque>
#include <string>

#include "sampler.h"

namespace pi0::testing {

class FakeSampler final : public substrates::Sampler {
 public:
  explicit FakeSampler(std::string source) : source_(std::move(source)) {}

  // Queues the result of one future sample() call; when the queue is empty, sample() returns
  // an empty Sample.
  void push(Result<substrates::Sample> next) { script_.push_back(std::move(next)); }

  std::string_view source() const override { return source_; }
  Result<substrates::Sample> sample(substrates::Clock::time_point) override {
    ++calls_;
    if (script_.empty()) return substrates::Sample{};
    auto next = std::move(script_.front());
    script_.pop_front();
    return next;
  }
  int calls() const { return calls_; }

 private:
  std::string source_;
  std::deque<Result<substrates::Sample>> script_;
  int calls_ = 0;
};

}  // namespace pi0::testing
