// The real server on loopback, driven through the client library.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>
#include <vector>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/support/attention_oracle.h"
#include "tests/support/http_get.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

class ServerTest : public ServerFixture {};

class ServerDtypeTest : public ServerFixture,
                        public ::testing::WithParamInterface<v1::DType> {};

TEST_P(ServerDtypeTest, SearchEqualsBruteForceWithKeysAndValues) {
  const v1::DType dtype = GetParam();
  const DType storage = static_cast<DType>(dtype);
  ASSERT_TRUE(
      client_->CreateStream("doc", MakeSpec(2, 4, 64, 32, 100000, dtype)).ok());
  Written written;
  written.capacity = 100000;
  int64_t next = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = AppendRandom("doc", 1, next, 500, 4, 64, 32, storage, &written);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->stored(), 500u);
    next = r->next_position();
  }
  SearchAndCheck("doc", 1, 40, 32, written, storage, 1);
  // Layer 0 got nothing: every entry is empty.
  Written empty;
  empty.oracle = {4, 64, {}};
  empty.value_dim = 32;
  SearchAndCheck("doc", 0, 3, 8, empty, storage, 2);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ServerDtypeTest,
                         ::testing::Values(v1::FLOAT32, v1::FLOAT16,
                                           v1::BFLOAT16),
                         [](const auto& info) {
                           return v1::DType_Name(info.param);
                         });

TEST_P(ServerDtypeTest, AttendEqualsTheOracleWithAndWithoutAgePenalty) {
  const v1::DType dtype = GetParam();
  const DType storage = static_cast<DType>(dtype);
  ASSERT_TRUE(
      client_->CreateStream("att", MakeSpec(1, 4, 32, 24, 2500, dtype)).ok());
  Written written;
  written.capacity = 2500;
  int64_t next = 0;
  for (int i = 0; i < 4; ++i) {  // 3,200 rows: the oldest 700 are evicted
    auto r = AppendRandom("att", 0, next, 800, 4, 32, 24, storage, &written);
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->next_position();
  }
  std::normal_distribution<float> normal;
  std::vector<float> queries(17 * 4 * 32);
  for (float& x : queries) x = normal(rng_);
  const std::vector<float> scale = {0.3f, 0.2f, 0.1f, 0.25f};
  const std::vector<float> alpha = {0.0f, 1.5f, 0.4f, 3.0f};
  for (bool penalty : {false, true}) {
    SCOPED_TRACE(penalty ? "with age penalty" : "without age penalty");
    auto a = client_->Attend(
        "att", 0, queries, 17, 4, 32, scale,
        penalty ? absl::MakeConstSpan(alpha) : absl::Span<const float>(),
        penalty ? 100.0f : 0.0f);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->output.size(), 17u * 4 * 24);
    for (int q = 0; q < 17; ++q) {
      for (int h = 0; h < 4; ++h) {
        const OracleAttention want = AttendOracle(
            written.oracle, written.values, 24, queries.data() + q * 128, h, 32,
            scale[h], penalty ? alpha[h] : 0.0, 100.0);
        EXPECT_NEAR(a->lse[q * 4 + h], want.lse, 1e-3);
        for (int d = 0; d < 24; ++d) {
          ASSERT_NEAR(a->output[(q * 4 + h) * 24 + d], want.output[d], 1e-4)
              << "query " << q << " head " << h;
        }
      }
    }
  }
  // The default scale is 1/sqrt(key_dim) for every head.
  auto a = client_->Attend("att", 0, queries, 17, 4, 8);
  ASSERT_TRUE(a.ok()) << a.status();
  const OracleAttention want =
      AttendOracle(written.oracle, written.values, 24, queries.data(), 2, 8,
                   1.0 / std::sqrt(32.0), 0.0, 1.0);
  EXPECT_NEAR(a->lse[2], want.lse, 1e-3);
}

