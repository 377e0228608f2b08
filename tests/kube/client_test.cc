#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/base64.h"
#include "common/url.h"
#include "kube/client.h"
#include "kube/errors.h"
#include "kube/store.h"

using namespace pi0::kube;

TEST_CASE("paths of core, grouped, cluster-scoped resources and subresources") {
  CHECK(Client::path(resources::kConfigMaps, "ns", "cm") == "/api/v1/namespaces/ns/configmaps/cm");
  CHECK(Client::path(resources::kConfigMaps, "", "") == "/api/v1/configmaps");
  CHECK(Client::path(resources::kDeployments, "ns", "web", Subresource::kScale) ==
        "/apis/apps/v1/namespaces/ns/deployments/web/scale");
  CHECK(Client::path(resources::kChannels, "ns", "c", Subresource::kStatus) ==
        "/apis/stability.pi0.io/v1alpha1/namespaces/ns/channels/c/status");
  // A cluster-scoped resource ignores the namespace.
  CHECK(Client::path(resources::kShutdownMatrices, "ns", "m") ==
        "/apis/stability.pi0.io/v1alpha1/shutdownmatrices/m");
  CHECK(resources::kDeployments.qualifiedName() == "deployments.apps");
  CHECK(resources::kLeases.apiVersion() == "coordination.k8s.io/v1");
}

TEST_CASE("query values are percent-encoded") {
  CHECK(pi0::urlEncode("app=web,tier!=db") == "app%3Dweb%2Ctier%21%3Ddb");
  CHECK(pi0::urlEncode("a b/c") == "a%20b%2Fc");
  CHECK(pi0::urlEncode("plain-name_1.2~") == "plain-name_1.2~");
}

TEST_CASE("object keys") {
  CHECK(objectKey(Json::parse(R"({"metadata":{"name":"a","namespace":"ns"}})")) == "ns/a");
  CHECK(objectKey(Json::parse(R"({"metadata":{"name":"node-1"}})")) == "node-1");
  CHECK(objectKey(Json::parse(R"({})")) == "");
}

TEST_CASE("Status answers become typed errors") {
  struct Case {
    int code;
    const char* body;
    Reason reason;
  };
  const std::vector<Case> cases = {
      {404,
       R"({"kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"configmaps \"x\" not found"})",
       Reason::kNotFound},
      {409, R"({"kind":"Status","reason":"AlreadyExists","code":409,"message":"exists"})",
       Reason::kAlreadyExists},
      {409, R"({"kind":"Status","reason":"Conflict","code":409,"message":"changed"})",
       Reason::kConflict},
      {410, R"({"kind":"Status","reason":"Expired","code":410,"message":"too old"})",
       Reason::kGone},
      {403, R"({"kind":"Status","reason":"Forbidden","code":403})", Reason::kForbidden},
      {422, R"({"kind":"Status","reason":"Invalid","code":422})", Reason::kInvalid},
      {401, "Unauthorized", Reason::kUnauthorized},
      {503, "", Reason::kServiceUnavailable},
      {418, "teapot", Reason::kUnknown},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    const auto e = errorFromResponse(c.code, c.body, "");
    CHECK(e.reason == c.reason);
    CHECK(e.code == c.code);
    CHECK_FALSE(e.message.empty());
  }
  const auto notFound = errorFromResponse(404, cases[0].body, "");
  CHECK(notFound.describe() == "NotFound (404): configmaps \"x\" not found");
  CHECK(isNotFound(notFound));
  const auto throttled = errorFromResponse(
      429,
      R"({"kind":"Status","reason":"TooManyRequests","code":429,"details":{"retryAfterSeconds":3}})",
      "");
  CHECK(throttled.retryAfterSeconds == 3);
  CHECK(isRetriable(throttled));
  CHECK(errorFromResponse(503, "", "7").retryAfterSeconds == 7);
  CHECK_FALSE(isRetriable(notFound));
}

