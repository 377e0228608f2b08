#include "agent/snapshot.h"

namespace pi0::agent {

const std::string& Snapshot::body(fleet::FingerprintDetail detail) const {
  Body& b = bodies_[static_cast<std::size_t>(detail)];
  std::call_once(b.once, [&] { b.text = fleet::toJson(fingerprint_, detail); });
  return b.text;
}

}  // namespace pi0::agent
