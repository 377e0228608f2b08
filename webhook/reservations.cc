#include "reservations.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace pi0::webhook {

namespace {

std::int64_t addSat(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::numeric_limits<std::int64_t>::max();
  return r;
}

}  // namespace

ReservationBook::ReservationBook(ReservationOptions options, Clock& clock,
                                 std::function<WallClock::time_point()> wallClock)
    : options_(options), clock_(clock), wallClock_(std::move(wallClock)) {}

ReservationBook::Turn::Turn(ReservationBook* book, std::string channel,
                            std::shared_ptr<Entry> entry)
    : book_(book), channel_(std::move(channel)), entry_(std::move(entry)), lock_(entry_->turn) {}

ReservationBook::Turn::Turn(Turn&& other) noexcept
    : book_(std::exchange(other.book_, nullptr)),
      channel_(std::move(other.channel_)),
      entry_(std::move(other.entry_)),
      lock_(std::move(other.lock_)) {}

ReservationBook::Turn::~Turn() {
  if (!book_) return;
  lock_.unlock();
  std::lock_guard lock(book_->mu_);
  // Copies of the entry are made and dropped under mu_ only, so its use count is exact here.
  entry_.reset();
  book_->forgetIfIdle(channel_);
}

ReservationBook::Turn ReservationBook::turn(const std::string& channel) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    auto& slot = entries_[channel];
    if (!slot) slot = std::make_shared<Entry>();
    entry = slot;
  }
  // Waits for the channel's previous review outside mu_: other channels go on meanwhile.
  return Turn(this, channel, std::move(entry));
}

Held ReservationBook::Turn::held(std::optional<WallClock::time_point> observedAt) {
  std::lock_guard lock(book_->mu_);
  book_->expire(*entry_, observedAt, book_->clock_.now());
  Held h;
  for (const auto& r : entry_->reservations) {
    h.cpuMilli = addSat(h.cpuMilli, r.cpuMilli);
    h.memoryBytes = addSat(h.memoryBytes, r.memoryBytes);
    ++h.pods;
  }
  return h;
}

void ReservationBook::Turn::reserve(std::string pod, std::string uid, std::int64_t cpuMilli,
                                    std::int64_t memoryBytes) {
  std::lock_guard lock(book_->mu_);
  auto& list = entry_->reservations;
  if (!uid.empty() &&
      std::any_of(list.begin(), list.end(), [&](const Reservation& r) { return r.uid == uid; })) {
    return;
  }
  list.push_back(Reservation{std::move(pod), std::move(uid), cpuMilli, memoryBytes,
                             book_->wallClock_(),
                             saturatingAdd(book_->clock_.now(), book_->options_.timeout)});
}

void ReservationBook::expire(Entry& entry, std::optional<WallClock::time_point> observedAt,
                             Clock::time_point now) {
  const auto grace = std::chrono::duration_cast<WallClock::duration>(options_.grace);
  std::erase_if(entry.reservations, [&](const Reservation& r) {
    // Counted first: a pod the operator has counted is not a timeout, even when both hold.
    if (observedAt && *observedAt >= r.admittedAt + grace) {
      ++counted_;
      return true;
    }
    if (now >= r.expiresAt) {
      ++timedOut_;
      return true;
    }
    return false;
  });
}

void ReservationBook::forgetIfIdle(const std::string& channel) {
  auto it = entries_.find(channel);
  if (it != entries_.end() && it->second.use_count() == 1 && it->second->reservations.empty())
    entries_.erase(it);
}

ReservationBook::Figures ReservationBook::figures(
    const std::function<std::optional<WallClock::time_point>(const std::string&)>& observedAt) {
  // The observedAt of each channel is read before mu_ is taken: the callback may be slow.
  std::vector<std::string> channels;
  {
    std::lock_guard lock(mu_);
    for (const auto& [channel, entry] : entries_)
      channels.push_back(channel);
  }
  std::map<std::string, std::optional<WallClock::time_point>> counts;
  for (const auto& channel : channels)
    counts[channel] = observedAt(channel);

  Figures f;
  std::lock_guard lock(mu_);
  const Clock::time_point now = clock_.now();
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto c = counts.find(it->first);
    expire(*it->second, c == counts.end() ? std::nullopt : c->second, now);
    if (!it->second->reservations.empty()) f.live[it->first] = it->second->reservations.size();
    // An entry no turn holds and with nothing reserved is dropped (use count 1: the map's).
    if (it->second.use_count() == 1 && it->second->reservations.empty()) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  f.counted = counted_;
  f.timedOut = timedOut_;
  return f;
}

}  // namespace pi0::webhook