TEST_CASE("watch lines split correctly whatever the chunk boundaries") {
  const std::vector<std::string> events = {
      R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1"}}})",
      R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"2"},"data":{"k":"line\nbreak"}}})",
      R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"3"}}})",
      R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"4"}}})",
  };
  std::string stream;
  for (const auto& e : events)
    stream += e + "\n";
  // Every way of cutting the stream in two, and in three at a coarser step.
  auto collect = [&](const std::vector<std::string_view>& chunks) {
    LineSplitter splitter;
    std::vector<std::string> lines;
    for (auto chunk : chunks) {
      splitter.push(chunk, [&](std::string_view line) {
        lines.emplace_back(line);
        return true;
      });
    }
    CHECK(splitter.pending().empty());
    return lines;
  };
  const std::string_view s(stream);
  for (std::size_t i = 0; i <= s.size(); ++i) {
    CAPTURE(i);
    CHECK(collect({s.substr(0, i), s.substr(i)}) == events);
  }
  for (std::size_t i = 0; i <= s.size(); i += 7) {
    for (std::size_t j = i; j <= s.size(); j += 11) {
      CHECK(collect({s.substr(0, i), s.substr(i, j - i), s.substr(j)}) == events);
    }
  }
  // One byte at a time.
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < s.size(); ++i)
    bytes.push_back(s.substr(i, 1));
  CHECK(collect(bytes) == events);
}

TEST_CASE("a splitter stops when asked and keeps the rest") {
  LineSplitter splitter;
  int seen = 0;
  CHECK_FALSE(splitter.push("one\ntwo\nthr", [&](std::string_view) { return ++seen < 1; }));
  CHECK(seen == 1);
  CHECK(splitter.pending() == "two\nthr");
}

TEST_CASE("watch events parse; ERROR events become their Status") {
  auto added = parseWatchEvent(R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})");
  REQUIRE(added);
  CHECK(added->type == WatchEventType::kAdded);
  CHECK(added->object["metadata"]["name"] == "a");
  auto gone = parseWatchEvent(
      R"j({"type":"ERROR","object":{"kind":"Status","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}})j");
  REQUIRE_FALSE(gone);
  CHECK(isGone(gone.error()));
  CHECK(gone.error().message.find("too old") != std::string::npos);
  CHECK(parseWatchEvent("{not json").error().reason == Reason::kBadResponse);
  CHECK(parseWatchEvent(R"({"type":"WEIRD","object":{}})").error().reason == Reason::kBadResponse);
  CHECK(parseWatchEvent(R"({"type":"ADDED"})").error().reason == Reason::kBadResponse);
}

TEST_CASE("base64 round trip and rejection") {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\x00\xff binary"}) {
    CHECK(*pi0::base64Decode(pi0::base64Encode(s)) == s);
  }
  CHECK(pi0::base64Encode("pi0") == "cGkw");
  CHECK(*pi0::base64Decode("cGkw\n") == "pi0");
  CHECK_FALSE(pi0::base64Decode("abc"));
  CHECK_FALSE(pi0::base64Decode("a%b="));
}

namespace {
Json object(const std::string& ns, const std::string& name, const std::string& rv) {
  return {{"metadata",
           {{"namespace", ns},
            {"name", name},
            {"resourceVersion", rv},
            {"managedFields", Json::array({1, 2})}}}};
}
}  // namespace

