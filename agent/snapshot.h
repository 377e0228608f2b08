// Snapshot: what the agent knows after one sampling round, immutable once published: the node's
// fingerprint, in the types of the one fingerprint contract (fleet/fingerprint.h), and its
// /fingerprint bodies. Each body is serialized once per snapshot, by the first request that
// asks for it, however many pollers read it.
// Thread-safety: every member may be called from any thread at once.
#pragma once

#include <array>
#include <mutex>
#include <string>
#include <utility>

#include "fleet/fingerprint.h"

namespace pi0::agent {

class Snapshot {
 public:
  explicit Snapshot(fleet::NodeFingerprint fingerprint) : fingerprint_(std::move(fingerprint)) {}

  const fleet::NodeFingerprint& fingerprint() const { return fingerprint_; }

  // The /fingerprint body (fleet::toJson) at `detail`; valid while the snapshot lives.
  const std::string& body(fleet::FingerprintDetail detail) const;

 private:
  struct Body {
    std::once_flag once;
    std::string text;
  };

  fleet::NodeFingerprint fingerprint_;
  mutable std::array<Body, 3> bodies_;  // by FingerprintDetail
};

}  // namespace pi0::agent