TEST_F(ServerTest, FifoKeepsExactlyTheNewestCapacityPositions) {
  ASSERT_TRUE(client_->CreateStream("fifo", MakeSpec(1, 2, 16, 8, 1000)).ok());
  Written written;
  written.capacity = 1000;
  int64_t next = 0;
  for (int i = 0; i < 7; ++i) {
    auto r =
        AppendRandom("fifo", 0, next, 333, 2, 16, 8, DType::kFloat32, &written);
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->next_position();
  }
  auto info = client_->GetStream("fifo");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->layers(0).first_position(), next - 1000);
  EXPECT_EQ(info->layers(0).next_position(), next);
  EXPECT_EQ(info->layers(0).entries(), 1000u);
  // k = capacity returns exactly the retained positions, each once.
  client::Neighbours all =
      SearchAndCheck("fifo", 0, 2, 1000, written, DType::kFloat32, 3);
  std::set<int64_t> seen(all.positions.begin(), all.positions.begin() + 1000);
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(*seen.begin(), next - 1000);
  EXPECT_EQ(*seen.rbegin(), next - 1);
}

TEST_F(ServerTest, RetriedAppendIsStoredOnceAndAGapFails) {
  ASSERT_TRUE(client_->CreateStream("retry", MakeSpec(1, 2, 8, 8, 100)).ok());
  Written written;
  written.capacity = 100;
  ASSERT_TRUE(
      AppendRandom("retry", 0, 0, 10, 2, 8, 8, DType::kFloat32, &written).ok());
  auto again =
      AppendRandom("retry", 0, 0, 10, 2, 8, 8, DType::kFloat32, nullptr);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->stored(), 0u);
  EXPECT_EQ(again->next_position(), 10);
  auto gap = AppendRandom("retry", 0, 11, 1, 2, 8, 8, DType::kFloat32, nullptr);
  EXPECT_EQ(gap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gap.status().message().find("first_position"), std::string::npos);
  EXPECT_EQ(client_->GetStream("retry")->layers(0).entries(), 10u);
  SearchAndCheck("retry", 0, 5, 20, written, DType::kFloat32, 4);
}

TEST_F(ServerTest, RestartOnTheSameDataDirReturnsIdenticalResults) {
  ASSERT_TRUE(
      client_->CreateStream("a", MakeSpec(1, 4, 32, 16, 3000, v1::FLOAT16))
          .ok());
  ASSERT_TRUE(client_->CreateStream("b", MakeSpec(2, 2, 16, 16, 500)).ok());
  Written wa, wb;
  wa.capacity = 3000;
  wb.capacity = 500;
  int64_t na = 0, nb = 0;
  for (int i = 0; i < 5; ++i) {
    na = AppendRandom("a", 0, na, 1000, 4, 32, 16, DType::kFloat16, &wa)
             ->next_position();
    nb = AppendRandom("b", 1, nb, 300, 2, 16, 16, DType::kFloat32, &wb)
             ->next_position();
  }
  const client::Neighbours before_a =
      SearchAndCheck("a", 0, 20, 32, wa, DType::kFloat16, 5);
  const client::Neighbours before_b =
      SearchAndCheck("b", 1, 20, 32, wb, DType::kFloat32, 6);
  ASSERT_EQ(StopServer(), 0);
  StartServer();
  EXPECT_NE(server_->ready_line().find("2 streams recovered"),
            std::string::npos)
      << server_->ready_line();
  const client::Neighbours after_a =
      SearchAndCheck("a", 0, 20, 32, wa, DType::kFloat16, 5);
  const client::Neighbours after_b =
      SearchAndCheck("b", 1, 20, 32, wb, DType::kFloat32, 6);
  EXPECT_EQ(before_a.positions, after_a.positions);
  EXPECT_EQ(before_a.scores, after_a.scores);
  EXPECT_EQ(before_a.values, after_a.values);
  EXPECT_EQ(before_b.positions, after_b.positions);
  EXPECT_EQ(before_b.scores, after_b.scores);
  EXPECT_EQ(client_->GetStream("b")->layers(1).first_position(), nb - 500);
}

