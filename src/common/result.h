// Result<T>: the value of an operation that can fail in an expected way (a missing file,
// malformed input). Failures carry a message meant for a person reading a log line.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace pi0 {

struct Error {
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

// Shorthand for `return fail("...")` in functions returning Result<T>.
inline std::unexpected<Error> fail(std::string message) {
  return std::unexpected<Error>(Error{std::move(message)});
}

}  // namespace pi0
