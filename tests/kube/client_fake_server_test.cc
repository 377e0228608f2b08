// The client's behaviour on answers that only a stand-in server can produce on demand
// (FakeApiServer, named as such). The same operations against the real apiserver are in the
// end-to-end tests.
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

TEST_CASE("a paged list follows continue tokens, and lists again unpaged when one expires") {
  FakeApiServer fake;
  std::atomic<bool> expire{false};
  fake.server().Get(
      "/api/v1/namespaces/ns/configmaps", [&](const httplib::Request& req, httplib::Response& res) {
        const auto cont = req.get_param_value("continue");
        if (req.get_param_value("limit").empty()) {
          res.set_content(
              listBody({configMap("a", "9"), configMap("b", "9"), configMap("c", "9")}, "9"),
              "application/json");
        } else if (cont.empty()) {
          res.set_content(listBody({configMap("a", "7")}, "7", "page2"), "application/json");
        } else if (expire) {
          status(res, 410, "Expired", "The provided continue parameter is too old");
        } else if (cont == "page2") {
          res.set_content(listBody({configMap("b", "7")}, "7", "page3"), "application/json");
        } else {
          res.set_content(listBody({configMap("c", "7")}, "7"), "application/json");
        }
      });
  fake.start();
  auto client = clientFor(fake);

  auto list = client->list(resources::kConfigMaps, "ns", paged(1));
  REQUIRE(list);
  CHECK(list->items.size() == 3);
  CHECK(list->resourceVersion == "7");
  CHECK(list->items[2]["metadata"]["name"] == "c");
  CHECK(fake.requests().size() == 3);

  expire = true;
  auto fallback = client->list(resources::kConfigMaps, "ns", paged(1));
  REQUIRE(fallback);
  CHECK(fallback->items.size() == 3);
  CHECK(fallback->resourceVersion == "9");
}

TEST_CASE("a paged list transforms each page's items as the page arrives") {
  FakeApiServer fake;
  std::atomic<int> pages{0};
  std::atomic<int> transformedBeforePage2{-1};
  std::atomic<int> transformed{0};
  fake.server().Get(
      "/api/v1/namespaces/ns/configmaps", [&](const httplib::Request& req, httplib::Response& res) {
        if (req.get_param_value("watch") == "true") {  // not this test's subject
          status(res, 503, "ServiceUnavailable", "no watch here");
          return;
        }
        // Paged, consistent reads only: what a reflector with listFromWatchCache false asks.
        CHECK(req.get_param_value("limit") == "1");
        CHECK(req.get_param_value("resourceVersion").empty());
        if (++pages == 2) transformedBeforePage2 = transformed.load();
        if (req.get_param_value("continue").empty()) {
          res.set_content(listBody({configMap("a", "7")}, "7", "next"), "application/json");
        } else {
          // As a real apiserver lists built-in types: items without apiVersion and kind.
          Json bare = configMap("b", "7");
          bare.erase("apiVersion");
          bare.erase("kind");
          res.set_content(listBody({bare}, "7"), "application/json");
        }
      });
  fake.start();
  auto client = clientFor(fake);
  Store store([&](Json& item) {
    ++transformed;
    item["data"] = Json::object();  // what a trimming cache would do
    item["trimmed"] = true;
  });
  ReflectorOptions options;
  options.pageSize = 1;
  options.listFromWatchCache = false;
  Reflector reflector(*client, resources::kConfigMaps, "ns", store, options);
  std::jthread run([&](std::stop_token stop) { reflector.run(stop); });
  REQUIRE(store.waitForSync({}, std::chrono::seconds(10)));
  run.request_stop();
  CHECK(pages >= 2);
  CHECK(transformedBeforePage2 == 1);  // page 1's item before page 2 was asked for
  CHECK(transformed == 2);             // once each: replace() does not transform again
  REQUIRE(store.get("ns/b") != nullptr);
  CHECK((*store.get("ns/b"))["trimmed"] == true);
  // The cache names the type, so that an Event's reference to the object is complete.
  CHECK((*store.get("ns/b"))["kind"] == "ConfigMap");
  CHECK((*store.get("ns/b"))["apiVersion"] == "v1");
}

