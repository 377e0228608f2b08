#include "agent/http_server.h"

#include <optional>
#include <string_view>

#include "metrics/exposition.h"

namespace pi0::agent {
namespace {

// GET /fingerprint's query: "detail=spectra" asks for the spectra too, "detail=resources" only
// what admission reads; no detail, the summary. nullopt for a detail of another value.
std::optional<fleet::FingerprintDetail> detailOf(std::string_view query) {
  std::optional<fleet::FingerprintDetail> detail = fleet::FingerprintDetail::kSummary;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == query.npos ? std::string_view() : query.substr(amp + 1);
    if (!param.starts_with("detail=")) continue;
    if (param == "detail=spectra") {
      detail = fleet::FingerprintDetail::kSpectra;
    } else if (param == "detail=resources") {
      detail = fleet::FingerprintDetail::kResources;
    } else {
      return std::nullopt;
    }
  }
  return detail;
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::create(const ListenAddress& address,
                                                       const Collector& collector,
                                                       AgentMetrics& metrics,
                                                       std::function<bool()> alive) {
  std::unique_ptr<HttpServer> self(new HttpServer());
  self->probes_.addLiveness(
      [alive = std::move(alive)] { return alive() ? "" : "sampling loop stalled"; });
  self->probes_.addReadiness([&collector]() -> std::string {
    auto snapshot = collector.snapshot();
    const fleet::NodeFingerprint& fp = snapshot->fingerprint();
    if (fp.ready) return "";
    return "window " + std::to_string(static_cast<int>(fp.windowFill * 100)) + "% full";
  });

  auto registry = metrics.sharedRegistry();
  auto routes = [&](net::Routes& r) {
    r.get("/metrics", [registry](const net::HttpRequest&) {
      return net::HttpResponse{200, metrics::renderText(*registry),
                               std::string(metrics::kTextContentType)};
    });
    r.get("/fingerprint", [&collector, &metrics](const net::HttpRequest& request) {
      const auto detail = detailOf(request.query);
      if (!detail)
        return net::HttpResponse{400, "detail: only 'spectra' and 'resources' are known\n"};
      metrics.countFingerprintRequest();
      auto snapshot = collector.snapshot();
      return net::HttpResponse{200, snapshot->body(*detail), "application/json"};
    });
    net::addProbes(r, self->probes_);
  };
  // A small pool keeps the agent's memory small; its readers (Prometheus, the operator leader,
  // and with the fleet feed off every operator and webhook replica) and kubelet's probes share
  // it, one request per connection.
  auto server = net::HttpServer::create({"HTTP", address, 4}, routes);
  if (!server) return fail(server.error().message);
  self->server_ = std::move(*server);
  return self;
}

}  // namespace pi0::agent
