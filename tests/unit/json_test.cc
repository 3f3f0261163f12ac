// base/json: strings of every control character, quotes, backslashes and
// non-ASCII text written and read back (by ParseJson and by Python's json
// module, an oracle independent of the library), non-finite numbers as
// null, significant digits as printf rounds them, the row layout, and
// reading that names what is wrong instead of throwing.
#include "base/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "base/subprocess.h"
#include "base/temp_dir.h"

namespace knnmem {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Every byte from 0 to 0x7f (NUL, the control characters, '"', '\\', DEL)
// and UTF-8 of two, three and four bytes.
std::string AwkwardText() {
  std::string s;
  for (int c = 0; c < 0x80; ++c) s += static_cast<char>(c);
  return s + " caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80";
}

TEST(JsonTest, EveryControlCharacterQuoteBackslashAndUtf8RoundTrips) {
  const std::string text = AwkwardText();
  const std::string dumped = DumpJson(Json{{"s", text}});
  // One line: no raw control character is left in the output.
  for (const char c : dumped) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20)
        << "raw byte " << static_cast<int>(c) << " in " << dumped;
  }
  absl::StatusOr<Json> parsed = ParseJson(dumped);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::string back;
  ASSERT_TRUE(ReadMember(*parsed, "s", &back).ok());
  EXPECT_EQ(back, text);

  // Python's json module reads the same string.
  TempDir dir;
  const std::string path = dir.Sub("s.json");
  std::ofstream(path, std::ios::binary) << dumped;
  absl::StatusOr<CommandResult> python =
      RunCommand({"python3", "-c",
                  "import json, sys\n"
                  "s = json.load(open(sys.argv[1], encoding='utf-8'))['s']\n"
                  "sys.stdout.write(s.encode('utf-8').hex())\n",
                  path},
                 /*merge_stderr=*/true);
  ASSERT_TRUE(python.ok()) << python.status();
  EXPECT_EQ(python->exit_code, 0) << python->output;
  EXPECT_EQ(python->output, absl::BytesToHexString(text));
}

TEST(JsonTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  const std::string dumped =
      DumpJson(Json("a\xFF"
                    "b"));
  EXPECT_EQ(dumped,
            "\"a\xEF\xBF\xBD"
            "b\"");
  EXPECT_TRUE(ParseJson(dumped).ok());
}

TEST(JsonTest, NonFiniteNumbersAreNullAndReadBackAsNaN) {
  const Json value = {{"nan", kNaN},
                      {"inf", kInf},
                      {"minus_inf", -kInf},
                      {"half", 0.5},
                      {"list", std::vector<double>{1, kNaN, -kInf}}};
  const std::string dumped = DumpJson(value);
  EXPECT_EQ(dumped,
            "{\"nan\":null,\"inf\":null,\"minus_inf\":null,\"half\":0.5,"
            "\"list\":[1.0,null,null]}");
  absl::StatusOr<Json> parsed = ParseJson(dumped);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (const char* key : {"nan", "inf", "minus_inf"}) {
    double v = 0;
    ASSERT_TRUE(ReadMember(*parsed, key, &v).ok()) << key;
    EXPECT_TRUE(std::isnan(v)) << key;
  }
  double half = 0;
  ASSERT_TRUE(ReadMember(*parsed, "half", &half).ok());
  EXPECT_EQ(half, 0.5);
  std::vector<double> list;
  ASSERT_TRUE(ReadMember(*parsed, "list", &list).ok());
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0], 1.0);
  EXPECT_TRUE(std::isnan(list[1]));
  EXPECT_TRUE(std::isnan(list[2]));
}

TEST(JsonTest, SignificantDigitsRoundAsPrintfAndNineKeepEveryFloat) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> mantissa(-1, 1);
  std::uniform_int_distribution<int> exponent(-40, 40);
  for (int i = 0; i < 10000; ++i) {
    const float f = std::ldexp(mantissa(rng), exponent(rng));
    const double rounded = RoundToSignificantDigits(f, 9);
    EXPECT_EQ(static_cast<float>(rounded), f) << i;
    // Written and read back, the same double as printf's 9 digits.
    absl::StatusOr<Json> back = ParseJson(DumpJson(Json(rounded)));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->get<double>(),
              std::strtod(absl::StrFormat("%.9g", f).c_str(), nullptr))
        << i;
  }
  EXPECT_EQ(DumpJson(Json(RoundToSignificantDigits(1.0 / 3, 6))), "0.333333");
  EXPECT_EQ(DumpJson(Json(RoundToSignificantDigits(2.0 / 3, 9))),
            "0.666666667");
  EXPECT_TRUE(std::isnan(RoundToSignificantDigits(kNaN, 6)));
  EXPECT_EQ(RoundToSignificantDigits(-kInf, 6), -kInf);
}

TEST(JsonTest, RowsAreOneElementPerLineAndMembersKeepTheirOrder) {
  const Json rows = {{{"z", 1}, {"a", "x\ny"}}, {{"b", true}}};
  EXPECT_EQ(DumpJsonRows(rows),
            "[\n  {\"z\":1,\"a\":\"x\\ny\"},\n  {\"b\":true}\n]");
  const Json file = {{"rows", rows}, {"n", 2}};
  const std::string dumped = DumpJsonRows(file);
  EXPECT_EQ(dumped,
            "{\"rows\":[\n  {\"z\":1,\"a\":\"x\\ny\"},\n  {\"b\":true}\n],"
            "\"n\":2}");
  absl::StatusOr<Json> back = ParseJson(dumped);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, file);
  EXPECT_EQ(DumpJsonRows(Json::array()), "[]");
  EXPECT_EQ(DumpJsonRows(Json(7)), "7");
}

TEST(JsonTest, ReadingNamesWhatIsWrongAndNeverThrows) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "nan", "{'a':1}"}) {
    absl::StatusOr<Json> parsed = ParseJson(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_NE(parsed.status().message().find("not JSON"), std::string::npos)
        << parsed.status();
  }
  absl::StatusOr<Json> row = ParseJson(
      "{\"name\":\"n\",\"count\":3,\"half\":1.5,\"flag\":true,"
      "\"huge\":18446744073709551615,\"minus\":-2}");
  ASSERT_TRUE(row.ok()) << row.status();
  int64_t count = 0, minus = 0;
  ASSERT_TRUE(ReadMember(*row, "count", &count).ok());
  ASSERT_TRUE(ReadMember(*row, "minus", &minus).ok());
  EXPECT_EQ(count, 3);
  EXPECT_EQ(minus, -2);
  // An optional member that is absent leaves the value as it was.
  int64_t kept = 42;
  EXPECT_TRUE(ReadMember(*row, "absent", &kept, Presence::kOptional).ok());
  EXPECT_EQ(kept, 42);

  auto expect_invalid = [](const absl::Status& s, const std::string& key) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("\"" + key + "\""), std::string::npos) << s;
  };
  expect_invalid(ReadMember(*row, "absent", &count), "absent");
  expect_invalid(ReadMember(*row, "name", &count), "name");
  expect_invalid(ReadMember(*row, "half", &count), "half");
  expect_invalid(ReadMember(*row, "huge", &count), "huge");
  bool flag = false;
  expect_invalid(ReadMember(*row, "count", &flag), "count");
  double number = 0;
  expect_invalid(ReadMember(*row, "flag", &number), "flag");
  std::string text;
  expect_invalid(ReadMember(*row, "count", &text), "count");
  std::vector<double> list;
  expect_invalid(ReadMember(*row, "half", &list), "half");
  expect_invalid(ReadMember(Json::array(), "name", &text), "name");
}

}  // namespace
}  // namespace knnmem
