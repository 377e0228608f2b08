// pi0-kube-probe: a test and benchmark tool that drives Pi0's Kubernetes client from the
// command line, so shell tests and bench/ can exercise it against the real control plane.
//
//   pi0-kube-probe check   [--kubeconfig F] [--context C]   connect, GET /version, list namespaces
//   pi0-kube-probe sync    --resource R [--namespace NS]    cold list+watch cache sync; prints JSON
//   pi0-kube-probe mirror  --resource R [--namespace NS] --snapshot FILE
//                          keeps a cache; writes {key: resourceVersion} to FILE at start
//                          (then SIGUSR1 is safe to send) and on every SIGUSR1
//   pi0-kube-probe lead    --namespace NS --lease NAME --identity ID
//                          campaigns; prints "leading" / "stopped" lines
//   pi0-kube-probe contend --namespace NS --name CM --writer ID --count N
//                          N read-modify-write increments of data.counter with conflict retry
//   pi0-kube-probe fill    --namespace NS --count N [--size BYTES] [--threads T]
//                          creates N ConfigMaps (bench-0 ...) of about BYTES of data each
// Every command takes --qps and --burst (the client's rate limit; defaults 20 and 30).
//
// Exit status: 0 success, 1 failure (the message on stderr), 2 usage.
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "kube/client.h"
#include "kube/leader_election.h"
#include "kube/reflector.h"
#include "kube/store.h"

namespace {

using namespace pi0;
using namespace pi0::kube;

struct Args {
  std::string command;
  std::map<std::string, std::string> flags;
  std::string get(const std::string& name, const std::string& fallback = {}) const {
    auto it = flags.find(name);
    return it == flags.end() ? fallback : it->second;
  }
};

int usage(const std::string& message) {
  std::cerr << "pi0-kube-probe: " << message << "\n"
            << "usage: pi0-kube-probe check|sync|mirror|lead|contend [--flag value]...\n";
  return 2;
}

const ResourceType* resourceNamed(const std::string& name) {
  static const std::map<std::string, const ResourceType*> known = {
      {"configmaps", &resources::kConfigMaps},
      {"pods", &resources::kPods},
      {"deployments", &resources::kDeployments},
      {"channels", &resources::kChannels},
      {"shutdownmatrices", &resources::kShutdownMatrices},
      {"namespaces", &resources::kNamespaces},
      {"nodes", &resources::kNodes}};
  auto it = known.find(name);
  return it == known.end() ? nullptr : it->second;
}

long peakRssKiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

std::stop_source gStop;
volatile std::sig_atomic_t gSnapshot = 0;

void waitForSignals(const std::function<void()>& onSnapshot) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  for (;;) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGUSR1) {
      onSnapshot();
      continue;
    }
    gStop.request_stop();
    return;
  }
}

int check(Client& client) {
  auto version = client.serverVersion();
  if (!version) {
    std::cerr << "pi0-kube-probe: " << version.error().describe() << "\n";
    return 1;
  }
  auto namespaces = client.list(resources::kNamespaces, "", {});
  if (!namespaces) {
    std::cerr << "pi0-kube-probe: list namespaces: " << namespaces.error().describe() << "\n";
    return 1;
  }
  std::cout << "server " << version->value("gitVersion", "?") << ", " << namespaces->items.size()
            << " namespaces\n";
  return 0;
}

int sync(Client& client, const ResourceType& type, const std::string& ns) {
  Store store(Store::dropManagedFields);
  Reflector reflector(client, type, ns, store);
  const auto started = std::chrono::steady_clock::now();
  std::jthread run([&](std::stop_token stop) { reflector.run(stop); });
  if (!store.waitForSync(gStop.get_token(), std::chrono::minutes(5))) {
    std::cerr << "pi0-kube-probe: the cache did not sync within 5 minutes\n";
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  nlohmann::json out = {
      {"objects", store.size()}, {"sync_seconds", seconds}, {"peak_rss_kib", peakRssKiB()}};
  std::cout << out.dump() << "\n";
  return 0;
}

int mirror(Client& client, const ResourceType& type, const std::string& ns,
           const std::string& snapshot) {
  Store store(Store::dropManagedFields);
  Reflector reflector(client, type, ns, store);
  std::jthread run([&](std::stop_token stop) { reflector.run(stop); });
  auto write = [&] {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& object : store.list()) {
      out[objectKey(*object)] =
          object->value("/metadata/resourceVersion"_json_pointer, std::string());
    }
    const auto& c = reflector.counters();
    nlohmann::json doc = {{"objects", out},
                          {"synced", store.synced()},
                          {"lists", c.lists.load()},
                          {"watches", c.watches.load()},
                          {"relistsAfterGone", c.relistsAfterGone.load()},
                          {"failures", c.failures.load()}};
    if (auto r = writeFileAtomic(snapshot, doc.dump()); !r)
      log::error("snapshot", {{"error", r.error().message}});
  };
  write();  // signals are blocked by now: the file tells the caller it may send SIGUSR1
  std::thread signals([&] { waitForSignals(write); });
  signals.join();
  run.request_stop();
  return 0;
}

