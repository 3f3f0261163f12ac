// The knnmem CLI against a real server: the "make run" session of the README
// (create, append 10,000 random rows, search) checked against brute force.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>

#include "base/json.h"
#include "base/subprocess.h"
#include "tests/support/attention_oracle.h"
#include "tests/support/cli_runner.h"
#include "tests/support/server_fixture.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {
namespace {

using Output = CliOutput;

Output RunCli(const std::string& server, const std::string& args,
              bool merge_stderr = false) {
  return testing::RunCli("--server " + server + " " + args, merge_stderr);
}

// The CLI's documented generator, re-implemented here from its description
// in client/random_rows.h (SplitMix64, top 24 bits, mapped to [-1, 1)).
std::vector<float> SplitMixUniform(uint64_t seed, size_t count) {
  std::vector<float> out;
  uint64_t x = seed;
  for (size_t i = 0; i < count; ++i) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    out.push_back(static_cast<float>(
        static_cast<double>(z >> 40) / 16777216.0 * 2.0 - 1.0));
  }
  return out;
}

// The CLI's JSON output; null (and a failure) when it is not JSON.
Json Parsed(const std::string& out) {
  absl::StatusOr<Json> json = ParseJson(out);
  EXPECT_TRUE(json.ok()) << json.status() << "\n" << out;
  return json.ok() ? *std::move(json) : Json();
}

// The number array `name` of an object of the CLI's JSON (null reads as
// NaN).
std::vector<double> Numbers(const Json& object, const std::string& name) {
  std::vector<double> numbers;
  const absl::Status read = ReadMember(object, name, &numbers);
  EXPECT_TRUE(read.ok()) << read << "\n" << object;
  return numbers;
}

class CliTest : public ServerFixture {};

TEST_F(CliTest, CreateAppendTenThousandRandomRowsAndSearchMatchesBruteForce) {
  const std::string& addr = server_->address();
  Output create = RunCli(addr,
                         "create doc --layers 1 --heads 8 --key-dim 128 "
                         "--value-dim 128 --capacity 65536");
  ASSERT_EQ(create.status, 0) << create.out;
  Output append = RunCli(addr, "append doc --random 10000 --seed 7");
  ASSERT_EQ(append.status, 0) << append.out;
  EXPECT_NE(append.out.find("appended 10000 rows"), std::string::npos)
      << append.out;

  Output info = RunCli(addr, "--json info doc");
  ASSERT_EQ(info.status, 0);
  EXPECT_EQ(Parsed(info.out).at("layers").at(0).at("next_position"), 10000)
      << info.out;

  Output search = RunCli(addr, "--json search doc --random 3 --seed 9 --k 32");
  ASSERT_EQ(search.status, 0) << search.out;
  const Json found = Parsed(search.out);
  const std::vector<double> positions = Numbers(found, "positions");
  const std::vector<double> scores = Numbers(found, "scores");
  ASSERT_EQ(positions.size(), 3u * 8 * 32);
  ASSERT_EQ(scores.size(), positions.size());

  OracleMemory oracle{8, 128, {}};
  const std::vector<float> keys = SplitMixUniform(7, 10000 * 8 * 128);
  for (int64_t p = 0; p < 10000; ++p) {
    oracle.keys[p].assign(keys.begin() + p * 1024,
                          keys.begin() + (p + 1) * 1024);
  }
  const std::vector<float> queries = SplitMixUniform(9, 3 * 8 * 128);
  for (int q = 0; q < 3; ++q) {
    for (int h = 0; h < 8; ++h) {
      std::vector<float> s(32);
      std::vector<int64_t> p(32);
      for (int j = 0; j < 32; ++j) {
        s[j] = static_cast<float>(scores[(q * 8 + h) * 32 + j]);
        p[j] = static_cast<int64_t>(positions[(q * 8 + h) * 32 + j]);
      }
      EXPECT_EQ(CompareWithOracle(oracle, queries.data() + q * 1024, h, 32,
                                  s.data(), p.data(), 1e-3),
                "")
          << "query " << q << " head " << h;
    }
  }
  Output table = RunCli(addr, "search doc --random 1 --seed 9 --k 2");
  ASSERT_EQ(table.status, 0);
  EXPECT_NE(table.out.find("position"), std::string::npos);
  EXPECT_NE(table.out.find(std::to_string(static_cast<int64_t>(positions[0]))),
            std::string::npos);
}

