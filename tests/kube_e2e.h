// What the doctest binaries of the end-to-end tests share: the client of the test cluster (from
// KUBECONFIG, exported by the shell script that started the cluster), the namespace the script
// made for the test (PI0_E2E_NAMESPACE), REQUIRE_OK for API results, and eventually() for
// waiting on the cluster with a generous guard.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "kube/client.h"

// Fails the test with the API's error message when `result` holds an error.
#define REQUIRE_OK(result)                                          \
  do {                                                              \
    const auto& r_ = (result);                                      \
    if (!r_) FAIL(#result << " failed: " << r_.error().describe()); \
  } while (false)

namespace pi0::testing {

inline kube::Client& client() {
  static std::unique_ptr<kube::Client> c = [] {
    auto config = kube::resolveConfig("");
    if (!config) FAIL("no cluster: " << config.error().message << " (run the test's .sh script)");
    auto created = kube::Client::create(std::move(*config));
    if (!created) FAIL(created.error().message);
    return std::move(*created);
  }();
  return *c;
}

inline std::string ns() {
  const char* n = std::getenv("PI0_E2E_NAMESPACE");
  if (n == nullptr) FAIL("PI0_E2E_NAMESPACE is not set (run the test's .sh script)");
  return n;
}

// Polls `pred` until it holds or `limit` passes (a guard against hanging, not a timing check).
template <class Pred>
bool eventually(Pred pred, std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

}  // namespace pi0::testing
