#include "fleet/feed.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "common/json_parse.h"
#include "common/json_reader.h"
#include "common/url.h"
#include "fleet/resource_view.h"

namespace pi0::fleet {
namespace {

using Json = nlohmann::json;
using WallClock = std::chrono::system_clock;

constexpr std::string_view kApiVersion = "stability.pi0.io/v1alpha1";
constexpr std::string_view kKind = "FleetFeed";

// --- Writing ------------------------------------------------------------------------------------

// Appends `v` with 6 significant digits: shortest form ("0.5", "1e-07").
void appendNumber(std::string& out, double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 6);
  out.append(buf, ec == std::errc() ? end : buf);
}

void appendOptional(std::string& out, const std::optional<double>& v) {
  if (v) {
    appendNumber(out, *v);
  } else {
    out += "null";
  }
}

// A JSON string, escaped as nlohmann escapes it.
void appendString(std::string& out, std::string_view text) {
  out += Json(text).dump();
}

std::int64_t unixMillis(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void appendSignal(std::string& out, const SignalFingerprint& s) {
  out += '[';
  appendNumber(out, s.current);
  out += ',';
  if (s.gates) {
    const SignalGates& g = *s.gates;
    out += '[';
    for (double v : {g.lambdaInt, g.lambda1, g.fitError, g.gluingDelta, g.isolation}) {
      appendNumber(out, v);
      out += ',';
    }
    out.back() = ']';
  } else {
    out += "null";
  }
  out += ',';
  if (s.forecast) {
    const SignalForecast& f = *s.forecast;
    out += '[';
    for (double v :
         {f.horizonSeconds, f.base, f.trendStart, f.trendPerSecond, f.noise, f.troubleLine}) {
      appendNumber(out, v);
      out += ',';
    }
    appendOptional(out, f.secondsToTrouble);
    out += ',';
    appendOptional(out, f.stallRate);
    out += ']';
  } else {
    out += "null";
  }
  out += ']';
}

// The record's fields after "node"; `fetchedAt` on the wall clock.
void appendRecord(std::string& out, const NodeStatus& status,
                  std::optional<WallClock::time_point> fetchedAt) {
  out += "{\"node\":";
  appendString(out, status.node);
  out += ",\"url\":";
  appendString(out, status.url);
  out += ",\"health\":";
  appendString(out, nodeHealthName(status.health));
  out += ",\"failures\":" + std::to_string(status.consecutiveFailures);
  out += ",\"error\":";
  appendString(out, status.lastError);
  const NodeFingerprint* fp = status.fingerprint.get();
  if (fp && fetchedAt) {
    out += ",\"fetchedAt\":" + std::to_string(unixMillis(*fetchedAt));
    out += ",\"sampledAt\":" + std::to_string(unixMillis(fp->timestamp));
    out += ",\"interval\":";
    appendNumber(out, fp->intervalSeconds);
    out += fp->ready ? ",\"ready\":true,\"fill\":" : ",\"ready\":false,\"fill\":";
    appendNumber(out, fp->windowFill);
    out += ",\"signals\":{";
    bool first = true;
    for (const auto& [name, s] : fp->signals) {
      if (!readByResourceView(name)) continue;
      if (!first) out += ',';
      first = false;
      appendString(out, name);
      out += ':';
      appendSignal(out, s);
    }
    out += '}';
    if (const auto& h = fp->history) {
      out += ",\"history\":[";
      out += h->troubled ? "1," : "0,";
      out += std::to_string(h->matches) + "," + std::to_string(h->troubleMatches) + ",";
      appendNumber(out, h->similarity);
      out += ',';
      appendString(out, h->matchNode);
      out += "," + std::to_string(unixMillis(h->matchAt)) + ",";
      appendString(out, h->matchLabel);
      out += ']';
    }
    out += '}';
  } else {
    out +=
        ",\"fetchedAt\":null,\"sampledAt\":null,\"interval\":1,\"ready\":false,\"fill\":0,"
        "\"signals\":{}}";
  }
}

std::string envelope(std::string_view epoch, std::uint64_t version, bool full,
                     WallClock::time_point sentAt) {
  std::string out = "{\"apiVersion\":\"" + std::string(kApiVersion) + "\",\"kind\":\"" +
                    std::string(kKind) + "\",\"epoch\":";
  appendString(out, epoch);
  out += ",\"version\":" + std::to_string(version);
  out += full ? ",\"full\":true" : ",\"full\":false";
  out += ",\"sentAt\":" + std::to_string(unixMillis(sentAt));
  return out;
}

// --- Reading ------------------------------------------------------------------------------------

// Reads a page, keeping the first problem with where it is.
class PageReader {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  void problem(const std::string& where, const std::string& what) {
    if (ok()) error_ = (where.empty() ? std::string() : where + ": ") + what;
  }

  const Json* member(const Json& object, const char* key, const std::string& where) {
    auto it = object.find(key);
    if (it == object.end()) {
      problem(where, std::string("missing ") + key);
      return nullptr;
    }
    return &*it;
  }

  // A finite number in [lo, hi].
  double number(const Json& v, const std::string& where, double lo, double hi) {
    if (!v.is_number()) {
      problem(where, json::typeName(v) + " where a number belongs");
      return lo;
    }
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      problem(where, v.dump() + " is out of range");
      return lo;
    }
    return d;
  }
  std::optional<double> nullableNumber(const Json& v, const std::string& where, double lo,
                                       double hi) {
    if (v.is_null()) return std::nullopt;
    return number(v, where, lo, hi);
  }

  // An array of exactly `n` elements.
  bool array(const Json& v, std::size_t n, const std::string& where) {
    if (!v.is_array() || v.size() != n) {
      problem(where, "not an array of " + std::to_string(n));
      return false;
    }
    return true;
  }

  std::string string(const Json& object, const char* key, const std::string& where) {
    const Json* v = member(object, key, where);
    if (!v) return {};
    if (!v->is_string()) {
      problem(where + "." + key, json::typeName(*v) + " where a string belongs");
      return {};
    }
    return v->get<std::string>();
  }

  std::int64_t integer(const Json& object, const char* key, const std::string& where) {
    const Json* v = member(object, key, where);
    if (!v) return 0;
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0) {
      problem(where + "." + key, v->dump() + " is not a whole number >= 0");
      return 0;
    }
    return v->get<std::int64_t>();
  }

