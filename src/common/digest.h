// SHA-256 (OpenSSL) as lowercase hex, for integrity checks of files Pi0 writes itself.
#pragma once

#include <string>
#include <string_view>

namespace pi0 {

std::string sha256Hex(std::string_view data);

}  // namespace pi0
