// JSON text into nlohmann::json, read by simdjson (Debian's libsimdjson) on the hot paths: an
// AdmissionReview for every pod creation, an agent's fingerprint for every poll. simdjson
// validates a document at about a gigabyte per second; nlohmann's own parser reads 5-15 times
// slower, and a Selection keeps the values that are built (the allocations that remain) to the
// fields a caller reads.
//
// parse() accepts exactly the documents nlohmann::json::parse accepts, with the same values:
// when simdjson refuses a document (invalid JSON, or what it cannot represent, such as an
// integer beyond 64 bits that nlohmann reads as a double), nlohmann parses it again, which
// either answers or says where the text breaks. Never throws. Any thread may call it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace pi0::json {

// Which fields of a value to keep: an empty Selection keeps the whole value; otherwise an
// object keeps only the named members, each by its own Selection, and an array applies the
// Selection to each element. A scalar is kept whole. A document that nlohmann reads (above)
// comes back whole: a Selection says what is needed, never what must be absent.
struct Selection {
  struct Member;
  std::vector<Member> members;
};
struct Selection::Member {
  std::string name;
  Selection select;
};

// The document in `text`. Fails with nlohmann's message ("parse error at line 1, column 7:
// syntax error while parsing value - ...") on invalid JSON.
Result<nlohmann::json> parse(std::string_view text, const Selection& select = {});

}  // namespace pi0::json
