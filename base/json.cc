#include "base/json.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace knnmem {
namespace {

// Rows are the elements of `array`, each dumped on a line of its own.
std::string Rows(const Json& array) {
  if (array.empty()) return "[]";
  std::vector<std::string> rows;
  for (const Json& row : array) rows.push_back(DumpJson(row));
  return absl::StrCat("[\n  ", absl::StrJoin(rows, ",\n  "), "\n]");
}

absl::Status WrongType(absl::string_view key, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("JSON member \"", key, "\" is not ", want));
}

// A number, or null (NaN: see the header).
bool Get(const Json& member, double* value) {
  if (member.is_null()) {
    *value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (!member.is_number()) return false;
  *value = member.get<double>();
  return true;
}

bool Get(const Json& member, std::string* value) {
  if (!member.is_string()) return false;
  *value = member.get_ref<const std::string&>();
  return true;
}

bool Get(const Json& member, bool* value) {
  if (!member.is_boolean()) return false;
  *value = member.get<bool>();
  return true;
}

bool Get(const Json& member, int64_t* value) {
  if (member.is_number_unsigned()) {
    const uint64_t u = member.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return false;
    }
    *value = static_cast<int64_t>(u);
    return true;
  }
  if (!member.is_number_integer()) return false;
  *value = member.get<int64_t>();
  return true;
}

bool Get(const Json& member, std::vector<double>* value) {
  if (!member.is_array()) return false;
  std::vector<double> out(member.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (!Get(member[i], &out[i])) return false;
  }
  *value = std::move(out);
  return true;
}

const char* TypeName(const std::string*) { return "a string"; }
const char* TypeName(const bool*) { return "true or false"; }
const char* TypeName(const int64_t*) { return "a 64-bit integer"; }
const char* TypeName(const double*) { return "a number or null"; }
const char* TypeName(const std::vector<double>*) {
  return "an array of numbers or nulls";
}

}  // namespace

std::string DumpJson(const Json& value) {
  return value.dump(/*indent=*/-1, /*indent_char=*/' ', /*ensure_ascii=*/false,
                    Json::error_handler_t::replace);
}

std::string DumpJsonRows(const Json& value) {
  if (value.is_array()) return Rows(value);
  if (!value.is_object()) return DumpJson(value);
  std::vector<std::string> members;
  for (const auto& [key, member] : value.items()) {
    members.push_back(
        absl::StrCat(DumpJson(key), ":",
                     member.is_array() ? Rows(member) : DumpJson(member)));
  }
  return absl::StrCat("{", absl::StrJoin(members, ","), "}");
}

double RoundToSignificantDigits(double value, int digits) {
  if (!std::isfinite(value)) return value;
  return std::strtod(absl::StrFormat("%.*g", digits, value).c_str(), nullptr);
}

absl::StatusOr<Json> ParseJson(absl::string_view text) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not JSON: ", e.what()));
  }
}

template <typename T>
absl::Status ReadMember(const Json& object, absl::string_view key, T* value,
                        Presence presence) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON value holding \"", key, "\" is not an object"));
  }
  const auto it = object.find(std::string(key));
  if (it == object.end()) {
    if (presence == Presence::kOptional) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("JSON member \"", key, "\" is missing"));
  }
  if (!Get(*it, value)) return WrongType(key, TypeName(value));
  return absl::OkStatus();
}

template absl::Status ReadMember(const Json&, absl::string_view, std::string*,
                                 Presence);
template absl::Status ReadMember(const Json&, absl::string_view, bool*,
                                 Presence);
template absl::Status ReadMember(const Json&, absl::string_view, int64_t*,
                                 Presence);
template absl::Status ReadMember(const Json&, absl::string_view, double*,
                                 Presence);
template absl::Status ReadMember(const Json&, absl::string_view,
                                 std::vector<double>*, Presence);

}  // namespace knnmem
