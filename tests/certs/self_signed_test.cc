// Certificates made with OpenSSL and checked with OpenSSL's own verifier, and the rotation
// planner of the self-managed mode as a table of Secret and caBundle states.
#include "certs/self_signed.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certs/openssl.h"
#include "certs/rotation.h"
#include "common/base64.h"
#include "common/digest.h"
#include "common/timestamp.h"

namespace pi0::certs {
namespace {

using namespace std::chrono_literals;
using std::chrono::hours;

// 2030-01-01T00:00:00Z: a whole second, far from now, so nothing depends on the real clock.
const TimePoint kT0 = *parseRfc3339("2030-01-01T00:00:00Z");

Pem ca(TimePoint now = kT0, hours validity = hours(24 * 365 * 10)) {
  auto made = makeCa("test-ca", validity, now);
  REQUIRE(made);
  return *made;
}

Pem serving(const Pem& issuer, TimePoint now = kT0,
            std::vector<std::string> dns = {"pi0-webhook.pi0.svc"},
            std::vector<std::string> ips = {}) {
  auto made = makeServing(issuer, std::move(dns), std::move(ips), hours(24 * 90), now);
  REQUIRE(made);
  return *made;
}

X509Ptr parse(const std::string& pem) {
  BioPtr bio = memoryBio(pem);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// OpenSSL's chain verification of `leaf` against the single trusted `root`, for TLS server
// use by `host`, at `at`: 0 (X509_V_OK) or the verify error.
int verify(const std::string& leaf, const std::string& root, const std::string& host,
           TimePoint at) {
  X509Ptr leafCert = parse(leaf), rootCert = parse(root);
  REQUIRE(leafCert);
  REQUIRE(rootCert);
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  REQUIRE(X509_STORE_add_cert(store.get(), rootCert.get()) == 1);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                      X509_STORE_CTX_free);
  REQUIRE(X509_STORE_CTX_init(ctx.get(), store.get(), leafCert.get(), nullptr) == 1);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(at));
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  int ok = X509_verify_cert(ctx.get());
  return ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
}

// The SHA-256 of the DER bytes between the PEM markers, computed without X509 parsing.
std::string derSha256(const std::string& pem) {
  const std::string begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----";
  auto from = pem.find(begin) + begin.size();
  auto der = base64Decode(pem.substr(from, pem.find(end) - from));
  REQUIRE(der);
  return sha256Hex(*der);
}

}  // namespace

TEST_CASE("a CA: CA:TRUE, its own issuer, valid from an hour before now for the validity asked") {
  Pem root = ca(kT0, hours(100));
  auto info = inspect(root.certificate);
  REQUIRE(info);
  CHECK(info->isCa);
  CHECK(info->commonName == "test-ca");
  CHECK(info->notBefore == kT0 - 1h);
  CHECK(info->notAfter == kT0 + 100h);
  CHECK(signedBy(root.certificate, root.certificate));
  CHECK(keyMatches(root.certificate, root.key));
  CHECK(root.key.starts_with("-----BEGIN PRIVATE KEY-----"));
  CHECK(info->sha256 == derSha256(root.certificate));
  // A second CA has another key and another fingerprint.
  Pem other = ca();
  CHECK_FALSE(keyMatches(root.certificate, other.key));
  CHECK(inspect(other.certificate)->sha256 != info->sha256);
}