TEST_CASE("a store tells handlers what a relist added, changed and removed") {
  Store store(Store::dropManagedFields);
  std::vector<std::string> log;
  store.addHandler([&](const ObjectPtr& before, const ObjectPtr& after) {
    if (!before) {
      log.push_back("add " + objectKey(*after));
    } else if (!after) {
      log.push_back("delete " + objectKey(*before));
    } else {
      log.push_back("update " + objectKey(*after));
    }
  });
  CHECK_FALSE(store.synced());
  store.replace({object("a", "x", "1"), object("a", "y", "1")});
  CHECK(store.synced());
  CHECK(store.size() == 2);
  CHECK_FALSE(store.get("a/x")->at("metadata").contains("managedFields"));
  std::sort(log.begin(), log.end());
  CHECK(log == std::vector<std::string>{"add a/x", "add a/y"});

  log.clear();
  store.apply(WatchEventType::kModified, object("a", "x", "2"));
  store.apply(WatchEventType::kAdded, object("b", "z", "3"));
  store.apply(WatchEventType::kBookmark, object("", "", "4"));
  CHECK(log == std::vector<std::string>{"update a/x", "add b/z"});
  CHECK(store.get("a/x")->at("metadata").at("resourceVersion") == "2");

  // A relist in which y vanished (its delete event was missed), x is unchanged, z changed.
  log.clear();
  store.replace({object("a", "x", "2"), object("b", "z", "5")});
  std::sort(log.begin(), log.end());
  CHECK(log == std::vector<std::string>{"delete a/y", "update b/z"});
  CHECK(store.get("a/y") == nullptr);

  log.clear();
  store.apply(WatchEventType::kDeleted, object("b", "z", "6"));
  CHECK(log == std::vector<std::string>{"delete b/z"});
  CHECK(store.size() == 1);
}

TEST_CASE("a store that keeps references: handlers see whole objects, the store their names") {
  Store store(Store::dropManagedFields, Store::Keep::kReference);
  std::vector<std::string> log;
  store.addHandler([&](const ObjectPtr& before, const ObjectPtr& after) {
    if (!before) {
      CHECK(after->at("spec") == Json{{"v", 1}});  // the whole object, transformed
      CHECK_FALSE(after->at("metadata").contains("managedFields"));
      log.push_back("add " + objectKey(*after));
    } else if (!after) {
      log.push_back("delete " + objectKey(*before));
    } else {
      CHECK(after->contains("spec"));
      log.push_back("update " + objectKey(*after) + " from " +
                    before->at("metadata").at("resourceVersion").get<std::string>());
    }
  });
  auto withSpec = [](const std::string& ns, const std::string& name, const std::string& rv) {
    Json o = object(ns, name, rv);
    o["spec"] = {{"v", 1}};
    return o;
  };
  store.replace({withSpec("a", "x", "1"), withSpec("a", "y", "1")});
  std::sort(log.begin(), log.end());
  CHECK(log == std::vector<std::string>{"add a/x", "add a/y"});
  // Held: the reference only.
  CHECK(*store.get("a/x") ==
        Json{{"metadata", {{"namespace", "a"}, {"name", "x"}, {"resourceVersion", "1"}}}});

  log.clear();
  store.apply(WatchEventType::kModified, withSpec("a", "x", "2"));
  CHECK(log == std::vector<std::string>{"update a/x from 1"});
  CHECK(store.get("a/x")->at("metadata").at("resourceVersion") == "2");
  CHECK_FALSE(store.get("a/x")->contains("spec"));

  // A relist: x as held (same resourceVersion, though the reference is not the object), y at a
  // new version, a new z.
  log.clear();
  store.replace({withSpec("a", "x", "2"), withSpec("a", "y", "3"), withSpec("a", "z", "3")});
  std::sort(log.begin(), log.end());
  CHECK(log == std::vector<std::string>{"add a/z", "update a/y from 1"});

  // A delete hands over the object the watch sent.
  log.clear();
  Json gone = withSpec("a", "y", "4");
  store.addHandler([](const ObjectPtr& before, const ObjectPtr& after) {
    if (!after) CHECK(before->contains("spec"));
  });
  store.apply(WatchEventType::kDeleted, gone);
  CHECK(log == std::vector<std::string>{"delete a/y"});

  // No resync: the handlers hold the objects, the store does not.
  log.clear();
  store.resync();
  CHECK(log.empty());
  CHECK(store.size() == 2);
}

TEST_CASE("a resync hands every stored object to the handlers again") {
  Store store;
  store.replace({object("a", "x", "1"), object("a", "y", "1")});
  std::vector<std::string> seen;
  store.addHandler([&](const ObjectPtr& before, const ObjectPtr& after) {
    REQUIRE(before);
    CHECK(before == after);
    seen.push_back(objectKey(*after));
  });
  store.resync();
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"a/x", "a/y"});
}
