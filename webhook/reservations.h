// ReservationBook: room in a channel's buffer that pi0-webhook holds for the pods it has admitted
// and the operator has not counted yet. The operator counts a channel's pods into
// status.buffer.used some time after they are created; until then every pod of a burst (a
// ReplicaSet scaling up by 20) would be checked against the same remainder. So a pod admitted
// against a channel's buffer reserves its requests, and the next pod of that channel is checked
// against the remainder minus the live reservations.
//
// A reservation ends when the operator has counted the pod: the Channel's
// status.buffer.observedAt (when the operator counted its pods into status.buffer.used) is at
// or after admittedAt + grace (the lag of the operator's pod cache); or `timeout` after it was
// made, whichever comes first (the operator may be down, or the pod never created: another
// webhook refused it).
//
// The book is per webhook process: replicas do not share it (README.md says what that costs).
//
// Thread-safety: every member may be called from any thread. A Turn serializes the reviews of
// one channel (check, then reserve) without holding up other channels; figures() may run beside
// turns.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "admission/buffer_count.h"
#include "common/clock.h"

namespace pi0::webhook {

using WallClock = std::chrono::system_clock;

struct ReservationOptions {
  // A pod admitted at t is in every count the operator observed at t + grace or later.
  Clock::duration grace = admission::kReservationGrace;
  // A reservation ends this long after it was made, counted or not; zero turns reservations off.
  Clock::duration timeout = std::chrono::seconds(30);
};

// The sum of a channel's live reservations.
struct Held {
  std::int64_t cpuMilli = 0;
  std::int64_t memoryBytes = 0;
  std::size_t pods = 0;
  friend bool operator==(const Held&, const Held&) = default;
};

class ReservationBook {
  struct Entry;  // one channel's turn and reservations

 public:
  // `clock` measures the timeout; `wallClock` stamps admittedAt, which is compared with the
  // operator's observedAt (RFC 3339, wall time). Both outlive the book.
  ReservationBook(ReservationOptions options, Clock& clock,
                  std::function<WallClock::time_point()> wallClock = WallClock::now);
  ReservationBook(const ReservationBook&) = delete;
  ReservationBook& operator=(const ReservationBook&) = delete;

  // False when the timeout is zero: no reservation is ever made (turn() is not to be called).
  bool enabled() const { return options_.timeout > Clock::duration::zero(); }

  // The review of one pod of `channel` ("ns/name"), from reading what is held to reserving.
  // While a Turn lives, other reviews of the same channel wait in turn(); it must not outlive
  // the book, and one thread uses it.
  class Turn {
   public:
    Turn(Turn&& other) noexcept;
    Turn& operator=(Turn&&) = delete;
    ~Turn();

    // What the channel's live reservations hold, after ending those the operator has counted
    // (observedAt, the Channel's status.buffer.observedAt; nullopt when it has none) and those
    // that timed out.
    Held held(std::optional<WallClock::time_point> observedAt);
    // Holds `cpuMilli` and `memoryBytes` for the admitted pod (`pod` "ns/name" for logs, `uid`
    // the AdmissionReview's: a review asked again under the same uid reserves once).
    void reserve(std::string pod, std::string uid, std::int64_t cpuMilli, std::int64_t memoryBytes);

   private:
    friend class ReservationBook;
    Turn(ReservationBook* book, std::string channel, std::shared_ptr<Entry> entry);
    ReservationBook* book_;  // null once moved from
    std::string channel_;
    std::shared_ptr<Entry> entry_;
    std::unique_lock<std::mutex> lock_;  // entry_->turn
  };

  Turn turn(const std::string& channel);

  // For /metrics: the live reservations per channel (after ending, as held() does, those counted
  // by the observedAt `observedAt(channel)` answers and those timed out; a channel without live
  // reservations is absent) and how many reservations ended each way since the start.
  struct Figures {
    std::map<std::string, std::size_t> live;
    std::uint64_t counted = 0;   // ended because the operator counted the pod
    std::uint64_t timedOut = 0;  // ended by the timeout
  };
  Figures figures(
      const std::function<std::optional<WallClock::time_point>(const std::string&)>& observedAt);

 private:
  struct Reservation {
    std::string pod;
    std::string uid;
    std::int64_t cpuMilli = 0;
    std::int64_t memoryBytes = 0;
    WallClock::time_point admittedAt;  // compared with observedAt
    Clock::time_point expiresAt;       // made + timeout
  };
  struct Entry {
    std::mutex turn;                        // held by the channel's Turn
    std::vector<Reservation> reservations;  // guarded by the book's mu_
  };
  // Ends the reservations of `entry` that are counted or timed out. mu_ is held.
  void expire(Entry& entry, std::optional<WallClock::time_point> observedAt, Clock::time_point now);
  // Drops the channel's entry when it holds nothing and no turn uses it. mu_ is held.
  void forgetIfIdle(const std::string& channel);

  ReservationOptions options_;
  Clock& clock_;
  std::function<WallClock::time_point()> wallClock_;
  std::mutex mu_;  // entries_, each entry's reservations, the counters
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::uint64_t counted_ = 0, timedOut_ = 0;
};

}  // namespace pi0::webhook
