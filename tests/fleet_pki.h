// A CA, a serving certificate for "pi0-fleet" signed by it, another CA, and a token file
// holding "secret-token": what a consumer of the fleet feed and the leader's HTTPS address need
// (feed_client_test, ledger_sender_test).
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>

#include "certs/self_signed.h"
#include "common/files.h"
#include "net/https_server.h"
#include "temp_dir.h"

namespace pi0::testing {

struct Pki {
  TempDir dir;
  std::filesystem::path caFile, otherCaFile, certFile, keyFile;

  Pki() {
    const auto now = std::chrono::system_clock::now();
    auto ca = certs::makeCa("feed-test-ca", std::chrono::hours(24), now);
    auto other = certs::makeCa("someone-else", std::chrono::hours(24), now);
    REQUIRE(ca);
    REQUIRE(other);
    auto serving = certs::makeServing(*ca, {"pi0-fleet"}, {}, std::chrono::hours(24), now);
    REQUIRE(serving);
    caFile = dir.path() / "ca.crt";
    otherCaFile = dir.path() / "other.crt";
    certFile = dir.path() / "tls.crt";
    keyFile = dir.path() / "tls.key";
    REQUIRE(writeFileAtomic(caFile, ca->certificate));
    REQUIRE(writeFileAtomic(otherCaFile, other->certificate));
    REQUIRE(writeFileAtomic(certFile, serving->certificate));
    REQUIRE(writeFileAtomic(keyFile, serving->key));
    REQUIRE(writeFileAtomic(dir.path() / "token", "secret-token\n"));
  }

  // A server of the pair on 127.0.0.1, any free port, one event loop.
  net::HttpsServerOptions serverOptions() const {
    net::HttpsServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.certFile = certFile;
    options.keyFile = keyFile;
    options.threads = 1;
    return options;
  }
};

}  // namespace pi0::testing
