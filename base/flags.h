// FlagSet: the command-line flags of one program, or of one subcommand, and
// the one flag parser of knnmem: every binary (knnmem-server, the knnmem CLI,
// knnmem-bench, knnmem-model, the soak, the crash oracle, the fuzz corpus
// writer) declares its flags here.
//
// Each flag is registered once, with its name, its type, the variable it
// writes and a line of help; the variable's value at registration is the
// default, and Help() prints every registered flag with its default, so a
// flag cannot be accepted and undocumented. A FlagSet holds no global state
// (unlike absl's flags, one registry per process): a program builds one per
// run, or one per subcommand, and tests build as many as they like.
//
// Syntax (args exclude the program name):
//   --name=value, --name value  a separate value never starts with "--"
//   --name                      a bool flag: true; a bool takes "true" or
//                               "false" as --name=VALUE or as the next
//                               argument
//   -h                          --help, when the set has a "help" flag
//   --                          ends the flags: the rest are positional
//   anything else               positional: an error unless the set
//                               AcceptPositional(); for ParseUntilCommand,
//                               a subcommand's name
//
// Errors are INVALID_ARGUMENT, the first in argv order, worded alike in
// every binary:
//   unknown flag --NAME
//   --NAME: missing value
//   --NAME: empty value                 (a NonEmpty() flag)
//   --NAME: 'VALUE' is not WHAT         WHAT: "an integer", "an integer in
//                                       [LO, HI]", "an integer >= LO", "a
//                                       number", "a positive number", "true
//                                       or false", "A, B or C", "bytes, like
//                                       16GiB, 512MiB or 4096", "a
//                                       comma-separated list of integers",
//                                       or what the flag's Check() names
//   --NAME: required                    (a Required() flag, unless --help)
//   unexpected argument 'ARG'
// Rules that tie several flags together stay with the caller, after Parse.
#ifndef KNNMEM_BASE_FLAGS_H_
#define KNNMEM_BASE_FLAGS_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace knnmem {

class FlagSet {
 public:
  // One registered flag; its setters refine it and return it, so that they
  // chain after the registration: flags.Int(...).Range(1, 4096).
  class Flag {
   public:
    // An integer flag: values outside [lo, hi] are errors ("'VALUE' is not
    // an integer in [LO, HI]"). The range stays within the variable's type.
    Flag& Range(int64_t lo, int64_t hi);
    // Range(lo, the type's largest): "'VALUE' is not an integer >= LO".
    Flag& AtLeast(int64_t lo);
    // A number flag: values <= 0 are errors ("is not a positive number").
    Flag& Positive();
    // A string flag: the value must satisfy `ok`, else "'VALUE' is not
    // WHAT".
    Flag& Check(absl::string_view what,
                std::function<bool(absl::string_view)> ok);
    // An empty value is an error ("--NAME: empty value").
    Flag& NonEmpty();
    // Parse fails without it ("--NAME: required").
    Flag& Required();
    // What help shows as the default instead of the variable's value (for a
    // default computed on this machine, like a path, or one the value does
    // not say, like "0: one per core"); "" shows none.
    Flag& DefaultText(absl::string_view text);

   private:
    friend class FlagSet;
    enum class Kind { kBool, kInt, kDouble, kOther };

    absl::Status Set(absl::string_view value);
    // WHAT of "'VALUE' is not WHAT" for this flag's kind and bounds.
    std::string Expected() const;

    std::string name_;
    std::string value_name_;  // "N", "FILE", "a|b"; empty for a bool
    std::string help_;
    std::string default_text_;
    Kind kind_ = Kind::kOther;
    // kInt: the accepted range, within the type's [type_lo_, type_hi_].
    int64_t lo_ = 0, hi_ = 0, type_lo_ = 0, type_hi_ = 0;
    bool positive_ = false;  // kDouble
    bool required_ = false;
    bool non_empty_ = false;
    bool given_ = false;
    std::string expected_;
    std::function<bool(absl::string_view)> check_;
    // Parses and stores a value; false when it cannot (nothing stored).
    std::function<bool(absl::string_view)> store_;
  };

  // What tests read of a registration.
  struct Registered {
    std::string name;
    bool takes_value;  // false for a bool flag
  };

  FlagSet() = default;
  FlagSet(FlagSet&&) = default;
  FlagSet& operator=(FlagSet&&) = default;

  // Registration. `name` without the dashes; `value_name` is what help
  // shows after "=" ("N", "FILE", "HOST:PORT"); `help` one sentence or a
  // few, wrapped by Help(). Registering a name twice aborts.
  Flag& String(absl::string_view name, std::string* dest,
               absl::string_view value_name, absl::string_view help);
  Flag& Bool(absl::string_view name, bool* dest, absl::string_view help);
  // Any integer type but bool; values outside the type are errors.
  template <typename T, typename = std::enable_if_t<std::is_integral_v<T> &&
                                                    !std::is_same_v<T, bool>>>
  Flag& Int(absl::string_view name, T* dest, absl::string_view value_name,
            absl::string_view help);
  Flag& Double(absl::string_view name, double* dest,
               absl::string_view value_name, absl::string_view help);
  Flag& Double(absl::string_view name, float* dest,
               absl::string_view value_name, absl::string_view help);
  // A byte count with an optional unit: "16GiB", "512MiB", "4096" (ParseBytes).
  Flag& Bytes(absl::string_view name, uint64_t* dest, absl::string_view help);
  // One of `choices` (their names, in the order help lists them).
  template <typename T>
  Flag& Enum(absl::string_view name, T* dest,
             std::vector<std::pair<std::string, T>> choices,
             absl::string_view help);
  Flag& Choice(absl::string_view name, std::string* dest,
               std::vector<std::string> choices, absl::string_view help);
  // Comma-separated: "0,2048,8192"; "a,b" (empty items are dropped).
  Flag& Ints(absl::string_view name, std::vector<int64_t>* dest,
             absl::string_view value_name, absl::string_view help);
  Flag& Strings(absl::string_view name, std::vector<std::string>* dest,
                absl::string_view value_name, absl::string_view help);

