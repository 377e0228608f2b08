#include "net/routes.h"

#include "common/runner.h"

namespace pi0::net {

void Routes::get(std::string path, HttpHandler handler) {
  byPath_[std::move(path)]["GET"] = std::move(handler);
}

void Routes::post(std::string path, HttpHandler handler) {
  byPath_[std::move(path)]["POST"] = std::move(handler);
}

const HttpHandler* Routes::find(std::string_view method, std::string_view path,
                                std::string* allow) const {
  auto it = byPath_.find(path);
  if (it == byPath_.end()) return nullptr;
  if (auto m = it->second.find(method); m != it->second.end()) return &m->second;
  if (allow != nullptr) {
    allow->clear();
    for (const auto& [name, unused] : it->second)
      *allow += (allow->empty() ? "" : ", ") + name;
  }
  return nullptr;
}

void Routes::forEach(const std::function<void(std::string_view method, const std::string& path,
                                              const HttpHandler& handler)>& visit) const {
  for (const auto& [path, methods] : byPath_) {
    for (const auto& [method, handler] : methods)
      visit(method, path, handler);
  }
}

namespace {

HttpResponse probeAnswer(const Probes::Answer& answer) {
  if (answer.ok) return HttpResponse{200, "ok\n"};
  return HttpResponse{503, answer.why + "\n"};
}

}  // namespace

void addProbes(Routes& routes, const Probes& probes) {
  routes.get("/healthz", [&probes](const HttpRequest&) { return probeAnswer(probes.live()); });
  routes.get("/readyz", [&probes](const HttpRequest&) { return probeAnswer(probes.ready()); });
}

}  // namespace pi0::net
