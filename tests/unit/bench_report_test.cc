// The bench's pure functions: timing statistics, option parsing, ratios and
// the JSON report (read back by Python's json module).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "base/temp_dir.h"
#include "bench/options.h"
#include "bench/report.h"
#include "bench/stats.h"

namespace knnmem::bench {
namespace {

TEST(BenchStatsTest, MedianAndNearestRankPercentiles) {
  Samples s;
  EXPECT_TRUE(std::isnan(s.Median()));
  EXPECT_TRUE(std::isnan(s.P99()));
  for (double v : {5.0, 1.0, 3.0}) s.Add(v);
  EXPECT_EQ(s.Median(), 3.0);
  s.Add(4.0);
  EXPECT_EQ(s.Median(), 3.5);  // even count: mean of the middle two
  EXPECT_EQ(s.Percentile(25), 1.0);
  EXPECT_EQ(s.Percentile(50), 3.0);  // nearest rank: ceil(0.5 * 4) = 2nd
  EXPECT_EQ(s.Percentile(51), 4.0);
  EXPECT_EQ(s.P99(), 5.0);  // fewer than 100 samples: the maximum
  EXPECT_EQ(s.Total(), 13.0);
  const Samples doubled = s.Scaled(2);
  EXPECT_EQ(doubled.Median(), 7.0);
  EXPECT_EQ(doubled.size(), 4u);
}

TEST(BenchStatsTest, MeasureTimesEachRunAndStopsAtAnError) {
  int calls = 0;
  auto samples = Measure(2, 3, [&] {
    ++calls;
    return absl::OkStatus();
  });
  ASSERT_TRUE(samples.ok());
  EXPECT_EQ(calls, 5);  // warm-ups untimed
  EXPECT_EQ(samples->size(), 3u);
  auto failed = Measure(0, 3, [] { return absl::InternalError("boom"); });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kInternal);
}

TEST(BenchOptionsTest, ParsesBothFormsAndDefaults) {
  auto o = ParseBenchOptions(
      {"--quick", "--reps=5", "--json", "out.json", "--only", "W-large"},
      "/bin/server");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->quick);
  EXPECT_EQ(o->EffectiveReps(), 5);
  EXPECT_EQ(o->json_path, "out.json");
  EXPECT_EQ(o->only, "W-large");
  EXPECT_EQ(o->server_binary, "/bin/server");
  auto quick = ParseBenchOptions({"--quick"}, "s");
  ASSERT_TRUE(quick.ok());
  EXPECT_EQ(quick->EffectiveReps(), 3);
  auto full = ParseBenchOptions({}, "s");
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->EffectiveReps(), 7);
  auto paired = ParseBenchOptions(
      {"--server", "127.0.0.1:5", "--only", "W-client-paired"}, "s");
  ASSERT_TRUE(paired.ok()) << paired.status();
  EXPECT_EQ(paired->only, "W-client-paired");
  auto flags =
      ParseBenchOptions({"--server-flags=--tier-int8-codes,--shards=4"}, "s");
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->server_flags,
            (std::vector<std::string>{"--tier-int8-codes", "--shards=4"}));
  EXPECT_EQ(
      ParseBenchOptions({"--server", "127.0.0.1:5", "--server-flags=-x"}, "s")
          .status()
          .message(),
      "--server-flags: only for the server this benchmark starts (not "
      "with --server or --servers)");
  auto real = ParseBenchOptions({"--only", "W-real", "--keys", "dump"}, "s");
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_EQ(real->only, "W-real");
  EXPECT_EQ(real->keys_dir, "dump");
  auto grid =
      ParseBenchOptions({"--real-entries", "65536,262144", "--real-tails",
                         "4096,1024", "--decode-shapes", "1024:float32"},
                        "s");
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->real_entries, (std::vector<int64_t>{65536, 262144}));
  EXPECT_EQ(grid->real_tails, (std::vector<int64_t>{4096, 1024}));
  EXPECT_EQ(grid->decode_shapes, std::vector<std::string>{"1024:float32"});
}

TEST(BenchOptionsTest, BadFlagsAreNamed) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--frobnicate", "1"}, "--frobnicate"},
      {{"--quick=yes"}, "--quick"},
      {{"--server", "nohost"}, "--server"},
      {{"--server", "h:70000"}, "--server"},
      {{"--json"}, "--json: missing value"},
      {{"--json="}, "--json: empty value"},
      {{"--only", "W-nothing"}, "--only"},
      {{"--only", "W-client-paired"}, "--only W-client-paired: needs --server"},
      {{"--only", "W-real"}, "--only W-real: needs --keys DIR"},
      {{"--real-entries", "65536,512"}, "--real-entries: 512 is not a size"},
      {{"--real-tails", "0"}, "--real-tails: 0 is not a tail >= 1"},
      {{"--keys"}, "--keys: missing value"},
      {{"stray"}, "unexpected argument 'stray'"},
  };
  for (const auto& [args, want] : cases) {
    auto o = ParseBenchOptions(args, "s");
    ASSERT_FALSE(o.ok()) << want;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(o.status().message().find(want), std::string::npos) << o.status();
  }
}

