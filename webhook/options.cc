#include "options.h"

#include <unistd.h>

#include <cstdlib>

#include "admission/gate_policy.h"

namespace pi0::webhook {
namespace {

// Self-managed certificates live for years; a duration up to a century is still far from where
// clock ticks overflow.
constexpr flags::DurationRange kCertificateRange{.maxSeconds = 100.0 * 365 * 86400,
                                                 .glossDefault = true};

Result<fleet::ServiceRef> parseSecret(const std::string& text) {
  auto ref = fleet::parseServiceRef(text);
  if (!ref) return fail("'" + text + "' is not NAMESPACE/NAME (e.g. pi0/pi0-webhook-certs)");
  return ref;
}

// A gate's threshold or a margin: a number in [0,1].
flags::Value ratio(double& into) {
  return flags::nonEmpty(flags::number(into, {.min = 0, .max = 1}, "a number in [0,1]"));
}

void addAdmissionFlags(FlagTable& t, Options& o) {
  using admission::Mode;
  using admission::StalePolicy;
  t.add("--mode MODE",
        flags::nonEmpty(flags::choice(
            o.policy.mode,
            {{"Enforce", Mode::kEnforce}, {"Warn", Mode::kWarn}, {"DryRun", Mode::kDryRun}})),
        "Enforce, Warn or DryRun; a namespace's label stability.pi0.io/admission-mode overrides "
        "it");
  t.add("--stale-policy POLICY",
        flags::nonEmpty(flags::choice(
            o.policy.stale, {{"Allow", StalePolicy::kAllow}, {"Deny", StalePolicy::kDeny}})),
        "Allow or Deny when no candidate node has fresh data");
  t.add("--excluded-namespaces NS,...", flags::list(o.policy.excludedNamespaces), "never reviewed");
  admission::addGateFlags(t, o.policy.thresholds, o.gatePolicy);
  t.add("--minimum-margin X", ratio(o.minimumMargin),
        "margin between the admission gate and a matrix's first level");
  t.add("--trouble-warning-seconds N",
        flags::nonEmpty(flags::whole(o.policy.troubleWarningSeconds, 0, 3600,
                                     "a whole number of seconds from 0 (off) to 3600")),
        "warn when an admitted pod's node expects trouble on a resource the pod uses within N "
        "seconds (its forecast's secondsToTrouble), 0 to 3600; 0 is off");
  t.add("--gate-psi-lead N",
        flags::nonEmpty(flags::whole(o.policy.psiLeadSeconds, 0, 60,
                                     "a whole number of seconds from 0 (PSI now) to 60")),
        "the psi gate reads the highest PSI the kernel's average reaches within N seconds as the "
        "node's stall rate carries it, never below PSI now, 0 to 60; 0 reads PSI now");
  t.add("--history-gate MODE",
        flags::nonEmpty(
            flags::choice(o.policy.history, {{"Off", admission::HistoryGate::kOff},
                                             {"Warn", admission::HistoryGate::kWarn},
                                             {"Enforce", admission::HistoryGate::kEnforce}})),
        "the fingerprint memory's verdict on a node's state, carried by the fleet feed: Off, "
        "Warn (admit, with a warning when the chosen node's state was mostly followed by "
        "trouble before) or Enforce (such a node fails a gate)");
  t.add("--reservation-timeout DURATION",
        flags::duration(o.reservations.timeout, {.allowZero = true}),
        "how long room in a channel's buffer stays reserved for a pod this replica admitted, "
        "when the operator does not count the pod sooner (the Channel's "
        "status.buffer.observedAt 2s after the admission ends it); up to 1h, 0 turns "
        "reservations off");
}

void addSelfManagedFlags(FlagTable& t, Options& o) {
  auto& p = o.selfManaged.policy;
  t.section("Self-managed certificates (otherwise the files come from cert-manager or the user)");
  t.add("--self-managed-secret NS/NAME",
        flags::nonEmpty(flags::custom(o.selfManagedSecret, parseSecret)),
        "keep a CA and the serving certificate in this Secret, write the serving pair to the two "
        "files above, and keep the CA in the caBundle of --webhook-configuration; renewed and "
        "rotated before they expire");
  t.add("--webhook-configuration NAME",
        flags::nonEmpty(flags::text(o.selfManaged.webhookConfiguration)),
        "the ValidatingWebhookConfiguration to keep the caBundle of");
  t.add("--serving-names NAME,...", flags::nonEmpty(flags::list(o.selfManaged.servingNames)),
        "DNS names (and IP addresses) of the serving certificate, e.g. pi0-webhook.pi0.svc");
  t.add("--certificate-check-interval DURATION",
        flags::wholeSeconds(o.selfManaged.checkInterval, kCertificateRange),
        "reconcile at least this often");
  t.add("--serving-validity DURATION", flags::wholeSeconds(p.servingValidity, kCertificateRange),
        "how long a serving certificate is valid");
  t.add("--serving-renew-before DURATION",
        flags::wholeSeconds(p.servingRenewBefore, kCertificateRange),
        "renew the serving certificate this long before it expires");
  t.add("--ca-validity DURATION", flags::wholeSeconds(p.caValidity, kCertificateRange),
        "how long the CA is valid");
  t.add("--ca-renew-before DURATION", flags::wholeSeconds(p.caRenewBefore, kCertificateRange),
        "rotate the CA this long before it expires");
  t.add("--propagation-delay DURATION", flags::wholeSeconds(p.propagationDelay, kCertificateRange),
        "how long a new CA stays in the caBundle before it signs the served certificate, and "
        "the old one after");
}

// Every flag, bound to `o`.
FlagTable flagTable(Options& o) {
  FlagTable t(
      "pi0-webhook --tls-cert-file FILE --tls-private-key-file FILE "
      "--agent-service NS/NAME [flags]",
      "Pi0's validating admission webhook: admits a pod only when some node that could "
      "host it passes the gates, its channel is not shut down and its channel's buffer "
      "has room; validates Channels and ShutdownMatrices.");
  t.add("--kubeconfig FILE", flags::nonEmpty(flags::text(o.kubeconfig)), "kubeconfig")
      .defaultText("$KUBECONFIG, in-cluster, ~/.kube/config");
  t.add("--bind-address HOST:PORT",
        flags::nonEmpty(flags::hostPort(o.bindAddress, "e.g. 0.0.0.0:8443")),
        "where to serve HTTPS");
  t.add("--tls-cert-file FILE", flags::nonEmpty(flags::text(o.certFile)),
        "serving certificate (PEM, chain allowed); reloaded on change; required");
  t.add("--tls-private-key-file FILE", flags::nonEmpty(flags::text(o.keyFile)),
        "its key (PEM); reloaded on change; required");
  fleet::addPollingFlags(t, o);
  addAdmissionFlags(t, o);
  t.add("--shutdown-delay DURATION", flags::duration(o.shutdownDelaySeconds, {.allowZero = true}),
        "keep serving, not ready, this long after SIGTERM; up to 1h");
  t.add("--server-threads N",
        flags::nonEmpty(flags::whole(o.serverThreads, 1, 256, "a number from 1 to 256")),
        "event loops serving the connections, 1 to 256; idle or slow connections hold none")
      .defaultText("one per CPU");
  t.add("--ledger-queue N",
        flags::whole(o.ledgerQueue, 0, 10'000'000, "a whole number in 0..10000000"),
        "decisions held for the truth ledger until the operator leader has stored them, at "
        "most (about 1.2 KiB each); when full, the oldest make room; 0: record none. Sent to "
        "the leader of --fleet-lease");
  t.add("--replica NAME", flags::nonEmpty(flags::text(o.replica)),
        "this replica's name in the ledger's records")
      .defaultText("$POD_NAME, else the host name");
  t.add("--log-level LEVEL", flags::logLevel(o.logLevel), "debug, info, warn or error");
  t.addStandard(o.version, o.help);
  addSelfManagedFlags(t, o);
  t.epilogue(
      "Endpoints (HTTPS): /validate-pods, /validate-channels, /validate-shutdownmatrices, "
      "/metrics, /healthz, /readyz.");
  return t;
}

// The self-managed mode's flags go together; it writes the files the server reads.
Result<void> checkSelfManaged(Options& o) {
  if (!o.selfManagedSecret) {
    if (!o.selfManaged.webhookConfiguration.empty() || !o.selfManaged.servingNames.empty()) {
      return fail("--webhook-configuration and --serving-names need --self-managed-secret");
    }
    return {};
  }
  o.selfManaged.ns = o.selfManagedSecret->ns;
  o.selfManaged.secret = o.selfManagedSecret->name;
  o.selfManaged.certFile = o.certFile;
  o.selfManaged.keyFile = o.keyFile;
  if (o.selfManaged.webhookConfiguration.empty()) {
    return fail(
        "--self-managed-secret needs --webhook-configuration NAME (whose caBundle to keep)");
  }
  if (o.selfManaged.servingNames.empty()) {
    return fail("--self-managed-secret needs --serving-names NAME,... (e.g. pi0-webhook.pi0.svc)");
  }
  const auto& p = o.selfManaged.policy;
  if (p.servingRenewBefore >= p.servingValidity || p.caRenewBefore >= p.caValidity) {
    return fail("a certificate's renew-before must be shorter than its validity");
  }
  return {};
}

}  // namespace

std::string usage() {
  return usageOf(flagTable);
}

Result<Options> parseOptions(const std::vector<std::string>& args) {
  auto o = parseFlags(flagTable, args);
  if (!o || o->help || o->version) return o;
  if (o->certFile.empty() || o->keyFile.empty()) {
    return fail("give --tls-cert-file and --tls-private-key-file (the apiserver calls over HTTPS)");
  }
  if (auto polling = fleet::checkPollingOptions(*o); !polling) return fail(polling.error().message);
  if (auto selfManaged = checkSelfManaged(*o); !selfManaged) {
    return fail(selfManaged.error().message);
  }
  if (o->replica.empty()) {
    char host[256] = {};
    const char* pod = std::getenv("POD_NAME");
    o->replica = pod && *pod                                 ? pod
                 : ::gethostname(host, sizeof host - 1) == 0 ? host
                                                             : "pi0-webhook";
  }
  return o;
}

}  // namespace pi0::webhook