TEST_F(CliTest, DecodeAsksEveryStreamInOneCallAndEachFailsAlone) {
  const std::string& addr = server_->address();
  for (const char* id : {"a", "b"}) {
    ASSERT_EQ(RunCli(addr, std::string("create ") + id +
                               " --layers 1 --heads 2 --key-dim 8 "
                               "--value-dim 4 --capacity 1000")
                  .status,
              0);
    ASSERT_EQ(RunCli(addr, std::string("append ") + id +
                               " --random 300 "
                               "--seed 1")
                  .status,
              0);
  }
  // One stream: output and lse against the oracle of what the CLI stored
  // and asked (its documented generator).
  Output one = RunCli(addr, "--json decode a --seed 5 --k 4");
  ASSERT_EQ(one.status, 0) << one.out;
  const Json steps = Parsed(one.out);
  ASSERT_EQ(steps.size(), 1u) << one.out;
  EXPECT_EQ(steps.at(0).at("stream_id"), "a");
  EXPECT_EQ(steps.at(0).at("code"), "OK");
  EXPECT_EQ(steps.at(0).at("next_position"), 300);
  const std::vector<double> lse = Numbers(steps.at(0), "lse");
  const std::vector<double> output = Numbers(steps.at(0), "output");
  ASSERT_EQ(lse.size(), 2u);
  ASSERT_EQ(output.size(), 2u * 4);
  OracleMemory oracle{2, 8, {}};
  std::map<int64_t, std::vector<float>> values;
  const std::vector<float> k = SplitMixUniform(1, 300 * 2 * 8);
  const std::vector<float> v = SplitMixUniform(2, 300 * 2 * 4);
  for (int64_t p = 0; p < 300; ++p) {
    oracle.keys[p].assign(k.begin() + p * 16, k.begin() + (p + 1) * 16);
    values[p].assign(v.begin() + p * 8, v.begin() + (p + 1) * 8);
  }
  const std::vector<float> q = SplitMixUniform(5, 2 * 8);
  for (int h = 0; h < 2; ++h) {
    const OracleAttention want = AttendOracle(oracle, values, 4, q.data(), h, 4,
                                              1.0 / std::sqrt(8.0), 0, 1);
    EXPECT_NEAR(lse[h], want.lse, 1e-4);
    for (int d = 0; d < 4; ++d) {
      EXPECT_NEAR(output[h * 4 + d], want.output[d], 1e-5);
    }
  }
  // Three streams, the middle one missing: the others answer (and append
  // with --append), the missing one is reported and the exit status is 1.
  Output three = RunCli(addr, "decode a nosuch b --append --seed 5", true);
  EXPECT_EQ(three.status, 1) << three.out;
  EXPECT_NE(three.out.find("nosuch: NOT_FOUND"), std::string::npos)
      << three.out;
  EXPECT_TRUE(std::regex_search(three.out, std::regex("\\na +OK +301 ")))
      << three.out;
  EXPECT_TRUE(std::regex_search(three.out, std::regex("\\nb +OK +301 ")))
      << three.out;
  // `where` answers for every stream given, in order.
  Output where = RunCli(addr, "where a b nosuch");
  ASSERT_EQ(where.status, 0);
  EXPECT_EQ(where.out, addr + " " + addr + "\n" + addr + " " + addr + "\n" +
                           addr + " " + addr + "\n");
}

