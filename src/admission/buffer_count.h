// What pi0-webhook's buffer reservations and the operator's counts of a channel's pods agree on
// (README.md, "Buffer reservations").
#pragma once

#include <chrono>

namespace pi0::admission {

// The lag of the operator's pod cache that pi0-webhook allows for: a pod admitted at t is in
// every count of the channel's pods (status.buffer.observedAt) made at t + kReservationGrace or
// later, so its reservation ends there. The operator writes such a count after each new pod.
inline constexpr std::chrono::seconds kReservationGrace{2};

}  // namespace pi0::admission
