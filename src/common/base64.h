// Standard base64 (RFC 4648, with padding), as Kubernetes uses it for certificate data and
// Secret values. Built on OpenSSL's EVP encoder.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pi0 {

std::string base64Encode(std::string_view bytes);

// Decodes base64 text, ignoring whitespace and line breaks. nullopt when the text is not
// valid base64.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace pi0
