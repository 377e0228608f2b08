// Small file helpers shared by the samplers and the agent's state store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pi0 {

// Reads a whole (small) file. Fails with a message that names the path and the OS error.
Result<std::string> readFile(const std::filesystem::path& path);

// Writes `contents` to `path` atomically: a temporary file in the same directory is written,
// fsync'ed and renamed over `path`, then the directory is fsync'ed. A crash at any point
// leaves either the old or the new file, never a partial one.
Result<void> writeFileAtomic(const std::filesystem::path& path, std::string_view contents);

// Parses a whole decimal token; fails on empty input, junk or overflow.
Result<std::uint64_t> parseUint(std::string_view token);
Result<double> parseDouble(std::string_view token);

}  // namespace pi0
