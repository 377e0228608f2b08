// Command-line flags the way Pi0's programs take them: "--flag value" or "--flag=value", one
// flag at a time, every error naming the flag ("--interval must be greater than 0").
//
// A program declares its flags once, in a FlagTable: each flag's spelling as the usage shows
// it, what its value is (a Value, made by the functions of namespace `flags` below, bound to the
// member of the options it stores into) and what it means. The same table parses the arguments
// and renders the --help text, defaults included: a flag's default is what its member holds when
// the table is declared, so a table declared over default options says the true defaults.
//
//   Options o;
//   FlagTable table("pi0-agent [flags]", "Samples this node ...");
//   table.add("--interval DURATION", flags::duration(o.intervalSeconds), "sampling interval");
//   table.add("--window N", flags::whole(o.window, 8, 4096, "an even number ...", 2), "...");
//   table.addStandard(o.version, o.help);
//   if (auto ok = table.parse(args); !ok) ...
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/result.h"

namespace pi0 {

// Steps through the arguments one flag at a time (FlagTable uses it; so may a program with
// flags a table cannot say).
class FlagReader {
 public:
  explicit FlagReader(const std::vector<std::string>& args) : args_(args) {}

  // Moves to the next flag; false when there is none left.
  bool next();

  // The flag without any "=value" ("--interval"), and the argument as given ("--interval=5s").
  const std::string& flag() const { return flag_; }
  const std::string& raw() const { return args_[i_]; }

  // Whether the flag carried "=value", and that value (for boolean flags, which take a value
  // only that way).
  bool hasInlineValue() const { return hasInline_; }
  const std::string& inlineValue() const { return inline_; }

  // The flag's value: the "=value", else the next argument ("--flag needs a value" if none).
  Result<std::string> value();
  // The same, refused when empty ("--flag must not be empty").
  Result<std::string> nonEmptyValue();
  // A duration (see parseDuration) in seconds, greater than 0 unless `allowZero`, at most
  // `maxSeconds` (named `maxText` in the message).
  Result<double> durationSeconds(bool allowZero, double maxSeconds, std::string_view maxText);

 private:
  const std::vector<std::string>& args_;
  std::size_t i_ = 0;
  bool started_ = false;
  std::string flag_;
  bool hasInline_ = false;
  std::string inline_;
};

// A HOST:PORT to serve on: "[::1]:9000" is host ::1, ":9000" every address (0.0.0.0), port 0
// any free port.
struct HostPort {
  std::string host = "0.0.0.0";
  int port = 0;

