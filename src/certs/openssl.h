// OpenSSL's objects held by std::unique_ptr, and the few helpers every user of OpenSSL in Pi0
// needs (the HTTPS server, the self-signed certificates, their tests). Header-only, so that
// libpi0_net and libpi0_certs share it without depending on each other.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace pi0::certs {

// Frees with OpenSSL's `Free` function (X509_free, BIO_free, ...).
template <auto Free>
struct OpensslFree {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};

// A certificate chain: the stack and every certificate in it.
struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

using X509Ptr = std::unique_ptr<X509, OpensslFree<X509_free>>;
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, OpensslFree<BIO_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpensslFree<X509_EXTENSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpensslFree<GENERAL_NAMES_free>>;
using BasicConstraintsPtr = std::unique_ptr<BASIC_CONSTRAINTS, OpensslFree<BASIC_CONSTRAINTS_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpensslFree<BN_free>>;

// What OpenSSL's error queue of this thread says (then empties it), for messages: " (error;
// error)", or "" when it is empty.
inline std::string takeOpensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out.empty() ? "" : " (" + out + ")";
}

// A read-only memory BIO over `data`, which must outlive it.
inline BioPtr memoryBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// The password callback of PEM reads: an encrypted key would make OpenSSL prompt on the
// terminal; this refuses it instead.
inline int noPassword(char*, int, int, void*) {
  return -1;
}

}  // namespace pi0::certs
