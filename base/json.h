// JSON: the one JSON library of the project, nlohmann::json (Debian's
// nlohmann-json3-dev, header-only), and the rules every JSON that knnmem
// writes or reads follows. The CLI's --json output, the bench's --json file,
// knnmem-model eval's rows and the tests that read them all go through it.
//
// Writing: build a `Json` value and dump it with DumpJson (one line) or
// DumpJsonRows (one row per line). The library escapes every string (quote,
// backslash, control characters as \n, \t or \u00XX); other text is written
// as UTF-8 as it is, and bytes that are not valid UTF-8 are replaced by
// U+FFFD instead of failing the document. Objects keep the order in which
// their members were added. A number that is not finite (NaN, +inf, -inf)
// is written as null; ReadMember reads null back as NaN. A double is written
// in the shortest form that reads back to the same double: a writer that
// promised fewer digits rounds it first (RoundToSignificantDigits).
//
// Reading: ParseJson and ReadMember return a status instead of throwing;
// nlohmann's exceptions do not leave json.cc. (Tests may use the library's
// throwing accessors directly: gtest reports the exception.)
#ifndef KNNMEM_BASE_JSON_H_
#define KNNMEM_BASE_JSON_H_

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace knnmem {

// Members in insertion order, so that output reads in the order written.
using Json = nlohmann::ordered_json;

// `value` on one line, without spaces: `{"a":1,"b":[2,3]}`.
std::string DumpJson(const Json& value);
// `value` with each element of an array on its own line, where the array is
// `value` itself or a member of a top-level object:
//   [                         {"rows":[
//     {"a":1},                  {"a":1},
//     {"a":2}                   {"a":2}
//   ]                         ]}
// Files of rows that people grep and diff as well as tools read. Anything
// else is as DumpJson writes it. No trailing newline.
std::string DumpJsonRows(const Json& value);

// `value` rounded to `digits` significant decimal digits, as printf's
// "%.<digits>g" rounds it; NaN and infinities as they are. 9 digits keep
// every float (a float read back from them is the same float).
double RoundToSignificantDigits(double value, int digits);

// The JSON document `text`; INVALID_ARGUMENT with the parser's message
// (line and column) when it is not one.
absl::StatusOr<Json> ParseJson(absl::string_view text);

enum class Presence { kRequired, kOptional };

// Reads the member `key` of the object `object` into *value. INVALID_ARGUMENT
// naming the key when `object` is not an object, the member has another type
// (an integer for int64_t, a number or null for double, an array of those
// for std::vector<double>) or, if required, is absent; an optional absent
// member leaves *value as it was. null reads as NaN into a double. T is one
// of std::string, bool, int64_t, double, std::vector<double>.
template <typename T>
absl::Status ReadMember(const Json& object, absl::string_view key, T* value,
                        Presence presence = Presence::kRequired);

}  // namespace knnmem

#endif  // KNNMEM_BASE_JSON_H_