TEST(BenchOptionsTest, HelpDocumentsEveryFlag) {
  const std::string help = BenchHelp();
  BenchOptions defaults;
  for (const FlagSet::Registered& flag : BenchFlags(&defaults).registered()) {
    EXPECT_NE(help.find("\n  --" + flag.name), std::string::npos) << flag.name;
  }
}

Result Row(const std::string& workload, const std::string& system,
           double median, const std::string& variant = "") {
  Result r;
  r.workload = workload;
  r.system = system;
  r.dtype = "float32";
  r.variant = variant;
  r.runs = 3;
  r.median_seconds = median;
  r.p99_seconds = median * 2;
  return r;
}

double RatioOf(const Result& r, const std::string& name) {
  for (const auto& [n, v] : r.ratios) {
    if (n == name) return v;
  }
  return -1;
}

TEST(BenchReportTest, RatiosCompareKnnmemWithItsPeersOnTheSameWorkload) {
  Report report;
  report.Add(Row("W-search-8K", "knnmem", 2.0));
  report.Add(Row("W-search-8K", "sgemm", 0.5));
  report.Add(Row("W-search-8K", "faiss-flat", 6.0, "omp1"));
  report.Add(Row("W-search-8K", "faiss-hnsw", 1.0));
  report.ComputeRatios();
  const Result* k = report.Find("W-search-8K", "knnmem", "float32");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(RatioOf(*k, "knnmem_over_sgemm_time"), 4.0);
  EXPECT_EQ(RatioOf(*k, "faiss_flat_omp1_over_knnmem_time"), 3.0);
  EXPECT_EQ(RatioOf(*k, "faiss_hnsw_over_knnmem_time"), 0.5);
  EXPECT_EQ(RatioOf(*k, "faiss_flat_default_over_knnmem_time"), -1);  // none
  EXPECT_EQ(report.Find("W-search-8K", "knnmem", "float16"), nullptr);
  // Computing again does not repeat them.
  report.ComputeRatios();
  EXPECT_EQ(report.Find("W-search-8K", "knnmem", "float32")->ratios.size(), 3u);
}

TEST(BenchReportTest, JsonIsValidAndEscapesEveryString) {
  Report report;
  // Strings the writer must escape, and numbers that are not finite (the
  // old writer wrote an infinite ratio as inf and a NaN load as nan: not
  // JSON).
  const std::string odd =
      "quote \" backslash \\ newline \n tab \t bell \a \x01 caf\xC3\xA9";
  Result r = Row("W-append", "knnmem", 0.25, odd);
  r.note = odd;
  r.vectors_per_second = 1e6;
  r.p99_seconds = 1.0 / 3;  // 9 significant digits: 0.333333333
  r.ratios.emplace_back("knnmem_over_rocksdb_throughput",
                        std::numeric_limits<double>::infinity());
  report.Add(r);
  Machine m;
  m.cpu = "cpu \"x\"";
  m.cores = 2;
  m.load_at_end = std::nan("");
  m.server_command = "/opt/knnmem server --data-dir 'a b'";
  TempDir dir;
  const std::string path = dir.Sub("bench.json");
  ASSERT_TRUE(report.WriteJson(path, m, RunSettings()).ok());
  // Python's json module reads it back: an oracle independent of the
  // writer (protobuf's Struct map crashed under TSan here).
  absl::StatusOr<CommandResult> read = RunCommand(
      {"python3", "-c",
       "import json, sys\n"
       "rows = json.load(open(sys.argv[1], encoding='utf-8'))\n"
       "assert len(rows) == 1, rows\n"
       "r = rows[0]\n"
       "sys.stdout.buffer.write('|'.join([r['variant'], r['note'],\n"
       "    r['workload'], r['machine']['cpu'],\n"
       "    r['machine']['server_command'], repr(r['median_seconds']),\n"
       "    repr(r['p99_seconds']), repr(r['vectors_per_second']),\n"
       "    repr(r['knnmem_over_rocksdb_throughput']),\n"
       "    repr(r['machine']['load_at_end'])]).encode('utf-8'))\n",
       path},
      /*merge_stderr=*/true);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->exit_code, 0) << read->output;
  EXPECT_EQ(
      read->output,
      absl::StrCat(odd, "|", odd, "|W-append|cpu \"x\"|", m.server_command,
                   "|0.25|0.333333333|1000000.0|None|None"));
  // One row per line, and the same through base/json.
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string json = text.str();
  EXPECT_EQ(std::count(json.begin(), json.end(), '\n'), 3) << json;
  absl::StatusOr<Json> rows = ParseJson(json);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u);
  std::string note;
  ASSERT_TRUE(ReadMember((*rows)[0], "note", &note).ok());
  EXPECT_EQ(note, odd);
}

}  // namespace
}  // namespace knnmem::bench
