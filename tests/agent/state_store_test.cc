#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "agent/state_store.h"
#include "common/digest.h"
#include "common/files.h"

using namespace pi0::agent;
namespace fs = std::filesystem;

namespace {

fs::path uniqueDir() {
  std::random_device rd;
  auto dir = fs::temp_directory_path() / ("pi0-state-test-" + std::to_string(rd()));
  fs::create_directories(dir);
  return dir;
}

SavedState sample(std::chrono::system_clock::time_point at) {
  return SavedState{"node-a", at, 4, 0.5, {{"cpu", {0.1, 0.2, 0.3, 0.4}}, {"memory", {0.5}}}};
}

}  // namespace

TEST_CASE("save then load gives the same windows") {
  auto dir = uniqueDir();
  StateStore store(dir);
  const auto now = std::chrono::system_clock::now();
  REQUIRE(store.save(sample(now)));
  auto loaded = store.load(4, 0.5, now + std::chrono::seconds(1), std::chrono::seconds(2));
  REQUIRE(loaded);
  CHECK(loaded->node == "node-a");
  CHECK(loaded->signals.at("cpu") == std::vector<double>{0.1, 0.2, 0.3, 0.4});
  CHECK(loaded->signals.at("memory") == std::vector<double>{0.5});
  // Only the state file is left: the temporary file was renamed onto it.
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  fs::remove_all(dir);
}

TEST_CASE("a stale, foreign or corrupt state file is refused with the reason") {
  auto dir = uniqueDir();
  StateStore store(dir);
  const auto now = std::chrono::system_clock::now();
  REQUIRE(store.save(sample(now)));

  auto stale = store.load(4, 0.5, now + std::chrono::seconds(10), std::chrono::seconds(2));
  REQUIRE_FALSE(stale);
  CHECK(stale.error().message.find("stale") != std::string::npos);

  auto otherWindow = store.load(64, 0.5, now, std::chrono::seconds(2));
  REQUIRE_FALSE(otherWindow);
  CHECK(otherWindow.error().message.find("not the current configuration") != std::string::npos);

  // Flip one byte of the payload: the checksum no longer matches.
  auto text = *pi0::readFile(store.file());
  text[text.size() - 3] = text[text.size() - 3] == '1' ? '2' : '1';
  { std::ofstream(store.file(), std::ios::trunc) << text; }
  auto corrupt = store.load(4, 0.5, now, std::chrono::seconds(2));
  REQUIRE_FALSE(corrupt);
  CHECK(corrupt.error().message.find("checksum mismatch") != std::string::npos);

  // Truncated mid-file.
  { std::ofstream(store.file(), std::ios::trunc) << text.substr(0, text.size() / 2); }
  CHECK_FALSE(store.load(4, 0.5, now, std::chrono::seconds(2)));

  // Not ours at all.
  { std::ofstream(store.file(), std::ios::trunc) << "hello"; }
  auto foreign = store.load(4, 0.5, now, std::chrono::seconds(2));
  REQUIRE_FALSE(foreign);
  CHECK(foreign.error().message.find("bad header") != std::string::npos);

  fs::remove_all(dir);
  auto missing = store.load(4, 0.5, now, std::chrono::seconds(2));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("cannot open") != std::string::npos);
}

TEST_CASE("a payload with a valid checksum but the wrong shape is refused, not thrown") {
  std::string body = R"({"node":"n","savedAt":"yesterday"})";
  auto decoded = decodeState("pi0-agent-state v1 sha256=" + pi0::sha256Hex(body) + "\n" + body);
  REQUIRE_FALSE(decoded);
  CHECK(decoded.error().message.find("unexpected payload") != std::string::npos);
}
