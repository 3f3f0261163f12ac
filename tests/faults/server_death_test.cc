// A server killed under many concurrent aliased Appends and AppendPipelines:
// no client call outlives its deadline, whatever the transport does with the
// bytes of requests it was sending (the fault of issue 16, point 0: callers
// once waited, without bound, for gRPC to release a dead call's slices).
//
// Each cycle starts a server, lets appenders of both kinds run until a
// random number of batches are acknowledged, SIGKILLs the server, and waits
// for every appender to see its calls fail, within the deadline plus a
// margin. An appender that does not come back fails the test at once (the
// process aborts with the thread's last call named) instead of hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/sync.h"
#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kHeads = 4, kKeyDim = 32, kValueDim = 32;
constexpr auto kDeadline = std::chrono::seconds(2);
// A call may end this much after its deadline (scheduling on two cores).
constexpr auto kMargin = std::chrono::seconds(3);

// Counts acknowledged batches; the killer waits for a target count.
class AckCounter {
 public:
  void Add() {
    MutexLock lock(&mu_);
    ++acks_;
  }
  // True once `target` acks arrived; false after `limit` without them.
  bool AwaitAtLeast(int target, Clock::duration limit) {
    MutexLock lock(&mu_);
    auto reached = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return acks_ >= target;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached),
                                absl::FromChrono(limit));
  }

 private:
  Mutex mu_;
  int acks_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::StreamSpec Spec() {
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(kHeads);
  spec.set_key_dim(kKeyDim);
  spec.set_value_dim(kValueDim);
  spec.set_capacity(1 << 14);
  return spec;
}

// What one appender saw: its longest call, and the call that took it.
struct Outcome {
  Clock::duration longest{};
  std::string longest_call;
  int acked = 0;
};

class Appender {
 public:
  Appender(std::string address, std::string stream, bool pipelined,
           uint32_t seed, AckCounter* acks)
      : address_(std::move(address)),
        stream_(std::move(stream)),
        pipelined_(pipelined),
        rng_(seed),
        acks_(acks) {}

  // Appends until a call fails; then one more call, which must fail fast
  // too (a dead server, a fresh connection attempt).
  Outcome Run() {
    client::MemoryClient::Options options;
    options.deadline = kDeadline;
    auto client = client::MemoryClient::Connect(address_, options);
    Outcome out;
    int failures = 0;
    int64_t next = 0;
    while (failures < 2) {
      const bool ok = pipelined_ ? Pipelined(*client, &next, &out)
                                 : Unary(*client, &next, &out);
      if (!ok) ++failures;
    }
    return out;
  }

 private:
  v1::AppendRequest Batch(int64_t first, int64_t rows) {
    std::normal_distribution<float> normal;
    std::vector<float> k(rows * kHeads * kKeyDim), v(rows * kHeads * kValueDim);
    for (float& x : k) x = normal(rng_);
    for (float& x : v) x = normal(rng_);
    return *client::MakeAppendRequest(stream_, 0, first, k, v, rows, kHeads);
  }
  int64_t Rows() {
    // Mostly small batches, as the crash oracle's, and some of a megabyte.
    return std::uniform_int_distribution<int>(0, 7)(rng_) == 0
               ? 1024
               : std::uniform_int_distribution<int>(1, 48)(rng_);
  }
  void Timed(Clock::time_point start, const std::string& call, Outcome* out) {
    const Clock::duration took = Clock::now() - start;
    if (took > out->longest) {
      out->longest = took;
      out->longest_call = call;
    }
  }

  bool Unary(client::MemoryClient& client, int64_t* next, Outcome* out) {
    const int64_t rows = Rows();
    v1::AppendRequest request = Batch(*next, rows);
    const auto start = Clock::now();
    absl::StatusOr<v1::AppendResponse> r = client.Append(std::move(request));
    Timed(start, "Append: " + r.status().ToString(), out);
    if (!r.ok()) return false;
    *next += rows;
    ++out->acked;
    acks_->Add();
    return true;
  }

  // One AppendStream call of up to 16 batches, window 4.
  bool Pipelined(client::MemoryClient& client, int64_t* next, Outcome* out) {
    const auto start = Clock::now();
    absl::Status status;
    int64_t sent_end = *next;
    {
      std::unique_ptr<client::AppendPipeline> pipe =
          client.OpenAppendPipeline(4);
      for (int i = 0; i < 16 && status.ok(); ++i) {
        const int64_t rows = Rows();
        status = pipe->Send(Batch(sent_end, rows));
        sent_end += rows;
      }
      if (status.ok()) status = pipe->Finish();
      for (const v1::AppendResponse& ack : pipe->acknowledged()) {
        *next = ack.next_position();
        ++out->acked;
        acks_->Add();
      }
    }  // the pipeline's destructor is part of the call
    Timed(start, "AppendStream: " + status.ToString(), out);
    return status.ok();
  }

  const std::string address_, stream_;
  const bool pipelined_;
  std::mt19937 rng_;
  AckCounter* acks_;
};

TEST(ServerDeathTest, NoAppendOutlivesItsDeadlineWhenTheServerIsKilled) {
  constexpr int kCycles = 12, kAppenders = 8;
  std::mt19937 rng(20261206);
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle));
    TempDir dir;
    ServerProcess server(dir.Sub("data"));
    ASSERT_TRUE(server.Start()) << server.error();
    {
      auto admin = client::MemoryClient::Connect(server.address());
      for (int a = 0; a < kAppenders; ++a) {
        ASSERT_TRUE(admin->CreateStream("s" + std::to_string(a), Spec()).ok());
      }
    }
    AckCounter acks;
    std::vector<std::future<Outcome>> appenders;
    for (int a = 0; a < kAppenders; ++a) {
      auto appender = std::make_shared<Appender>(
          server.address(), "s" + std::to_string(a), a % 2 == 1,
          static_cast<uint32_t>(cycle * 100 + a), &acks);
      appenders.push_back(std::async(std::launch::async,
                                     [appender] { return appender->Run(); }));
    }
    // Killed at a random moment of the load: after 1 to 300 acknowledgements.
    const int target = std::uniform_int_distribution<int>(1, 300)(rng);
    ASSERT_TRUE(acks.AwaitAtLeast(target, std::chrono::seconds(60)))
        << "the appenders did not reach " << target << " acknowledgements";
    server.Kill();
    const auto killed = Clock::now();
    int acked = 0;
    for (int a = 0; a < kAppenders; ++a) {
      // Two failing calls after the kill, each bounded by its deadline.
      const auto limit = killed + 2 * (kDeadline + kMargin);
      if (appenders[a].wait_until(limit) != std::future_status::ready) {
        std::fprintf(
            stderr,
            "FAILED: appender %d of cycle %d is still in a call %.1f "
            "s after the server was killed (deadline %lld s)\n",
            a, cycle,
            std::chrono::duration<double>(Clock::now() - killed).count(),
            static_cast<long long>(kDeadline.count()));
        std::abort();  // the hung thread cannot be joined
      }
      Outcome out = appenders[a].get();
      acked += out.acked;
      EXPECT_LE(out.longest, kDeadline + kMargin)
          << "appender " << a << ": " << out.longest_call;
    }
    EXPECT_GE(acked, target);
  }
}

}  // namespace
}  // namespace knnmem::testing
