#include "metrics/prometheus_query.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/url.h"

namespace pi0 {
namespace {

// A sample's value is a [time, "string"] pair.
Result<double> sampleValue(const nlohmann::json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string()) return fail("malformed sample");
  const std::string& text = pair[1].get_ref<const std::string&>();
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0') return fail("malformed sample value \"" + text + "\"");
  if (!std::isfinite(v)) return fail("the value is " + text + ", not a finite number");
  return v;
}

}  // namespace

Result<PrometheusClient> PrometheusClient::create(std::string url,
                                                  std::chrono::milliseconds timeout) {
  std::string_view rest(url);
  if (!rest.starts_with("http://")) {
    return fail("Prometheus URL \"" + url + "\" must start with http://");
  }
  rest.remove_prefix(7);
  const auto slash = rest.find('/');
  std::string_view hostPort = rest.substr(0, slash);
  std::string prefix = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (prefix.ends_with('/'))
    prefix.pop_back();
  const auto colon = hostPort.rfind(':');
  std::string host(hostPort.substr(0, colon));
  int port = 80;
  if (colon != std::string_view::npos) {
    const auto p = hostPort.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc{} || ptr != p.data() + p.size() || port <= 0 || port > 65535) {
      return fail("Prometheus URL \"" + url + "\" has an invalid port");
    }
  }
  if (host.empty()) return fail("Prometheus URL \"" + url + "\" has no host");
  return PrometheusClient(std::move(url), std::move(host), port, std::move(prefix), timeout);
}

Result<double> PrometheusClient::query(std::string_view promql) const {
  const std::string where = "Prometheus at " + url_;
  httplib::Client client(host_, port_);
  client.set_connection_timeout(timeout_);
  client.set_read_timeout(timeout_);
  client.set_url_encode(false);
  auto res = client.Get((prefix_ + "/api/v1/query?query=" + urlEncode(promql)).c_str());
  if (!res)
    return fail(where + ": " + httplib::to_string(res.error()) + " (is it running and reachable?)");
  auto body = nlohmann::json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object())
    return fail(where + ": HTTP " + std::to_string(res->status) + ", not a Prometheus API answer");
  if (body.value("status", "") != "success") {
    return fail(where + ": " + body.value("errorType", "error") + ": " +
                body.value("error", "unknown error"));
  }
  const auto data = body.value("data", nlohmann::json::object());
  const std::string type = data.value("resultType", "");
  const auto result = data.value("result", nlohmann::json());
  Result<double> value = fail("");
  if (type == "scalar") {
    value = sampleValue(result);
  } else if (type == "vector" && result.is_array()) {
    if (result.empty())
      return fail(where + ": the query \"" + std::string(promql) + "\" returned no samples");
    if (result.size() > 1) {
      return fail(where + ": the query \"" + std::string(promql) + "\" returned " +
                  std::to_string(result.size()) +
                  " series; it must return one (aggregate it, e.g. sum(...))");
    }
    value = sampleValue(result[0].value("value", nlohmann::json()));
  } else {
    return fail(where + ": the query \"" + std::string(promql) + "\" returned a " +
                (type.empty() ? "?" : type) + ", not a number");
  }
  if (!value)
    return fail(where + ": the query \"" + std::string(promql) + "\": " + value.error().message);
  return value;
}

}  // namespace pi0
