#include "certs/self_signed.h"

#include <arpa/inet.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <utility>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/openssl.h"

namespace pi0::certs {
namespace {

constexpr std::string_view kBeginCert = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view kEndCert = "-----END CERTIFICATE-----";

X509Ptr readCert(std::string_view pem) {
  BioPtr bio = memoryBio(pem);
  if (!bio) return nullptr;
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, noPassword, nullptr));
  ERR_clear_error();
  return cert;
}

PkeyPtr readKey(std::string_view pem) {
  BioPtr bio = memoryBio(pem);
  if (!bio) return nullptr;
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassword, nullptr));
  ERR_clear_error();
  return key;
}

std::string bioText(BIO* bio) {
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  return length > 0 ? std::string(data, static_cast<std::size_t>(length)) : std::string();
}

Result<std::string> certPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return fail("cannot encode a certificate" + takeOpensslErrors());
  }
  return bioText(bio.get());
}

Result<std::string> keyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return fail("cannot encode a private key" + takeOpensslErrors());
  }
  return bioText(bio.get());
}

TimePoint toTimePoint(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return TimePoint{};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// A name a certificate may carry as a DNS subjectAltName: letters, digits, '-', '.', '_' and a
// leading "*." wildcard. Anything else (spaces, commas, NULs) is refused rather than encoded.
bool isHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::string_view rest = name.starts_with("*.") ? name.substr(2) : name;
  if (rest.empty()) return false;
  for (char c : rest) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// 16 random bytes with the top bit clear: a positive serial number of at most 127 bits
// (RFC 5280 allows 20 octets; CA/Browser Forum asks for 64 random bits).
Result<void> setRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return fail("no random bytes" + takeOpensslErrors());
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01 << 6;  // never a short serial
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return fail("cannot set a serial number" + takeOpensslErrors());
  }
  return {};
}

Result<void> addExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return fail(std::string("cannot add the extension ") + OBJ_nid2sn(nid) + " = " + value +
                takeOpensslErrors());
  }
  return {};
}

// A certificate for `key` with the common name, the validity and the serial set, and issuer
// and signature still to come.
Result<X509Ptr> newCertificate(const std::string& commonName, EVP_PKEY* key,
                               std::chrono::seconds validity, TimePoint now) {
  X509Ptr cert(X509_new());
  if (!cert) return fail("out of memory" + takeOpensslErrors());
  X509_set_version(cert.get(), X509_VERSION_3);
  if (auto serial = setRandomSerial(cert.get()); !serial) return std::unexpected(serial.error());
  const auto nowSeconds = std::chrono::floor<std::chrono::seconds>(now);
  const time_t from = std::chrono::system_clock::to_time_t(nowSeconds - kBackdate);
  const time_t until = std::chrono::system_clock::to_time_t(nowSeconds + validity);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), from) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), until) == nullptr) {
    return fail("cannot set the validity" + takeOpensslErrors());
  }
  if (X509_set_pubkey(cert.get(), key) != 1)
    return fail("cannot set the key" + takeOpensslErrors());
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1,
                                 0) != 1) {
    return fail("cannot set the common name '" + commonName + "'" + takeOpensslErrors());
  }
  return cert;
}

Result<void> sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return fail("cannot sign" + takeOpensslErrors());
  return {};
}

}  // namespace

Result<Pem> makeCa(std::string commonName, std::chrono::seconds validity, TimePoint now) {
  ERR_clear_error();
  if (commonName.empty()) return fail("a CA needs a common name");
  if (validity <= std::chrono::seconds(0)) return fail("a CA needs a positive validity");
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return fail("cannot generate an EC P-256 key" + takeOpensslErrors());
  auto cert = newCertificate(commonName, key.get(), validity, now);
  if (!cert) return std::unexpected(cert.error());
  X509* x = cert->get();
  if (X509_set_issuer_name(x, X509_get_subject_name(x)) != 1) {
    return fail("cannot set the issuer" + takeOpensslErrors());
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
        std::pair{NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
        std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto added = addExtension(x, &ctx, nid, value); !added) {
      return std::unexpected(added.error());
    }
  }
  if (auto signed_ = sign(x, key.get()); !signed_) return std::unexpected(signed_.error());
  auto certText = certPem(x);
  if (!certText) return std::unexpected(certText.error());
  auto keyText = keyPem(key.get());
  if (!keyText) return std::unexpected(keyText.error());
  return Pem{std::move(*certText), std::move(*keyText)};
}

