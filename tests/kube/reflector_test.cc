// The reflector (kube/reflector.h) against FakeApiServer: lists again after 410 Gone, and
// watches again from the last version seen after a dropped connection.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "fake_server_helpers.h"
#include "fakes/fake_apiserver.h"
#include "fakes/fake_clock.h"
#include "kube/client.h"
#include "kube/reflector.h"
#include "kube/store.h"

using namespace pi0;
using namespace pi0::kube;
using namespace pi0::testing;

TEST_CASE("the reflector lists again after 410 and its store matches the new list") {
  FakeApiServer fake;
  std::atomic<int> lists{0};
  std::atomic<bool> stopStreaming{false};
  fake.server().Get("/api/v1/namespaces/ns/configmaps", [&](const httplib::Request& req,
                                                            httplib::Response& res) {
    if (req.get_param_value("watch") != "true") {
      const int n = ++lists;
      CHECK(req.get_param_value("resourceVersion") == (n == 1 ? "0" : ""));  // "" after a 410
      if (n == 1) {
        res.set_content(listBody({configMap("a", "10"), configMap("b", "10")}, "10"),
                        "application/json");
      } else {
        res.set_content(listBody({configMap("b", "20"), configMap("c", "20")}, "20"),
                        "application/json");
      }
      return;
    }
    const std::string from = req.get_param_value("resourceVersion");
    res.set_chunked_content_provider("application/json", [&, from](std::size_t,
                                                                   httplib::DataSink& sink) {
      if (from == "10") {
        std::string s = Json{{"type", "MODIFIED"}, {"object", configMap("a", "11")}}.dump() + "\n";
        s +=
            R"({"type":"ERROR","object":{"kind":"Status","reason":"Expired","code":410,"message":"too old"}})"
            "\n";
        sink.write(s.data(), s.size());
        sink.done();
        return true;
      }
      // After the relist: hold the watch open until the test ends.
      while (!stopStreaming)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      sink.done();
      return true;
    });
  });
  fake.start();
  auto client = clientFor(fake);
  Store store;
  Reflector reflector(*client, resources::kConfigMaps, "ns", store);
  std::jthread run([&](std::stop_token stop) { reflector.run(stop); });
  for (int i = 0; i < 2000 && lists < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (int i = 0; i < 2000 && store.get("ns/c") == nullptr; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(lists == 2);
  CHECK(reflector.counters().relistsAfterGone == 1);
  CHECK(store.get("ns/a") == nullptr);  // gone in the new list
  REQUIRE(store.get("ns/c") != nullptr);
  CHECK(store.size() == 2);
  CHECK(reflector.lastResourceVersion() == "20");
  stopStreaming = true;
  run.request_stop();
}

TEST_CASE("after a dropped connection the reflector watches again from the last version seen") {
  FakeApiServer fake;
  std::atomic<int> lists{0};
  std::atomic<int> watches{0};
  std::atomic<bool> stopStreaming{false};
  std::mutex mu;
  std::vector<std::string> watchedFrom;
  fake.server().Get(
      "/api/v1/namespaces/ns/configmaps", [&](const httplib::Request& req, httplib::Response& res) {
        if (req.get_param_value("watch") != "true") {
          ++lists;
          res.set_content(listBody({configMap("a", "10")}, "10"), "application/json");
          return;
        }
        {
          std::lock_guard lock(mu);
          watchedFrom.push_back(req.get_param_value("resourceVersion"));
        }
        const int n = ++watches;
        res.set_chunked_content_provider(
            "application/json", [&, n](std::size_t, httplib::DataSink& sink) {
              if (n == 1) {
                const std::string s =
                    Json{{"type", "MODIFIED"}, {"object", configMap("a", "11")}}.dump() + "\n";
                sink.write(s.data(), s.size());
                return false;  // the connection breaks: no end of the chunked stream
              }
              while (!stopStreaming)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
              sink.done();
              return true;
            });
      });
  fake.start();
  auto client = clientFor(fake);
  Store store;
  Reflector reflector(*client, resources::kConfigMaps, "ns", store);
  std::jthread run([&](std::stop_token stop) { reflector.run(stop); });
  for (int i = 0; i < 2000 && watches < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(watches == 2);
  CHECK(lists == 1);  // resumed, not listed again
  {
    std::lock_guard lock(mu);
    CHECK(watchedFrom == std::vector<std::string>{"10", "11"});
  }
  REQUIRE(store.get("ns/a") != nullptr);
  CHECK((*store.get("ns/a"))["metadata"]["resourceVersion"] == "11");
  CHECK(reflector.counters().failures == 1);
  stopStreaming = true;
  run.request_stop();
}
