// The client's behaviour on answers that only a stand-in server can produce on demand
// (FakeApiServer, named as such). The same operations against the real apiserver are in the
// end-to-end tests.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "fakes/fake_apiserver.h"
#include "fakes/fake_clock.h"
#include "kube/client.h"
#include "kube/events.h"
#include "kube/leader_election.h"
#include "kube/reflector.h"
#include "kube/store.h"

using namespace pi0;
using namespace pi0::kube;
using pi0::testing::FakeApiServer;
using pi0::testing::FakeClock;

namespace {

std::unique_ptr<Client> clientFor(const FakeApiServer& server) {
  auto client = Client::create(server.config());
  REQUIRE(client);
  return std::move(*client);
}

Json configMap(const std::string& name, const std::string& rv) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"namespace", "ns"}, {"name", name}, {"resourceVersion", rv}}}};
}

std::string listBody(const std::vector<Json>& items, const std::string& rv,
                     const std::string& next = "") {
  Json list = {{"kind", "ConfigMapList"},
               {"apiVersion", "v1"},
               {"metadata", {{"resourceVersion", rv}}},
               {"items", items}};
  if (!next.empty()) list["metadata"]["continue"] = next;
  return list.dump();
}

void status(httplib::Response& res, int code, const std::string& reason,
            const std::string& message) {
  res.status = code;
  res.set_content(Json{{"kind", "Status"},
                       {"apiVersion", "v1"},
                       {"status", "Failure"},
                       {"reason", reason},
                       {"code", code},
                       {"message", message}}
                      .dump(),
                  "application/json");
}

ListOptions paged(int64_t limit) {
  ListOptions options;
  options.limit = limit;
  return options;
}

WatchOptions watchFrom(const std::string& rv, int timeoutSeconds) {
  WatchOptions options;
  options.resourceVersion = rv;
  options.timeoutSeconds = timeoutSeconds;
  return options;
}

}  // namespace

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

TEST_CASE("repeated events are folded into one Event with a count") {
  FakeApiServer fake;
  std::mutex mu;
  std::vector<Json> posted;
  std::vector<Json> patched;
  fake.server().Post("/api/v1/namespaces/ns/events",
                     [&](const httplib::Request& req, httplib::Response& res) {
                       std::lock_guard lock(mu);
                       posted.push_back(Json::parse(req.body));
                       res.status = 201;
                       res.set_content(req.body, "application/json");
                     });
  fake.server().Patch(R"(/api/v1/namespaces/ns/events/(.*))", [&](const httplib::Request& req,
                                                                  httplib::Response& res) {
    std::lock_guard lock(mu);
    CHECK(req.get_header_value("Content-Type") == "application/merge-patch+json");
    patched.push_back(Json::parse(req.body));
    res.set_content("{}", "application/json");
  });
  fake.start();
  auto client = clientFor(fake);
  {
    EventRecorder recorder(*client, "pi0-test", "replica-1");
    ObjectReference ref{"apps/v1", "Deployment", "ns", "web", "uid-1", "5"};
    recorder.record(ref, EventType::kNormal, "ScaledDown", "Scaled web from 3 to 1 replicas");
    recorder.record(ref, EventType::kNormal, "ScaledDown", "Scaled web from 3 to 1 replicas");
    recorder.record(ref, EventType::kNormal, "ScaledDown", "Scaled web from 3 to 1 replicas");
    recorder.record(ref, EventType::kWarning, "RestoreStalled",
                    "web has 0 of 3 ready replicas after 300 s");
    recorder.flush();
    CHECK(recorder.counters().created == 2);
    CHECK(recorder.counters().aggregated == 2);
  }
  std::lock_guard lock(mu);
  REQUIRE(posted.size() == 2);
  CHECK(posted[0]["involvedObject"]["name"] == "web");
  CHECK(posted[0]["involvedObject"]["uid"] == "uid-1");
  CHECK(posted[0]["type"] == "Normal");
  CHECK(posted[0]["count"] == 1);
  CHECK(posted[0]["source"]["component"] == "pi0-test");
  CHECK(posted[1]["type"] == "Warning");
  REQUIRE(patched.size() == 2);
  CHECK(patched[0]["count"] == 2);
  CHECK(patched[1]["count"] == 3);
}

