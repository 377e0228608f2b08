// What Pi0's servers (HttpServer over plain HTTP, HttpsServer over TLS) route: a request as a
// handler sees it, its response, and the table of handlers by path and method.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace pi0 {
class Probes;
}

namespace pi0::net {

// What a handler sees of a request. The views are valid during the handler's call only.
struct HttpRequest {
  std::string_view method;  // "GET", "POST", ...
  std::string_view path;    // the target without its query
  std::string_view body;
  int remotePort = 0;
  std::string_view query;  // the target after its '?', e.g. "detail=spectra"; empty when none
  // The Authorization header's value as received ("Bearer eyJ..."); empty when none. Last, so
  // that aggregate initializations written before it stay valid.
  std::string_view authorization;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string contentType = "text/plain";
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// The server's routes: a path answers the methods registered for it (others: 405 with Allow);
// an unknown path answers 404. HEAD is not routed (405).
class Routes {
 public:
  void get(std::string path, HttpHandler handler);
  void post(std::string path, HttpHandler handler);

  // The handler for `method` on `path`, or null; `allow` receives the path's methods (", "-
  // separated) when the path is known.
  const HttpHandler* find(std::string_view method, std::string_view path, std::string* allow) const;

  // Every route, in path order.
  void forEach(const std::function<void(std::string_view method, const std::string& path,
                                        const HttpHandler& handler)>& visit) const;

 private:
  std::map<std::string, std::map<std::string, HttpHandler, std::less<>>, std::less<>> byPath_;
};

// GET /healthz and GET /readyz answered from `probes`: 200 "ok\n", or 503 with why not and a
// line break. `probes` must outlive the server.
void addProbes(Routes& routes, const Probes& probes);

}  // namespace pi0::net
