#include "synthetic/profile.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <initializer_list>
#include <numbers>
#include <optional>
#include <string>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "common/signal_id.h"

namespace pi0::substrates {
namespace {

constexpr int kMaxSumDepth = 16;
// YAML aliases share nodes, so `of: [*a, *a, ...]` nested a few levels names billions of
// waves from a short file (and would hang the sampling thread on a reload). Bound the total.
constexpr int kMaxWaves = 10000;
constexpr std::string_view kAllowedSignals =
    "cpu, memory, psi_cpu, psi_memory, psi_io, disk, network, gpu<N>_sm, gpu<N>_memory";

// Carries a finished error message out of the recursive descent; converted to an Error at
// the parsing boundary (parseProfile), never seen by callers.
struct ProfileError {
  std::string message;
};

// One `key: value` of a YAML mapping; the key node carries the line of the key.
struct Entry {
  std::string name;
  YAML::Node key;
  YAML::Node value;
};

class Parser {
 public:
  explicit Parser(std::string_view fileName) : fileName_(fileName) {}

  [[noreturn]] void raise(const YAML::Node& at, std::string_view path,
                          std::string_view what) const {
    throw ProfileError{location(at) + ": " + std::string(path) + ": " + std::string(what)};
  }

  std::string location(const YAML::Node& at) const {
    std::string out(fileName_);
    if (!at.IsDefined()) return out;
    YAML::Mark mark = at.Mark();
    if (!mark.is_null()) out += ":" + std::to_string(mark.line + 1);
    return out;
  }

  std::string location(const YAML::Mark& mark) const {
    std::string out(fileName_);
    if (!mark.is_null()) {
      out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    }
    return out;
  }

  Profile parseRoot(const YAML::Node& root) const {
    if (!root.IsDefined() || root.IsNull()) {
      throw ProfileError{std::string(fileName_) + ": the profile is empty; it needs `signals:`"};
    }
    if (!root.IsMap()) {
      throw ProfileError{location(root) + ": expected a mapping with `signals:` at the top"};
    }
    Profile profile;
    // optional, not a default YAML::Node: a default Node reads as defined, and assigning to a
    // bound Node rewrites the document instead of rebinding.
    std::optional<YAML::Node> signals;
    bool haveMemoryTotal = false;
    for (const Entry& e : entries(root, "profile")) {
      if (e.name == "memoryTotalBytes") {
        if (haveMemoryTotal) raise(e.key, e.name, "duplicate key");
        haveMemoryTotal = true;
        double bytes = 0;
        if (!e.value.IsScalar() || !YAML::convert<double>::decode(e.value, bytes) ||
            !std::isfinite(bytes) || bytes < 1) {
          raise(e.value, e.name, "must be a positive number of bytes" + describe(e.value));
        }
        profile.memoryTotalBytes = bytes;
      } else if (e.name == "signals") {
        if (signals) raise(e.key, e.name, "duplicate key");
        signals.emplace(e.value);
      } else {
        raise(e.key, e.name, "unknown key; allowed: memoryTotalBytes, signals");
      }
    }
    if (!signals) {
      throw ProfileError{location(root) + ": the profile needs `signals:`"};
    }
    if (!signals->IsMap() || signals->size() == 0) {
      raise(*signals, "signals",
            "expected a non-empty mapping from signal name to wave, e.g. "
            "`cpu: {wave: constant, value: 0.5}`");
    }
    for (const Entry& e : entries(*signals, "signals")) {
      std::string path = "signals." + e.name;
      if (!isKnownSignal(e.name)) {
        raise(e.key, path,
              "unknown signal '" + e.name + "'; allowed: " + std::string(kAllowedSignals));
      }
      bool duplicate = std::any_of(profile.signals.begin(), profile.signals.end(),
                                   [&](const ProfileSignal& s) { return s.name == e.name; });
      if (duplicate) raise(e.key, path, "duplicate signal");
      profile.signals.push_back(ProfileSignal{e.name, parseWave(e.value, path, 0)});
    }
    return profile;
  }

 private:
  // The entries of a mapping with scalar keys, in document order.
  std::vector<Entry> entries(const YAML::Node& map, std::string_view path) const {
    std::vector<Entry> out;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) raise(it->first, path, "keys must be plain names");
      out.push_back(Entry{it->first.Scalar(), it->first, it->second});
    }
    return out;
  }

