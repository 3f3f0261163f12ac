// The real server's Prometheus endpoint, scraped over HTTP, agrees with the
// work the test did.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <regex>
#include <thread>
#include <vector>

#include "base/sync.h"
#include "knnmem/v1/memory.grpc.pb.h"
#include "proto/tensor_codec.h"
#include "tests/support/http_get.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

class MetricsTest : public ServerFixture {};

TEST_F(MetricsTest, CountersAndGaugesAgreeWithTheWorkDone) {
  ASSERT_TRUE(client_->CreateStream("m", MakeSpec(2, 4, 16, 8, 1000)).ok());
  Written written;
  written.capacity = 1000;
  int64_t next = 0;
  for (int i = 0; i < 6; ++i) {  // 1,200 rows into capacity 1,000: 200 evicted
    auto r =
        AppendRandom("m", 1, next, 200, 4, 16, 8, DType::kFloat32, &written);
    ASSERT_TRUE(r.ok());
    next = r->next_position();
  }
  SearchAndCheck("m", 1, 7, 5, written, DType::kFloat32, 1);
  ASSERT_TRUE(
      client_->Attend("m", 1, std::vector<float>(3 * 4 * 16, 0.1f), 3, 4, 5)
          .ok());
  EXPECT_EQ(client_->GetStream("nope").status().code(),
            absl::StatusCode::kNotFound);

  const HttpResponse scrape = HttpGet(server_->metrics_address(), "/metrics");
  ASSERT_EQ(scrape.status, 200) << server_->metrics_address();
  const std::string& t = scrape.body;
  EXPECT_EQ(Sample(t, "knnmem_requests_total{code=\"OK\",method=\"Append\"}"),
            6);
  EXPECT_EQ(
      Sample(t, "knnmem_requests_total{code=\"OK\",method=\"CreateStream\"}"),
      1);
  EXPECT_EQ(
      Sample(t,
             "knnmem_requests_total{code=\"NOT_FOUND\",method=\"GetStream\"}"),
      1);
  EXPECT_EQ(
      Sample(t, "knnmem_request_duration_seconds_count{method=\"Append\"}"), 6);
  EXPECT_EQ(
      Sample(t, "knnmem_request_duration_seconds_count{method=\"Attend\"}"), 1);
  EXPECT_EQ(Sample(t, "knnmem_appended_vectors_total"), 1200 * 4);
  EXPECT_EQ(Sample(t, "knnmem_evicted_vectors_total"), 200 * 4);
  EXPECT_EQ(Sample(t, "knnmem_searched_queries_total"), 7 + 3);
  EXPECT_EQ(Sample(t, "knnmem_streams"), 1);
  EXPECT_EQ(Sample(t, "knnmem_stored_vectors"), 1000 * 4);
  EXPECT_GE(Sample(t, "knnmem_ram_bytes"), 1000 * 4 * (16 + 8) * 4);
  EXPECT_GT(Sample(t, "knnmem_disk_bytes"), 0);
  EXPECT_GT(Sample(t, "knnmem_process_resident_memory_bytes"), 1e6);
  for (const char* name :
       {"knnmem_worker_queue_depth", "knnmem_memory_budget_bytes",
        "knnmem_rocksdb_write_stall_seconds_total",
        "knnmem_rocksdb_compaction_pending_bytes"}) {
    EXPECT_GE(Sample(t, name), 0) << name;
  }
  for (const char* name : {"knnmem_storage_background_errors_total",
                           "knnmem_storage_writes_stopped"}) {
    EXPECT_EQ(Sample(t, name), 0) << name;
  }
  // No stream id leaks into a label.
  EXPECT_EQ(t.find("\"m\""), std::string::npos);
}

// A call its client cancels is counted as CANCELLED, not as
// DEADLINE_EXCEEDED (issue 16): the two call for different fixes.
TEST_F(MetricsTest, ACallTheClientCancelsIsCountedAsCancelled) {
  StartServer({"--workers", "1"});  // one worker: a second search queues
  constexpr int kHeads = 8, kDim = 128, kRows = 512, kBatches = 48;
  ASSERT_TRUE(
      client_->CreateStream("c", MakeSpec(1, kHeads, kDim, kDim, 1 << 20))
          .ok());
  const std::vector<float> rows(size_t{kRows} * kHeads * kDim, 0.5f);
  for (int b = 0; b < kBatches; ++b) {
    ASSERT_TRUE(
        client_->Append("c", 0, int64_t{b} * kRows, rows, rows, kRows, kHeads)
            .ok());
  }
  // A long search holds the worker: 512 queries over 24K entries per head.
  std::thread busy([&] {
    EXPECT_TRUE(client_->Search("c", 0, rows, kRows, kHeads, 32).ok());
  });
  // A second one queues behind it; once the queue shows it, the client
  // cancels it.
  auto stub = v1::Memory::NewStub(grpc::CreateChannel(
      server_->address(), grpc::InsecureChannelCredentials()));
  v1::SearchRequest request;
  request.set_stream_id("c");
  request.set_k(1);
  *request.mutable_queries() =
      MakeTensor(std::vector<float>(kHeads * kDim, 1.0f), {1, kHeads, kDim},
                 DType::kFloat32);
  grpc::ClientContext ctx;
  v1::SearchResponse response;
  Mutex mu;
  bool done = false;
  grpc::Status status;
  stub->async()->Search(&ctx, &request, &response, [&](grpc::Status s) {
    MutexLock lock(&mu);
    status = std::move(s);
    done = true;
  });
  const bool queued = AwaitSampleAtLeast(server_->metrics_address(),
                                         "knnmem_worker_queue_depth", 1);
  ASSERT_TRUE(queued) << "the second search never queued";
  ctx.TryCancel();
  {
    MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  busy.join();
  // The server counts the cancelled call when the worker reaches it, just
  // after the long search: scrape until it shows.
  const std::string series =
      "knnmem_requests_total{code=\"CANCELLED\",method=\"Search\"}";
  EXPECT_TRUE(AwaitSampleAtLeast(server_->metrics_address(), series, 1));
  const std::string t = HttpGet(server_->metrics_address(), "/metrics").body;
  EXPECT_EQ(Sample(t, series), 1) << t;
  EXPECT_LE(Sample(t,
                   "knnmem_requests_total{code=\"DEADLINE_EXCEEDED\","
                   "method=\"Search\"}"),
            0);  // -1: no such series
}

}  // namespace
}  // namespace knnmem::testing
