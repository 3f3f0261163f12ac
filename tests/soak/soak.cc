// knnmem soak: a bounded load run against a real server. Several clients
// each loop over a document's life: create a stream, append segments past
// its capacity, search and attend, delete it. The run passes with zero
// unexpected errors and the server's RSS after warm-up growing less than 5%.
//
//   soak [--seconds N | --minutes N] [--clients N]    (default 60 s, 2)
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/flags.h"
#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "tests/support/proc_status.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {
namespace {

constexpr int kHeads = 4, kDim = 32, kSegment = 256, kCapacity = 1024, kK = 16;

// Resident set size of `pid` in bytes, from /proc.
struct Counts {
  std::atomic<long> documents{0}, appends{0}, searches{0}, attends{0},
      errors{0};
};

void Fail(Counts& c, const std::string& what) {
  if (c.errors++ < 5)
    std::fprintf(stderr, "soak: unexpected: %s\n", what.c_str());
}

// One client: documents one after another until `deadline`.
void Client(const std::string& address, int id,
            std::chrono::steady_clock::time_point deadline, Counts& c) {
  auto client = client::MemoryClient::Connect(address);
  std::mt19937 rng(static_cast<uint32_t>(id));
  std::normal_distribution<float> normal;
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(kHeads);
  spec.set_key_dim(kDim);
  spec.set_value_dim(kDim);
  spec.set_capacity(kCapacity);
  spec.set_storage_dtype(id % 2 ? v1::FLOAT16 : v1::FLOAT32);
  std::vector<float> k(kSegment * kHeads * kDim), v(k.size()),
      q(64 * kHeads * kDim);
  for (long doc = 0; std::chrono::steady_clock::now() < deadline; ++doc) {
    const std::string stream =
        "soak-" + std::to_string(id) + "-" + std::to_string(doc);
    if (auto r = client->CreateStream(stream, spec); !r.ok() || !r->created()) {
      Fail(c, "create " + stream + ": " + r.status().ToString());
      continue;
    }
    for (int seg = 0; seg < 6; ++seg) {
      for (float& x : k) x = normal(rng);
      for (float& x : v) x = normal(rng);
      auto r = client->Append(stream, 0, int64_t{seg} * kSegment, k, v,
                              kSegment, kHeads);
      if (!r.ok() || r->stored() != kSegment) {
        Fail(c, "append: " + r.status().ToString());
      }
      ++c.appends;
      for (float& x : q) x = normal(rng);
      auto s = client->Search(stream, 0, q, 64, kHeads, kK);
      if (!s.ok()) {
        Fail(c, "search: " + s.status().ToString());
      } else {
        // Full answers from the retained window only.
        const int64_t next = int64_t{seg + 1} * kSegment;
        for (int64_t p : s->positions) {
          if (p < std::max<int64_t>(0, next - kCapacity) || p >= next) {
            Fail(c, "search returned position " + std::to_string(p));
            break;
          }
        }
      }
      ++c.searches;
      auto a = client->Attend(stream, 0, q, 64, kHeads, kK);
      if (!a.ok()) {
        Fail(c, "attend: " + a.status().ToString());
      } else {
        for (float x : a->output) {
          if (!std::isfinite(x)) {
            Fail(c, "attend output is not finite");
            break;
          }
        }
      }
      ++c.attends;
    }
    if (absl::Status s = client->DeleteStream(stream); !s.ok()) {
      Fail(c, "delete: " + s.ToString());
    }
    ++c.documents;
  }
}

struct SoakConfig {
  double seconds = 60;
  int clients = 2;
};

SoakConfig* g_config = nullptr;

TEST(SoakTest, BoundedLoadHasNoUnexpectedErrorsAndRssIsFlatAfterWarmUp) {
  const SoakConfig config = g_config ? *g_config : SoakConfig();
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  ASSERT_TRUE(server.Start()) << server.error();
  Counts counts;
  const auto start = std::chrono::steady_clock::now();
  const auto total = std::chrono::duration<double>(config.seconds);
  const auto deadline =
      start +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(total);
  std::vector<std::thread> clients;
  for (int i = 0; i < config.clients; ++i) {
    clients.emplace_back(
        [&, i] { Client(server.address(), i, deadline, counts); });
  }
  // RSS is sampled every 50 ms; the first half is the warm-up (allocator
  // arenas, RocksDB's memtables and SST metadata settle). RSS swings with the
  // memtables (filled and flushed about once a second here) and in-flight
  // requests, so the peak of the third quarter is compared with the peak of
  // the last quarter: dense samples catch both peaks.
  double baseline = 0, last = 0, rss = 0;
  const int samples = std::max(40, static_cast<int>(config.seconds * 20));
  for (int i = 1; i <= samples; ++i) {
    std::this_thread::sleep_until(
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    total * i / samples));
    rss = static_cast<double>(StatusBytes(server.pid(), "VmRSS"));
    if (i > samples / 2 && i <= samples * 3 / 4)
      baseline = std::max(baseline, rss);
    if (i > samples * 3 / 4) last = std::max(last, rss);
    if (i % (samples / 10) != 0) continue;
    std::printf(
        "soak: %3.0f%%  %ld documents, %ld appends, %ld searches, %ld attends, "
        "%ld errors, RSS %.1f MiB\n",
        100.0 * i / samples, counts.documents.load(), counts.appends.load(),
        counts.searches.load(), counts.attends.load(), counts.errors.load(),
        rss / (1 << 20));
    std::fflush(stdout);
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(counts.errors.load(), 0);
  EXPECT_GT(counts.documents.load(), config.clients);
  EXPECT_GT(baseline, 0);
  // Slack: 5%, and at least 8 MiB. Over one 60 s run RSS swings between
  // about 54 and 70 MiB (memtables filled and flushed, requests in flight,
  // arenas); comparing peaks takes most of that out, but on a loaded
  // machine a flush can move from one quarter to the next (a run at load
  // 11 measured 70.1 -> 75.9 MiB with 0 errors). A leak grows with the
  // work: long runs (`soak --minutes N`) show it past the slack.
  const double slack = std::max(baseline * 0.05, 8.0 * (1 << 20));
  EXPECT_LT(last, baseline + slack)
      << "peak RSS grew from " << baseline / (1 << 20)
      << " MiB after warm-up to " << last / (1 << 20) << " MiB";
  std::printf("soak: peak RSS %.1f MiB after warm-up, %.1f MiB at the end\n",
              baseline / (1 << 20), last / (1 << 20));
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace knnmem::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);  // takes gtest's own flags out
  knnmem::testing::SoakConfig config;
  double minutes = 0;
  bool help = false;
  knnmem::FlagSet flags;
  flags.Double("seconds", &config.seconds, "N", "how long the load runs")
      .Positive();
  flags.Double("minutes", &minutes, "N", "the same in minutes (over --seconds)")
      .Positive()
      .DefaultText("");
  flags.Int("clients", &config.clients, "N", "clients, one thread each")
      .Range(1, 1024);
  flags.Bool("help", &help, "print this text and exit");
  if (std::optional<int> status =
          flags.ParseForMain("soak", "usage: soak [flags]", argc, argv)) {
    return *status;
  }
  if (flags.Given("minutes")) config.seconds = minutes * 60;
  knnmem::testing::g_config = &config;
  return RUN_ALL_TESTS();
}