  double number(const YAML::Node& node, std::string_view field, std::string_view waveName,
                std::string_view path) const {
    double out = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, out) || !std::isfinite(out)) {
      raise(node, path,
            std::string(waveName) + " needs " + std::string(field) + " to be a finite number" +
                describe(node));
    }
    return out;
  }

  // ", got 'abc'" for a scalar, ", got a list" for anything else.
  static std::string describe(const YAML::Node& node) {
    if (node.IsScalar()) return ", got '" + node.Scalar() + "'";
    if (node.IsSequence()) return ", got a list";
    if (node.IsMap()) return ", got a mapping";
    return ", got nothing";
  }

  // A wave's fields, checked against the fields its kind allows.
  class Fields {
   public:
    Fields(const Parser& parser, const YAML::Node& node, std::string path, std::string wave)
        : parser_(parser), node_(node), path_(std::move(path)), wave_(std::move(wave)) {}

    void add(const Entry& entry) {
      for (const Entry& e : items_) {
        if (e.name == entry.name) parser_.raise(entry.key, path_, "duplicate field " + e.name);
      }
      items_.push_back(entry);
    }

    void allow(std::initializer_list<std::string_view> names) const {
      for (const Entry& e : items_) {
        if (e.name == "wave") continue;
        if (std::find(names.begin(), names.end(), e.name) != names.end()) continue;
        std::string allowed;
        for (auto n : names) {
          allowed += (allowed.empty() ? "" : ", ") + std::string(n);
        }
        parser_.raise(e.key, path_,
                      "unknown field '" + e.name + "' for wave " + wave_ + "; allowed: " + allowed);
      }
    }

    std::optional<YAML::Node> find(std::string_view name) const {
      for (const Entry& e : items_) {
        if (e.name == name) return e.value;
      }
      return std::nullopt;
    }

    YAML::Node require(std::string_view name) const {
      auto value = find(name);
      if (!value) parser_.raise(node_, path_, wave_ + " needs " + std::string(name));
      return *value;
    }

    double number(std::string_view name) const {
      return parser_.number(require(name), name, wave_, path_);
    }

    double numberOr(std::string_view name, double fallback) const {
      auto value = find(name);
      return value ? parser_.number(*value, name, wave_, path_) : fallback;
    }

    [[noreturn]] void raise(std::string_view name, const std::string& what) const {
      auto value = find(name);
      parser_.raise(value ? *value : node_, path_, what);
    }

   private:
    const Parser& parser_;
    YAML::Node node_;
    std::string path_;
    std::string wave_;
    std::vector<Entry> items_;
  };

  static std::string show(double v) {
    std::string s = std::to_string(v);
    // to_string always prints six decimals; trim them for readable messages.
    if (s.find('.') != std::string::npos) {
      while (s.back() == '0') {
        s.pop_back();
      }
      if (s.back() == '.') s.pop_back();
    }
    return s;
  }

  Wave parseWave(const YAML::Node& node, const std::string& path, int depth) const {
    if (++waves_ > kMaxWaves) {
      raise(node, path,
            "the profile expands to more than " + std::to_string(kMaxWaves) +
                " waves (every use of a YAML alias counts)");
    }
    if (!node.IsMap()) {
      raise(node, path, "expected a wave like {wave: constant, value: 0.5}" + describe(node));
    }
    std::optional<YAML::Node> waveNode;
    std::vector<Entry> items = entries(node, path);
    for (const Entry& e : items) {
      if (e.name == "wave" && !waveNode) waveNode.emplace(e.value);
    }
    if (!waveNode) {
      raise(node, path, "needs `wave:` (one of constant, sine, step, ramp, noise, square, sum)");
    }
    if (!waveNode->IsScalar()) {
      raise(*waveNode, path, "wave must be a name" + describe(*waveNode));
    }
    const std::string kind = waveNode->Scalar();
    Fields f(*this, node, path, kind);
    for (const Entry& e : items) {
      f.add(e);
    }

    if (kind == "constant") {
      f.allow({"value"});
      return Wave{ConstantWave{f.number("value")}};
    }
    if (kind == "sine") {
      f.allow({"mean", "amplitude", "periodSeconds", "phase"});
      SineWave w{f.number("mean"), f.number("amplitude"), f.number("periodSeconds"),
                 f.numberOr("phase", 0)};
      if (!(w.periodSeconds > 0)) {
        f.raise("periodSeconds", "sine needs periodSeconds > 0, got " + show(w.periodSeconds));
      }
      return Wave{w};
    }
    if (kind == "step") {
      f.allow({"from", "to", "atSeconds"});
      StepWave w{f.number("from"), f.number("to"), f.number("atSeconds")};
      if (!(w.atSeconds >= 0)) {
        f.raise("atSeconds", "step needs atSeconds >= 0, got " + show(w.atSeconds));
      }
      return Wave{w};
    }
    if (kind == "ramp") {
      f.allow({"from", "to", "overSeconds"});
      RampWave w{f.number("from"), f.number("to"), f.number("overSeconds")};
      if (!(w.overSeconds > 0)) {
        f.raise("overSeconds", "ramp needs overSeconds > 0, got " + show(w.overSeconds));
      }
      return Wave{w};
    }
    if (kind == "noise") {
      f.allow({"mean", "std", "seed"});
      NoiseWave w{f.number("mean"), f.number("std"), 0};
      if (!(w.std >= 0)) f.raise("std", "noise needs std >= 0, got " + show(w.std));
      YAML::Node seed = f.require("seed");
      if (!seed.IsScalar() || !YAML::convert<std::uint64_t>::decode(seed, w.seed)) {
        f.raise("seed", "noise needs seed to be an integer >= 0" + describe(seed));
      }
      return Wave{w};
    }
    if (kind == "square") {
      f.allow({"low", "high", "periodSeconds", "duty"});
      SquareWave w{f.number("low"), f.number("high"), f.number("periodSeconds"),
                   f.numberOr("duty", 0.5)};
      if (!(w.periodSeconds > 0)) {
        f.raise("periodSeconds", "square needs periodSeconds > 0, got " + show(w.periodSeconds));
      }
      if (!(w.duty >= 0 && w.duty <= 1)) {
        f.raise("duty", "square needs duty in [0,1], got " + show(w.duty));
      }
      return Wave{w};
    }
    if (kind == "sum") {
      f.allow({"of"});
      if (depth >= kMaxSumDepth) {
        raise(node, path, "sum nested deeper than " + std::to_string(kMaxSumDepth));
      }
      YAML::Node of = f.require("of");
      if (!of.IsSequence() || of.size() == 0) {
        f.raise("of", "sum needs `of:` to be a non-empty list of waves" + describe(of));
      }
      SumWave w;
      for (std::size_t i = 0; i < of.size(); ++i) {
        w.terms.push_back(parseWave(of[i], path + ".of[" + std::to_string(i) + "]", depth + 1));
      }
      return Wave{std::move(w)};
    }
    raise(*waveNode, path,
          "unknown wave '" + kind + "'; allowed: constant, sine, step, ramp, noise, square, sum");
  }

  std::string_view fileName_;
  mutable int waves_ = 0;  // waves parsed so far, aliases counted at every use
};

