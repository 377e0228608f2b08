#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pi0 {
namespace {

std::string osError(std::string_view what, const std::filesystem::path& path) {
  return std::string(what) + " " + path.string() + ": " + std::strerror(errno);
}

}  // namespace

Result<std::string> readFile(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(osError("cannot open", path));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto message = osError("cannot read", path);
      ::close(fd);
      return fail(std::move(message));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Result<void> writeFileAtomic(const std::filesystem::path& path, std::string_view contents) {
  auto dir = path.parent_path();
  if (dir.empty()) dir = ".";
  // Built piecewise: GCC 12 warns falsely (-Wrestrict) on "." + std::string.
  std::string hidden = ".";
  hidden += path.filename().string();
  hidden += ".XXXXXX";
  std::string tmpl = (dir / hidden).string();
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return fail(osError("cannot create temporary file in", dir));
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto message = osError("cannot write", tmpl);
      ::close(fd);
      ::unlink(tmpl.c_str());
      return fail(std::move(message));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    auto message = osError("cannot flush", tmpl);
    ::unlink(tmpl.c_str());
    return fail(std::move(message));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    auto message = osError("cannot rename onto", path);
    ::unlink(tmpl.c_str());
    return fail(std::move(message));
  }
  // The rename is durable only once the directory entry is on disk.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

Result<std::uint64_t> parseUint(std::string_view token) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (token.empty() || ec != std::errc() || end != token.data() + token.size()) {
    return fail("not an unsigned integer: '" + std::string(token) + "'");
  }
  return value;
}

Result<double> parseDouble(std::string_view token) {
  double value = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (token.empty() || ec != std::errc() || end != token.data() + token.size()) {
    return fail("not a number: '" + std::string(token) + "'");
  }
  return value;
}

}  // namespace pi0
