#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/flags.h"

using pi0::FlagReader;

TEST_CASE("flags with separate and inline values") {
  const std::vector<std::string> args = {"--a", "1", "--b=two", "--c=", "--flag"};
  FlagReader r(args);
  REQUIRE(r.next());
  CHECK(r.flag() == "--a");
  CHECK_FALSE(r.hasInlineValue());
  CHECK(*r.value() == "1");
  REQUIRE(r.next());
  CHECK(r.flag() == "--b");
  CHECK(r.raw() == "--b=two");
  CHECK(r.hasInlineValue());
  CHECK(*r.value() == "two");
  REQUIRE(r.next());
  CHECK(*r.value() == "");
  CHECK(r.nonEmptyValue().error().message == "--c must not be empty");
  REQUIRE(r.next());
  CHECK(r.value().error().message == "--flag needs a value");
  CHECK_FALSE(r.next());
}

TEST_CASE("durations are checked against their bounds, naming the flag") {
  const std::vector<std::string> args = {"--i", "250ms", "--i",  "0",   "--i",
                                         "2h",  "--i",   "soon", "--z", "0"};
  FlagReader r(args);
  REQUIRE(r.next());
  CHECK(*r.durationSeconds(false, 3600, "1h") == doctest::Approx(0.25));
  REQUIRE(r.next());
  CHECK(r.durationSeconds(false, 3600, "1h").error().message == "--i must be greater than 0");
  REQUIRE(r.next());
  CHECK(r.durationSeconds(false, 3600, "1h").error().message == "--i must be at most 1h");
  REQUIRE(r.next());
  CHECK(r.durationSeconds(false, 3600, "1h").error().message.starts_with("--i: "));
  REQUIRE(r.next());
  CHECK(*r.durationSeconds(true, 60, "1m") == 0.0);
}

namespace {

// A program's options and its table, as a program declares them.
struct Options {
  std::string name = "pi0";
  std::filesystem::path dir;
  double interval = 1.0;
  std::chrono::steady_clock::duration grace = std::chrono::seconds(30);
  std::chrono::seconds validity{std::chrono::hours(24 * 90)};
  std::size_t window = 64;
  double line = 0.2;
  double qps = 20;
  double ratio = 0.25;
  bool elect = false;
  enum class Mode { kA, kB, kC } mode = Mode::kA;
  std::vector<std::string> names{"kube-system"};
  pi0::log::Level level = pi0::log::Level::kInfo;
  pi0::HostPort listen{"0.0.0.0", 9560};
  bool help = false, version = false;
};

pi0::FlagTable table(Options& o) {
  using namespace pi0::flags;
  pi0::FlagTable t("prog [flags]", "Does a thing.\n\nAnd another.");
  t.add("--name NAME", nonEmpty(text(o.name)), "a name");
  t.add("--dir DIR", path(o.dir), "a directory").defaultText("off");
  t.add("--interval DURATION", duration(o.interval), "how often");
  t.add("--grace DURATION", duration(o.grace, {.allowZero = true, .maxSeconds = 60}), "how long");
  t.add("--validity DURATION", wholeSeconds(o.validity, {.maxSeconds = 1e9, .glossDefault = true}),
        "how long valid");
  t.add("--window N", whole(o.window, 8, 4096, "an even number in 8..4096", 2), "samples");
  t.add("--line PERCENT", percent(o.line, 1, 100, "a whole percent in 1..100"), "a line");
  t.add("--qps N", number(o.qps, {.min = 0, .max = 1e9, .minOpen = true}, "a number > 0"), "rate");
  t.add("--ratio X", number(o.ratio, {}, "a number in [0,1]"), "a ratio");
  t.add("--elect[=true|false]", boolean(o.elect), "elect");
  t.add("--mode MODE",
        choice(o.mode,
               {{"A", Options::Mode::kA}, {"B", Options::Mode::kB}, {"C", Options::Mode::kC}}),
        "a mode");
  t.add("--names NS,...", list(o.names), "names");
  t.add("--log-level LEVEL", logLevel(o.level), "verbosity");
  t.add("--listen HOST:PORT", hostPort(o.listen, "e.g. 0.0.0.0:9560"), "where");
  t.addStandard(o.version, o.help);
  t.section("More");
  t.add("--a-flag-spelled-at-great-length DURATION", duration(o.interval), "again");
  t.epilogue("Endpoints: /x.");
  return t;
}

std::string errorOf(const std::vector<std::string>& args) {
  Options o;
  auto parsed = table(o).parse(args);
  REQUIRE_FALSE(parsed);
  return parsed.error().message;
}

}  // namespace

TEST_CASE("a flag table stores every kind of value where it is bound") {
  Options o;
  auto parsed = table(o).parse(
      {"--name=n",  "--dir",    "/d",     "--interval", "250ms",   "--grace=0", "--validity",
       "1.6s",      "--window", "32",     "--line",     "35",      "--qps",     "7.5",
       "--ratio=1", "--elect",  "--mode", "C",          "--names", "a,,b",      "--log-level=warn",
       "--listen",  "[::1]:0",  "-h"});
  REQUIRE(parsed);
  CHECK(o.name == "n");
  CHECK(o.dir == "/d");
  CHECK(o.interval == 0.25);
  CHECK(o.grace == std::chrono::steady_clock::duration::zero());
  CHECK(o.validity == std::chrono::seconds(2));  // rounded to whole seconds
  CHECK(o.window == 32);
  CHECK(o.line == doctest::Approx(0.35));
  CHECK(o.qps == 7.5);
  CHECK(o.ratio == 1.0);
  CHECK(o.elect);
  CHECK(o.mode == Options::Mode::kC);
  CHECK(o.names == std::vector<std::string>{"a", "b"});
  CHECK(o.level == pi0::log::Level::kWarn);
  CHECK(o.listen == pi0::HostPort{"::1", 0});
  CHECK(o.help);
  CHECK_FALSE(o.version);

  Options off;
  REQUIRE(table(off).parse({"--elect", "--elect=false", "--names="}));
  CHECK_FALSE(off.elect);
  CHECK(off.names.empty());
}

