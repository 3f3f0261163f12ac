#include "base/flags.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace knnmem {
namespace {

// Help's layout: the text of a flag starts at this column, lines end by 80.
constexpr size_t kHelpColumn = 28;
constexpr size_t kHelpWidth = 80;

constexpr struct {
  const char* suffix;
  uint64_t scale;
} kByteUnits[] = {{"TiB", uint64_t{1} << 40},
                  {"GiB", uint64_t{1} << 30},
                  {"MiB", uint64_t{1} << 20},
                  {"KiB", uint64_t{1} << 10},
                  {"B", 1}};

// `text` wrapped into lines of at most kHelpWidth columns, each but the
// first indented to kHelpColumn; the first continues `lead`.
std::string Wrap(std::string lead, absl::string_view text) {
  std::string out;
  std::string line = std::move(lead);
  if (line.size() + 1 >= kHelpColumn) {  // no room: the text goes below
    out = line + "\n";
    line.clear();
  }
  line.resize(kHelpColumn, ' ');
  bool first_word = true;
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (!first_word && line.size() + 1 + word.size() > kHelpWidth) {
      absl::StrAppend(&out, line, "\n");
      line.assign(kHelpColumn, ' ');
      first_word = true;
    }
    absl::StrAppend(&line, first_word ? "" : " ", word);
    first_word = false;
  }
  return absl::StrCat(out, absl::StripTrailingAsciiWhitespace(line), "\n");
}

}  // namespace

namespace flags_internal {

bool ParseInt64(absl::string_view text, int64_t* out) {
  return absl::SimpleAtoi(text, out);
}

std::string ChoiceList(const std::vector<std::string>& names) {
  if (names.size() < 2) return absl::StrJoin(names, "");
  return absl::StrCat(absl::StrJoin(names.begin(), names.end() - 1, ", "),
                      " or ", names.back());
}

}  // namespace flags_internal

FlagSet::Flag& FlagSet::Flag::Range(int64_t lo, int64_t hi) {
  lo_ = std::max(lo, type_lo_);
  hi_ = std::min(hi, type_hi_);
  return *this;
}

FlagSet::Flag& FlagSet::Flag::AtLeast(int64_t lo) {
  return Range(lo, std::numeric_limits<int64_t>::max());
}

FlagSet::Flag& FlagSet::Flag::Positive() {
  positive_ = true;
  return *this;
}

FlagSet::Flag& FlagSet::Flag::Check(absl::string_view what,
                                    std::function<bool(absl::string_view)> ok) {
  expected_ = std::string(what);
  check_ = std::move(ok);
  return *this;
}

FlagSet::Flag& FlagSet::Flag::NonEmpty() {
  non_empty_ = true;
  return *this;
}

FlagSet::Flag& FlagSet::Flag::Required() {
  required_ = true;
  return *this;
}

FlagSet::Flag& FlagSet::Flag::DefaultText(absl::string_view text) {
  default_text_ = std::string(text);
  return *this;
}

std::string FlagSet::Flag::Expected() const {
  if (!expected_.empty()) return expected_;
  switch (kind_) {
    case Kind::kBool:
      return "true or false";
    case Kind::kInt: {
      // The bounds an int64_t does not have by itself.
      const bool low = lo_ > std::numeric_limits<int64_t>::min();
      const bool high = hi_ < std::numeric_limits<int64_t>::max();
      if (low && high) {
        return absl::StrCat("an integer in [", lo_, ", ", hi_, "]");
      }
      if (low) return absl::StrCat("an integer >= ", lo_);
      if (high) return absl::StrCat("an integer <= ", hi_);
      return "an integer";
    }
    case Kind::kDouble:
      return positive_ ? "a positive number" : "a number";
    case Kind::kOther:
      break;
  }
  return "valid";  // every other kind sets expected_
}

absl::Status FlagSet::Flag::Set(absl::string_view value) {
  if (non_empty_ && value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name_, ": empty value"));
  }
  if ((check_ && !check_(value)) || !store_(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name_, ": '", value, "' is not ", Expected()));
  }
  given_ = true;
  return absl::OkStatus();
}