TEST_CASE("429 with Retry-After is retried; other errors are not") {
  FakeApiServer fake;
  std::atomic<int> calls{0};
  fake.server().Get("/api/v1/namespaces/ns/configmaps/x",
                    [&](const httplib::Request&, httplib::Response& res) {
                      if (calls++ == 0) {
                        status(res, 429, "TooManyRequests", "slow down");
                        res.set_header("Retry-After", "1");
                      } else {
                        res.set_content(configMap("x", "1").dump(), "application/json");
                      }
                    });
  fake.server().Get("/api/v1/namespaces/ns/configmaps/y",
                    [&](const httplib::Request&, httplib::Response& res) {
                      status(res, 500, "InternalError", "boom");
                    });
  fake.start();
  auto client = clientFor(fake);
  auto x = client->get(resources::kConfigMaps, "ns", "x");
  REQUIRE(x);
  CHECK(calls == 2);
  auto y = client->get(resources::kConfigMaps, "ns", "y");
  REQUIRE_FALSE(y);
  CHECK(y.error().reason == Reason::kInternalError);
  CHECK(y.error().message == "boom");
}

TEST_CASE("Retry-After waits on the client's clock") {
  FakeApiServer fake;
  std::atomic<int> calls{0};
  fake.server().Get("/api/v1/namespaces/ns/configmaps/x",
                    [&](const httplib::Request&, httplib::Response& res) {
                      if (calls++ == 0) {
                        status(res, 429, "TooManyRequests", "slow down");
                        res.set_header("Retry-After", "7");
                      } else {
                        res.set_content(configMap("x", "1").dump(), "application/json");
                      }
                    });
  fake.start();
  FakeClock clock;
  auto client = Client::create(fake.config(), clock);
  REQUIRE(client);
  std::atomic<bool> answered{false};
  std::jthread asker([&] {
    CHECK((*client)->get(resources::kConfigMaps, "ns", "x"));
    answered = true;
  });
  // The retry sleeps on the clock for the 7 s the server asked, and no longer than that.
  CHECK(clock.awaitSleeper(clock.now() + std::chrono::seconds(7), std::chrono::seconds(5)));
  CHECK(calls == 1);
  CHECK_FALSE(answered);
  clock.advance(std::chrono::seconds(7));
  asker.join();
  CHECK(answered);
  CHECK(calls == 2);
}

TEST_CASE("a conflict is retried by reading again; the mutation sees the new object") {
  FakeApiServer fake;
  std::atomic<int> puts{0};
  std::atomic<int> version{1};
  std::atomic<bool> alwaysConflict{false};
  fake.server().Get(
      "/api/v1/namespaces/ns/configmaps/x", [&](const httplib::Request&, httplib::Response& res) {
        res.set_content(configMap("x", std::to_string(version.load())).dump(), "application/json");
      });
  fake.server().Put("/api/v1/namespaces/ns/configmaps/x", [&](const httplib::Request& req,
                                                              httplib::Response& res) {
    ++puts;
    auto body = Json::parse(req.body);
    if (alwaysConflict) {
      status(res, 409, "Conflict", "again");
      return;
    }
    if (body["metadata"]["resourceVersion"] != std::to_string(version.load()) || puts == 1) {
      version = 2;  // someone else wrote in between
      status(res, 409, "Conflict", "the object has been modified");
      return;
    }
    res.set_content(body.dump(), "application/json");
  });
  fake.start();
  auto client = clientFor(fake);
  std::vector<std::string> seen;
  auto result = client->modify(resources::kConfigMaps, "ns", "x", [&](Json& cm) {
    seen.push_back(cm["metadata"]["resourceVersion"]);
    cm["data"]["k"] = "v";
    return true;
  });
  REQUIRE(result);
  CHECK(seen == std::vector<std::string>{"1", "2"});
  CHECK((*result)["data"]["k"] == "v");

  // Conflicts on every try give up after the configured number of tries.
  puts = 0;
  alwaysConflict = true;
  auto exhausted = client->modify(
      resources::kConfigMaps, "ns", "x", [](Json&) { return true; }, Subresource::kNone,
      ConflictRetry{3, std::chrono::milliseconds(10), 0.1});
  REQUIRE_FALSE(exhausted);
  CHECK(isConflict(exhausted.error()));
  CHECK(puts == 3);
}

