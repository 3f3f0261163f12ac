#include "model/cli_args.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace knnmem::model {

absl::StatusOr<CliArgs> CliArgs::Parse(const std::vector<std::string>& args) {
  CliArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument '", a, "' (flags are --name=value)"));
    }
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      out.values_[a.substr(2, eq - 2)] = a.substr(eq + 1);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      out.values_[a.substr(2)] = args[++i];
    } else {
      out.values_[a.substr(2)] = "true";
    }
  }
  return out;
}

std::string CliArgs::String(const std::string& name,
                            const std::string& fallback) {
  used_.insert(name);
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

absl::StatusOr<int64_t> CliArgs::Int(const std::string& name,
                                     int64_t fallback) {
  used_.insert(name);
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", it->second, "' is not an integer"));
  }
  return v;
}

absl::StatusOr<double> CliArgs::Double(const std::string& name,
                                       double fallback) {
  used_.insert(name);
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  double v;
  if (!absl::SimpleAtod(it->second, &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", it->second, "' is not a number"));
  }
  return v;
}

absl::StatusOr<bool> CliArgs::Bool(const std::string& name, bool fallback) {
  used_.insert(name);
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (it->second != "true" && it->second != "false") {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", it->second, "' is not true or false"));
  }
  return it->second == "true";
}

absl::StatusOr<std::vector<int64_t>> CliArgs::Ints(
    const std::string& name, std::vector<int64_t> fallback) {
  used_.insert(name);
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(it->second, ',')) {
    int64_t v;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, ": '", part, "' is not an integer (a,b,c expected)"));
    }
    out.push_back(v);
  }
  return out;
}

absl::Status CliArgs::CheckAllUsed() const {
  std::vector<std::string> unknown;
  for (const auto& [name, value] : values_) {
    if (!used_.count(name)) unknown.push_back("--" + name);
  }
  if (unknown.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown flag(s): ", absl::StrJoin(unknown, ", ")));
}

}  // namespace knnmem::model
