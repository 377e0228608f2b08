#include "common/flags.h"

#include <charconv>
#include <cmath>

#include "common/duration.h"
#include "common/files.h"

namespace pi0 {
namespace {

// The checks of a duration flag, shared by FlagReader and the table.
Result<double> checkedDuration(const std::string& flag, const std::string& text, bool allowZero,
                               double maxSeconds, std::string_view maxText) {
  auto d = parseDuration(text);
  if (!d) return fail(flag + ": " + d.error().message);
  if (!allowZero && !(d->count() > 0)) return fail(flag + " must be greater than 0");
  if (d->count() > maxSeconds) return fail(flag + " must be at most " + std::string(maxText));
  return d->count();
}

std::string shortest(double x) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(x);
}

// Go's strconv.ParseBool, as pflag's bool flags accept.
std::optional<bool> parseBool(std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  return std::nullopt;
}

std::optional<long long> parseWhole(std::string_view text) {
  long long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

// `words` wrapped into lines of at most `width` characters (a longer word gets its own line);
// a line break counts as a space.
std::vector<std::string> wrap(std::string_view words, std::size_t width) {
  std::vector<std::string> lines;
  std::string line;
  std::size_t start = 0;
  while (start < words.size()) {
    auto end = words.find_first_of(" \n", start);
    if (end == std::string_view::npos) end = words.size();
    const auto word = words.substr(start, end - start);
    start = end + 1;
    if (word.empty()) continue;
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(std::move(line));
      line.clear();
    }
    line += (line.empty() ? "" : " ");
    line += word;
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

// Paragraphs (separated by an empty line) wrapped, with an empty line between them.
std::string paragraphs(std::string_view text, std::size_t width) {
  std::string out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find("\n\n", start);
    if (end == std::string_view::npos) end = text.size();
    if (!out.empty()) out += "\n";
    for (const auto& line : wrap(text.substr(start, end - start), width))
      out += line + "\n";
    start = end + 2;
  }
  return out;
}

constexpr std::size_t kUsageWidth = 100;
constexpr std::size_t kMaxSpellingColumn = 30;

}  // namespace

bool FlagReader::next() {
  if (started_) ++i_;
  started_ = true;
  if (i_ >= args_.size()) return false;
  flag_ = args_[i_];
  hasInline_ = false;
  inline_.clear();
  if (auto eq = flag_.find('='); flag_.starts_with("--") && eq != std::string::npos) {
    inline_ = flag_.substr(eq + 1);
    flag_ = flag_.substr(0, eq);
    hasInline_ = true;
  }
  return true;
}

Result<std::string> FlagReader::value() {
  if (hasInline_) return inline_;
  if (i_ + 1 >= args_.size()) return fail(flag_ + " needs a value");
  return args_[++i_];
}

Result<std::string> FlagReader::nonEmptyValue() {
  auto v = value();
  if (v && v->empty()) return fail(flag_ + " must not be empty");
  return v;
}

Result<double> FlagReader::durationSeconds(bool allowZero, double maxSeconds,
                                           std::string_view maxText) {
  auto v = value();
  if (!v) return fail(v.error().message);
  return checkedDuration(flag_, *v, allowZero, maxSeconds, maxText);
}

Result<HostPort> parseHostPort(std::string_view text, std::string_view example) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return fail("'" + std::string(text) + "' is not HOST:PORT (" + std::string(example) + ")");
  }
  HostPort out;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);  // [::1]:9560
  }
  if (!host.empty()) out.host = std::string(host);
  auto port = parseUint(text.substr(colon + 1));
  if (!port || *port > 65535) {
    return fail("invalid port in '" + std::string(text) + "' (want 0-65535)");
  }
  out.port = static_cast<int>(*port);
  return out;
}

std::string formatDuration(double seconds, bool gloss) {
  const double whole = std::round(seconds);
  if (seconds <= 0) return "0s";
  if (whole != seconds || seconds < 1) return shortest(seconds * 1000) + "ms";
  const auto s = static_cast<long long>(whole);
  std::string out = s % 3600 == 0 ? std::to_string(s / 3600) + "h"
                    : s % 60 == 0 ? std::to_string(s / 60) + "m"
                                  : std::to_string(s) + "s";
  constexpr long long kDay = 86400;
  if (gloss && s % kDay == 0) {
    const long long days = s / kDay;
    if (days % 365 == 0) {
      out += ": " + std::to_string(days / 365) + (days == 365 ? " year" : " years");
    } else {
      out += ": " + std::to_string(days) + (days == 1 ? " day" : " days");
    }
  }
  return out;
}

