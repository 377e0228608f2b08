// Where the Kubernetes client connects and how it proves who it is, from a kubeconfig file or
// from the service account of the pod it runs in. Loading reads every file the configuration
// names (CA, client certificate and key, token file) so that a mistake is reported at start,
// with the file and the field that is wrong, not at the first request.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace pi0::kube {

struct ClientConfig {
  std::string server;  // "https://127.0.0.1:6443", maybe with a path prefix
  std::string caPem;   // certificates to trust; empty: the system's roots
  bool insecureSkipTlsVerify = false;
  std::string tlsServerName;        // name to verify instead of the server's host, if set
  std::string bearerToken;          // a token given inline
  std::filesystem::path tokenFile;  // a token file, read again on every new connection
  std::string clientCertPem;
  std::string clientKeyPem;
  std::string defaultNamespace = "default";
  double qps = 20;  // client-side rate limit (client-go's defaults are 5/10; Pi0's are 20/30)
  int burst = 30;
  std::string userAgent = "pi0";

  // Where each part came from, for error messages: "kubeconfig /root/.kube/config (context
  // admin)", "clusters[local].cluster.certificate-authority-data", ...
  std::string source;
  std::string caOrigin;
  std::string clientCertOrigin;
  std::string clientKeyOrigin;
};

// Reads a kubeconfig file. `context` empty means the file's current-context. Relative paths in
// the file are relative to the file's directory, as kubectl reads them. Fails with a message
// naming the file and the field, e.g. "kubeconfig /x/config: users[admin].user.client-key:
// cannot read /x/admin.key: No such file or directory". Authentication by exec plugin, auth
// provider or basic auth is refused with a message saying so.
Result<ClientConfig> loadKubeconfig(const std::filesystem::path& file,
                                    std::string_view context = {});

// The configuration of a pod: KUBERNETES_SERVICE_HOST/PORT, and the token, CA and namespace
// files under `serviceAccountDir`.
Result<ClientConfig> inClusterConfig(const std::filesystem::path& serviceAccountDir =
                                         "/var/run/secrets/kubernetes.io/serviceaccount");

// The order controller-runtime uses: the --kubeconfig flag when given, else $KUBECONFIG (its
// first file), else in-cluster when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
Result<ClientConfig> resolveConfig(std::string_view kubeconfigFlag);

// Reads the bearer token to send now: the token file's current contents when there is one
// (trailing whitespace removed), else the inline token.
Result<std::string> currentToken(const ClientConfig& config);

}  // namespace pi0::kube
