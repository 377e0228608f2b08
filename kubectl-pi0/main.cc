// kubectl-pi0: the kubectl plugin (plugin.h says what it asks and how). This file runs kubectl
// and puts the answers through plugin.h's tables.
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "kubectl-pi0/plugin.h"

extern char** environ;

namespace pi0::kubectl {
namespace {

struct Ran {
  int exitCode = -1;
  std::string out, err;
};

// Runs `kubectl args...` ($KUBECTL, else kubectl on the PATH), its output captured.
Ran run(const std::vector<std::string>& args) {
  const char* kubectl = std::getenv("KUBECTL");
  std::vector<std::string> argv = {kubectl && *kubectl ? kubectl : "kubectl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int out[2], err[2];
  Ran ran;
  if (pipe(out) != 0 || pipe(err) != 0) {
    ran.err = "cannot make a pipe";
    return ran;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  for (int fd : {out[0], out[1], err[0], err[1]})
    posix_spawn_file_actions_addclose(&actions, fd);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0].c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (spawned != 0) {
    close(out[0]);
    close(err[0]);
    ran.err = "cannot run " + argv[0] + ": " + std::strerror(spawned) +
              " (kubectl pi0 runs kubectl; put it on the PATH or name it in $KUBECTL)";
    return ran;
  }
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&ran.out, &ran.err};
  int open = 2;
  char buf[65536];
  while (open > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  ran.exitCode = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return ran;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

// An error from kubectl, with what to do about it where Pi0 knows.
std::string explain(const Invocation& inv, const Ran& ran) {
  const std::string said = trimmed(ran.err);
  const std::string svc = inv.pi0Namespace + "/" + inv.service;
  std::string hint;
  if (said.find("services/proxy") != std::string::npos &&
      said.find("orbidden") != std::string::npos)
    hint = "asking pi0-operator needs `get` on services/proxy of the Service " + svc +
           ": ask for the chart's Role <release>-query (README \"Asking Pi0\")";
  else if (said.find("NotFound") != std::string::npos && said.find("services") != std::string::npos)
    hint = "there is no Service " + svc +
           ": say where Pi0 runs with --pi0-namespace and --service (or $PI0_NAMESPACE, "
           "$PI0_SERVICE)";
  else if (said.find("no endpoints") != std::string::npos ||
           said.find("connection refused") != std::string::npos ||
           (said.find("port") != std::string::npos && said.find("query") != std::string::npos))
    hint = "pi0-operator does not serve its query API on " + svc +
           ": is it running, with the chart's query.enabled?";
  else if (said.find("the server doesn't have a resource type") != std::string::npos)
    hint = "Pi0's CRDs are not installed in this cluster (helm install applies them)";
  return said + (hint.empty() ? "" : "\n" + hint);
}

// `kubectl get --raw` of a query through the service proxy. Only the leader answers: another
// replica says 503, and the proxy picks a replica at random, so a 503 is asked again (at most 10
// times, 0.3 s apart).
Result<Json> query(const Invocation& inv, std::string_view path,
                   const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<std::string> args = inv.kubectlFlags;
  args.insert(args.end(), {"get", "--raw", proxyPath(inv, path, params)});
  Ran ran;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ran = run(args);
    if (ran.exitCode == 0) break;
    if (ran.err.find("does not lead") == std::string::npos) break;
  }
  if (ran.exitCode != 0) return fail(explain(inv, ran));
  try {
    return Json::parse(ran.out);
  } catch (const std::exception& e) {
    return fail("pi0-operator's answer is not JSON: " + std::string(e.what()));
  }
}

Result<Json> get(const Invocation& inv, std::vector<std::string> what) {
  std::vector<std::string> args = inv.kubectlFlags;
  args.push_back("get");
  args.insert(args.end(), what.begin(), what.end());
  args.insert(args.end(), {"-o", "json"});
  Ran ran = run(args);
  if (ran.exitCode != 0) return fail(explain(inv, ran));
  try {
    return Json::parse(ran.out);
  } catch (const std::exception& e) {
    return fail("kubectl's answer is not JSON: " + std::string(e.what()));
  }
}

// The namespace asked about: -n, else the context's, else "default".
std::string namespaceOf(const Invocation& inv) {
  if (!inv.ns.empty()) return inv.ns;
  std::vector<std::string> args = inv.kubectlFlags;
  args.insert(args.end(), {"config", "view", "--minify", "-o", "jsonpath={..namespace}"});
  const Ran ran = run(args);
  const std::string ns = trimmed(ran.out);
  return ran.exitCode == 0 && !ns.empty() ? ns : "default";
}

int print(const Invocation& inv, const Json& value, const std::string& table) {
  if (inv.output == Output::kJson)
    std::cout << value.dump(2) << "\n";
  else if (inv.output == Output::kYaml)
    std::cout << toYaml(value);
  else
    std::cout << table;
  return 0;
}

int failWith(const std::string& message) {
  std::cerr << "kubectl pi0: " << message << "\n";
  return 1;
}

// The decisions of `why`: by the pod's uid while it exists (by its name after), or by the
// controller that made the pods (a Deployment's through its ReplicaSets).
Result<Json> whyDecisions(const Invocation& inv, const std::string& ns, const std::string& target) {
  const std::string limit = std::to_string(inv.limit ? inv.limit : 10);
  const auto slash = target.find('/');
  const std::string kindWord = slash == std::string::npos ? "pod" : target.substr(0, slash);
  const std::string name = slash == std::string::npos ? target : target.substr(slash + 1);
  const std::string kind = controllerKind(kindWord);
  std::vector<std::vector<std::pair<std::string, std::string>>> queries;
  if (kind.empty()) {
    auto pod = get(inv, {"pod", name, "-n", ns});
    if (pod && (*pod)["metadata"].contains("uid"))
      queries.push_back({{"namespace", ns},
                         {"podUid", (*pod)["metadata"]["uid"].get<std::string>()},
                         {"limit", limit}});
    else
      queries.push_back({{"namespace", ns}, {"pod", name}, {"limit", limit}});
  } else if (kind == "Deployment") {
    auto sets = get(inv, {"replicasets", "-n", ns});
    if (!sets) return fail(sets.error().message);
    for (const Json& rs : (*sets)["items"])
      for (const Json& ref : rs["metadata"].value("ownerReferences", Json::array()))
        if (ref.value("kind", "") == "Deployment" && ref.value("name", "") == name)
          queries.push_back({{"namespace", ns},
                             {"owner", rs["metadata"]["name"].get<std::string>()},
                             {"limit", limit}});
    if (queries.empty())
      return fail("deployment/" + name + " has no ReplicaSets in namespace " + ns +
                  " (kubectl get deployment " + name + " -n " + ns + ")");
  } else {
    queries.push_back({{"namespace", ns}, {"owner", name}, {"limit", limit}});
  }
  Json merged = {{"apiVersion", "stability.pi0.io/v1alpha1"},
                 {"kind", "DecisionList"},
                 {"decisions", Json::array()}};
  for (const auto& params : queries) {
    auto answer = query(inv, "/query/decisions", params);
    if (!answer) return answer;
    for (Json& d : (*answer)["decisions"])
      merged["decisions"].push_back(std::move(d));
  }
  auto& list = merged["decisions"];
  std::stable_sort(list.begin(), list.end(), [](const Json& a, const Json& b) {
    return a.value("at", "") > b.value("at", "");
  });
  const std::size_t keep = inv.limit ? inv.limit : 10;
  if (list.size() > keep) list.erase(list.begin() + static_cast<std::ptrdiff_t>(keep), list.end());
  return merged;
}

int complete(const std::vector<std::string>& words) {
  Invocation inv;
  for (std::size_t i = 0; i < words.size(); ++i)
    if ((words[i] == "-n" || words[i] == "--namespace") && i + 1 < words.size())
      inv.ns = words[i + 1];
  auto names = [&](const char* kind) {
    std::vector<std::string> args = {"get", kind, "-o", "jsonpath={.items[*].metadata.name}"};
    if (std::string(kind) == "pods" || std::string(kind) == "shutdownmatrices") {
      args.push_back("-n");
      args.push_back(namespaceOf(inv));
    }
    const Ran ran = run(args);
    std::vector<std::string> out;
    std::string word;
    for (char c : ran.out + " ") {
      if (c == ' ' || c == '\n') {
        if (!word.empty()) out.push_back(word);
        word.clear();
      } else {
        word += c;
      }
    }
    return out;
  };
  for (const std::string& c : pi0::kubectl::complete(words, names))
    std::cout << c << "\n";
  std::cout << ":4\n";  // no file names (cobra's ShellCompDirectiveNoFileComp)
  return 0;
}

int runCommand(const Invocation& inv) {
  if (inv.command == "version") {
    std::cout << "kubectl-pi0 " << PI0_VERSION << "\n";
    return 0;
  }
  if (inv.command == "completion") {
    auto script = completionScript(inv.args[0]);
    if (!script) return failWith(script.error().message);
    std::cout << *script;
    return 0;
  }
  if (inv.command == "why") {
    const std::string ns = namespaceOf(inv);
    auto found = whyDecisions(inv, ns, inv.args[0]);
    if (!found) return failWith(found.error().message);
    return print(inv, *found, whyReport(*found, ns + "/" + inv.args[0]));
  }
  if (inv.command == "ledger") {
    std::vector<std::pair<std::string, std::string>> params;
    if (!inv.since.empty()) params.emplace_back("since", inv.since);
    params.emplace_back("limit", std::to_string(inv.limit ? inv.limit : 50));
    if (inv.actions) {
      auto found = query(inv, "/query/actions", params);
      if (!found) return failWith(found.error().message);
      return print(inv, *found, actionsTable(*found));
    }
    if (!inv.allNamespaces) params.emplace_back("namespace", namespaceOf(inv));
    if (!inv.node.empty()) params.emplace_back("node", inv.node);
    if (!inv.channel.empty()) params.emplace_back("channel", inv.channel);
    auto found = query(inv, "/query/decisions", params);
    if (!found) return failWith(found.error().message);
    return print(inv, *found, decisionsTable(*found, inv.allNamespaces));
  }
  if (inv.command == "plan") {
    std::vector<std::string> what = {"shutdownmatrices.stability.pi0.io"};
    if (!inv.args.empty()) what.push_back(inv.args[0]);
    if (inv.allNamespaces) {
      what.push_back("-A");
    } else {
      what.push_back("-n");
      what.push_back(namespaceOf(inv));
    }
    auto found = get(inv, what);
    if (!found) return failWith(found.error().message);
    return print(inv, *found, planReport(*found));
  }
  if (inv.command == "calibration") {
    auto found = get(inv, {"gatepolicies.stability.pi0.io",
                           inv.args.empty() ? std::string("default") : inv.args[0]});
    if (!found) return failWith(found.error().message);
    return print(inv, *found, calibrationReport(*found));
  }
  if (inv.command == "seen" && inv.args.empty()) {
    auto found = query(inv, "/query/archetypes", {});
    if (!found) return failWith(found.error().message);
    return print(inv, *found, archetypesReport(*found));
  }
  if (inv.command == "seen") {
    auto found = query(inv, "/query/seen", {{"node", inv.args[0]}});
    if (!found) return failWith(found.error().message);
    return print(inv, *found, seenReport(*found));
  }
  return failWith("unknown command " + inv.command);
}

}  // namespace
}  // namespace pi0::kubectl

int main(int argc, char** argv) {
  using namespace pi0::kubectl;
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "__complete")
    return complete(std::vector<std::string>(args.begin() + 1, args.end()));
  auto inv = parseArgs(args, [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  });
  if (!inv) {
    std::cerr << "kubectl pi0: " << inv.error().message << "\n";
    return 2;
  }
  if (inv->help) {
    std::cout << usage();
    return 0;
  }
  return runCommand(*inv);
}