FlagSet::Flag& FlagSet::Add(absl::string_view name,
                            absl::string_view value_name,
                            absl::string_view help, std::string default_text) {
  if (by_name_.count(name) > 0) {
    // A program's own mistake: every run would hit it.
    std::fprintf(stderr, "FlagSet: --%s registered twice\n",
                 std::string(name).c_str());
    std::abort();
  }
  auto flag = std::make_unique<Flag>();
  flag->name_ = std::string(name);
  flag->value_name_ = std::string(value_name);
  flag->help_ = std::string(help);
  flag->default_text_ = std::move(default_text);
  Flag* f = flag.get();
  by_name_.emplace(f->name_, f);
  flags_.push_back(std::move(flag));
  return *f;
}

FlagSet::Flag& FlagSet::String(absl::string_view name, std::string* dest,
                               absl::string_view value_name,
                               absl::string_view help) {
  Flag& f = Add(name, value_name, help, *dest);
  f.store_ = [dest](absl::string_view text) {
    *dest = std::string(text);
    return true;
  };
  return f;
}

FlagSet::Flag& FlagSet::Bool(absl::string_view name, bool* dest,
                             absl::string_view help) {
  Flag& f = Add(name, "", help, *dest ? "true" : "");
  f.kind_ = Flag::Kind::kBool;
  f.store_ = [dest](absl::string_view text) {
    if (text != "true" && text != "false") return false;
    *dest = text == "true";
    return true;
  };
  return f;
}

template <typename F>
FlagSet::Flag& FlagSet::Number(absl::string_view name, F* dest,
                               absl::string_view value_name,
                               absl::string_view help) {
  Flag& f = Add(name, value_name, help, absl::StrCat(*dest));
  f.kind_ = Flag::Kind::kDouble;
  const Flag* flag = &f;
  f.store_ = [dest, flag](absl::string_view text) {
    double v = 0;
    if (!absl::SimpleAtod(text, &v) || (flag->positive_ && !(v > 0))) {
      return false;
    }
    *dest = static_cast<F>(v);
    return true;
  };
  return f;
}

FlagSet::Flag& FlagSet::Double(absl::string_view name, double* dest,
                               absl::string_view value_name,
                               absl::string_view help) {
  return Number(name, dest, value_name, help);
}

FlagSet::Flag& FlagSet::Double(absl::string_view name, float* dest,
                               absl::string_view value_name,
                               absl::string_view help) {
  return Number(name, dest, value_name, help);
}

FlagSet::Flag& FlagSet::Bytes(absl::string_view name, uint64_t* dest,
                              absl::string_view help) {
  Flag& f = Add(name, "BYTES", help, FormatBytes(*dest));
  f.expected_ = "bytes, like 16GiB, 512MiB or 4096";
  f.store_ = [dest](absl::string_view text) {
    absl::StatusOr<uint64_t> bytes = ParseBytes(text);
    if (!bytes.ok()) return false;
    *dest = *bytes;
    return true;
  };
  return f;
}

FlagSet::Flag& FlagSet::Choice(absl::string_view name, std::string* dest,
                               std::vector<std::string> choices,
                               absl::string_view help) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::string& c : choices) pairs.emplace_back(c, c);
  return Enum(name, dest, std::move(pairs), help);
}

FlagSet::Flag& FlagSet::Ints(absl::string_view name, std::vector<int64_t>* dest,
                             absl::string_view value_name,
                             absl::string_view help) {
  Flag& f = Add(name, value_name, help, absl::StrJoin(*dest, ","));
  f.expected_ = "a comma-separated list of integers";
  f.store_ = [dest](absl::string_view text) {
    std::vector<int64_t> values;
    for (absl::string_view part : absl::StrSplit(text, ',')) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(part, &v)) return false;
      values.push_back(v);
    }
    *dest = std::move(values);
    return true;
  };
  return f;
}

FlagSet::Flag& FlagSet::Strings(absl::string_view name,
                                std::vector<std::string>* dest,
                                absl::string_view value_name,
                                absl::string_view help) {
  Flag& f = Add(name, value_name, help, absl::StrJoin(*dest, ","));
  f.store_ = [dest](absl::string_view text) {
    *dest = absl::StrSplit(text, ',', absl::SkipEmpty());
    return true;
  };
  return f;
}

FlagSet::Flag* FlagSet::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

absl::Status FlagSet::Parse(absl::Span<const std::string> args) {
  return ParseArgs(args, false).status();
}