int lead(Client& client, const Args& args) {
  LeaderElectionConfig config;
  config.leaseNamespace = args.get("namespace");
  config.leaseName = args.get("lease");
  config.identity = args.get("identity");
  auto elector = LeaderElector::create(client, config);
  if (!elector) {
    std::cerr << "pi0-kube-probe: " << elector.error().message << "\n";
    return 1;
  }
  std::thread signals([] { waitForSignals([] {}); });
  signals.detach();
  const bool clean = (*elector)->run(gStop.get_token(), [&](std::stop_token stop) {
    std::cout << "leading " << config.identity << std::endl;
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait(lock, stop, [] { return false; });
    std::cout << "stopped " << config.identity << std::endl;
  });
  return clean ? 0 : 1;
}

int contend(Client& client, const Args& args) {
  const std::string ns = args.get("namespace");
  const std::string name = args.get("name");
  const std::string writer = args.get("writer");
  const int count = std::atoi(args.get("count", "10").c_str());
  int conflicts = 0;
  for (int i = 0; i < count; ++i) {
    int attempts = 0;
    auto result = client.modify(
        resources::kConfigMaps, ns, name,
        [&](Json& cm) {
          ++attempts;
          const int value =
              std::atoi(cm.value("/data/counter"_json_pointer, std::string("0")).c_str());
          cm["data"]["counter"] = std::to_string(value + 1);
          cm["data"]["last"] = writer;
          return true;
        },
        Subresource::kNone, ConflictRetry{50, std::chrono::milliseconds(10), 0.1});
    if (!result) {
      std::cerr << "pi0-kube-probe: " << writer << ": " << result.error().describe() << "\n";
      return 1;
    }
    conflicts += attempts - 1;
  }
  std::cout
      << nlohmann::json{{"writer", writer}, {"writes", count}, {"conflicts", conflicts}}.dump()
      << "\n";
  return 0;
}

int fill(Client& client, const Args& args) {
  const std::string ns = args.get("namespace");
  const int count = std::atoi(args.get("count", "100").c_str());
  const std::size_t size = static_cast<std::size_t>(std::atol(args.get("size", "1024").c_str()));
  const int threads = std::max(1, std::atoi(args.get("threads", "8").c_str()));
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        for (int i = next++; i < count; i = next++) {
          Json cm = {
              {"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata",
               {{"name", "bench-" + std::to_string(i)}, {"labels", {{"pi0-bench", "true"}}}}},
              {"data", {{"payload", std::string(size, static_cast<char>('a' + i % 26))}}}};
          auto r = client.create(resources::kConfigMaps, ns, cm);
          if (!r && !isAlreadyExists(r.error())) {
            if (failed++ == 0)
              std::cerr << "pi0-kube-probe: create: " << r.error().describe() << "\n";
          }
        }
      });
    }
  }
  if (failed > 0) return 1;
  std::cout << nlohmann::json{{"created", count}}.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (argc < 2) return usage("no command");
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (!flag.starts_with("--") || i + 1 >= argc) return usage("bad argument " + flag);
    args.flags[flag.substr(2)] = argv[++i];
  }
  // Signals are taken by sigwait on one thread.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (auto level = log::parseLevel(args.get("log-level", "warn")); level) log::setLevel(*level);

  Result<ClientConfig> config = args.flags.contains("context")
                                    ? loadKubeconfig(args.get("kubeconfig"), args.get("context"))
                                    : resolveConfig(args.get("kubeconfig"));
  if (!config) {
    std::cerr << "pi0-kube-probe: " << config.error().message << "\n";
    return 1;
  }
  if (args.flags.contains("qps")) config->qps = std::atof(args.get("qps").c_str());
  if (args.flags.contains("burst")) config->burst = std::atoi(args.get("burst").c_str());
  auto client = Client::create(std::move(*config));
  if (!client) {
    std::cerr << "pi0-kube-probe: " << client.error().message << "\n";
    return 1;
  }
  const ResourceType* type = resourceNamed(args.get("resource", "configmaps"));
  if (type == nullptr) return usage("unknown --resource " + args.get("resource"));

  if (args.command == "check") return check(**client);
  if (args.command == "sync") return sync(**client, *type, args.get("namespace"));
  if (args.command == "mirror")
    return mirror(**client, *type, args.get("namespace"), args.get("snapshot"));
  if (args.command == "lead") return lead(**client, args);
  if (args.command == "contend") return contend(**client, args);
  if (args.command == "fill") return fill(**client, args);
  return usage("unknown command " + args.command);
}