TEST_CASE("the spam filter drops an object's events beyond a burst of 25") {
  FakeApiServer fake;
  std::atomic<int> posts{0};
  fake.server().Post("/api/v1/namespaces/ns/events",
                     [&](const httplib::Request& req, httplib::Response& res) {
                       ++posts;
                       res.status = 201;
                       res.set_content(req.body, "application/json");
                     });
  fake.start();
  auto client = clientFor(fake);
  EventRecorder recorder(*client, "pi0-test", "replica-1");
  ObjectReference ref{"v1", "ConfigMap", "ns", "noisy", "uid-2", ""};
  for (int i = 0; i < 40; ++i)
    recorder.record(ref, EventType::kNormal, "Tick", "tick " + std::to_string(i));
  recorder.flush();
  CHECK(posts == 25);
  CHECK(recorder.counters().dropped == 15);
}

namespace {

// A Lease endpoint that stores one Lease with optimistic concurrency, and can be made to fail.
struct FakeLeases {
  std::mutex mu;
  Json lease;  // null until created
  int version = 0;
  std::atomic<bool> failing{false};

  void install(FakeApiServer& fake) {
    const std::string path = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
    fake.server().Get(path + "/pi0", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu);
      if (failing) return status(res, 500, "InternalError", "etcd is down");
      if (lease.is_null()) return status(res, 404, "NotFound", "leases \"pi0\" not found");
      res.set_content(lease.dump(), "application/json");
    });
    fake.server().Post(path, [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu);
      if (failing) return status(res, 500, "InternalError", "etcd is down");
      if (!lease.is_null()) return status(res, 409, "AlreadyExists", "exists");
      lease = Json::parse(req.body);
      lease["metadata"]["resourceVersion"] = std::to_string(++version);
      res.status = 201;
      res.set_content(lease.dump(), "application/json");
    });
    fake.server().Put(path + "/pi0", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mu);
      if (failing) return status(res, 500, "InternalError", "etcd is down");
      auto body = Json::parse(req.body);
      if (body["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"]) {
        return status(res, 409, "Conflict", "the object has been modified");
      }
      lease = body;
      lease["metadata"]["resourceVersion"] = std::to_string(++version);
      res.set_content(lease.dump(), "application/json");
    });
  }

  std::string holder() {
    std::lock_guard lock(mu);
    return lease.is_null() ? "" : lease["spec"].value("holderIdentity", "");
  }
};

LeaderElectionConfig fastElection(const std::string& identity) {
  LeaderElectionConfig config;
  config.leaseNamespace = "ns";
  config.leaseName = "pi0";
  config.identity = identity;
  config.leaseDuration = std::chrono::seconds(3);
  config.renewDeadline = std::chrono::seconds(2);
  config.retryPeriod = std::chrono::seconds(1);
  return config;
}

}  // namespace