  bool operator==(const HostPort&) const = default;
};

// Text that is not HOST:PORT at all is an error that gives `example` ("e.g. 0.0.0.0:9560").
Result<HostPort> parseHostPort(std::string_view text, std::string_view example);

// A duration as the flags write it: whole hours, minutes or seconds when it is one ("2h", "5m",
// "30s"), else milliseconds ("250ms"). With `gloss`, a duration of whole days says so too
// ("2160h: 90 days", "8760h: 1 year").
std::string formatDuration(double seconds, bool gloss = false);

namespace flags {

// What a flag's value is, how it is read and where it goes.
struct Value {
  // Reads `text`, the value given to `flag`, into the bound member; the error names the flag.
  std::function<Result<void>(const std::string& flag, const std::string& text)> store;
  // The member's value when the Value was made, as the flag would take it ("" when there is
  // nothing to say, e.g. an empty path).
  std::string defaultText;
  bool nonEmpty = false;  // "" is refused: "--flag must not be empty"
  bool isSwitch = false;  // "--flag" alone, or "--flag=BOOL"; never the next argument
};

// Any text, "" included, into a string or a path.
Value text(std::string& into);
Value path(std::filesystem::path& into);
// The same value refused when empty.
Value nonEmpty(Value value);

// A duration, greater than 0 (or 0 too, with allowZero) and at most maxSeconds, in seconds or
// as a clock duration: "--interval must be greater than 0", "--interval must be at most 1h".
struct DurationRange {
  bool allowZero = false;
  double maxSeconds = 3600;
  bool glossDefault = false;  // the usage says "2160h: 90 days" (formatDuration's gloss)
};
Value duration(double& seconds, DurationRange range = {});
Value duration(std::chrono::steady_clock::duration& into, DurationRange range = {});
// Whole seconds, at least 1 ("--flag: at least 1s"); fractions round to the nearest second.
Value wholeSeconds(std::chrono::seconds& into, DurationRange range);

// A whole number in [min, max], a multiple of `multipleOf`; otherwise "--flag: 'TEXT' is not "
// followed by `what` (which says the range in the program's words).
Value whole(std::size_t& into, long long min, long long max, std::string what,
            long long multipleOf = 1);
Value whole(int& into, long long min, long long max, std::string what);
Value whole(double& into, long long min, long long max, std::string what);
// A whole percent in [min, max], stored as a ratio (20 -> 0.2).
Value percent(double& ratio, long long min, long long max, std::string what);

// A number in [min, max] (above min, not at it, with minOpen); otherwise "--flag: 'TEXT' is
// not " followed by `what`.
struct NumberRange {
  double min = 0;
  double max = 1;
  bool minOpen = false;
};
Value number(double& into, NumberRange range, std::string what);

// A switch: "--flag" is true, "--flag=BOOL" takes Go's strconv.ParseBool spellings, as pflag's
// boolean flags do ("--flag: 'yes' is not true or false").
Value boolean(bool& into);

// One of named choices: "--flag: 'TEXT' is not A, B or C".
template <class T>
Value choice(T& into, std::vector<std::pair<std::string, T>> choices);

// Comma-separated names, empty ones dropped ("a,,b" -> a, b; "" -> none).
Value list(std::vector<std::string>& into);

// debug, info, warn or error ("--log-level: unknown log level 'loud' ...").
Value logLevel(log::Level& into);

// HOST:PORT (parseHostPort).
Value hostPort(HostPort& into, std::string example);

// Anything else: `parse` reads the text (its error follows "--flag: "); the result goes to
// `into`, whose value when declared the usage shows as `defaultText`.
template <class T, class Parse>
Value custom(T& into, Parse parse, std::string defaultText = "") {
  Value v;
  v.store = [&into, parse](const std::string& flag, const std::string& text) -> Result<void> {
    auto parsed = parse(text);
    if (!parsed) return fail(flag + ": " + parsed.error().message);
    into = std::move(*parsed);
    return {};
  };
  v.defaultText = std::move(defaultText);
  return v;
}

// For choice(): the message naming every choice.
std::string notOneOf(const std::string& flag, const std::string& text,
                     const std::vector<std::string>& names);

template <class T>
Value choice(T& into, std::vector<std::pair<std::string, T>> choices) {
  Value v;
  for (const auto& [name, value] : choices) {
    if (value == into) v.defaultText = name;
  }
  v.store = [&into, choices](const std::string& flag, const std::string& text) -> Result<void> {
    std::vector<std::string> names;
    for (const auto& [name, value] : choices) {
      if (name == text) {
        into = value;
        return {};
      }
      names.push_back(name);
    }
    return fail(notOneOf(flag, text, names));
  };
  return v;
}

}  // namespace flags

// A program's flags, declared once: parse() reads the arguments into the members the Values
// are bound to, usage() renders the help. The Values hold references: the options they are
// bound to must outlive the table.
class FlagTable {
 public:
  // `synopsis` follows "Usage: " ("pi0-agent [flags]"); `about` is the paragraph under it.
  FlagTable(std::string synopsis, std::string about);

  // Declares a flag: `spelling` as the usage shows it, "--name METAVAR" ("--interval
  // DURATION"), "--name" for a switch, or "--name[=true|false]"; `help` says what it does, in
  // words that a usage line follows with "(default X)".
  FlagTable& add(std::string spelling, flags::Value value, std::string help);
  // Changes the flag added last: another spelling for it ("-h"); the default the usage says
  // instead of the member's value ("" says none: for defaults that are computed, such as
  // "$NODE_NAME, else the host name").
  FlagTable& alias(std::string name);
  FlagTable& defaultText(std::string text);

  // A heading in the usage above the flags added after it.
  FlagTable& section(std::string title);
  // Text at the end of the usage ("Endpoints: ...").
  FlagTable& epilogue(std::string text);
  // --version and --help (-h).
  FlagTable& addStandard(bool& version, bool& help);

  // Reads every argument; the first that is not a declared flag, or whose value does not
  // read, is the error ("unknown flag 'ARG'", "--window needs a value", ...).
  Result<void> parse(const std::vector<std::string>& args) const;

  // The help text: synopsis, about, the flags with their defaults, wrapped at 100 columns.
  std::string usage() const;

 private:
  struct Entry {
    std::string spelling;  // empty: a section heading (`help` holds the title)
    std::string name;
    std::vector<std::string> aliases;
    flags::Value value;
    std::string help;
  };
  const Entry* find(std::string_view name) const;

  std::string synopsis_;
  std::string about_;
  std::string epilogue_;
  std::vector<Entry> entries_;
};

// A program's options read from `args` by the table `declare` makes over default Options.
template <class Options>
Result<Options> parseFlags(FlagTable (*declare)(Options&), const std::vector<std::string>& args) {
  Options o;
  if (auto parsed = declare(o).parse(args); !parsed) return fail(parsed.error().message);
  return o;
}

// The usage of the table `declare` makes over default Options (so it says the defaults).
template <class Options>
std::string usageOf(FlagTable (*declare)(Options&)) {
  Options defaults;
  return declare(defaults).usage();
}

}  // namespace pi0