TEST_CASE("a serving certificate verifies against its CA for its names, and only so") {
  Pem root = ca();
  Pem leaf = serving(root, kT0, {"pi0-webhook.pi0.svc", "pi0-webhook.pi0.svc.cluster.local"},
                     {"127.0.0.1", "::1"});
  CHECK(verify(leaf.certificate, root.certificate, "pi0-webhook.pi0.svc", kT0) == X509_V_OK);
  CHECK(verify(leaf.certificate, root.certificate, "pi0-webhook.pi0.svc.cluster.local",
               kT0 + 24h) == X509_V_OK);
  CHECK(verify(leaf.certificate, root.certificate, "other.pi0.svc", kT0) ==
        X509_V_ERR_HOSTNAME_MISMATCH);
  CHECK(verify(leaf.certificate, ca().certificate, "pi0-webhook.pi0.svc", kT0) ==
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  CHECK(verify(leaf.certificate, root.certificate, "pi0-webhook.pi0.svc", kT0 + hours(24 * 91)) ==
        X509_V_ERR_CERT_HAS_EXPIRED);
  CHECK(verify(leaf.certificate, root.certificate, "pi0-webhook.pi0.svc", kT0 - 2h) ==
        X509_V_ERR_CERT_NOT_YET_VALID);

  auto info = inspect(leaf.certificate);
  REQUIRE(info);
  CHECK_FALSE(info->isCa);
  CHECK(info->commonName == "pi0-webhook.pi0.svc");
  CHECK(info->dnsNames ==
        std::vector<std::string>{"pi0-webhook.pi0.svc", "pi0-webhook.pi0.svc.cluster.local"});
  CHECK(info->ipAddresses == std::vector<std::string>{"127.0.0.1", "::1"});
  CHECK(info->notBefore == kT0 - 1h);
  CHECK(info->notAfter == kT0 + hours(24 * 90));
  CHECK(info->sha256 == derSha256(leaf.certificate));
  CHECK(signedBy(leaf.certificate, root.certificate));
  CHECK_FALSE(signedBy(leaf.certificate, ca().certificate));
  CHECK_FALSE(signedBy(root.certificate, leaf.certificate));
  CHECK(keyMatches(leaf.certificate, leaf.key));
  CHECK_FALSE(keyMatches(leaf.certificate, root.key));
}

TEST_CASE("a serving certificate never outlives its CA") {
  Pem root = ca(kT0, hours(48));
  auto info = inspect(serving(root, kT0 + 10h).certificate);
  REQUIRE(info);
  CHECK(info->notAfter == kT0 + 48h);
}

TEST_CASE("bad input is an error, never a certificate") {
  Pem root = ca();
  CHECK_FALSE(inspect(""));
  CHECK_FALSE(inspect("garbage"));
  CHECK_FALSE(inspect("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  CHECK_FALSE(inspect(root.key));
  CHECK_FALSE(signedBy("garbage", root.certificate));
  CHECK_FALSE(signedBy(root.certificate, "garbage"));
  CHECK_FALSE(keyMatches(root.certificate, "garbage"));
  CHECK_FALSE(makeServing(root, {}, {}, 24h, kT0));
  CHECK_FALSE(makeServing(root, {"a,b"}, {}, 24h, kT0));
  CHECK_FALSE(makeServing(root, {""}, {}, 24h, kT0));
  CHECK_FALSE(makeServing(root, {}, {"300.1.1.1"}, 24h, kT0));
  CHECK_FALSE(makeServing(Pem{root.certificate, ca().key}, {"a"}, {}, 24h, kT0));
  CHECK_FALSE(makeServing(Pem{"garbage", root.key}, {"a"}, {}, 24h, kT0));
  Pem leaf = serving(root);
  CHECK_FALSE(makeServing(leaf, {"a"}, {}, 24h, kT0));  // not a CA
  CHECK_FALSE(makeCa("", 24h, kT0));
}

TEST_CASE("certificatesIn: the certificates of a bundle, broken blocks counted") {
  Pem a = ca(), b = ca();
  int broken = -1;
  auto certs = certificatesIn("junk\n" + a.certificate + "\n" + b.certificate, &broken);
  REQUIRE(certs.size() == 2);
  CHECK(certs[0] == a.certificate);
  CHECK(certs[1] == b.certificate);
  CHECK(broken == 0);
  certs = certificatesIn(
      a.certificate + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &broken);
  CHECK(certs.size() == 1);
  CHECK(broken == 1);
  CHECK(certificatesIn("").empty());
}

// The planner: one row per situation, each with the step a person derives from the rules in
// rotation.h.
namespace {

const std::vector<std::string> kNames{"pi0-webhook.pi0.svc"};

SecretPems secretOf(const Pem& root, const Pem& leaf) {
  return {root.certificate, root.key, leaf.certificate, leaf.key, std::nullopt, std::nullopt};
}

Plan planAt(const SecretPems& secret, const std::vector<std::string>& bundles, TimePoint now) {
  return planCertificates(secret, bundles, kNames, now, RotationPolicy{});
}

}  // namespace

TEST_CASE("planner: what to do for each state of the Secret and the caBundles") {
  Pem root = ca();
  Pem leaf = serving(root);
  Pem stranger = ca();
  const std::string junkBlock = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  const TimePoint later = kT0 + hours(24);  // the serving certificate is a day old

  struct Row {
    const char* name;
    SecretPems secret;
    std::vector<std::string> bundles;
    TimePoint now;
    Step want;
  };
  SecretPems noCaKey = secretOf(root, leaf);
  noCaKey.caKey.reset();
  SecretPems wrongCaKey = secretOf(root, leaf);
  wrongCaKey.caKey = stranger.key;
  SecretPems garbageCa = secretOf(root, leaf);
  garbageCa.caCert = "garbage";
  SecretPems notBase64 = secretOf(root, leaf);
  notBase64.caCert = "";  // how a value that is not base64 arrives
  SecretPems garbageServing = secretOf(root, leaf);
  garbageServing.servingCert = "garbage";
  SecretPems wrongServingKey = secretOf(root, leaf);
  wrongServingKey.servingKey = stranger.key;
  SecretPems garbageNext = secretOf(root, leaf);
  garbageNext.nextCaCert = "garbage";
  garbageNext.nextCaKey = "garbage";
  Pem foreignLeaf = serving(stranger);
  Pem otherNames = serving(root, kT0, {"old.pi0.svc"});

  const std::vector<Row> rows = {
      {"fresh: no Secret", SecretPems{}, {""}, kT0, Step::kCreate},
      {"valid and converged", secretOf(root, leaf), {root.certificate}, later, Step::kNone},
      {"serving certificate 59 days old",
       secretOf(root, leaf),
       {root.certificate},
       kT0 + hours(24 * 59),
       Step::kNone},
      {"serving certificate 60 days old: renew",
       secretOf(root, leaf),
       {root.certificate},
       kT0 + hours(24 * 60),
       Step::kRenewServing},
      {"serving certificate expired",
       secretOf(root, leaf),
       {root.certificate},
       kT0 + hours(24 * 91),
       Step::kRenewServing},
      {"serving certificate lacks a name",
       secretOf(root, otherNames),
       {root.certificate},
       later,
       Step::kRenewServing},
      {"serving certificate of another CA",
       secretOf(root, foreignLeaf),
       {root.certificate},
       later,
       Step::kRenewServing},
      {"garbage tls.crt", garbageServing, {root.certificate}, later, Step::kRenewServing},
      {"tls.key of another certificate",
       wrongServingKey,
       {root.certificate},
       later,
       Step::kRenewServing},
      {"no ca.key", noCaKey, {root.certificate}, later, Step::kCreate},
      {"ca.key of another CA", wrongCaKey, {root.certificate}, later, Step::kCreate},
      {"garbage ca.crt", garbageCa, {root.certificate}, later, Step::kCreate},
      {"ca.crt not base64", notBase64, {root.certificate}, later, Step::kCreate},
      {"CA expired",
       secretOf(root, leaf),
       {root.certificate},
       kT0 + hours(24 * 365 * 10),
       Step::kCreate},
      {"garbage next-ca", garbageNext, {root.certificate}, later, Step::kDropNextCa},
      {"empty caBundle", secretOf(root, leaf), {""}, later, Step::kAddToBundle},
      {"caBundle of another CA",
       secretOf(root, leaf),
       {stranger.certificate},
       later,
       Step::kAddToBundle},
      {"second webhook lacks the CA",
       secretOf(root, leaf),
       {root.certificate, stranger.certificate},
       later,
       Step::kAddToBundle},
      {"bundle also trusts a stranger, serving certificate fresh",
       secretOf(root, leaf),
       {stranger.certificate + root.certificate},
       kT0 + 2min,
       Step::kWait},
      {"bundle also trusts a stranger, serving certificate propagated",
       secretOf(root, leaf),
       {stranger.certificate + root.certificate},
       later,
       Step::kDropFromBundle},
      {"bundle with a broken block",
       secretOf(root, leaf),
       {root.certificate + junkBlock},
       later,
       Step::kDropFromBundle},
      {"CA in its last year",
       secretOf(root, serving(root, kT0 + hours(24 * 365 * 9))),
       {root.certificate},
       kT0 + hours(24 * 365 * 9 + 24),
       Step::kStageNextCa},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    Plan got = planAt(row.secret, row.bundles, row.now);
    CAPTURE(got.reason);
    CHECK(stepName(got.step) == stepName(row.want));
  }
}

TEST_CASE("planner: the next check of a converged state is the earlier renewal point") {
  Pem root = ca();
  Pem leaf = serving(root);
  Plan got = planAt(secretOf(root, leaf), {root.certificate}, kT0 + 24h);
  CHECK(got.step == Step::kNone);
  CHECK(got.nextCheck == kT0 + hours(24 * 60));  // 90 days of validity, renewed 30 before
}

TEST_CASE("planner: a CA rotation walks trust first, then the switch, then the drop") {
  // CA A made at T0; nine years and a day later it is in its last year (caRenewBefore).
  Pem a = ca();
  TimePoint now = kT0 + hours(24 * (365 * 9 + 1));
  Pem leafA = serving(a, now - 24h);
  SecretPems secret = secretOf(a, leafA);
  std::vector<std::string> bundles{a.certificate, a.certificate};  // two webhooks

  // 1. Stage B, trusted by nobody yet.
  REQUIRE(planAt(secret, bundles, now).step == Step::kStageNextCa);
  Pem b = ca(now);
  secret.nextCaCert = b.certificate;
  secret.nextCaKey = b.key;

  // 2. Trust B alongside A, in every bundle, A first.
  REQUIRE(planAt(secret, bundles, now).step == Step::kAddToBundle);
  bundles = bundlesWith(bundles, {a.certificate, b.certificate});
  REQUIRE(bundles.size() == 2);
  CHECK(bundles[0] == a.certificate + b.certificate);
  CHECK(bundles[1] == a.certificate + b.certificate);

  // 3. The switch waits until B has had the propagation delay (5 min) since it was issued.
  Plan wait = planAt(secret, bundles, now + 4min);
  CHECK(wait.step == Step::kWait);
  CHECK(wait.nextCheck == std::chrono::floor<std::chrono::seconds>(now) + 5min);
  now += 5min;
  REQUIRE(planAt(secret, bundles, now).step == Step::kSwitchToNextCa);
  Pem leafB = serving(b, now);
  secret = secretOf(b, leafB);
  CHECK(signedBy(leafB.certificate, b.certificate));

  // 4. A stays trusted until the new serving certificate has propagated, then goes.
  CHECK(planAt(secret, bundles, now + 4min).step == Step::kWait);
  now += 5min;
  REQUIRE(planAt(secret, bundles, now).step == Step::kDropFromBundle);
  bundles = bundlesOnly(bundles, {b.certificate});
  CHECK(bundles[0] == b.certificate);
  CHECK(bundles[1] == b.certificate);

  Plan done = planAt(secret, bundles, now);
  CHECK(done.step == Step::kNone);
  CAPTURE(done.reason);
}

TEST_CASE("planner: mid-rotation, a missing next CA in a bundle is added before any switch") {
  Pem a = ca();
  TimePoint now = kT0 + hours(24 * (365 * 9 + 1));
  SecretPems secret = secretOf(a, serving(a, now - 24h));
  Pem b = ca(now);
  secret.nextCaCert = b.certificate;
  secret.nextCaKey = b.key;
  // Long past the propagation delay, but the bundle lost B: trust comes back first.
  CHECK(planAt(secret, {a.certificate}, now + 24h).step == Step::kAddToBundle);
  CHECK(planAt(secret, {a.certificate + b.certificate}, now + 24h).step == Step::kSwitchToNextCa);
}

}  // namespace pi0::certs
