// PrometheusClient against a real Prometheus (started by prometheus_query_test.sh, which exports
// PI0_PROMETHEUS_URL), and against an address where nothing listens.
#include <doctest/doctest.h>

#include <cstdlib>

#include "metrics/prometheus_query.h"

using pi0::PrometheusClient;

namespace {
PrometheusClient prometheus() {
  const char* url = std::getenv("PI0_PROMETHEUS_URL");
  if (url == nullptr) FAIL("PI0_PROMETHEUS_URL is not set (run prometheus_query_test.sh)");
  auto client = PrometheusClient::create(url);
  REQUIRE(client);
  return *client;
}

std::string errorOf(const pi0::Result<double>& r) {
  REQUIRE_FALSE(r);
  return r.error().message;
}
}  // namespace

TEST_CASE("numbers from a scalar or a one-sample vector") {
  const auto p = prometheus();
  CHECK(*p.query("vector(42)") == 42.0);
  CHECK(*p.query("scalar(vector(0.25))") == 0.25);
  CHECK(*p.query("sum(vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\"))") == 3.0);
}

TEST_CASE("answers that are not one number say what to fix") {
  const auto p = prometheus();
  CHECK(errorOf(p.query("up{job=\"nothing\"}")).find("returned no samples") != std::string::npos);
  CHECK(errorOf(p.query("vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\")"))
            .find("returned 2 series; it must return one (aggregate it") != std::string::npos);
  CHECK(errorOf(p.query("sum(rate(")).find("bad_data") != std::string::npos);
  CHECK(errorOf(p.query("vector(0) / 0")).find("not a finite number") != std::string::npos);
  CHECK(errorOf(p.query("\"text\"")).find("returned a string, not a number") != std::string::npos);
}

TEST_CASE("a Prometheus that is not there, and bad URLs") {
  auto down = PrometheusClient::create("http://127.0.0.1:1", std::chrono::milliseconds(500));
  REQUIRE(down);
  const auto message = errorOf(down->query("vector(1)"));
  CHECK(message.find("Prometheus at http://127.0.0.1:1") != std::string::npos);
  CHECK(message.find("is it running and reachable?") != std::string::npos);
  CHECK_FALSE(PrometheusClient::create("https://prom:9090"));
  CHECK_FALSE(PrometheusClient::create("http://prom:99999"));
  CHECK_FALSE(PrometheusClient::create("http://:9090"));
  CHECK(PrometheusClient::create("http://prom:9090/prefix/"));
}