  // Positional arguments go to positional() instead of being errors.
  void AcceptPositional() { accepts_positional_ = true; }

  // Parses `args` into the registered variables; see the top for the syntax
  // and the errors. A flag given twice keeps its last value.
  absl::Status Parse(absl::Span<const std::string> args);
  // Parses the flags up to the first positional argument (a subcommand's
  // name) and returns its index in `args` (args.size() when there is
  // none); what follows it is the subcommand's to parse.
  absl::StatusOr<size_t> ParseUntilCommand(absl::Span<const std::string> args);

  // For the main() of a tool whose flags are all it reads: parses
  // argv[1..]. On an error prints "PROGRAM: ERROR", `usage` and Help() to
  // stderr and returns 2; with --help (when registered) prints `usage` and
  // Help() to stdout and returns 0; otherwise returns nullopt: go on.
  std::optional<int> ParseForMain(absl::string_view program,
                                  absl::string_view usage, int argc,
                                  char** argv);

  const std::vector<std::string>& positional() const { return positional_; }
  // Whether --name was on the command line (not merely defaulted).
  bool Given(absl::string_view name) const;
  // Every registered flag, in registration order.
  std::vector<Registered> registered() const;

  // One entry per flag, in registration order: "  --name=VALUE" and its
  // help wrapped to 80 columns from column 28, then "(required)" or
  // "(default X)"; no default shows for an empty string or list, a false
  // bool, or DefaultText("").
  std::string Help() const;

 private:
  Flag& Add(absl::string_view name, absl::string_view value_name,
            absl::string_view help, std::string default_text);
  Flag* Find(absl::string_view name) const;
  // Double's, for F = double or float.
  template <typename F>
  Flag& Number(absl::string_view name, F* dest, absl::string_view value_name,
               absl::string_view help);
  // Parse and ParseUntilCommand: stops at a positional when `until_command`.
  absl::StatusOr<size_t> ParseArgs(absl::Span<const std::string> args,
                                   bool until_command);

  std::vector<std::unique_ptr<Flag>> flags_;  // stable addresses
  std::map<std::string, Flag*, std::less<>> by_name_;
  std::vector<std::string> positional_;
  bool accepts_positional_ = false;
};

// argv[1..argc) as strings: what Parse takes.
std::vector<std::string> CommandLineArgs(int argc, char** argv);

// "16GiB", "512MiB", "4096", ... as bytes (suffixes B, KiB, MiB, GiB, TiB;
// at most 2^60 bytes). INVALID_ARGUMENT "'TEXT' is not a byte count".
absl::StatusOr<uint64_t> ParseBytes(absl::string_view text);
// The reverse, in the largest unit that divides it: 134217728 -> "128MiB".
std::string FormatBytes(uint64_t bytes);

// Implementation of the templates.

namespace flags_internal {
bool ParseInt64(absl::string_view text, int64_t* out);
std::string ChoiceList(const std::vector<std::string>& names);
}  // namespace flags_internal

template <typename T, typename>
FlagSet::Flag& FlagSet::Int(absl::string_view name, T* dest,
                            absl::string_view value_name,
                            absl::string_view help) {
  Flag& f = Add(name, value_name, help, std::to_string(*dest));
  f.kind_ = Flag::Kind::kInt;
  // The values an int64_t holds that T holds too.
  constexpr uint64_t kInt64Max = std::numeric_limits<int64_t>::max();
  f.type_lo_ = std::is_signed_v<T>
                   ? static_cast<int64_t>(std::numeric_limits<T>::min())
                   : 0;
  f.type_hi_ = static_cast<int64_t>(std::min<uint64_t>(
      static_cast<uint64_t>(std::numeric_limits<T>::max()), kInt64Max));
  f.lo_ = f.type_lo_;
  f.hi_ = f.type_hi_;
  const Flag* flag = &f;
  f.store_ = [dest, flag](absl::string_view text) {
    int64_t v = 0;
    if (!flags_internal::ParseInt64(text, &v) || v < flag->lo_ ||
        v > flag->hi_) {
      return false;
    }
    *dest = static_cast<T>(v);
    return true;
  };
  return f;
}

template <typename T>
FlagSet::Flag& FlagSet::Enum(absl::string_view name, T* dest,
                             std::vector<std::pair<std::string, T>> choices,
                             absl::string_view help) {
  std::vector<std::string> names;
  std::string current;
  for (const auto& [choice_name, value] : choices) {
    names.push_back(choice_name);
    if (value == *dest) current = choice_name;
  }
  std::string value_name;
  for (const std::string& n : names) {
    value_name += (value_name.empty() ? "" : "|") + n;
  }
  Flag& f = Add(name, value_name, help, current);
  f.expected_ = flags_internal::ChoiceList(names);
  f.store_ = [dest, choices = std::move(choices)](absl::string_view text) {
    for (const auto& [choice_name, value] : choices) {
      if (text == choice_name) {
        *dest = value;
        return true;
      }
    }
    return false;
  };
  return f;
}

}  // namespace knnmem

#endif  // KNNMEM_BASE_FLAGS_H_
