#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/base64.h"
#include "common/files.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/connect.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace pi0;
using namespace pi0::kube;
using pi0::testing::TempDir;

namespace {

const fs::path kFixtures = fs::path(PI0_FIXTURES) / "kube";

std::string fixture(const std::string& name) {
  return *readFile(kFixtures / name);
}

// A kubeconfig with one cluster, one user and one context; `cluster` and `user` are the YAML
// lines inside the entries (indented by the caller).
std::string kubeconfig(const std::string& cluster, const std::string& user,
                       const std::string& extra = "") {
  return "apiVersion: v1\nkind: Config\ncurrent-context: main\n"
         "clusters:\n- name: local\n  cluster:\n" +
         cluster + "users:\n- name: admin\n  user:\n" + user +
         "contexts:\n- name: main\n  context:\n    cluster: local\n    user: admin\n" + extra;
}

std::string errorOf(const Result<ClientConfig>& r) {
  REQUIRE_FALSE(r);
  return r.error().message;
}

}  // namespace

TEST_CASE("kubeconfig: CA file relative to the kubeconfig, token, namespace") {
  TempDir dir;
  dir.write("ca.crt", fixture("ca.crt"));
  auto file = dir.write(
      "config",
      kubeconfig("    server: https://127.0.0.1:6443/\n    certificate-authority: ca.crt\n",
                 "    token: abc123\n", "    namespace: team-a\n"));
  auto config = loadKubeconfig(file);
  REQUIRE(config);
  CHECK(config->server == "https://127.0.0.1:6443");
  CHECK(config->caPem == fixture("ca.crt"));
  CHECK(config->caOrigin.find("certificate-authority") != std::string::npos);
  CHECK(config->bearerToken == "abc123");
  CHECK(config->defaultNamespace == "team-a");
  CHECK(Client::create(*config));
}

TEST_CASE("kubeconfig: inline data, client certificate, token file re-read") {
  TempDir dir;
  dir.write("token", "first\n");
  auto file = dir.write(
      "config", kubeconfig("    server: https://[::1]:6443\n    certificate-authority-data: " +
                               base64Encode(fixture("ca.crt")) + "\n",
                           "    client-certificate-data: " + base64Encode(fixture("client.crt")) +
                               "\n    client-key-data: " + base64Encode(fixture("client.key")) +
                               "\n    tokenFile: token\n"));
  auto config = loadKubeconfig(file);
  REQUIRE(config);
  CHECK(config->caPem == fixture("ca.crt"));
  CHECK(config->clientCertPem == fixture("client.crt"));
  CHECK(config->defaultNamespace == "default");
  CHECK(*currentToken(*config) == "first");
  dir.write("token", "second\n");
  CHECK(*currentToken(*config) == "second");
  CHECK(Client::create(*config));
}

TEST_CASE("kubeconfig: a named context other than the current one") {
  TempDir dir;
  auto text =
      kubeconfig("    server: https://a:1\n    insecure-skip-tls-verify: true\n",
                 "    token: t\n") +
      "- name: other\n  context:\n    cluster: local\n    user: admin\n    namespace: other-ns\n";
  auto file = dir.write("config", text);
  auto config = loadKubeconfig(file, "other");
  REQUIRE(config);
  CHECK(config->defaultNamespace == "other-ns");
  CHECK(config->insecureSkipTlsVerify);
  CHECK(config->source.find("context other") != std::string::npos);
}

