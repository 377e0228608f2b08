// Self-signed certificates for pi0-webhook's self-managed certificate mode (OpenSSL 3): a CA,
// serving certificates it signs, and reading back what a certificate says. Keys are EC P-256;
// signatures SHA-256. Everything is PEM text: certificates "BEGIN CERTIFICATE", keys PKCS#8
// "BEGIN PRIVATE KEY", unencrypted.
//
// Times: a certificate made at `now` is valid from now - kBackdate (so that a peer whose clock
// runs a little behind accepts it at once) until now + validity, both in whole seconds.
//
// Thread-safety: every function may be called from any thread at once.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pi0::certs {

using TimePoint = std::chrono::system_clock::time_point;

inline constexpr std::chrono::hours kBackdate{1};

struct Pem {
  std::string certificate;
  std::string key;
};

// A CA: basicConstraints critical CA:TRUE, keyUsage critical keyCertSign, cRLSign and
// digitalSignature, a subject key identifier; subject and issuer CN=`commonName`.
Result<Pem> makeCa(std::string commonName, std::chrono::seconds validity, TimePoint now);

// A serving certificate signed by `ca` (its certificate and key): CA:FALSE, keyUsage critical
// digitalSignature, extendedKeyUsage serverAuth, subjectAltName with every DNS name and IP
// address given (at least one in all), CN the first DNS name (or IP address). Its notAfter is
// never later than the CA's. Fails when the CA's key does not match its certificate, the CA is
// not a CA, a DNS name is empty or holds characters a host name cannot hold, or an IP address
// does not parse (IPv4 dotted quad or IPv6).
Result<Pem> makeServing(const Pem& ca, std::vector<std::string> dnsNames,
                        std::vector<std::string> ipAddresses, std::chrono::seconds validity,
                        TimePoint now);

struct CertInfo {
  std::string commonName;  // of the subject; empty when it has none
  TimePoint notBefore, notAfter;
  std::vector<std::string> dnsNames;     // subjectAltName DNS entries, in order
  std::vector<std::string> ipAddresses;  // subjectAltName IP entries as text ("10.0.0.1", "::1")
  bool isCa = false;                     // basicConstraints CA:TRUE
  std::string sha256;                    // of the DER encoding, lowercase hex
};

// What the first certificate in `certPem` says. An error when the text holds no certificate
// that parses.
Result<CertInfo> inspect(std::string_view certPem);

// Whether the first certificate in `certPem` was issued by the first in `caPem`: the issuer
// name matches the CA's subject (and its key identifiers, when present) and the signature
// verifies with the CA's public key. Says nothing about validity periods. False when either
// does not parse.
bool signedBy(std::string_view certPem, std::string_view caPem);

// Whether `keyPem` is the private key of the first certificate in `certPem`. False when either
// does not parse.
bool keyMatches(std::string_view certPem, std::string_view keyPem);

// The certificates of a PEM bundle (a caBundle, a chain), each re-encoded as one PEM block, in
// order. Text outside BEGIN/END CERTIFICATE blocks is ignored; `broken` (when given) counts the
// blocks that do not parse, which are left out.
std::vector<std::string> certificatesIn(std::string_view bundle, int* broken = nullptr);

}  // namespace pi0::certs
