// Validation of Pi0's own resources for /validate-channels and /validate-shutdownmatrices: what
// the CRD schema cannot say (docs/resources.md), one sentence per problem, empty when the object
// may be written. Pure functions of the object and what the webhook's caches hold; no I/O; any
// thread may call them. The webhook denies with these sentences joined; the operator reports
// the same through stability::validateChannel/validateMatrix in a Valid condition.
//
// Built on stability::parseChannel/parseMatrix (a field of the wrong type fails the parse, and
// that one message is the answer) and stability::validateChannel/validateMatrix (weights in
// [0,1], no negative buffer, no self-dependency; levels unique and strictly ascending, rows at
// known levels, no cells on critical rows, ...), whose messages are passed on unchanged. Added
// here, because they need more than the object itself:
//
// - Channel: its dependsOn must not close a dependency cycle with the existing channels. The
//   message names the shortest cycle through the channel:
//     "dependsOn would close a dependency cycle: shop/a -> shop/b -> shop/a; a channel cannot
//      depend, directly or through others, on a channel that depends on it"
//   A cycle among the other channels that does not pass through this one is not this object's
//   fault and does not refuse it (otherwise no channel could be edited to break such a cycle).
//   A dependency on a channel that does not exist yet is allowed (objects arrive in any order).
//
// - ShutdownMatrix: the channels' dependencies must have no cycle: the planner plans over every
//   channel (matrix rows and GDO's unlisted channels), and stability::planProblems stops planning
//   on any cycle, so a matrix is refused while one exists, with planProblems' sentence
//     "channels depend on each other in a cycle: shop/a -> shop/b -> shop/a".
//   Rows naming channels that do not exist yet are not refused (see matrixWarnings()).
//
// - ShutdownMatrix, the gate margin: "the admission gate thresholds must leave a margin below the
//   first degrade level, so admission and shutdown can never fight each other".
//
//   Admission admits a pod on a node only while isolation ≥ request/allocatable + θ_iso, that
//   is while the node's projected peak, with the pod, stays ≤ 1 − θ_iso. ℓ is a capacity-
//   weighted mean of projected peaks, so pods that admission lets in can raise ℓ to at most
//   the admission ceiling c = 1 − θ_iso (every node at the ceiling).
//
//   The operator starts acting as soon as ℓ passes the FIRST level's upperBound b, not at the
//   first level with a Degrade or Shutdown cell: at every level above the first, GDO degrades
//   the unlisted non-critical channels whose CPO is below ℓ (planner.h), and which channels are
//   unlisted changes whenever a Channel is created, which does not revalidate the matrix. (Cells
//   cannot sit at the first level, so any cell's lower bound is ≥ b: this rule implies the
//   "first level with a cell" reading.) So the first degrade level's lower bound is b.
//
//   Two fights are possible. (1) Admission pushes ℓ past b, and the next step degrades or shuts
//   down what it let in: needs c < b. (2) The level falls, and shut-down channels come back,
//   only after ℓ stayed ≤ b − hysteresis.margin for dwellSeconds (levels.h); if c were above
//   b − hysteresis.margin, admitted pods could hold ℓ there and take for ever the room the
//   shut-down channels need to return. Hence the rule:
//
//     b ≥ c + max(minimumMargin, hysteresis.margin)
//
//   minimumMargin covers what the projection misses (pods using more than they request, load
//   moving between two samples). Example: θ_iso = 0.2 gives c = 0.8; with minimumMargin 0.05
//   and hysteresis.margin 0.05 the first level needs upperBound ≥ 0.85: levels normal ≤ 0.7,
//   elevated ≤ 0.8, ... is refused ("raise ... to at least 0.85, or have the admission gate
//   stop at 0.65 or lower (θ_iso ≥ 0.35)"); normal ≤ 0.9 is accepted. A matrix of one (open)
//   level never degrades by load and is not subject to the rule.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace pi0::admission {

struct GateMargin {
  // The highest projected load at which admission still admits a pod: 1 − θ_iso from the
  // webhook's thresholds, in [0,1].
  double admissionCeiling = 1.0;
  // The least room left between the ceiling and the first level's upperBound; the matrix's own
  // hysteresis.margin applies when it is larger.
  double minimumMargin = 0.05;
};

// The problems with a Channel object (as in the AdmissionReview) given the other channels in the
// cluster (any namespaces; a channel with the same namespace/name, the object's old version, is
// ignored, and so are others that do not parse).
std::vector<std::string> validateChannelObject(const nlohmann::json& channel,
                                               const std::vector<nlohmann::json>& otherChannels);

// The problems with a ShutdownMatrix object given the channels in the cluster and the margin the
// admission gate needs (above). Channels that do not parse are ignored.
std::vector<std::string> validateMatrixObject(const nlohmann::json& matrix,
                                              const std::vector<nlohmann::json>& channels,
                                              const GateMargin& margin);

// What is worth a warning but not a refusal: rows naming channels that do not exist (yet):
// "row names channel shop/a, which does not exist (yet); the operator does not act on this
// matrix until it does" (stability::planProblems stops planning on such a row); and
// anticipationSeconds on a matrix whose load is a Prometheus query (which has no forecast).
// Empty when the matrix does not parse.
std::vector<std::string> matrixWarnings(const nlohmann::json& matrix,
                                        const std::vector<nlohmann::json>& channels);

}  // namespace pi0::admission
