#include "common/files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
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

KernelFile::~KernelFile() {
  close();
}

KernelFile::KernelFile(KernelFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      keep_(other.keep_),
      buf_(std::move(other.buf_)) {}

KernelFile& KernelFile::operator=(KernelFile&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    keep_ = other.keep_;
    buf_ = std::move(other.buf_);
  }
  return *this;
}

void KernelFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<std::string_view> KernelFile::read() {
  const bool wasOpen = fd_ >= 0;
  auto text = readOnce();
  // readOnce() closed a kept file whose device went away: the name may be a new device's now.
  if (!text && wasOpen && fd_ < 0) text = readOnce();
  return text;
}

// The whole file, from offset 0 up to the first read that returns nothing: a short read is not
// the end, since a seq_file (most of /proc) hands out at most one page per read. Reading on at
// the offset where the last read ended lets the seq_file go on without starting over.
Result<std::string_view> KernelFile::readOnce() {
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return fail(osError("cannot open", path_));
    struct statfs fs {};
    keep_ = ::fstatfs(fd_, &fs) == 0 && (fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC);
  }
  if (buf_.size() < 4096) buf_.resize(4096);
  size_t used = 0;
  for (;;) {
    if (used == buf_.size()) buf_.resize(2 * buf_.size());
    ssize_t n = ::pread(fd_, buf_.data() + used, buf_.size() - used, static_cast<off_t>(used));
    if (n < 0) {
      if (errno == EINTR) continue;
      const bool gone = errno == ENODEV;
      auto message = osError("cannot read", path_);
      if (!keep_ || gone) close();
      return fail(std::move(message));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (!keep_) close();
  return std::string_view(buf_.data(), used);
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