TEST_CASE("a leader that cannot renew stops its work within the renew deadline") {
  FakeApiServer fake;
  FakeLeases leases;
  leases.install(fake);
  fake.start();
  auto client = clientFor(fake);
  auto elector = LeaderElector::create(*client, fastElection("me"));
  REQUIRE(elector);
  std::atomic<bool> leading{false};
  std::atomic<bool> stoppedLeading{false};
  std::atomic<bool> result{true};
  std::jthread candidate([&](std::stop_token stop) {
    result = (*elector)->run(stop, [&](std::stop_token lost) {
      leading = true;
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      cv.wait(lock, lost, [] { return false; });
      stoppedLeading = true;
    });
  });
  for (int i = 0; i < 1000 && !leading; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(leading);
  CHECK((*elector)->isLeader());
  CHECK(leases.holder() == "me");

  leases.failing = true;  // the apiserver answers 500 from now on
  candidate.join();       // run() returns once the work has stopped
  CHECK(stoppedLeading);
  CHECK_FALSE(result);  // lost, not a clean stop
  CHECK_FALSE((*elector)->isLeader());
}

TEST_CASE("a second candidate waits while the lease is renewed; a clean stop hands it over") {
  FakeApiServer fake;
  FakeLeases leases;
  leases.install(fake);
  fake.start();
  auto client = clientFor(fake);
  auto first = LeaderElector::create(*client, fastElection("first"));
  auto second = LeaderElector::create(*client, fastElection("second"));
  REQUIRE(first);
  REQUIRE(second);
  std::atomic<int> leaders{0};
  std::atomic<bool> secondLed{false};
  auto work = [&](std::atomic<bool>* flag) {
    return [&, flag](std::stop_token lost) {
      ++leaders;
      if (flag != nullptr) *flag = true;
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      cv.wait(lock, lost, [] { return false; });
      --leaders;
    };
  };
  std::jthread a([&](std::stop_token stop) { (*first)->run(stop, work(nullptr)); });
  for (int i = 0; i < 1000 && leases.holder() != "first"; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(leases.holder() == "first");
  std::jthread b([&](std::stop_token stop) { (*second)->run(stop, work(&secondLed)); });
  // Longer than the lease duration: the first keeps renewing, so the second must not lead.
  std::this_thread::sleep_for(std::chrono::milliseconds(4500));
  CHECK(leaders == 1);
  CHECK_FALSE(secondLed);
  CHECK((*second)->observedHolder() == "first");

  a.request_stop();  // clean stop: the lease is released
  a.join();
  for (int i = 0; i < 1000 && !secondLed; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(secondLed);
  CHECK(leases.holder() == "second");
  CHECK(leaders == 1);
}

TEST_CASE("a lease held by another is taken a lease duration after the first look, on any clock") {
  // At the clock's epoch (a machine that has just booted) and far from it: the countdown starts
  // at the candidate's first look, wherever its clock stands.
  for (const auto start : {Clock::time_point{}, Clock::time_point{} + std::chrono::hours(1000)}) {
    CAPTURE(start.time_since_epoch().count());
    FakeClock clock(start);
    FakeApiServer fake;
    FakeLeases leases;
    leases.install(fake);
    // "other" holds the lease for 3 s and never renews it.
    leases.lease = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", "pi0"}, {"namespace", "ns"}, {"resourceVersion", "1"}}},
                    {"spec",
                     {{"holderIdentity", "other"},
                      {"leaseDurationSeconds", 3},
                      {"renewTime", "2024-01-01T00:00:00.000000Z"}}}};
    leases.version = 1;
    fake.start();
    auto client = clientFor(fake);
    auto elector = LeaderElector::create(*client, fastElection("me"), clock);
    REQUIRE(elector);
    std::jthread candidate([&](std::stop_token stop) {
      (*elector)->run(stop, [](std::stop_token lost) {
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait(lock, lost, [] { return false; });
      });
    });
    auto looks = [&] {
      int n = 0;
      for (const auto& r : fake.requests())
        n += r.method == "GET" ? 1 : 0;
      return n;
    };
    // Looks at +0, +1.2 s and +2.4 s find the lease still held: the candidate goes back to
    // sleep (a retry sleeps 1 to 1.2 s, so steps of 1.2 s wake it every time).
    for (int look = 1; look <= 3; ++look) {
      CAPTURE(look);
      for (int i = 0; i < 1000 && looks() < look; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      REQUIRE(looks() == look);
      REQUIRE(clock.awaitSleepers(1));
      CHECK(leases.holder() == "other");
      CHECK_FALSE((*elector)->isLeader());
      clock.advance(std::chrono::milliseconds(1200));
    }
    // The look at +3.6 s finds it expired and takes it.
    for (int i = 0; i < 1000 && leases.holder() != "me"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(leases.holder() == "me");
    candidate.request_stop();
    candidate.join();
  }
}