TEST_CASE("kubeconfig errors name the file and the field") {
  TempDir dir;
  struct Case {
    std::string name;
    std::string text;
    std::string expected;  // a part of the message
  };
  const std::vector<Case> cases = {
      {"missing CA file",
       kubeconfig("    server: https://a:1\n    certificate-authority: nope.crt\n",
                  "    token: t\n"),
       "clusters[local].cluster.certificate-authority: cannot open"},
      {"missing client key",
       kubeconfig("    server: https://a:1\n",
                  "    client-certificate: c.crt\n    client-key: gone.key\n"),
       "users[admin].user.client-key: cannot open"},
      {"certificate without key",
       kubeconfig("    server: https://a:1\n",
                  "    client-certificate-data: " + base64Encode(fixture("client.crt")) + "\n"),
       "users[admin].user.client-key: missing"},
      {"bad base64",
       kubeconfig("    server: https://a:1\n    certificate-authority-data: '%%%'\n",
                  "    token: t\n"),
       "certificate-authority-data: not valid base64"},
      {"no server", kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"),
       "clusters[local].cluster.server: not set"},
      {"not a URL", kubeconfig("    server: 127.0.0.1:6443\n", "    token: t\n"),
       "is not an http(s) URL"},
      {"exec plugin", kubeconfig("    server: https://a:1\n", "    exec:\n      command: aws\n"),
       "users[admin].user.exec: not supported"},
      {"token file missing",
       kubeconfig("    server: https://a:1\n", "    tokenFile: /nonexistent/token\n"),
       "users[admin].user.tokenFile: cannot open"},
      {"not YAML", "clusters: [unclosed\n", "not valid YAML"},
      {"no current context", "apiVersion: v1\nkind: Config\n", "current-context: not set"},
  };
  dir.write("c.crt", fixture("client.crt"));
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto file = dir.write("config", c.text);
    const auto message = errorOf(loadKubeconfig(file));
    CHECK(message.find(c.expected) != std::string::npos);
    CHECK(message.find(file.string()) != std::string::npos);
  }
  const auto missing = errorOf(loadKubeconfig(dir.path() / "absent"));
  CHECK(missing.find((dir.path() / "absent").string()) != std::string::npos);
}

TEST_CASE("client creation checks certificates and keys") {
  TempDir dir;
  ClientConfig config;
  config.server = "https://127.0.0.1:6443";
  config.source = "test";
  config.caPem = "not a certificate";
  config.caOrigin = "the CA";
  auto bad = Client::create(config);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message == "the CA: no PEM certificate in it");

  config.caPem = fixture("ca.crt");
  config.clientCertPem = fixture("client.crt");
  config.clientKeyPem = fixture("other.key");
  config.clientKeyOrigin = "the key";
  auto mismatch = Client::create(config);
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error().message == "the key: does not match the client certificate");

  config.clientKeyPem = fixture("client.key");
  CHECK(Client::create(config));

  config.server = "https://host:99999";
  auto port = Client::create(config);
  REQUIRE_FALSE(port);
  CHECK(port.error().message.find("invalid port") != std::string::npos);
}

TEST_CASE("in-cluster configuration from the service account files") {
  TempDir dir;
  dir.write("token", "sa-token\n");
  dir.write("ca.crt", fixture("ca.crt"));
  dir.write("namespace", "pi0-system");
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto config = inClusterConfig(dir.path());
  REQUIRE(config);
  CHECK(config->server == "https://10.96.0.1:443");
  CHECK(config->defaultNamespace == "pi0-system");
  CHECK(*currentToken(*config) == "sa-token");
  fs::remove(dir.path() / "token");
  CHECK(errorOf(inClusterConfig(dir.path())).find("token") != std::string::npos);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  CHECK(errorOf(inClusterConfig(dir.path())).find("KUBERNETES_SERVICE_HOST") != std::string::npos);
}

TEST_CASE("connect: a client from the configuration, or null when there is none to be had") {
  TempDir dir;
  // Nothing listens on port 1: the configuration loads, the server does not answer.
  auto file = dir.write("config", kubeconfig("    server: https://127.0.0.1:1\n"
                                             "    insecure-skip-tls-verify: true\n",
                                             "    token: t\n"));
  // Set member by member: GCC 12 warns (-Wmissing-field-initializers) on designated ones.
  auto to = [](const std::filesystem::path& config, bool checkServer = false) {
    ConnectOptions o;
    o.kubeconfig = config.string();
    o.userAgent = "pi0-test/1";
    o.checkServer = checkServer;
    return o;
  };
  CHECK(connect(to(file)) != nullptr);
  CHECK(connect(to(file, true)) == nullptr);
  CHECK(connect(to(dir.path() / "missing")) == nullptr);
  auto broken = dir.write("broken", kubeconfig("    server: 127.0.0.1:6443\n", "    token: t\n"));
  CHECK(connect(to(broken)) == nullptr);
}
