// Builds the agent's measurement sources from its options and hands them to the Collector.
#pragma once

#include "agent/collector.h"
#include "agent/options.h"

namespace pi0::agent {

// With --source synthetic:FILE the profile is the only source, and an unreadable or invalid
// profile is an error (the user asked for it by name). Otherwise every real source is tried:
// one that is missing on this node (no PSI, no GPU, no NVML) is registered as missing, never an
// error.
Result<void> addSources(const Options& options, Collector& collector);

}  // namespace pi0::agent