TEST_CASE("every error of a flag table names the flag") {
  struct Case {
    std::vector<std::string> args;
    std::string want;  // the whole message
  };
  for (const auto& c : std::vector<Case>{
           {{"--nope"}, "unknown flag '--nope'"},
           {{"--nope=1"}, "unknown flag '--nope=1'"},
           {{"stray"}, "unknown flag 'stray'"},
           {{"--name"}, "--name needs a value"},
           {{"--name="}, "--name must not be empty"},
           {{"--interval", "0"}, "--interval must be greater than 0"},
           {{"--interval", "2h"}, "--interval must be at most 1h"},
           {{"--grace", "61s"}, "--grace must be at most 1m"},
           {{"--validity", "0.4s"}, "--validity: at least 1s"},
           {{"--window", "33"}, "--window: '33' is not an even number in 8..4096"},
           {{"--window", "-8"}, "--window: '-8' is not an even number in 8..4096"},
           {{"--window", "4096x"}, "--window: '4096x' is not an even number in 8..4096"},
           {{"--line", "0.2"}, "--line: '0.2' is not a whole percent in 1..100"},
           {{"--qps", "0"}, "--qps: '0' is not a number > 0"},
           {{"--qps", "inf"}, "--qps: 'inf' is not a number > 0"},
           {{"--ratio", "1.01"}, "--ratio: '1.01' is not a number in [0,1]"},
           {{"--elect=yes"}, "--elect: 'yes' is not true or false"},
           {{"--mode", "D"}, "--mode: 'D' is not A, B or C"},
           {{"--listen", "9560"}, "--listen: '9560' is not HOST:PORT (e.g. 0.0.0.0:9560)"},
           {{"--listen", ":65536"}, "--listen: invalid port in ':65536' (want 0-65535)"},
       }) {
    CAPTURE(c.args);
    CHECK(errorOf(c.args) == c.want);
  }
  CHECK(errorOf({"--interval", "fast"}).starts_with("--interval: invalid duration 'fast'"));
  CHECK(errorOf({"--log-level", "loud"}).starts_with("--log-level: unknown log level 'loud'"));
  // A switch never takes the next argument.
  CHECK(errorOf({"--elect", "false"}) == "unknown flag 'false'");
}

TEST_CASE("the usage lists every flag with the default its member holds") {
  Options o;
  o.interval = 300;  // the usage says what the bound options hold: here, not the default
  const std::string usage = table(o).usage();
  CAPTURE(usage);
  CHECK(usage.starts_with("Usage: prog [flags]\n\nDoes a thing.\n\nAnd another.\n\nFlags:\n"));
  for (const std::string line : {
           "  --name NAME           a name (default pi0)\n",
           "  --dir DIR             a directory (default off)\n",
           "  --interval DURATION   how often (default 5m)\n",
           "  --grace DURATION      how long (default 30s)\n",
           "  --validity DURATION   how long valid (default 2160h: 90 days)\n",
           "  --window N            samples (default 64)\n",
           "  --line PERCENT        a line (default 20)\n",
           "  --qps N               rate (default 20)\n",
           "  --ratio X             a ratio (default 0.25)\n",
           "  --elect[=true|false]  elect (default false)\n",
           "  --mode MODE           a mode (default A)\n",
           "  --names NS,...        names (default kube-system)\n",
           "  --log-level LEVEL     verbosity (default info)\n",
           "  --listen HOST:PORT    where (default 0.0.0.0:9560)\n",
           "  --version             print the version and exit\n",
           "  --help                print this help and exit\n",
           "\nMore:\n  --a-flag-spelled-at-great-length DURATION\n"
           "                        again (default 5m)\n",
       }) {
    CAPTURE(line);
    CHECK(usage.find(line) != std::string::npos);
  }
  CHECK(usage.ends_with("\nEndpoints: /x.\n"));
  for (std::size_t start = 0, end; (end = usage.find('\n', start)) != std::string::npos;
       start = end + 1) {
    CHECK(end - start <= 100);
  }
}

TEST_CASE("durations in the flags' own units") {
  CHECK(pi0::formatDuration(0) == "0s");
  CHECK(pi0::formatDuration(0.25) == "250ms");
  CHECK(pi0::formatDuration(1) == "1s");
  CHECK(pi0::formatDuration(90) == "90s");
  CHECK(pi0::formatDuration(120) == "2m");
  CHECK(pi0::formatDuration(3600) == "1h");
  CHECK(pi0::formatDuration(7 * 86400) == "168h");
  CHECK(pi0::formatDuration(86400, true) == "24h: 1 day");
  CHECK(pi0::formatDuration(365 * 86400, true) == "8760h: 1 year");
  CHECK(pi0::formatDuration(3650 * 86400, true) == "87600h: 10 years");
  CHECK(pi0::formatDuration(300, true) == "5m");
}