Result<Pem> makeServing(const Pem& ca, std::vector<std::string> dnsNames,
                        std::vector<std::string> ipAddresses, std::chrono::seconds validity,
                        TimePoint now) {
  ERR_clear_error();
  if (dnsNames.empty() && ipAddresses.empty()) {
    return fail("a serving certificate needs at least one DNS name or IP address");
  }
  if (validity <= std::chrono::seconds(0))
    return fail("a serving certificate needs a positive validity");
  X509Ptr caCert = readCert(ca.certificate);
  if (!caCert) return fail("the CA certificate does not parse");
  PkeyPtr caKey = readKey(ca.key);
  if (!caKey) return fail("the CA key does not parse (encrypted keys are not supported)");
  if (X509_check_private_key(caCert.get(), caKey.get()) != 1) {
    ERR_clear_error();
    return fail("the CA key does not match the CA certificate");
  }
  if (X509_check_ca(caCert.get()) == 0) return fail("the CA certificate is not a CA");

  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return fail("out of memory");
  for (const auto& dns : dnsNames) {
    if (!isHostName(dns)) return fail("'" + dns + "' is not a DNS name");
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    if (gn == nullptr || text == nullptr ||
        ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(text);
      return fail("out of memory");
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, text);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  for (const auto& ip : ipAddresses) {
    ASN1_OCTET_STRING* octets = a2i_IPADDRESS(ip.c_str());
    if (octets == nullptr) {
      ERR_clear_error();
      return fail("'" + ip + "' is not an IP address");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (gn == nullptr) {
      ASN1_OCTET_STRING_free(octets);
      return fail("out of memory");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, octets);
    sk_GENERAL_NAME_push(names.get(), gn);
  }

  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return fail("cannot generate an EC P-256 key" + takeOpensslErrors());
  // Never valid beyond the CA: a client would refuse the chain then anyway.
  TimePoint until = std::chrono::floor<std::chrono::seconds>(now) + validity;
  TimePoint caUntil = toTimePoint(X509_get0_notAfter(caCert.get()));
  auto clamped = validity;
  if (until > caUntil) {
    clamped = std::chrono::floor<std::chrono::seconds>(
        caUntil - std::chrono::floor<std::chrono::seconds>(now));
    if (clamped <= std::chrono::seconds(0)) return fail("the CA has expired");
  }
  const std::string commonName = dnsNames.empty() ? ipAddresses.front() : dnsNames.front();
  auto cert = newCertificate(commonName, key.get(), clamped, now);
  if (!cert) return std::unexpected(cert.error());
  X509* x = cert->get();
  if (X509_set_issuer_name(x, X509_get_subject_name(caCert.get())) != 1) {
    return fail("cannot set the issuer" + takeOpensslErrors());
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, caCert.get(), x, nullptr, nullptr, 0);
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
        std::pair{NID_key_usage, "critical,digitalSignature"},
        std::pair{NID_ext_key_usage, "serverAuth"}, std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto added = addExtension(x, &ctx, nid, value); !added) {
      return std::unexpected(added.error());
    }
  }
  if (X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return fail("cannot add the subjectAltName" + takeOpensslErrors());
  }
  if (auto signed_ = sign(x, caKey.get()); !signed_) return std::unexpected(signed_.error());
  auto certText = certPem(x);
  if (!certText) return std::unexpected(certText.error());
  auto keyText = keyPem(key.get());
  if (!keyText) return std::unexpected(keyText.error());
  return Pem{std::move(*certText), std::move(*keyText)};
}

Result<CertInfo> inspect(std::string_view certPemText) {
  X509Ptr cert = readCert(certPemText);
  if (!cert) return fail("no PEM certificate that parses");
  CertInfo info;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length >= 0)
      info.commonName.assign(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
    OPENSSL_free(utf8);
  }
  info.notBefore = toTimePoint(X509_get0_notBefore(cert.get()));
  info.notAfter = toTimePoint(X509_get0_notAfter(cert.get()));
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (gn->type == GEN_DNS) {
        const ASN1_IA5STRING* s = gn->d.dNSName;
        info.dnsNames.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<std::size_t>(ASN1_STRING_length(s)));
      } else if (gn->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = gn->d.iPAddress;
        const int length = ASN1_STRING_length(s);
        char text[INET6_ADDRSTRLEN] = {};
        const int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : 0;
        if (family != 0 &&
            inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof text) != nullptr) {
          info.ipAddresses.emplace_back(text);
        }
      }
    }
  }
  BasicConstraintsPtr constraints(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert.get(), NID_basic_constraints, nullptr, nullptr)));
  info.isCa = constraints && constraints->ca != 0;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &length) != 1) {
    return fail("cannot compute the fingerprint" + takeOpensslErrors());
  }
  char hex[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", md[i]);
    info.sha256 += hex;
  }
  ERR_clear_error();
  return info;
}

bool signedBy(std::string_view certPemText, std::string_view caPem) {
  X509Ptr cert = readCert(certPemText);
  X509Ptr ca = readCert(caPem);
  if (!cert || !ca) return false;
  bool ok = X509_check_issued(ca.get(), cert.get()) == X509_V_OK &&
            X509_verify(cert.get(), X509_get0_pubkey(ca.get())) == 1;
  ERR_clear_error();
  return ok;
}

bool keyMatches(std::string_view certPemText, std::string_view keyPemText) {
  X509Ptr cert = readCert(certPemText);
  PkeyPtr key = readKey(keyPemText);
  if (!cert || !key) return false;
  bool ok = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::vector<std::string> certificatesIn(std::string_view bundle, int* broken) {
  std::vector<std::string> out;
  if (broken != nullptr) *broken = 0;
  std::size_t pos = 0;
  while ((pos = bundle.find(kBeginCert, pos)) != std::string_view::npos) {
    std::size_t end = bundle.find(kEndCert, pos);
    if (end == std::string_view::npos) {
      if (broken != nullptr) ++*broken;
      break;
    }
    end += kEndCert.size();
    X509Ptr cert = readCert(bundle.substr(pos, end - pos));
    auto text = cert ? certPem(cert.get()) : Result<std::string>(fail("broken"));
    if (text) {
      out.push_back(std::move(*text));
    } else if (broken != nullptr) {
      ++*broken;
    }
    pos = end;
  }
  ERR_clear_error();
  return out;
}

}  // namespace pi0::certs
