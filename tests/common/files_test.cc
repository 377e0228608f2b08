#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "common/digest.h"
#include "common/files.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using pi0::KernelFile;
using pi0::testing::TempDir;

namespace {

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::trunc) << text;
}

}  // namespace

TEST_CASE("a kept procfs file is read whole, every time, even past one page") {
  // A seq_file hands out at most a page per read: a reader that stops at the first short read
  // gets a cut file. /proc/crypto (or /proc/kallsyms) is several pages and does not change
  // while the test runs.
  fs::path path;
  for (const char* candidate : {"/proc/crypto", "/proc/kallsyms"}) {
    auto text = pi0::readFile(candidate);
    if (text && text->size() > 3 * 4096) {
      path = candidate;
      break;
    }
  }
  INFO("needs /proc/crypto or /proc/kallsyms larger than three pages");
  REQUIRE_FALSE(path.empty());
  KernelFile file(path);
  auto first = file.read();
  REQUIRE(first);
  const std::string copy(*first);
  CHECK(copy == *pi0::readFile(path));
  auto second = file.read();
  REQUIRE(second);
  CHECK(std::string(*second) == copy);
}

TEST_CASE("a file elsewhere is opened afresh, so a replaced file is seen") {
  TempDir dir;
  const auto p = dir.path() / "stat";
  write(p, "cpu 1 2 3\n");
  KernelFile file(p);
  CHECK(*file.read() == "cpu 1 2 3\n");
  // Replace it the way a test or an atomic writer does: a new inode renamed over the name.
  write(dir.path() / "stat.new", "cpu 4 5 6\n");
  fs::rename(dir.path() / "stat.new", p);
  CHECK(*file.read() == "cpu 4 5 6\n");
}

TEST_CASE("a missing file is an error that names it") {
  KernelFile file("/proc/pi0-no-such-file");
  auto text = file.read();
  REQUIRE_FALSE(text);
  CHECK(text.error().message.find("cannot open /proc/pi0-no-such-file") != std::string::npos);
  auto plain = pi0::readFile("/nonexistent/pi0");
  REQUIRE_FALSE(plain);
  CHECK(plain.error().message.find("/nonexistent/pi0") != std::string::npos);
}

TEST_CASE("writeFileAtomic replaces the file and leaves no temporary behind") {
  TempDir dir;
  const auto p = dir.path() / "state.json";
  REQUIRE(pi0::writeFileAtomic(p, "one"));
  REQUIRE(pi0::writeFileAtomic(p, "two"));
  CHECK(*pi0::readFile(p) == "two");
  CHECK(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
  auto bad = pi0::writeFileAtomic(dir.path() / "missing-dir" / "x", "data");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("missing-dir") != std::string::npos);
}

TEST_CASE("number parsing takes whole tokens only") {
  CHECK(*pi0::parseUint("18446744073709551615") == 18446744073709551615ull);
  CHECK_FALSE(pi0::parseUint("18446744073709551616"));
  CHECK_FALSE(pi0::parseUint("12x"));
  CHECK_FALSE(pi0::parseUint(""));
  CHECK_FALSE(pi0::parseUint("-1"));
  CHECK(*pi0::parseDouble("0.25") == 0.25);
  CHECK_FALSE(pi0::parseDouble("0.25.1"));
}

TEST_CASE("SHA-256 of known inputs") {
  // FIPS 180-2 test vectors.
  CHECK(pi0::sha256Hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(pi0::sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
