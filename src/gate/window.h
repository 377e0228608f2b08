// RollingWindow: the last N samples of one signal, oldest first.
// Not thread-safe; owned by the agent's sampling loop.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace pi0::gate {

class RollingWindow {
 public:
  explicit RollingWindow(std::size_t capacity) : buf_(capacity), capacity_(capacity) {}

  void push(double value) {
    buf_[head_] = value;
    head_ = (head_ + 1) % capacity_;
    if (size_ < capacity_) ++size_;
  }

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool full() const { return size_ == capacity_; }
  double fill() const { return static_cast<double>(size_) / static_cast<double>(capacity_); }

  // The most recent value; only meaningful when size() > 0.
  double latest() const { return buf_[(head_ + capacity_ - 1) % capacity_]; }

  // Copies the samples, oldest first, into out (out.size() >= size()).
  void copyTo(std::span<double> out) const {
    std::size_t start = (head_ + capacity_ - size_) % capacity_;
    for (std::size_t i = 0; i < size_; ++i)
      out[i] = buf_[(start + i) % capacity_];
  }

  std::vector<double> values() const {
    std::vector<double> out(size_);
    copyTo(out);
    return out;
  }

 private:
  std::vector<double> buf_;
  std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace pi0::gate