TEST_F(CliTest, CreatesAnApproximateStreamAndSearchesItExactly) {
  const std::string& addr = server_->address();
  Output create = RunCli(addr,
                         "create ivf --layers 1 --heads 2 --key-dim 16 "
                         "--value-dim 4 --capacity 50000 --index approximate "
                         "--nlist 16 --nprobe 2 --exact-tail 100");
  ASSERT_EQ(create.status, 0) << create.out;
  Output info = RunCli(addr, "--json info ivf");
  const Json spec = Parsed(info.out).at("spec");
  EXPECT_EQ(spec.at("index"), "APPROXIMATE") << info.out;
  EXPECT_EQ(spec.at("nlist"), 16) << info.out;
  EXPECT_EQ(spec.at("nprobe"), 2) << info.out;
  EXPECT_EQ(spec.at("exact_tail"), 100) << info.out;
  ASSERT_EQ(RunCli(addr, "append ivf --random 20000 --seed 3").status, 0);
  // --exact scans every entry, whatever the tier has indexed by now.
  Output search =
      RunCli(addr, "--json search ivf --random 2 --seed 4 --k 8 --exact");
  ASSERT_EQ(search.status, 0) << search.out;
  const Json found = Parsed(search.out);
  const std::vector<double> positions = Numbers(found, "positions");
  const std::vector<double> scores = Numbers(found, "scores");
  ASSERT_EQ(positions.size(), 2u * 2 * 8);
  OracleMemory oracle{2, 16, {}};
  const std::vector<float> keys = SplitMixUniform(3, 20000 * 2 * 16);
  for (int64_t p = 0; p < 20000; ++p) {
    oracle.keys[p].assign(keys.begin() + p * 32, keys.begin() + (p + 1) * 32);
  }
  const std::vector<float> queries = SplitMixUniform(4, 2 * 2 * 16);
  for (int q = 0; q < 2; ++q) {
    for (int h = 0; h < 2; ++h) {
      std::vector<float> sc(8);
      std::vector<int64_t> p(8);
      for (int j = 0; j < 8; ++j) {
        sc[j] = static_cast<float>(scores[(q * 2 + h) * 8 + j]);
        p[j] = static_cast<int64_t>(positions[(q * 2 + h) * 8 + j]);
      }
      EXPECT_EQ(CompareWithOracle(oracle, queries.data() + q * 32, h, 8,
                                  sc.data(), p.data(), 1e-3),
                "")
          << "query " << q << " head " << h;
    }
  }
  Output bad = RunCli(addr,
                      "create bad --layers 1 --heads 1 --key-dim 4 "
                      "--value-dim 4 --capacity 10 --nlist 64",
                      true);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("spec.nlist"), std::string::npos) << bad.out;
}

TEST_F(CliTest, AppendsRawFloat32FilesAndSearchesWithAQueryFile) {
  const std::string& addr = server_->address();
  ASSERT_EQ(RunCli(addr,
                   "create f --layers 1 --heads 2 --key-dim 4 --value-dim 3 "
                   "--capacity 100 --dtype bfloat16")
                .status,
            0);
  // Keys are one-hot per position so that the nearest neighbour of a query
  // equal to key p is p.
  std::vector<float> keys(4 * 2 * 4, 0.0f), values(4 * 2 * 3, 1.0f);
  for (int p = 0; p < 4; ++p) {
    for (int h = 0; h < 2; ++h) keys[(p * 2 + h) * 4 + p] = 1.0f;
  }
  auto write = [](const std::string& path, const std::vector<float>& v) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  };
  write(dir_.Sub("k.f32"), keys);
  write(dir_.Sub("v.f32"), values);
  write(dir_.Sub("q.f32"),
        std::vector<float>(keys.begin() + 2 * 8, keys.begin() + 3 * 8));
  Output append = RunCli(addr, "append f --keys " + dir_.Sub("k.f32") +
                                   " --values " + dir_.Sub("v.f32"));
  ASSERT_EQ(append.status, 0) << append.out;
  Output search =
      RunCli(addr, "--json search f --queries " + dir_.Sub("q.f32") + " --k 1");
  ASSERT_EQ(search.status, 0) << search.out;
  const Json found = Parsed(search.out);
  EXPECT_EQ(Numbers(found, "positions"), (std::vector<double>{2, 2}));
  EXPECT_EQ(Numbers(found, "scores"), (std::vector<double>{1, 1}));
}