 private:
  std::string error_;
};

SignalFingerprint readSignal(PageReader& r, const Json& v, const std::string& at) {
  SignalFingerprint s;
  if (!r.array(v, 3, at)) return s;
  s.current = r.number(v[0], at + "[0]", 0, 1);
  if (!v[1].is_null() && r.array(v[1], 5, at + "[1]")) {
    const Json& g = v[1];
    auto gate = [&](std::size_t i) {
      return r.number(g[i], at + "[1][" + std::to_string(i) + "]", 0, 1);
    };
    s.gates = SignalGates{gate(0), gate(1), gate(2), gate(3), gate(4)};
  }
  if (!v[2].is_null() && r.array(v[2], 8, at + "[2]")) {
    const Json& f = v[2];
    auto item = [&](std::size_t i) { return at + "[2][" + std::to_string(i) + "]"; };
    SignalForecast out;
    out.horizonSeconds = r.number(f[0], item(0), 0, HUGE_VAL);
    if (r.ok() && out.horizonSeconds <= 0) r.problem(item(0), "must be greater than 0");
    out.base = r.number(f[1], item(1), 0, 1);
    out.trendStart = r.number(f[2], item(2), 0, 1);
    out.trendPerSecond = r.number(f[3], item(3), 0, HUGE_VAL);
    out.noise = r.number(f[4], item(4), 0, HUGE_VAL);
    out.troubleLine = r.number(f[5], item(5), 0, 1);
    out.secondsToTrouble = r.nullableNumber(f[6], item(6), 0, HUGE_VAL);
    out.stallRate = r.nullableNumber(f[7], item(7), 0, 1);
    out.pressureNow = s.current;
    s.forecast = out;
  }
  return s;
}

