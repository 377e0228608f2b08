#include "kube/config.h"

#include <cstdlib>
#include <optional>

#include <yaml-cpp/yaml.h>

#include "common/base64.h"
#include "common/files.h"

namespace pi0::kube {
namespace fs = std::filesystem;

namespace {

std::string trimRight(std::string s) {
  while (!s.empty() &&
         (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.pop_back();
  }
  return s;
}

// A named entry of one of the kubeconfig's lists (clusters, users, contexts).
std::optional<YAML::Node> findNamed(const YAML::Node& list, std::string_view name,
                                    std::string_view inner) {
  if (!list || !list.IsSequence()) return std::nullopt;
  for (const auto& entry : list) {
    if (entry["name"] && entry["name"].as<std::string>() == name) {
      return entry[std::string(inner)] ? entry[std::string(inner)]
                                       : YAML::Node(YAML::NodeType::Map);
    }
  }
  return std::nullopt;
}

std::string scalar(const YAML::Node& node, const char* key) {
  const auto v = node[key];
  if (!v || !v.IsScalar()) return {};
  return v.as<std::string>();
}

class KubeconfigReader {
 public:
  KubeconfigReader(fs::path file) : file_(std::move(file)), dir_(file_.parent_path()) {}

  std::unexpected<Error> failAt(const std::string& field, const std::string& what) const {
    return fail("kubeconfig " + file_.string() + ": " + field + ": " + what);
  }

  fs::path resolve(const std::string& path) const {
    fs::path p(path);
    return p.is_absolute() || dir_.empty() ? p : dir_ / p;
  }

  // A PEM value given either as a file (`fileKey`) or inline base64 (`dataKey`); data wins, as
  // in kubectl.
  Result<std::string> pem(const YAML::Node& node, const std::string& prefix, const char* fileKey,
                          const char* dataKey, std::string* origin) const {
    if (auto data = scalar(node, dataKey); !data.empty()) {
      auto decoded = base64Decode(data);
      if (!decoded) return failAt(prefix + dataKey, "not valid base64");
      *origin = "kubeconfig " + file_.string() + ": " + prefix + dataKey;
      return *decoded;
    }
    if (auto path = scalar(node, fileKey); !path.empty()) {
      const auto resolved = resolve(path);
      auto text = readFile(resolved);
      if (!text) return failAt(prefix + fileKey, text.error().message);
      *origin =
          "kubeconfig " + file_.string() + ": " + prefix + fileKey + " (" + resolved.string() + ")";
      return *text;
    }
    return std::string();
  }

  Result<ClientConfig> read(std::string_view wantedContext) const {
    auto text = readFile(file_);
    if (!text) return fail("kubeconfig: " + text.error().message);
    YAML::Node root;
    try {
      root = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      return fail("kubeconfig " + file_.string() + ": not valid YAML: " + e.what());
    }
    if (!root.IsMap())
      return fail("kubeconfig " + file_.string() + ": not a kubeconfig (expected a mapping)");

    std::string contextName(wantedContext);
    if (contextName.empty()) contextName = scalar(root, "current-context");
    if (contextName.empty())
      return failAt("current-context", "not set and no context was asked for");
    auto context = findNamed(root["contexts"], contextName, "context");
    if (!context) return failAt("contexts", "no context named \"" + contextName + "\"");

    ClientConfig config;
    config.source = "kubeconfig " + file_.string() + " (context " + contextName + ")";
    const std::string clusterName = scalar(*context, "cluster");
    const std::string userName = scalar(*context, "user");
    if (auto ns = scalar(*context, "namespace"); !ns.empty()) config.defaultNamespace = ns;

    if (clusterName.empty())
      return failAt("contexts[" + contextName + "].context.cluster", "not set");
    auto cluster = findNamed(root["clusters"], clusterName, "cluster");
    if (!cluster)
      return failAt("contexts[" + contextName + "].context.cluster",
                    "no cluster named \"" + clusterName + "\"");
    const std::string cp = "clusters[" + clusterName + "].cluster.";
    config.server = scalar(*cluster, "server");
    if (config.server.empty()) return failAt(cp + "server", "not set");
    if (!config.server.starts_with("https://") && !config.server.starts_with("http://")) {
      return failAt(cp + "server", "\"" + config.server + "\" is not an http(s) URL");
    }
    while (config.server.ends_with('/'))
      config.server.pop_back();
    config.insecureSkipTlsVerify = scalar(*cluster, "insecure-skip-tls-verify") == "true";
    config.tlsServerName = scalar(*cluster, "tls-server-name");
    auto ca =
        pem(*cluster, cp, "certificate-authority", "certificate-authority-data", &config.caOrigin);
    if (!ca) return std::unexpected(ca.error());
    config.caPem = std::move(*ca);
    if (config.insecureSkipTlsVerify && !config.caPem.empty()) {
      return failAt(cp + "insecure-skip-tls-verify",
                    "set together with a certificate authority; choose one");
    }

    if (!userName.empty()) {
      auto user = findNamed(root["users"], userName, "user");
      if (!user)
        return failAt("contexts[" + contextName + "].context.user",
                      "no user named \"" + userName + "\"");
      const std::string up = "users[" + userName + "].user.";
      for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
        if ((*user)[unsupported]) {
          return failAt(up + unsupported,
                        "not supported by Pi0; use a token, a token file or a client certificate");
        }
      }
      config.bearerToken = scalar(*user, "token");
      if (auto tf = scalar(*user, "tokenFile"); !tf.empty()) {
        config.tokenFile = resolve(tf);
        if (auto t = readFile(config.tokenFile); !t)
          return failAt(up + "tokenFile", t.error().message);
      }
      auto cert =
          pem(*user, up, "client-certificate", "client-certificate-data", &config.clientCertOrigin);
      if (!cert) return std::unexpected(cert.error());
      auto key = pem(*user, up, "client-key", "client-key-data", &config.clientKeyOrigin);
      if (!key) return std::unexpected(key.error());
      if (cert->empty() != key->empty()) {
        return failAt(up + (cert->empty() ? "client-certificate" : "client-key"),
                      "missing: a client certificate needs both the certificate and the key");
      }
      config.clientCertPem = std::move(*cert);
      config.clientKeyPem = std::move(*key);
    }
    return config;
  }

 private:
  fs::path file_;
  fs::path dir_;
};

}  // namespace

Result<ClientConfig> loadKubeconfig(const fs::path& file, std::string_view context) {
  return KubeconfigReader(file).read(context);
}

Result<ClientConfig> inClusterConfig(const fs::path& serviceAccountDir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return fail(
        "in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set "
        "(is this running in a pod?)");
  }
  ClientConfig config;
  config.source = "in-cluster service account " + serviceAccountDir.string();
  std::string h(host);
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6
  config.server = "https://" + h + ":" + port;
  config.tokenFile = serviceAccountDir / "token";
  if (auto t = readFile(config.tokenFile); !t)
    return fail("in-cluster configuration: token: " + t.error().message);
  auto ca = readFile(serviceAccountDir / "ca.crt");
  if (!ca) return fail("in-cluster configuration: CA: " + ca.error().message);
  config.caPem = std::move(*ca);
  config.caOrigin = (serviceAccountDir / "ca.crt").string();
  if (auto ns = readFile(serviceAccountDir / "namespace"); ns && !trimRight(*ns).empty()) {
    config.defaultNamespace = trimRight(*ns);
  }
  return config;
}

Result<ClientConfig> resolveConfig(std::string_view kubeconfigFlag) {
  if (!kubeconfigFlag.empty()) return loadKubeconfig(fs::path(kubeconfigFlag));
  if (const char* env = std::getenv("KUBECONFIG"); env != nullptr && *env != '\0') {
    std::string_view list(env);
    return loadKubeconfig(fs::path(list.substr(0, list.find(':'))));
  }
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host != nullptr && *host != '\0') {
    return inClusterConfig();
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    const fs::path file = fs::path(home) / ".kube" / "config";
    std::error_code ec;
    if (fs::exists(file, ec)) return loadKubeconfig(file);
  }
  return fail(
      "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, run in a pod, or create "
      "~/.kube/config");
}

Result<std::string> currentToken(const ClientConfig& config) {
  if (config.tokenFile.empty()) return config.bearerToken;
  auto text = readFile(config.tokenFile);
  if (!text) return fail("token file: " + text.error().message);
  auto token = trimRight(std::move(*text));
  if (token.empty()) return fail("token file " + config.tokenFile.string() + " is empty");
  return token;
}

}  // namespace pi0::kube
