#include "common/flags.h"

#include "common/duration.h"

namespace pi0 {

bool FlagReader::next() {
  if (started_) ++i_;
  started_ = true;
  if (i_ >= args_.size()) return false;
  flag_ = args_[i_];
  hasInline_ = false;
  inline_.clear();
  if (auto eq = flag_.find('='); flag_.starts_with("--") && eq != std::string::npos) {
    inline_ = flag_.substr(eq + 1);
    flag_ = flag_.substr(0, eq);
    hasInline_ = true;
  }
  return true;
}

Result<std::string> FlagReader::value() {
  if (hasInline_) return inline_;
  if (i_ + 1 >= args_.size()) return fail(flag_ + " needs a value");
  return args_[++i_];
}

Result<std::string> FlagReader::nonEmptyValue() {
  auto v = value();
  if (v && v->empty()) return fail(flag_ + " must not be empty");
  return v;
}

Result<double> FlagReader::durationSeconds(bool allowZero, double maxSeconds,
                                           std::string_view maxText) {
  auto v = value();
  if (!v) return fail(v.error().message);
  auto d = parseDuration(*v);
  if (!d) return fail(flag_ + ": " + d.error().message);
  if (!allowZero && !(d->count() > 0)) return fail(flag_ + " must be greater than 0");
  if (d->count() > maxSeconds) return fail(flag_ + " must be at most " + std::string(maxText));
  return d->count();
}

}  // namespace pi0