std::optional<NodeHealth> healthNamed(std::string_view name) {
  for (NodeHealth h : {NodeHealth::kHealthy, NodeHealth::kSuspect, NodeHealth::kFailed}) {
    if (nodeHealthName(h) == name) return h;
  }
  return std::nullopt;
}

FeedPage::Node readRecord(PageReader& r, const Json& v, const std::string& at,
                          WallClock::time_point sentAt) {
  FeedPage::Node out;
  if (!v.is_object()) {
    r.problem(at, json::typeName(v) + " where an object belongs");
    return out;
  }
  NodeStatus& status = out.status;
  status.node = r.string(v, "node", at);
  if (r.ok() && status.node.empty()) r.problem(at + ".node", "empty");
  if (!r.ok()) return out;
  const std::string where = at + " (" + status.node + ")";
  status.url = r.string(v, "url", where);
  const std::string health = r.string(v, "health", where);
  if (!r.ok()) return out;
  if (auto h = healthNamed(health)) {
    status.health = *h;
  } else {
    r.problem(where + ".health", "\"" + health + "\" is not Healthy, Suspect or Failed");
  }
  status.consecutiveFailures = static_cast<int>(
      std::min<std::int64_t>(r.integer(v, "failures", where), std::numeric_limits<int>::max()));
  status.lastError = r.string(v, "error", where);
  const Json* fetched = r.member(v, "fetchedAt", where);
  const Json* sampled = r.member(v, "sampledAt", where);
  if (!r.ok() || fetched->is_null()) return out;

  auto fp = std::make_shared<NodeFingerprint>();
  fp->node = status.node;
  const std::int64_t fetchedMs = r.integer(v, "fetchedAt", where);
  const std::int64_t sampledMs = r.integer(v, "sampledAt", where);
  if (!r.ok() || !sampled) return out;
  fp->timestamp = WallClock::time_point(std::chrono::milliseconds(sampledMs));
  const auto fetchedAt = WallClock::time_point(std::chrono::milliseconds(fetchedMs));
  out.age = std::max(WallClock::duration::zero(), sentAt - fetchedAt);
  if (const Json* interval = r.member(v, "interval", where)) {
    fp->intervalSeconds = r.number(*interval, where + ".interval", 0, HUGE_VAL);
    if (r.ok() && fp->intervalSeconds <= 0)
      r.problem(where + ".interval", "must be greater than 0");
  }
  if (const Json* ready = r.member(v, "ready", where)) {
    if (ready->is_boolean()) {
      fp->ready = ready->get<bool>();
    } else {
      r.problem(where + ".ready", json::typeName(*ready) + " where a boolean belongs");
    }
  }
  if (const Json* fill = r.member(v, "fill", where))
    fp->windowFill = r.number(*fill, where + ".fill", 0, 1);
  const Json* signals = r.member(v, "signals", where);
  if (!r.ok()) return out;
  if (!signals->is_object()) {
    r.problem(where + ".signals", json::typeName(*signals) + " where an object belongs");
    return out;
  }
  for (const auto& [name, s] : signals->items()) {
    fp->signals.emplace(name, readSignal(r, s, where + ".signals." + name));
    if (!r.ok()) return out;
  }
  if (auto h = v.find("history"); h != v.end()) {
    const std::string hw = where + ".history";
    if (!h->is_array() || h->size() != 7 || !(*h)[4].is_string() || !(*h)[6].is_string()) {
      r.problem(hw, "not [troubled, matches, troubleMatches, similarity, node, at, label]");
      return out;
    }
    HistoryVerdict verdict;
    verdict.troubled = r.number((*h)[0], hw + "[0]", 0, 1) != 0;
    verdict.matches = static_cast<int>(r.number((*h)[1], hw + "[1]", 0, 1e9));
    verdict.troubleMatches = static_cast<int>(r.number((*h)[2], hw + "[2]", 0, 1e9));
    verdict.similarity = r.number((*h)[3], hw + "[3]", -1, 1);
    verdict.matchNode = (*h)[4].get<std::string>();
    verdict.matchAt = WallClock::time_point(std::chrono::milliseconds(
        static_cast<std::int64_t>(r.number((*h)[5], hw + "[5]", 0, 1e15))));
    verdict.matchLabel = (*h)[6].get<std::string>();
    if (!r.ok()) return out;
    fp->history = std::move(verdict);
  }
  status.fingerprint = std::move(fp);
  return out;
}