TEST_F(ServerTest, SigkilledServerLosesNoAcknowledgedAppend) {
  ASSERT_TRUE(
      client_->CreateStream("crash", MakeSpec(1, 2, 16, 16, 100000)).ok());
  Written written;
  written.capacity = 100000;
  int64_t next = 0;
  for (int i = 0; i < 40; ++i) {
    auto r = AppendRandom("crash", 0, next, 128, 2, 16, 16, DType::kFloat32,
                          &written);
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->next_position();
  }
  server_->Kill();  // SIGKILL right after the last acknowledgement
  StartServer();
  auto info = client_->GetStream("crash");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), next);
  SearchAndCheck("crash", 0, 16, 64, written, DType::kFloat32, 7);
}

TEST_F(ServerTest, SigtermDrainsFinishesInFlightCallsAndExitsZero) {
  ASSERT_EQ(StopServer(), 0);
  // A grace that the heavy search fits in even under a sanitizer: past it
  // the search would get UNAVAILABLE (CallsRunningWhenTheGraceEnds...).
  StartServer({"--drain-seconds", "1", "--grace-seconds", "120"});
  ASSERT_TRUE(
      client_->CreateStream("drain", MakeSpec(1, 8, 128, 128, 100000)).ok());
  Written written;
  written.capacity = 100000;
  int64_t next = 0;
  for (int i = 0; i < 40; ++i) {
    next = AppendRandom("drain", 0, next, 512, 8, 128, 128, DType::kFloat32,
                        &written)
               ->next_position();
  }
  // A heavy Search (4,096 queries over 20,480 entries x 8 heads) and
  // appends are in flight when SIGTERM arrives.
  absl::Status searched = absl::UnknownError("not run");
  std::thread search([&] {
    auto other = client::MemoryClient::Connect(server_->address());
    std::vector<float> q(4096 * 8 * 128, 0.01f);
    searched = other->Search("drain", 0, q, 4096, 8, 32).status();
  });
  std::vector<float> k(64 * 8 * 128, 0.5f), v(64 * 8 * 128, 0.25f);
  auto appender = client::MemoryClient::Connect(server_->address());
  ASSERT_TRUE(appender->Append("drain", 0, next, k, v, 64, 8).ok());
  // SIGTERM once the search is in flight (admitted), not before it arrives.
  const bool in_flight = AwaitSampleAtLeast(server_->metrics_address(),
                                            "knnmem_requests_in_flight", 1);
  server_->Signal(SIGTERM);
  if (!in_flight) {
    search.join();
    FAIL() << "the search never arrived";
  }
  // Health goes NOT_SERVING while the server drains.
  absl::Status health;
  for (int i = 0; i < 1000 && (health = client_->Health()).ok(); ++i) {
  }
  EXPECT_EQ(health.code(), absl::StatusCode::kUnavailable) << health;
  EXPECT_NE(health.message().find("NOT_SERVING"), std::string::npos) << health;
  search.join();
  EXPECT_TRUE(searched.ok()) << searched;
  client_.reset();
  appender.reset();
  EXPECT_EQ(server_->Wait(), 0);
  StartServer();
  auto info = client_->GetStream("drain");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), next + 64);  // the acked append
}

// Calls still running when the grace ends get UNAVAILABLE (retry
// elsewhere), not gRPC's CANCELLED (issue 16): the running search stops
// between blocks, the queued one never starts.
TEST_F(ServerTest, CallsRunningWhenTheGraceEndsGetUnavailable) {
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--workers", "1", "--grace-seconds", "0"});
  constexpr int kHeads = 8, kDim = 128, kRows = 512, kBatches = 32;
  ASSERT_TRUE(
      client_->CreateStream("g", MakeSpec(1, kHeads, kDim, kDim, 1 << 20))
          .ok());
  const std::vector<float> rows(size_t{kRows} * kHeads * kDim, 0.5f);
  for (int b = 0; b < kBatches; ++b) {
    ASSERT_TRUE(
        client_->Append("g", 0, int64_t{b} * kRows, rows, rows, kRows, kHeads)
            .ok());
  }
  // The long search holds the one worker; the short one, admitted after
  // it, queues behind it.
  const auto await_in_flight = [&](int n) {
    return AwaitSampleAtLeast(server_->metrics_address(),
                              "knnmem_requests_in_flight", n);
  };
  absl::Status running, queued;
  std::thread long_search([&] {
    auto c = client::MemoryClient::Connect(server_->address());
    running = c->Search("g", 0, rows, kRows, kHeads, 32).status();
  });
  ASSERT_TRUE(await_in_flight(1)) << "the long search never arrived";
  std::thread short_search([&] {
    auto c = client::MemoryClient::Connect(server_->address());
    queued = c->Search("g", 0, absl::MakeSpan(rows).subspan(0, kHeads * kDim),
                       1, kHeads, 1)
                 .status();
  });
  if (!await_in_flight(2)) {
    long_search.join();
    short_search.join();
    FAIL() << "the two searches were never in flight together";
  }
  server_->Signal(SIGTERM);
  long_search.join();
  short_search.join();
  for (const absl::Status& s : {running, queued}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_NE(s.message().find("stopping"), std::string::npos) << s;
  }
  client_.reset();
  EXPECT_EQ(server_->Wait(), 0);
  StartServer();
  auto info = client_->GetStream("g");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), int64_t{kBatches} * kRows);
}

