#include "base/flags.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace knnmem {
namespace {

enum class Color { kRed, kGreen };

// Every kind of flag, with its defaults.
struct Values {
  std::string name = "default";
  bool verbose = false;
  int count = 3;
  uint32_t seconds = 0;
  int64_t big = 0;
  int64_t steps = 100;
  uint64_t seed = 0;
  double ratio = 0.5;
  float scale = 1.0f;
  uint64_t budget = uint64_t{128} << 20;
  Color color = Color::kRed;
  std::string mode = "fast";
  std::vector<int64_t> sizes = {0, 2048};
  std::vector<std::string> dirs;
  bool help = false;
};

FlagSet Flags(Values* v) {
  FlagSet flags;
  flags.String("name", &v->name, "NAME", "what to call it");
  flags.Bool("verbose", &v->verbose, "say more");
  flags.Int("count", &v->count, "N", "how many").Range(1, 10);
  flags.Int("seconds", &v->seconds, "N", "how long");
  flags.Int("big", &v->big, "N", "any integer");
  flags.Int("steps", &v->steps, "N", "how far").AtLeast(1);
  flags.Int("seed", &v->seed, "S", "where to start");
  flags.Double("ratio", &v->ratio, "X", "a share");
  flags.Double("scale", &v->scale, "X", "a factor").Positive();
  flags.Bytes("budget", &v->budget, "RAM to use");
  flags.Enum("color", &v->color,
             {{"red", Color::kRed}, {"green", Color::kGreen}}, "the color");
  flags.Choice("mode", &v->mode, {"fast", "slow", "exact"}, "how to run");
  flags.Ints("sizes", &v->sizes, "N,N...", "memory sizes");
  flags.Strings("dirs", &v->dirs, "DIR,DIR...", "where to look");
  flags.Bool("help", &v->help, "print this text and exit");
  return flags;
}

std::string ErrorOf(std::vector<std::string> args) {
  Values v;
  FlagSet flags = Flags(&v);
  return std::string(flags.Parse(args).message());
}

TEST(FlagSetTest, DefaultsStayWhenNothingIsGiven) {
  Values v;
  FlagSet flags = Flags(&v);
  ASSERT_TRUE(flags.Parse({}).ok());
  EXPECT_EQ(v.name, "default");
  EXPECT_EQ(v.count, 3);
  EXPECT_EQ(v.budget, uint64_t{128} << 20);
  EXPECT_FALSE(flags.Given("count"));
}

TEST(FlagSetTest, ParsesBothFormsOfEveryKind) {
  Values v;
  FlagSet flags = Flags(&v);
  const absl::Status s = flags.Parse(
      {"--name=x", "--verbose", "--count", "7", "--seconds=4294967295", "--big",
       "-5", "--ratio", "-0.25", "--scale=2.5", "--budget", "16GiB",
       "--color=green", "--mode", "exact", "--sizes", "0,8192,-1", "--dirs",
       "a,,b"});
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(v.name, "x");
  EXPECT_TRUE(v.verbose);
  EXPECT_EQ(v.count, 7);
  EXPECT_EQ(v.seconds, 4294967295u);
  EXPECT_EQ(v.big, -5);
  EXPECT_EQ(v.ratio, -0.25);
  EXPECT_EQ(v.scale, 2.5f);
  EXPECT_EQ(v.budget, uint64_t{16} << 30);
  EXPECT_EQ(v.color, Color::kGreen);
  EXPECT_EQ(v.mode, "exact");
  EXPECT_EQ(v.sizes, (std::vector<int64_t>{0, 8192, -1}));
  EXPECT_EQ(v.dirs, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(flags.Given("count"));
  EXPECT_FALSE(flags.Given("help"));
}

TEST(FlagSetTest, ABoolTakesTrueOrFalseAfterItAndNothingElse) {
  Values v;
  FlagSet flags = Flags(&v);
  flags.AcceptPositional();
  ASSERT_TRUE(flags.Parse({"--verbose", "false", "--help", "stream"}).ok());
  EXPECT_FALSE(v.verbose);
  EXPECT_TRUE(v.help);
  EXPECT_EQ(flags.positional(), std::vector<std::string>{"stream"});
  ASSERT_TRUE(flags.Parse({"--verbose=true"}).ok());
  EXPECT_TRUE(v.verbose);
  EXPECT_EQ(ErrorOf({"--verbose=yes"}),
            "--verbose: 'yes' is not true or false");
}

TEST(FlagSetTest, ErrorsNameTheFlagAndWhatItTakes) {
  EXPECT_EQ(ErrorOf({"--frobnicate", "1"}), "unknown flag --frobnicate");
  EXPECT_EQ(ErrorOf({"--frobnicate=1"}), "unknown flag --frobnicate");
  EXPECT_EQ(ErrorOf({"--count"}), "--count: missing value");
  // A separate value never starts with "--".
  EXPECT_EQ(ErrorOf({"--name", "--verbose"}), "--name: missing value");
  EXPECT_EQ(ErrorOf({"--count", "x"}),
            "--count: 'x' is not an integer in [1, 10]");
  EXPECT_EQ(ErrorOf({"--count=11"}),
            "--count: '11' is not an integer in [1, 10]");
  EXPECT_EQ(ErrorOf({"--seconds=-1"}),
            "--seconds: '-1' is not an integer in [0, 4294967295]");
  EXPECT_EQ(ErrorOf({"--big=1.5"}), "--big: '1.5' is not an integer");
  EXPECT_EQ(ErrorOf({"--steps=0"}), "--steps: '0' is not an integer >= 1");
  EXPECT_EQ(ErrorOf({"--seed=-1"}), "--seed: '-1' is not an integer >= 0");
  EXPECT_EQ(ErrorOf({"--ratio=half"}), "--ratio: 'half' is not a number");
  EXPECT_EQ(ErrorOf({"--scale=0"}), "--scale: '0' is not a positive number");
  EXPECT_EQ(ErrorOf({"--budget=lots"}),
            "--budget: 'lots' is not bytes, like 16GiB, 512MiB or 4096");
  EXPECT_EQ(ErrorOf({"--color=blue"}), "--color: 'blue' is not red or green");
  EXPECT_EQ(ErrorOf({"--mode=medium"}),
            "--mode: 'medium' is not fast, slow or exact");
  EXPECT_EQ(ErrorOf({"--sizes=1,x"}),
            "--sizes: '1,x' is not a comma-separated list of integers");
  EXPECT_EQ(ErrorOf({"stray"}), "unexpected argument 'stray'");
  // The first error in argv order.
  EXPECT_EQ(ErrorOf({"--count=0", "--bogus"}),
            "--count: '0' is not an integer in [1, 10]");
}

TEST(FlagSetTest, AFailedValueLeavesTheVariableAlone) {
  Values v;
  FlagSet flags = Flags(&v);
  EXPECT_FALSE(flags.Parse({"--count=99"}).ok());
  EXPECT_EQ(v.count, 3);
  EXPECT_FALSE(flags.Given("count"));
}

TEST(FlagSetTest, ChecksRequiredAndNonEmpty) {
  std::string server, file;
  bool help = false;
  FlagSet flags;
  flags.String("server", &server, "HOST:PORT", "where")
      .Required()
      .Check("HOST:PORT",
             [](absl::string_view v) { return v.find(':') != v.npos; });
  flags.String("file", &file, "FILE", "what").NonEmpty();
  flags.Bool("help", &help, "print this text and exit");
  EXPECT_EQ(flags.Parse({}).message(), "--server: required");
  EXPECT_EQ(flags.Parse({"--server=nohost"}).message(),
            "--server: 'nohost' is not HOST:PORT");
  EXPECT_EQ(flags.Parse({"--server=h:1", "--file="}).message(),
            "--file: empty value");
  EXPECT_TRUE(flags.Parse({"--server", "h:1"}).ok());
  // --help needs no required flag.
  FlagSet again;
  std::string s;
  again.String("server", &s, "HOST:PORT", "where").Required();
  again.Bool("help", &help, "print this text and exit");
  EXPECT_TRUE(again.Parse({"-h"}).ok());
  EXPECT_TRUE(help);
}

TEST(FlagSetTest, DoubleDashEndsTheFlags) {
  Values v;
  FlagSet flags = Flags(&v);
  flags.AcceptPositional();
  ASSERT_TRUE(flags.Parse({"--count=2", "--", "--count=5", "-h"}).ok());
  EXPECT_EQ(v.count, 2);
  EXPECT_EQ(flags.positional(), (std::vector<std::string>{"--count=5", "-h"}));
}

TEST(FlagSetTest, ParseUntilCommandStopsAtTheFirstPositional) {
  std::string server;
  bool json = false;
  FlagSet global;
  global.String("server", &server, "HOST:PORT", "where");
  global.Bool("json", &json, "print JSON");
  const std::vector<std::string> args = {
      "--server", "h:1", "--json", "create", "s", "--layers", "2"};
  absl::StatusOr<size_t> at = global.ParseUntilCommand(args);
  ASSERT_TRUE(at.ok()) << at.status();
  EXPECT_EQ(*at, 3u);
  EXPECT_EQ(server, "h:1");
  EXPECT_TRUE(json);
  // No command at all.
  FlagSet none;
  EXPECT_EQ(*none.ParseUntilCommand({}), 0u);
  EXPECT_EQ(none.ParseUntilCommand({"--x"}).status().message(),
            "unknown flag --x");
}

TEST(FlagSetTest, HelpDocumentsEveryRegisteredFlagWithItsDefault) {
  Values v;
  const FlagSet flags = Flags(&v);
  const std::string help = flags.Help();
  for (const FlagSet::Registered& r : flags.registered()) {
    EXPECT_TRUE(absl::StrContains(help, "\n  --" + r.name) ||
                absl::StartsWith(help, "  --" + r.name))
        << r.name << "\n"
        << help;
  }
  EXPECT_EQ(flags.registered().size(), 15u);
  EXPECT_TRUE(absl::StrContains(
      help, "  --count=N                 how many (default 3)\n"))
      << help;
  EXPECT_TRUE(absl::StrContains(help, "--budget=BYTES")) << help;
  EXPECT_TRUE(absl::StrContains(help, "(default 128MiB)")) << help;
  EXPECT_TRUE(absl::StrContains(help, "--color=red|green")) << help;
  EXPECT_TRUE(absl::StrContains(help, "--verbose                 say more\n"))
      << help;  // a false bool shows no default
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    EXPECT_LE(line.size(), 80u) << line;
  }
}

TEST(FlagSetTest, HelpWrapsLongTextAndMovesItBelowALongName) {
  int n = 0;
  FlagSet flags;
  flags.Int("a-very-long-flag-name-indeed", &n, "N",
            "one two three four five six seven eight nine ten eleven twelve "
            "thirteen fourteen fifteen");
  EXPECT_EQ(flags.Help(),
            "  --a-very-long-flag-name-indeed=N\n"
            "                            one two three four five six seven "
            "eight nine ten\n"
            "                            eleven twelve thirteen fourteen "
            "fifteen (default 0)\n");
}

TEST(FlagSetTest, BytesTakeUnits) {
  EXPECT_EQ(*ParseBytes("512MiB"), uint64_t{512} << 20);
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("3KiB"), 3072u);
  EXPECT_EQ(*ParseBytes("7B"), 7u);
  for (const char* bad : {"lots", "GiB", "-1GiB", "99999999999TiB", ""}) {
    EXPECT_FALSE(ParseBytes(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatBytes(uint64_t{128} << 20), "128MiB");
  EXPECT_EQ(FormatBytes(uint64_t{1} << 30), "1GiB");
  EXPECT_EQ(FormatBytes(1000), "1000");
  EXPECT_EQ(FormatBytes(0), "0");
}

TEST(FlagSetTest, ParseForMainSaysWhetherToGoOnAndWithWhatStatus) {
  char program[] = "tool", good[] = "--count=2", bad[] = "--count=0",
       help[] = "--help";
  char* ok_argv[] = {program, good};
  char* bad_argv[] = {program, bad};
  char* help_argv[] = {program, help};
  Values v;
  EXPECT_EQ(Flags(&v).ParseForMain("tool", "usage: tool", 2, ok_argv),
            std::nullopt);
  EXPECT_EQ(v.count, 2);
  EXPECT_EQ(Flags(&v).ParseForMain("tool", "usage: tool", 2, bad_argv), 2);
  EXPECT_EQ(Flags(&v).ParseForMain("tool", "usage: tool", 2, help_argv), 0);
}

TEST(FlagSetTest, CommandLineArgsSkipsTheProgramName) {
  char program[] = "prog", first[] = "--x=1";
  char* argv[] = {program, first};
  EXPECT_EQ(CommandLineArgs(2, argv), std::vector<std::string>{"--x=1"});
  EXPECT_TRUE(CommandLineArgs(1, argv).empty());
}

}  // namespace
}  // namespace knnmem