std::string randomEpoch() {
  std::random_device device;
  std::mt19937_64 rng(device());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// "epoch=E&since=V" into its parts; either may be missing.
struct Query {
  std::string epoch;
  std::optional<std::uint64_t> since;
};

Result<Query> parseQuery(std::string_view query) {
  auto params = queryParams(query);
  if (!params) return fail(params.error().message);
  Query q;
  for (const auto& [key, value] : *params) {
    if (key == "epoch") {
      q.epoch = value;
    } else if (key == "since") {
      std::uint64_t v = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty())
        return fail("since: \"" + value + "\" is not a version (a whole number)");
      q.since = v;
    } else if (!key.empty()) {
      return fail("unknown parameter \"" + key + "\" (epoch and since are known)");
    }
  }
  return q;
}

}  // namespace

std::string feedRecord(const NodeStatus& status, Clock::time_point clockNow,
                       WallClock::time_point wallNow) {
  std::optional<WallClock::time_point> fetchedAt;
  if (status.fetchedAt)
    fetchedAt =
        wallNow - std::chrono::duration_cast<WallClock::duration>(clockNow - *status.fetchedAt);
  std::string out;
  appendRecord(out, status, fetchedAt);
  return out;
}

std::string toJson(const FeedPage& page) {
  std::string out = envelope(page.epoch, page.version, page.full, page.sentAt);
  out += ",\"nodes\":[";
  for (const FeedPage::Node& node : page.nodes) {
    std::optional<WallClock::time_point> fetchedAt;
    if (node.age) fetchedAt = page.sentAt - *node.age;
    appendRecord(out, node.status, fetchedAt);
    out += ',';
  }
  if (out.back() == ',') out.pop_back();
  out += "],\"removed\":[";
  for (const std::string& name : page.removed) {
    appendString(out, name);
    out += ',';
  }
  if (out.back() == ',') out.pop_back();
  out += "]}";
  return out;
}

Result<FeedPage> parseFeedPage(std::string_view body) {
  const auto parsed = json::parse(body);
  if (!parsed) return fail("not JSON: " + parsed.error().message);
  const Json& doc = *parsed;
  if (!doc.is_object()) return fail("feed: " + json::typeName(doc) + " where an object belongs");
  PageReader r;
  FeedPage page;
  const std::string apiVersion = r.string(doc, "apiVersion", "feed");
  const std::string kind = r.string(doc, "kind", "feed");
  if (!r.ok()) return fail(r.error());
  if (apiVersion != kApiVersion || kind != kKind)
    return fail("feed: " + apiVersion + " " + kind + ", not " + std::string(kApiVersion) + " " +
                std::string(kKind));
  page.epoch = r.string(doc, "epoch", "feed");
  const std::int64_t version = r.integer(doc, "version", "feed");
  const Json* full = r.member(doc, "full", "feed");
  const std::int64_t sentAt = r.integer(doc, "sentAt", "feed");
  const Json* nodes = r.member(doc, "nodes", "feed");
  const Json* removed = r.member(doc, "removed", "feed");
  if (!r.ok()) return fail(r.error());
  if (!full->is_boolean())
    return fail("feed.full: " + json::typeName(*full) + " where a boolean belongs");
  if (!nodes->is_array())
    return fail("feed.nodes: " + json::typeName(*nodes) + " where an array belongs");
  if (!removed->is_array())
    return fail("feed.removed: " + json::typeName(*removed) + " where an array belongs");
  page.version = static_cast<std::uint64_t>(version);
  page.full = full->get<bool>();
  page.sentAt = WallClock::time_point(std::chrono::milliseconds(sentAt));
  page.nodes.reserve(nodes->size());
  for (std::size_t i = 0; i < nodes->size(); ++i) {
    page.nodes.push_back(
        readRecord(r, (*nodes)[i], "nodes[" + std::to_string(i) + "]", page.sentAt));
    if (!r.ok()) return fail(r.error());
  }
  for (std::size_t i = 0; i < removed->size(); ++i) {
    const Json& name = (*removed)[i];
    if (!name.is_string() || name.get<std::string>().empty())
      return fail("removed[" + std::to_string(i) + "]: not a node name");
    page.removed.push_back(name.get<std::string>());
  }
  return page;
}