TEST_CASE("watch events arrive whole whatever the chunk sizes; ERROR 410 ends the watch as Gone") {
  std::string stream;
  for (int i = 1; i <= 20; ++i) {
    stream +=
        Json{{"type", i == 1 ? "ADDED" : "MODIFIED"}, {"object", configMap("w", std::to_string(i))}}
            .dump() +
        "\n";
  }
  stream +=
      R"j({"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410,"message":"too old resource version: 1 (30)"}})j"
      "\n";
  FakeApiServer fake;
  std::atomic<std::size_t> chunk{1};
  fake.server().Get(
      "/api/v1/namespaces/ns/configmaps", [&](const httplib::Request&, httplib::Response& res) {
        const std::size_t step = chunk;
        res.set_chunked_content_provider(
            "application/json", [&stream, step](std::size_t offset, httplib::DataSink& sink) {
              if (offset >= stream.size()) {
                sink.done();
                return true;
              }
              const auto n = std::min(step, stream.size() - offset);
              sink.write(stream.data() + offset, n);
              return true;
            });
      });
  fake.start();
  auto client = clientFor(fake);
  for (std::size_t step : {1, 3, 7, 64, 1000, 100000}) {
    CAPTURE(step);
    chunk = step;
    std::vector<std::string> versions;
    auto result =
        client->watch(resources::kConfigMaps, "ns", watchFrom("0", 60), [&](WatchEvent&& e) {
          versions.push_back(e.object["metadata"]["resourceVersion"]);
          return true;
        });
    REQUIRE_FALSE(result);
    CHECK(isGone(result.error()));
    REQUIRE(versions.size() == 20);
    CHECK(versions.front() == "1");
    CHECK(versions.back() == "20");
  }
  const auto last = fake.requests().back();
  CHECK(last.query.find("watch=true") != std::string::npos);
  CHECK(last.query.find("allowWatchBookmarks=true") != std::string::npos);
  CHECK(last.query.find("timeoutSeconds=60") != std::string::npos);
}

TEST_CASE("a 401 makes the client read the token file again") {
  FakeApiServer fake;
  fake.server().Get("/version", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != "Bearer new") {
      status(res, 401, "Unauthorized", "Unauthorized");
      return;
    }
    res.set_content(R"({"gitVersion":"v1.20.2"})", "application/json");
  });
  fake.start();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pi0-token-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "old\n";
  auto config = fake.config();
  config.tokenFile = dir / "token";
  auto client = Client::create(config);
  REQUIRE(client);
  auto first = (*client)->serverVersion();
  REQUIRE_FALSE(first);
  CHECK(first.error().reason == Reason::kUnauthorized);
  std::ofstream(dir / "token", std::ios::trunc) << "new\n";  // the kubelet rotated it
  auto second = (*client)->serverVersion();
  REQUIRE(second);
  CHECK((*second)["gitVersion"] == "v1.20.2");
  std::filesystem::remove_all(dir);
}

TEST_CASE("the token file is read again a minute after the last read, on the client's clock") {
  FakeApiServer fake;
  fake.server().Get("/version", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"gitVersion":"v1.20.2"})", "application/json");
  });
  fake.start();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pi0-token-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "old\n";
  auto config = fake.config();
  config.tokenFile = dir / "token";
  FakeClock clock;  // at its epoch, as steady_clock on a machine that has just booted
  auto client = Client::create(config, clock);
  REQUIRE(client);
  REQUIRE((*client)->serverVersion());
  std::ofstream(dir / "token", std::ios::trunc) << "new\n";  // the kubelet rotated it
  clock.advance(std::chrono::seconds(60));
  REQUIRE((*client)->serverVersion());  // a minute: the token read is still recent
  clock.advance(std::chrono::nanoseconds(1));
  REQUIRE((*client)->serverVersion());  // over a minute: read again
  const auto requests = fake.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0].authorization == "Bearer old");
  CHECK(requests[1].authorization == "Bearer old");
  CHECK(requests[2].authorization == "Bearer new");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a server that is down is a transport error, quickly") {
  FakeApiServer fake;
  fake.start();
  auto config = fake.config();
  fake.stop();
  auto client = Client::create(config);
  REQUIRE(client);
  auto result = (*client)->get(resources::kConfigMaps, "ns", "x");
  REQUIRE_FALSE(result);
  CHECK(result.error().reason == Reason::kTransport);
  CHECK(result.error().message.find("cannot connect") != std::string::npos);
  CHECK(result.error().message.find(config.server) != std::string::npos);
}
