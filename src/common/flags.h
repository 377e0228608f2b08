// Reading command-line flags the way Pi0's programs take them: "--flag value" or
// "--flag=value", one flag at a time, with the common value kinds checked and every error
// naming the flag ("--interval must be greater than 0"). Each program's parser keeps its own
// list of flags and what they mean.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace pi0 {

class FlagReader {
 public:
  explicit FlagReader(const std::vector<std::string>& args) : args_(args) {}

  // Moves to the next flag; false when there is none left.
  bool next();

  // The flag without any "=value" ("--interval"), and the argument as given ("--interval=5s").
  const std::string& flag() const { return flag_; }
  const std::string& raw() const { return args_[i_]; }

  // Whether the flag carried "=value", and that value (for boolean flags, which take a value
  // only that way).
  bool hasInlineValue() const { return hasInline_; }
  const std::string& inlineValue() const { return inline_; }

  // The flag's value: the "=value", else the next argument ("--flag needs a value" if none).
  Result<std::string> value();
  // The same, refused when empty ("--flag must not be empty").
  Result<std::string> nonEmptyValue();
  // A duration (see parseDuration) in seconds, greater than 0 unless `allowZero`, at most
  // `maxSeconds` (named `maxText` in the message).
  Result<double> durationSeconds(bool allowZero, double maxSeconds, std::string_view maxText);

 private:
  const std::vector<std::string>& args_;
  std::size_t i_ = 0;
  bool started_ = false;
  std::string flag_;
  bool hasInline_ = false;
  std::string inline_;
};

}  // namespace pi0
