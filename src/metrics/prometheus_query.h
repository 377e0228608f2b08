// Instant queries against Prometheus's HTTP API (GET /api/v1/query), for a Channel's throughput
// term and a ShutdownMatrix's load signal: a PromQL expression that must evaluate to exactly one
// number. Every way that can fail (Prometheus down or slow, a PromQL error, no series, several
// series, NaN) is an error value whose message says what to fix.
//
// Thread-safety: query() may be called from several threads at once (one connection each).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pi0 {

class PrometheusClient {
 public:
  // `url`: "http://HOST:PORT" with an optional path prefix ("http://monitoring:9090/prom").
  static Result<PrometheusClient> create(
      std::string url, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // The value of `promql` now: a scalar, or an instant vector of exactly one sample.
  Result<double> query(std::string_view promql) const;

  const std::string& url() const { return url_; }

 private:
  PrometheusClient(std::string url, std::string host, int port, std::string prefix,
                   std::chrono::milliseconds timeout)
      : url_(std::move(url)),
        host_(std::move(host)),
        port_(port),
        prefix_(std::move(prefix)),
        timeout_(timeout) {}

  std::string url_;
  std::string host_;
  int port_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

}  // namespace pi0