TEST_F(CliTest, ErrorsExitNonZeroWithTheGrpcStatusOnStderr) {
  const std::string& addr = server_->address();
  Output missing = RunCli(addr, "info nosuch", true);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(
      missing.out.find("NOT_FOUND: stream_id: stream 'nosuch' does not exist"),
      std::string::npos)
      << missing.out;
  Output usage = RunCli(addr, "frobnicate", true);
  EXPECT_EQ(usage.status, 2);
  Output health = RunCli(addr, "health");
  EXPECT_EQ(health.status, 0);
  EXPECT_EQ(health.out, "SERVING\n");
  Output down = RunCli("127.0.0.1:1", "--deadline-ms 2000 health", true);
  EXPECT_EQ(down.status, 1);
  EXPECT_NE(down.out.find("UNAVAILABLE"), std::string::npos) << down.out;
  ASSERT_EQ(RunCli(addr,
                   "create l --layers 1 --heads 1 --key-dim 2 --value-dim 2 "
                   "--capacity 5")
                .status,
            0);
  Output list = RunCli(addr, "--json list");
  const Json streams = Parsed(list.out);
  ASSERT_EQ(streams.size(), 1u) << list.out;
  EXPECT_EQ(streams.at(0).at("stream_id"), "l") << list.out;
  EXPECT_EQ(RunCli(addr, "reset l").status, 0);
  EXPECT_EQ(RunCli(addr, "delete l").status, 0);
  EXPECT_EQ(RunCli(addr, "info l", true).status, 1);
}

// A stream id and a server name with a quote, a backslash, a newline, a tab,
// a control character and non-ASCII text come back from --json as they were
// given (the CLI's JSON once escaped only the quote and the backslash).
TEST_F(CliTest, JsonOutputReadsBackAwkwardIdsAndNames) {
  const std::string odd =
      "q\"uote b\\ack new\nline t\tab bell\x07 \x01 caf\xC3\xA9";
  const std::string servers = odd + "=" + server_->address();
  absl::StatusOr<CommandResult> where =
      RunCommand({CliBinary(), "--servers", servers, "--json", "where", odd});
  ASSERT_TRUE(where.ok()) << where.status();
  ASSERT_EQ(where->exit_code, 0) << where->output;
  const Json at = Parsed(where->output);
  EXPECT_EQ(at.at("stream_id"), odd) << where->output;
  EXPECT_EQ(at.at("server"), odd) << where->output;
  EXPECT_EQ(at.at("address"), server_->address()) << where->output;

  // The server refuses the id; the answer still names it, with the
  // server's message.
  absl::StatusOr<CommandResult> decode = RunCommand(
      {CliBinary(), "--server", server_->address(), "--json", "decode", odd});
  ASSERT_TRUE(decode.ok()) << decode.status();
  EXPECT_EQ(decode->exit_code, 1) << decode->output;
  const Json steps = Parsed(decode->output);
  ASSERT_EQ(steps.size(), 1u) << decode->output;
  EXPECT_EQ(steps.at(0).at("stream_id"), odd) << decode->output;
  EXPECT_EQ(steps.at(0).at("code"), "INVALID_ARGUMENT") << decode->output;
  EXPECT_NE(steps.at(0).at("message").get<std::string>().find("stream_id"),
            std::string::npos)
      << decode->output;
}

}  // namespace
}  // namespace knnmem::testing