TEST_F(ServerTest, DeleteStreamThenGetIsNotFound) {
  ASSERT_TRUE(client_->CreateStream("gone", MakeSpec(1, 1, 4, 4, 10)).ok());
  ASSERT_TRUE(
      AppendRandom("gone", 0, 0, 5, 1, 4, 4, DType::kFloat32, nullptr).ok());
  ASSERT_TRUE(client_->DeleteStream("gone").ok());
  auto info = client_->GetStream("gone");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(info.status().message().find("stream_id"), std::string::npos);
  EXPECT_EQ(client_->DeleteStream("gone").code(), absl::StatusCode::kNotFound);
  // Still gone after a restart.
  ASSERT_EQ(StopServer(), 0);
  StartServer();
  EXPECT_EQ(client_->GetStream("gone").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ServerTest, ResetStreamKeepsTheSpecAndEmptiesTheMemory) {
  ASSERT_TRUE(client_->CreateStream("r", MakeSpec(1, 2, 8, 8, 50)).ok());
  ASSERT_TRUE(
      AppendRandom("r", 0, 0, 40, 2, 8, 8, DType::kFloat32, nullptr).ok());
  ASSERT_TRUE(client_->ResetStream("r").ok());
  auto info = client_->GetStream("r");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->spec().capacity(), 50u);
  EXPECT_EQ(info->layers(0).entries(), 0u);
  Written written;
  written.capacity = 50;
  ASSERT_TRUE(
      AppendRandom("r", 0, 0, 7, 2, 8, 8, DType::kFloat32, &written).ok());
  SearchAndCheck("r", 0, 3, 10, written, DType::kFloat32, 8);
}

TEST_F(ServerTest, CreateIsIdempotentAndListShowsEveryStream) {
  auto first = client_->CreateStream("x", MakeSpec(1, 1, 4, 4, 10));
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created());
  auto second = client_->CreateStream("x", MakeSpec(1, 1, 4, 4, 10));
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->created());
  auto different = client_->CreateStream("x", MakeSpec(1, 1, 4, 4, 11));
  EXPECT_EQ(different.status().code(), absl::StatusCode::kAlreadyExists);
  for (int i = 0; i < 1203; ++i) {  // more than one page of ListStreams
    ASSERT_TRUE(
        client_->CreateStream("y" + std::to_string(i), MakeSpec(1, 1, 4, 4, 10))
            .ok());
  }
  auto all = client_->ListStreams();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1204u);
}

TEST_F(ServerTest, HealthAndReflectionAreServed) {
  EXPECT_TRUE(client_->Health().ok());
  auto channel = grpc::CreateChannel(server_->address(),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  stream->WritesDone();
  std::set<std::string> names;
  for (const auto& s : resp.list_services_response().service())
    names.insert(s.name());
  EXPECT_TRUE(names.count("knnmem.v1.Memory")) << resp.DebugString();
  EXPECT_TRUE(names.count("grpc.health.v1.Health")) << resp.DebugString();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace knnmem::testing
