#include "common/signal_id.h"

#include <array>
#include <charconv>
#include <utility>

namespace pi0 {
namespace {

using Kind = SignalId::Kind;

// The signals with a fixed name.
constexpr std::array<std::pair<Kind, std::string_view>, 7> kFixed = {{
    {Kind::kCpu, "cpu"},
    {Kind::kMemory, "memory"},
    {Kind::kPsiCpu, "psi_cpu"},
    {Kind::kPsiMemory, "psi_memory"},
    {Kind::kPsiIo, "psi_io"},
    {Kind::kDisk, "disk"},
    {Kind::kNetwork, "network"},
}};

// "0", "12": digits without a leading zero, at most 9 of them (an int holds them).
std::optional<int> gpuIndex(std::string_view digits) {
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;  // from_chars would take a '-'
  }
  int index = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return index;
}

}  // namespace

std::string_view SignalId::fixedName() const {
  for (const auto& [k, text] : kFixed) {
    if (k == kind) return text;
  }
  return {};
}

std::string SignalId::name() const {
  switch (kind) {
    case Kind::kGpuSm:
      return "gpu" + std::to_string(gpu) + "_sm";
    case Kind::kGpuMemory:
      return "gpu" + std::to_string(gpu) + "_memory";
    default:
      if (const auto fixed = fixedName(); !fixed.empty()) return std::string(fixed);
  }
  return "unknown";
}

std::optional<SignalId> SignalId::parse(std::string_view name) {
  for (const auto& [kind, text] : kFixed) {
    if (name == text) return SignalId{kind};
  }
  if (!name.starts_with("gpu")) return std::nullopt;
  for (const auto& [kind, suffix] :
       {std::pair{Kind::kGpuSm, std::string_view("_sm")}, {Kind::kGpuMemory, "_memory"}}) {
    if (!name.ends_with(suffix) || name.size() <= 3 + suffix.size()) continue;
    const auto index = gpuIndex(name.substr(3, name.size() - 3 - suffix.size()));
    if (index) return SignalId{kind, *index};
  }
  return std::nullopt;
}

bool SignalId::isPressure() const {
  return kind == Kind::kPsiCpu || kind == Kind::kPsiMemory || kind == Kind::kPsiIo;
}

}  // namespace pi0
