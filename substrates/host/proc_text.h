// Reading the kernel's text files (/proc, /sys) for the samplers of every family: whole-file
// reads that detect truncation, line and field splitting over std::string_view. Header-only so
// that the disk and network families use it without linking the host family.
//
// Contract: nothing here throws or allocates beyond the returned values; views returned by
// nextLine() and splitFields() point into the text they were given, which must outlive them.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/files.h"
#include "common/result.h"

namespace pi0::substrates::proc {

// Reads `file` whole and fails, naming the path, when it cannot be read, is empty, or does not
// end with a newline. The kernel ends every line of these files with '\n', so a missing final
// newline means the file (or a copy of it) was cut mid-line. The view is valid until the file's
// next read().
inline Result<std::string_view> readTextFile(KernelFile& file) {
  auto text = file.read();
  if (!text) return text;
  if (text->empty()) return fail(file.path().string() + ": empty file");
  if (text->back() != '\n') {
    return fail(file.path().string() + ": truncated (last line has no newline)");
  }
  return text;
}

// Takes the next line (without its '\n') off the front of `rest`. Returns false once `rest` is
// exhausted.
inline bool nextLine(std::string_view& rest, std::string_view& line) {
  if (rest.empty()) return false;
  auto end = rest.find('\n');
  if (end == std::string_view::npos) {
    line = rest;
    rest = {};
  } else {
    line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
  }
  return true;
}

inline bool isBlank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// The blank-separated fields of `line`, into `fields` (cleared first). Reusing one vector for
// every line of a file allocates only while it grows to the widest line.
inline void splitFields(std::string_view line, std::vector<std::string_view>& fields) {
  fields.clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && isBlank(line[i]))
      ++i;
    size_t start = i;
    while (i < line.size() && !isBlank(line[i]))
      ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
}

// The blank-separated fields of `line`.
inline std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  splitFields(line, fields);
  return fields;
}

// The first blank-separated field of `line` (empty when it has none), found without splitting
// the rest.
inline std::string_view firstField(std::string_view line) {
  size_t start = 0;
  while (start < line.size() && isBlank(line[start]))
    ++start;
  size_t end = start;
  while (end < line.size() && !isBlank(line[end]))
    ++end;
  return line.substr(start, end - start);
}

// `text` without leading and trailing blanks and newlines.
inline std::string_view trim(std::string_view text) {
  while (!text.empty() && (isBlank(text.front()) || text.front() == '\n'))
    text.remove_prefix(1);
  while (!text.empty() && (isBlank(text.back()) || text.back() == '\n'))
    text.remove_suffix(1);
  return text;
}

// A device or interface name taken from a kernel file is used as one path component under
// /sys; refuse anything that could name another directory.
inline bool isSafeName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

}  // namespace pi0::substrates::proc