namespace flags {

Value text(std::string& into) {
  Value v;
  v.store = [&into](const std::string&, const std::string& text) -> Result<void> {
    into = text;
    return {};
  };
  v.defaultText = into;
  return v;
}

Value path(std::filesystem::path& into) {
  Value v;
  v.store = [&into](const std::string&, const std::string& text) -> Result<void> {
    into = text;
    return {};
  };
  v.defaultText = into.string();
  return v;
}

Value nonEmpty(Value value) {
  value.nonEmpty = true;
  return value;
}

Value duration(double& seconds, DurationRange range) {
  Value v;
  v.store = [&seconds, range](const std::string& flag, const std::string& text) -> Result<void> {
    auto d = checkedDuration(flag, text, range.allowZero, range.maxSeconds,
                             formatDuration(range.maxSeconds));
    if (!d) return fail(d.error().message);
    seconds = *d;
    return {};
  };
  v.defaultText = formatDuration(seconds, range.glossDefault);
  return v;
}

Value duration(std::chrono::steady_clock::duration& into, DurationRange range) {
  Value v;
  v.store = [&into, range](const std::string& flag, const std::string& text) -> Result<void> {
    auto d = checkedDuration(flag, text, range.allowZero, range.maxSeconds,
                             formatDuration(range.maxSeconds));
    if (!d) return fail(d.error().message);
    into = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(*d));
    return {};
  };
  v.defaultText = formatDuration(std::chrono::duration<double>(into).count(), range.glossDefault);
  return v;
}

Value wholeSeconds(std::chrono::seconds& into, DurationRange range) {
  Value v;
  v.store = [&into, range](const std::string& flag, const std::string& text) -> Result<void> {
    auto d = checkedDuration(flag, text, range.allowZero, range.maxSeconds,
                             formatDuration(range.maxSeconds));
    if (!d) return fail(d.error().message);
    if (*d < 1) return fail(flag + ": at least 1s");
    into = std::chrono::seconds(std::llround(*d));
    return {};
  };
  v.defaultText = formatDuration(static_cast<double>(into.count()), range.glossDefault);
  return v;
}

namespace {

// A whole number in [min, max] that is a multiple of `multipleOf`, handed to `put`.
template <class Put>
Value wholeInto(Put put, std::string defaultText, long long min, long long max, std::string what,
                long long multipleOf) {
  Value v;
  v.store = [=](const std::string& flag, const std::string& text) -> Result<void> {
    auto n = parseWhole(text);
    if (!n || *n < min || *n > max || *n % multipleOf != 0) {
      return fail(flag + ": '" + text + "' is not " + what);
    }
    put(*n);
    return {};
  };
  v.defaultText = std::move(defaultText);
  return v;
}

}  // namespace

Value whole(std::size_t& into, long long min, long long max, std::string what,
            long long multipleOf) {
  return wholeInto([&into](long long n) { into = static_cast<std::size_t>(n); },
                   std::to_string(into), min, max, std::move(what), multipleOf);
}

Value whole(int& into, long long min, long long max, std::string what) {
  return wholeInto([&into](long long n) { into = static_cast<int>(n); }, std::to_string(into), min,
                   max, std::move(what), 1);
}

Value whole(double& into, long long min, long long max, std::string what) {
  return wholeInto([&into](long long n) { into = static_cast<double>(n); }, shortest(into), min,
                   max, std::move(what), 1);
}

Value percent(double& ratio, long long min, long long max, std::string what) {
  return wholeInto([&ratio](long long n) { ratio = static_cast<double>(n) / 100.0; },
                   shortest(std::round(ratio * 100)), min, max, std::move(what), 1);
}

Value number(double& into, NumberRange range, std::string what) {
  Value v;
  v.store = [&into, range, what](const std::string& flag, const std::string& text) -> Result<void> {
    auto x = parseDouble(text);
    const bool inRange = x && std::isfinite(*x) &&
                         (range.minOpen ? *x > range.min : *x >= range.min) && *x <= range.max;
    if (!inRange) return fail(flag + ": '" + text + "' is not " + what);
    into = *x;
    return {};
  };
  v.defaultText = shortest(into);
  return v;
}

Value boolean(bool& into) {
  Value v;
  v.store = [&into](const std::string& flag, const std::string& text) -> Result<void> {
    auto b = parseBool(text);
    if (!b) return fail(flag + ": '" + text + "' is not true or false");
    into = *b;
    return {};
  };
  v.defaultText = into ? "true" : "false";
  v.isSwitch = true;
  return v;
}

