#include "kube/quantity.h"

#include <charconv>
#include <cstddef>
#include <limits>
#include <string_view>
#include <utility>

namespace pi0::kube {

namespace {

// A quantity's value is an exact decimal times a power of 1024, so it is computed on decimal
// digits rather than in floating point: "0.1Ki" must be 102.4 bytes (rounded to 103), not
// whatever a double makes of it.
std::string multiplyDigits(const std::string& digits, int factor) {
  std::string out(digits.size(), '0');
  int carry = 0;
  for (std::size_t i = digits.size(); i-- > 0;) {
    const int v = (digits[i] - '0') * factor + carry;
    out[i] = static_cast<char>('0' + v % 10);
    carry = v / 10;
  }
  while (carry > 0) {
    out.insert(out.begin(), static_cast<char>('0' + carry % 10));
    carry /= 10;
  }
  return out;
}

// Parses `text` and returns its value times 10^scale (scale 3: millicores from cores), rounded
// away from zero as Kubernetes' Quantity.ScaledValue does. `unit` names the result in messages.
Result<int64_t> parseQuantity(std::string_view text, int scale, const char* unit) {
  // Built by appending: GCC 12 warns (-Wrestrict, a false positive) on "\"" + std::string(text).
  std::string quoted = "\"";
  quoted.append(text).append("\"");
  auto bad = [&](const std::string& why) { return fail(quoted + " is not a quantity: " + why); };
  if (text.empty()) return bad("it is empty");

  std::size_t i = 0;
  bool negative = false;
  if (text[i] == '+' || text[i] == '-') {
    negative = text[i] == '-';
    ++i;
  }
  std::string digits;
  int64_t fractionDigits = 0;
  bool seenPoint = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      if (seenPoint) ++fractionDigits;
    } else if (c == '.' && !seenPoint) {
      seenPoint = true;
    } else {
      break;
    }
  }
  if (digits.empty()) return bad("it does not start with a number");

  // The suffix: a decimal SI prefix, a binary one, or a decimal exponent.
  const std::string_view suffix = text.substr(i);
  int64_t exponent10 = 0;
  int powers1024 = 0;
  static const std::pair<std::string_view, int> kDecimal[] = {
      {"", 0},  {"n", -9}, {"u", -6}, {"m", -3}, {"k", 3},
      {"M", 6}, {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  static const std::pair<std::string_view, int> kBinary[] = {{"Ki", 1}, {"Mi", 2}, {"Gi", 3},
                                                             {"Ti", 4}, {"Pi", 5}, {"Ei", 6}};
  bool known = false;
  for (const auto& [name, e] : kDecimal) {
    if (suffix == name) {
      exponent10 = e;
      known = true;
    }
  }
  for (const auto& [name, p] : kBinary) {
    if (suffix == name) {
      powers1024 = p;
      known = true;
    }
  }
  if (!known && suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E')) {
    std::size_t j = 1;
    bool expNegative = false;
    if (suffix[j] == '+' || suffix[j] == '-') {
      expNegative = suffix[j] == '-';
      ++j;
    }
    known = j < suffix.size();
    int64_t e = 0;
    for (; j < suffix.size() && known; ++j) {
      if (suffix[j] < '0' || suffix[j] > '9') {
        known = false;
      } else if (e < 1'000'000'000) {  // saturate: far beyond any int64 either way
        e = e * 10 + (suffix[j] - '0');
      }
    }
    exponent10 = expNegative ? -e : e;
  }
  if (!known) {
    return bad("unknown suffix \"" + std::string(suffix) +
               "\" (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)");
  }

  // value = digits × 10^exponent10 × 1024^powers1024, then scaled.
  exponent10 += scale - fractionDigits;
  const std::size_t firstNonZero = digits.find_first_not_of('0');
  if (firstNonZero == std::string::npos) return 0;
  digits.erase(0, firstNonZero);
  for (int p = 0; p < powers1024; ++p)
    digits = multiplyDigits(digits, 1024);

  const uint64_t limit =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1U : 0U);
  auto tooLarge = [&]() {
    return fail(quoted + " is out of range: beyond " + (negative ? "-" : "") +
                std::to_string(limit) + " " + unit);
  };
  const int64_t length = static_cast<int64_t>(digits.size());
  const int64_t integerDigits = length + exponent10;
  if (integerDigits > 20) return tooLarge();  // 2^64 has 20 digits; from_chars checks the rest
  std::string integerPart;
  bool fractionNonZero = false;
  if (exponent10 >= 0) {
    integerPart = digits + std::string(static_cast<std::size_t>(exponent10), '0');
  } else if (integerDigits > 0) {
    integerPart = digits.substr(0, static_cast<std::size_t>(integerDigits));
    fractionNonZero =
        digits.find_first_not_of('0', static_cast<std::size_t>(integerDigits)) != std::string::npos;
  } else {
    fractionNonZero = true;  // digits has a non-zero digit, all of it after the point
  }
  uint64_t m = 0;
  if (!integerPart.empty()) {
    const char* end = integerPart.data() + integerPart.size();
    if (std::from_chars(integerPart.data(), end, m).ec != std::errc()) return tooLarge();
  }
  if (m > limit || (fractionNonZero && m == limit)) return tooLarge();
  if (fractionNonZero) ++m;
  if (!negative) return static_cast<int64_t>(m);
  return m == limit ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(m);
}

}  // namespace

Result<int64_t> parseCpuMilli(const std::string& text) {
  return parseQuantity(text, 3, "millicores");
}

Result<int64_t> parseBytes(const std::string& text) {
  return parseQuantity(text, 0, "bytes");
}

std::string formatCpuMilli(int64_t milli) {
  if (milli % 1000 == 0) return std::to_string(milli / 1000);
  return std::to_string(milli) + "m";
}

std::string formatBytes(int64_t bytes) {
  static const char* const kSuffixes[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  if (bytes == 0) return "0";
  for (int p = 6; p >= 1; --p) {
    const int64_t unit = int64_t{1} << (10 * p);
    if (bytes % unit == 0) return std::to_string(bytes / unit) + kSuffixes[p - 1];
  }
  return std::to_string(bytes);
}

std::optional<std::string> quantityText(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number()) return value.dump();  // integers exactly; floats in their shortest form
  return std::nullopt;
}

}  // namespace pi0::kube
