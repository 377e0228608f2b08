// Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity) as integers: cpu in
// millicores, memory in bytes. The one home of the quantity rules: Pi0's resources, pods'
// requests, nodes' allocatable and the status fields the operator writes all go through here.
// Pure functions, no I/O, never throw; any thread may call them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pi0::kube {

// "500m", "2", "1.5" (cpu, to millicores); "128Mi", "1G", "1e9" (memory, to bytes). Exact
// decimal arithmetic, fractions rounded away from zero as Quantity.ScaledValue rounds. Fail
// with a message quoting the text ("\"5x\" is not a quantity: unknown suffix ...", "\"8Ei\" is
// out of range: beyond 9223372036854775807 bytes").
Result<int64_t> parseCpuMilli(const std::string& text);
Result<int64_t> parseBytes(const std::string& text);

// The inverse, for status fields and messages: whole cores as "2", else "1500m"; bytes with the
// largest binary suffix that divides them exactly ("512Mi", "1Gi"), else plain ("1000").
std::string formatCpuMilli(int64_t milli);
std::string formatBytes(int64_t bytes);

// A quantity's text as the API's int-or-string writes it: a string as it is, a JSON number in
// its shortest exact form ("2", "0.5"); nullopt for any other JSON type.
std::optional<std::string> quantityText(const nlohmann::json& value);

}  // namespace pi0::kube