std::uint64_t splitMix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform double in (0,1] from the top 53 bits.
double unitInterval(std::uint64_t bits) {
  return (static_cast<double>(bits >> 11) + 1.0) * 0x1.0p-53;
}

// A standard normal draw that depends only on (seed, index): Box-Muller on two hashed words.
double gaussianAt(std::uint64_t seed, std::int64_t index) {
  std::uint64_t a = splitMix64(seed ^ splitMix64(static_cast<std::uint64_t>(index)));
  std::uint64_t b = splitMix64(a);
  double radius = std::sqrt(-2.0 * std::log(unitInterval(a)));
  return radius * std::cos(2.0 * std::numbers::pi * unitInterval(b));
}

struct WaveValue {
  double t;
  double operator()(const ConstantWave& w) const { return w.value; }
  double operator()(const SineWave& w) const {
    return w.mean + w.amplitude * std::sin(2.0 * std::numbers::pi * t / w.periodSeconds + w.phase);
  }
  double operator()(const StepWave& w) const { return t < w.atSeconds ? w.from : w.to; }
  double operator()(const RampWave& w) const {
    if (t <= 0) return w.from;
    if (t >= w.overSeconds) return w.to;
    return w.from + (w.to - w.from) * (t / w.overSeconds);
  }
  double operator()(const NoiseWave& w) const {
    if (w.std == 0) return w.mean;
    return w.mean + w.std * gaussianAt(w.seed, std::llround(t * 1000.0));
  }
  double operator()(const SquareWave& w) const {
    double cycle = t / w.periodSeconds;
    double fraction = cycle - std::floor(cycle);
    return fraction < w.duty ? w.high : w.low;
  }
  double operator()(const SumWave& w) const {
    double total = 0;
    for (const Wave& term : w.terms) {
      total += evaluateWave(term, t);
    }
    return total;
  }
};

}  // namespace

bool isKnownSignal(std::string_view name) {
  // A profile of more than 10,000 GPUs is a typo.
  const std::optional<SignalId> id = SignalId::parse(name);
  return id && id->gpu < 10000;
}

Result<Profile> parseProfile(std::string_view yamlText, std::string_view fileName) {
  Parser parser(fileName);
  try {
    YAML::Node root = YAML::Load(std::string(yamlText));
    return parser.parseRoot(root);
  } catch (const ProfileError& e) {
    return fail(e.message);
  } catch (const YAML::Exception& e) {
    return fail(parser.location(e.mark) + ": not a valid YAML profile: " + e.msg);
  } catch (const std::exception& e) {
    return fail(std::string(fileName) + ": cannot parse the profile: " + e.what());
  }
}

double evaluateWave(const Wave& wave, double tSeconds) {
  return std::visit(WaveValue{tSeconds}, wave.shape);
}

std::vector<Reading> evaluate(const Profile& profile, double tSeconds) {
  std::vector<Reading> out;
  out.reserve(profile.signals.size());
  for (const ProfileSignal& signal : profile.signals) {
    double v = evaluateWave(signal.wave, tSeconds);
    out.push_back(Reading{signal.name, std::isnan(v) ? 0.0 : std::clamp(v, 0.0, 1.0)});
  }
  return out;
}

}  // namespace pi0::substrates