void applyFeedPage(FleetView& view, const FeedPage& page, Clock::time_point now) {
  std::vector<NodeStatus> statuses;
  statuses.reserve(page.nodes.size());
  for (const FeedPage::Node& node : page.nodes) {
    NodeStatus status = node.status;
    if (node.age && status.fingerprint)
      status.fetchedAt = now - std::chrono::duration_cast<Clock::duration>(*node.age);
    statuses.push_back(std::move(status));
  }
  view.applyStatuses(std::move(statuses), page.removed, page.full);
}

FeedPublisher::FeedPublisher(FleetView& view, Clock& clock, FeedPublisherOptions options)
    : view_(view), clock_(clock), options_(options), epoch_(randomEpoch()) {}

void FeedPublisher::refreshLocked() {
  const Clock::time_point now = clock_.now();
  if (refreshedAt_ && now - *refreshedAt_ < options_.refreshEvery) return;
  refreshedAt_ = now;
  std::shared_ptr<const FleetSnapshot> snapshot = view_.snapshot();
  if (snapshot == taken_) return;
  const WallClock::time_point wallNow = WallClock::now();
  const std::uint64_t next = version_ + 1;
  bool changed = false;
  // Both in name order: one walk, a pointer comparison per unchanged node.
  auto it = nodes_.begin();
  // Removes the published nodes before `name` (every one left: nullptr), gone from the view.
  auto removeBefore = [&](const std::string* name) {
    while (it != nodes_.end() && (!name || it->first < *name)) {
      removed_.emplace_back(next, it->first);
      it = nodes_.erase(it);
      changed = true;
    }
  };
  for (const auto& status : snapshot->nodes()) {
    removeBefore(&status->node);
    if (it == nodes_.end() || it->first != status->node)
      it = nodes_.emplace_hint(it, status->node, Published{});
    else if (it->second.status == status) {
      ++it;
      continue;
    }
    Published& p = it->second;
    p.status = status;
    p.record = feedRecord(*status, now, wallNow);
    p.version = next;
    changed = true;
    ++it;
  }
  removeBefore(nullptr);
  if (removed_.size() > options_.removalsKept) {
    const std::size_t drop = removed_.size() - options_.removalsKept;
    removalsFrom_ = removed_[drop - 1].first;
    removed_.erase(removed_.begin(), removed_.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  taken_ = std::move(snapshot);
  if (changed) version_ = next;
}

FeedPublisher::Answer FeedPublisher::answer(std::string_view query) {
  const auto q = parseQuery(query);
  if (!q) return Answer{400, q.error().message + "\n"};
  std::lock_guard lock(mu_);
  refreshLocked();
  // A delta needs this epoch, a version not ahead of ours, and every removal since it kept.
  const bool full =
      !q->since || q->epoch != epoch_ || *q->since > version_ || *q->since < removalsFrom_;
  const std::uint64_t since = full ? 0 : *q->since;
  Answer a;
  a.full = full;
  a.body = envelope(epoch_, version_, full, WallClock::now());
  a.body += ",\"nodes\":[";
  for (const auto& [name, p] : nodes_) {
    if (!full && p.version <= since) continue;
    a.body += p.record;
    a.body += ',';
    ++a.nodes;
  }
  if (a.body.back() == ',') a.body.pop_back();
  a.body += "],\"removed\":[";
  if (!full) {
    for (const auto& [version, name] : removed_) {
      if (version <= since || nodes_.contains(name)) continue;  // gone, then back
      appendString(a.body, name);
      a.body += ',';
    }
  }
  if (a.body.back() == ',') a.body.pop_back();
  a.body += "]}";
  return a;
}

}  // namespace pi0::fleet
