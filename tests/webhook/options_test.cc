#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "options.h"

using pi0::webhook::parseOptions;

namespace {

const std::vector<std::string> kRequired = {
    "--tls-cert-file", "c", "--tls-private-key-file", "k", "--agent-service", "pi0/pi0-agent"};

std::vector<std::string> with(std::vector<std::string> more) {
  auto args = kRequired;
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string errorOf(const std::vector<std::string>& args) {
  auto o = parseOptions(args);
  REQUIRE_FALSE(o);
  return o.error().message;
}

}  // namespace

TEST_CASE("defaults") {
  auto o = parseOptions(kRequired);
  REQUIRE(o);
  CHECK(o->kubeconfig.empty());
  CHECK(o->bindAddress == pi0::HostPort{"0.0.0.0", 8443});
  CHECK(o->serverThreads == 0);
  CHECK(o->certFile == "c");
  CHECK(o->keyFile == "k");
  CHECK_FALSE(o->agents);
  REQUIRE(o->agentService);
  CHECK(o->agentService->ns == "pi0");
  CHECK(o->agentService->name == "pi0-agent");
  CHECK(o->pollIntervalSeconds == 1.0);
  CHECK(o->agentTimeoutSeconds == 1.0);  // the operator's is 2s
  CHECK(o->shutdownDelaySeconds == 5.0);
  CHECK(o->minimumMargin == 0.05);
  CHECK(o->reservations.timeout == std::chrono::seconds(30));
  CHECK(o->policy.mode == pi0::admission::Mode::kEnforce);
  CHECK(o->policy.stale == pi0::admission::StalePolicy::kAllow);
  CHECK(o->policy.excludedNamespaces == std::vector<std::string>{"kube-system"});
  CHECK(o->policy.thresholds.fitError == 0.10);
  CHECK(o->policy.thresholds.gluingDelta == 0.15);
  CHECK(o->policy.thresholds.psi == 0.25);
  CHECK(o->policy.thresholds.isolation == 0.35);
  CHECK(o->policy.troubleWarningSeconds == 60);
  CHECK(o->policy.psiLeadSeconds == 10);
  CHECK_FALSE(o->selfManagedSecret);
  CHECK(o->selfManaged.checkInterval == std::chrono::seconds(60));
  CHECK(o->selfManaged.policy.servingValidity == std::chrono::hours(2160));
  CHECK(o->logLevel == pi0::log::Level::kInfo);
  CHECK(o->ledgerQueue == 10000);
  CHECK_FALSE(o->replica.empty());  // $POD_NAME, else the host name
}

TEST_CASE("the ledger's flags") {
  auto o = parseOptions(with({"--ledger-queue", "0", "--replica", "pi0-webhook-7"}));
  REQUIRE(o);
  CHECK(o->ledgerQueue == 0);
  CHECK(o->replica == "pi0-webhook-7");
  CHECK(errorOf(with({"--ledger-queue", "-1"})).find("--ledger-queue") != std::string::npos);
  CHECK(errorOf(with({"--replica="})).find("--replica must not be empty") != std::string::npos);
}

TEST_CASE("every flag, in both spellings") {
  auto o = parseOptions({"--kubeconfig=/k",
                         "--bind-address",
                         "127.0.0.1:0",
                         "--tls-cert-file",
                         "/c",
                         "--tls-private-key-file=/k.key",
                         "--agents",
                         "node-a=http://127.0.0.1:9560",
                         "--poll-interval",
                         "500ms",
                         "--agent-timeout=300ms",
                         "--mode",
                         "Warn",
                         "--stale-policy=Deny",
                         "--excluded-namespaces",
                         "a,,b",
                         "--gate-fit-error",
                         "0.2",
                         "--gate-gluing-delta=0.3",
                         "--gate-psi",
                         "0.4",
                         "--gate-isolation",
                         "0.5",
                         "--minimum-margin",
                         "0",
                         "--trouble-warning-seconds",
                         "0",
                         "--gate-psi-lead",
                         "0",
                         "--reservation-timeout",
                         "0",
                         "--shutdown-delay=0s",
                         "--server-threads",
                         "4",
                         "--log-level",
                         "debug",
                         "--self-managed-secret",
                         "pi0/certs",
                         "--webhook-configuration",
                         "pi0",
                         "--serving-names",
                         "pi0-webhook.pi0.svc,10.0.0.1",
                         "--certificate-check-interval",
                         "30s",
                         "--serving-validity",
                         "48h",
                         "--serving-renew-before",
                         "24h",
                         "--ca-validity=480h",
                         "--ca-renew-before",
                         "240h",
                         "--propagation-delay",
                         "1.4s"});
  REQUIRE(o);
  CHECK(o->kubeconfig == "/k");
  CHECK(o->bindAddress == pi0::HostPort{"127.0.0.1", 0});
  CHECK(o->certFile == "/c");
  CHECK(o->keyFile == "/k.key");
  REQUIRE(o->agents);
  CHECK((*o->agents)[0].node == "node-a");
  CHECK(o->pollIntervalSeconds == 0.5);
  CHECK(o->agentTimeoutSeconds == doctest::Approx(0.3));
  CHECK(o->policy.mode == pi0::admission::Mode::kWarn);
  CHECK(o->policy.stale == pi0::admission::StalePolicy::kDeny);
  CHECK(o->policy.excludedNamespaces == std::vector<std::string>{"a", "b"});
  CHECK(o->policy.thresholds.fitError == 0.2);
  CHECK(o->policy.thresholds.gluingDelta == 0.3);
  CHECK(o->policy.thresholds.psi == 0.4);
  CHECK(o->policy.thresholds.isolation == 0.5);
  CHECK(o->minimumMargin == 0);
  CHECK(o->policy.troubleWarningSeconds == 0);
  CHECK(o->policy.psiLeadSeconds == 0);
  CHECK(o->reservations.timeout == pi0::Clock::duration::zero());
  CHECK(o->shutdownDelaySeconds == 0);
  CHECK(o->serverThreads == 4);
  CHECK(o->logLevel == pi0::log::Level::kDebug);
  REQUIRE(o->selfManagedSecret);
  // The self-managed mode takes its Secret and the two files from the flags.
  CHECK(o->selfManaged.ns == "pi0");
  CHECK(o->selfManaged.secret == "certs");
  CHECK(o->selfManaged.certFile == "/c");
  CHECK(o->selfManaged.keyFile == "/k.key");
  CHECK(o->selfManaged.webhookConfiguration == "pi0");
  CHECK(o->selfManaged.servingNames == std::vector<std::string>{"pi0-webhook.pi0.svc", "10.0.0.1"});
  CHECK(o->selfManaged.checkInterval == std::chrono::seconds(30));
  CHECK(o->selfManaged.policy.servingValidity == std::chrono::hours(48));
  CHECK(o->selfManaged.policy.servingRenewBefore == std::chrono::hours(24));
  CHECK(o->selfManaged.policy.caValidity == std::chrono::hours(480));
  CHECK(o->selfManaged.policy.caRenewBefore == std::chrono::hours(240));
  CHECK(o->selfManaged.policy.propagationDelay == std::chrono::seconds(1));
}

TEST_CASE("bad flags say what is wrong") {
  struct Case {
    std::vector<std::string> args;
    std::string want;  // a part of the message
  };
  const std::vector<std::string> tls = {"--tls-cert-file", "c", "--tls-private-key-file", "k"};
  auto tlsAnd = [&](std::vector<std::string> more) {
    auto args = tls;
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  for (const auto& c : std::vector<Case>{
           // The cases of webhook_e2e_test.sh, which checks them on the binary.
           {tls, "where are the agents?"},
           {tlsAnd({"--agents", "n=http://127.0.0.1:1", "--agent-service", "a/b"}),
            "exclude each other"},
           {with({"--self-managed-secret", "pi0/certs", "--serving-names", "a"}),
            "needs --webhook-configuration"},
           {with({"--self-managed-secret", "certs"}),
            "--self-managed-secret: 'certs' is not NAMESPACE/NAME (e.g. pi0/pi0-webhook-certs)"},
           {with({"--self-managed-secret", "pi0/certs", "--webhook-configuration", "pi0",
                  "--serving-names", "a", "--serving-validity", "1h", "--serving-renew-before",
                  "2h"}),
            "renew-before must be shorter"},
           {with({"--server-threads", "0"}), "--server-threads: '0' is not a number from 1 to 256"},
           {{"--agent-service", "pi0/pi0-agent"}, "give --tls-cert-file"},
           // And the rest.
           {with({"--self-managed-secret", "pi0/certs", "--webhook-configuration", "pi0"}),
            "needs --serving-names"},
           {with({"--serving-names", "a"}), "need --self-managed-secret"},
           {with({"--bind-address", "8443"}), "--bind-address: '8443' is not HOST:PORT"},
           {with({"--bind-address="}), "--bind-address must not be empty"},
           {with({"--mode", "Loud"}), "--mode: 'Loud' is not Enforce, Warn or DryRun"},
           {with({"--stale-policy", "Maybe"}), "--stale-policy: 'Maybe' is not Allow or Deny"},
           {with({"--gate-psi", "1.5"}), "--gate-psi: '1.5' is not a number in [0,1]"},
           {with({"--minimum-margin", "-0.1"}),
            "--minimum-margin: '-0.1' is not a number in [0,1]"},
           {with({"--trouble-warning-seconds", "3601"}),
            "--trouble-warning-seconds: '3601' is not a whole number of seconds from 0 (off) to "
            "3600"},
           {with({"--gate-psi-lead", "61"}),
            "--gate-psi-lead: '61' is not a whole number of seconds from 0 (PSI now) to 60"},
           {with({"--reservation-timeout", "2h"}), "--reservation-timeout must be at most 1h"},
           {with({"--poll-interval", "0"}), "--poll-interval must be greater than 0"},
           {with({"--serving-validity", "0.2s"}), "--serving-validity: at least 1s"},
           {with({"--agents", ""}), "--agents must not be empty"},
           {with({"--log-level", "loud"}), "--log-level: unknown log level 'loud'"},
           {with({"--frobnicate"}), "unknown flag '--frobnicate'"},
       }) {
    const auto message = errorOf(c.args);
    CAPTURE(message);
    CHECK(message.find(c.want) != std::string::npos);
  }
}

TEST_CASE("--help and --version need nothing else; the usage names every flag") {
  auto o = parseOptions({"--help"});
  REQUIRE(o);
  CHECK(o->help);
  o = parseOptions({"--version"});
  REQUIRE(o);
  CHECK(o->version);
  const auto usage = pi0::webhook::usage();
  for (const char* flag : {"--kubeconfig",
                           "--bind-address",
                           "--tls-cert-file",
                           "--tls-private-key-file",
                           "--agents",
                           "--agent-service",
                           "--poll-interval",
                           "--agent-timeout",
                           "--mode",
                           "--stale-policy",
                           "--excluded-namespaces",
                           "--gate-fit-error",
                           "--gate-gluing-delta",
                           "--gate-psi",
                           "--gate-isolation",
                           "--minimum-margin",
                           "--trouble-warning-seconds",
                           "--gate-psi-lead",
                           "--reservation-timeout",
                           "--shutdown-delay",
                           "--server-threads",
                           "--log-level",
                           "--version",
                           "--help",
                           "--self-managed-secret",
                           "--webhook-configuration",
                           "--serving-names",
                           "--certificate-check-interval",
                           "--serving-validity",
                           "--serving-renew-before",
                           "--ca-validity",
                           "--ca-renew-before",
                           "--propagation-delay"}) {
    CAPTURE(flag);
    CHECK(usage.find(std::string("\n  ") + flag + " ") != std::string::npos);
  }
  CHECK(usage.find("(default 2160h: 90 days)") != std::string::npos);
  CHECK(usage.find("(default 0.0.0.0:8443)") != std::string::npos);
}