std::string notOneOf(const std::string& flag, const std::string& text,
                     const std::vector<std::string>& names) {
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  }
  return flag + ": '" + text + "' is not " + list;
}

Value list(std::vector<std::string>& into) {
  Value v;
  v.store = [&into](const std::string&, const std::string& text) -> Result<void> {
    into.clear();
    std::size_t start = 0;
    while (start <= text.size()) {
      auto comma = text.find(',', start);
      if (comma == std::string::npos) comma = text.size();
      if (comma > start) into.push_back(text.substr(start, comma - start));
      start = comma + 1;
    }
    return {};
  };
  for (const auto& name : into)
    v.defaultText += (v.defaultText.empty() ? "" : ",") + name;
  return v;
}

Value logLevel(log::Level& into) {
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
  auto parse = [](const std::string& text) { return log::parseLevel(text); };
  return custom(into, parse, kNames[static_cast<int>(into)]);
}

Value hostPort(HostPort& into, std::string example) {
  auto parse = [example](const std::string& text) { return parseHostPort(text, example); };
  return custom(into, parse, into.host + ":" + std::to_string(into.port));
}

}  // namespace flags

FlagTable::FlagTable(std::string synopsis, std::string about)
    : synopsis_(std::move(synopsis)), about_(std::move(about)) {}

FlagTable& FlagTable::add(std::string spelling, flags::Value value, std::string help) {
  Entry e;
  e.name = spelling.substr(0, spelling.find_first_of(" ["));
  e.spelling = std::move(spelling);
  e.value = std::move(value);
  e.help = std::move(help);
  entries_.push_back(std::move(e));
  return *this;
}

FlagTable& FlagTable::alias(std::string name) {
  entries_.back().aliases.push_back(std::move(name));
  return *this;
}

FlagTable& FlagTable::defaultText(std::string text) {
  entries_.back().value.defaultText = std::move(text);
  return *this;
}

FlagTable& FlagTable::section(std::string title) {
  Entry e;
  e.help = std::move(title);
  entries_.push_back(std::move(e));
  return *this;
}

FlagTable& FlagTable::epilogue(std::string text) {
  epilogue_ = std::move(text);
  return *this;
}

FlagTable& FlagTable::addStandard(bool& version, bool& help) {
  add("--version", flags::boolean(version), "print the version and exit").defaultText("");
  add("--help", flags::boolean(help), "print this help and exit").defaultText("").alias("-h");
  return *this;
}

const FlagTable::Entry* FlagTable::find(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.spelling.empty()) continue;
    if (e.name == name) return &e;
    for (const auto& a : e.aliases) {
      if (a == name) return &e;
    }
  }
  return nullptr;
}

Result<void> FlagTable::parse(const std::vector<std::string>& args) const {
  FlagReader reader(args);
  while (reader.next()) {
    const Entry* e = find(reader.flag());
    if (e == nullptr) return fail("unknown flag '" + reader.raw() + "'");
    Result<std::string> text = std::string("true");
    if (!e->value.isSwitch) {
      text = e->value.nonEmpty ? reader.nonEmptyValue() : reader.value();
    } else if (reader.hasInlineValue()) {
      text = reader.inlineValue();
    }
    if (!text) return fail(text.error().message);
    if (auto stored = e->value.store(reader.flag(), *text); !stored) return stored;
  }
  return {};
}

std::string FlagTable::usage() const {
  std::size_t column = 0;
  for (const auto& e : entries_) {
    if (e.spelling.size() <= kMaxSpellingColumn) column = std::max(column, e.spelling.size());
  }
  const std::string indent(2 + column + 2, ' ');
  std::string out = "Usage: " + synopsis_ + "\n\n";
  out += paragraphs(about_, kUsageWidth) + "\nFlags:\n";
  for (const auto& e : entries_) {
    if (e.spelling.empty()) {
      out += "\n" + e.help + ":\n";
      continue;
    }
    std::string help = e.help;
    if (!e.value.defaultText.empty()) help += " (default " + e.value.defaultText + ")";
    auto lines = wrap(help, kUsageWidth - indent.size());
    std::string first = "  " + e.spelling;
    if (first.size() + 2 > indent.size()) {
      out += first + "\n";  // too long for the column: the help starts on the next line
      first.clear();
    }
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const std::string lead = i == 0 && !first.empty() ? first : "";
      out += lead + std::string(indent.size() - lead.size(), ' ') + lines[i] + "\n";
    }
  }
  if (!epilogue_.empty()) {
    out += "\n" + paragraphs(epilogue_, kUsageWidth);
  }
  return out;
}

}  // namespace pi0