absl::StatusOr<size_t> FlagSet::ParseUntilCommand(
    absl::Span<const std::string> args) {
  return ParseArgs(args, true);
}

absl::StatusOr<size_t> FlagSet::ParseArgs(absl::Span<const std::string> args,
                                          bool until_command) {
  size_t i = 0;
  bool flags_ended = false;  // after "--"
  for (; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!flags_ended && arg == "--") {
      flags_ended = true;
      continue;
    }
    if (!flags_ended && arg == "-h" && Find("help") != nullptr) arg = "--help";
    if (flags_ended || !absl::StartsWith(arg, "--")) {
      if (until_command) break;
      if (!accepts_positional_) {
        return absl::InvalidArgumentError(
            absl::StrCat("unexpected argument '", arg, "'"));
      }
      positional_.push_back(std::string(arg));
      continue;
    }
    arg.remove_prefix(2);
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    Flag* flag = Find(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (flag->kind_ == Flag::Kind::kBool) {
      value = "true";
      if (i + 1 < args.size() &&
          (args[i + 1] == "true" || args[i + 1] == "false")) {
        value = args[++i];
      }
    } else if (i + 1 < args.size() && !absl::StartsWith(args[i + 1], "--")) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": missing value"));
    }
    if (absl::Status s = flag->Set(value); !s.ok()) return s;
  }
  const Flag* help = Find("help");
  if (help == nullptr || !help->given_) {
    for (const auto& flag : flags_) {
      if (flag->required_ && !flag->given_) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag->name_, ": required"));
      }
    }
  }
  return i;
}

std::optional<int> FlagSet::ParseForMain(absl::string_view program,
                                         absl::string_view usage, int argc,
                                         char** argv) {
  const absl::Status parsed = Parse(CommandLineArgs(argc, argv));
  if (parsed.ok() && !Given("help")) return std::nullopt;
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n", std::string(program).c_str(),
                 std::string(parsed.message()).c_str());
  }
  std::fprintf(parsed.ok() ? stdout : stderr, "%s\n%s",
               std::string(usage).c_str(), Help().c_str());
  return parsed.ok() ? 0 : 2;
}

bool FlagSet::Given(absl::string_view name) const {
  const Flag* flag = Find(name);
  return flag != nullptr && flag->given_;
}

std::vector<FlagSet::Registered> FlagSet::registered() const {
  std::vector<Registered> out;
  for (const auto& flag : flags_) {
    out.push_back({flag->name_, flag->kind_ != Flag::Kind::kBool});
  }
  return out;
}

std::string FlagSet::Help() const {
  std::string out;
  for (const auto& flag : flags_) {
    std::string lead = absl::StrCat("  --", flag->name_);
    if (!flag->value_name_.empty())
      absl::StrAppend(&lead, "=", flag->value_name_);
    std::string text = flag->help_;
    if (flag->required_) {
      absl::StrAppend(&text, " (required)");
    } else if (!flag->default_text_.empty()) {
      absl::StrAppend(&text, " (default ", flag->default_text_, ")");
    }
    absl::StrAppend(&out, Wrap(std::move(lead), text));
  }
  return out;
}

std::vector<std::string> CommandLineArgs(int argc, char** argv) {
  return argc > 1 ? std::vector<std::string>(argv + 1, argv + argc)
                  : std::vector<std::string>();
}

absl::StatusOr<uint64_t> ParseBytes(absl::string_view text) {
  uint64_t scale = 1;
  absl::string_view digits = text;
  for (const auto& unit : kByteUnits) {
    if (absl::EndsWith(text, unit.suffix)) {
      scale = unit.scale;
      digits.remove_suffix(std::char_traits<char>::length(unit.suffix));
      break;
    }
  }
  uint64_t n = 0;
  if (digits.empty() || !absl::SimpleAtoi(digits, &n) ||
      n > (uint64_t{1} << 60) / scale) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a byte count"));
  }
  return n * scale;
}

std::string FormatBytes(uint64_t bytes) {
  for (const auto& unit : kByteUnits) {
    if (unit.scale > 1 && bytes != 0 && bytes % unit.scale == 0) {
      return absl::StrCat(bytes / unit.scale, unit.suffix);
    }
  }
  return absl::StrCat(bytes);
}

}  // namespace knnmem
