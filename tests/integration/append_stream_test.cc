// AppendStream through AppendPipeline against a real server: order, the
// acknowledgements, errors mid-call, durability, and the brute-force oracle.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

class AppendStreamTest : public ServerFixture {};

TEST_F(AppendStreamTest, PipelinedBatchesToTwoStreamsAreStoredInOrder) {
  for (const char* id : {"a", "b"}) {
    ASSERT_TRUE(client_->CreateStream(id, MakeSpec(2, 4, 32, 16, 3000)).ok());
  }
  // Interleaved batches for (a, layer 1) and (b, layer 0); 12 x 300 rows
  // each, so the oldest 600 of each are evicted on the way.
  std::vector<RandomBatch> batches;
  int64_t next_a = 0, next_b = 0;
  for (int i = 0; i < 24; ++i) {
    const bool a = i % 2 == 0;
    int64_t& next = a ? next_a : next_b;
    batches.push_back(
        MakeRandomBatch(a ? "a" : "b", a ? 1 : 0, next, 300, 4, 32, 16));
    next += 300;
  }
  for (size_t window : {size_t{1}, size_t{3}}) {
    SCOPED_TRACE(window);
    ASSERT_TRUE(client_->ResetStream("a").ok());
    ASSERT_TRUE(client_->ResetStream("b").ok());
    Written wa, wb;
    wa.capacity = wb.capacity = 3000;
    std::unique_ptr<client::AppendPipeline> pipe =
        client_->OpenAppendPipeline(window);
    for (const RandomBatch& b : batches) {
      ASSERT_TRUE(pipe->Send(b.request).ok());
    }
    ASSERT_TRUE(pipe->Finish().ok());
    ASSERT_EQ(pipe->acknowledged().size(), batches.size());
    for (size_t i = 0; i < batches.size(); ++i) {
      const v1::AppendResponse& ack = pipe->acknowledged()[i];
      EXPECT_EQ(ack.next_position(), batches[i].first + 300) << i;
      EXPECT_EQ(ack.stored(), 300u) << i;
      Record(batches[i], ack, DType::kFloat32, i % 2 == 0 ? &wa : &wb);
    }
    auto a = client_->GetStream("a");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->layers(1).first_position(), 600);
    EXPECT_EQ(a->layers(1).next_position(), 3600);
    EXPECT_EQ(a->layers(0).next_position(), 0);
    SearchAndCheck("a", 1, 20, 16, wa, DType::kFloat32, 3);
    SearchAndCheck("b", 0, 20, 16, wb, DType::kFloat32, 4);
  }
}

TEST_F(AppendStreamTest, AFailingBatchEndsTheCallAfterEveryBatchBeforeIt) {
  ASSERT_TRUE(client_->CreateStream("s", MakeSpec(1, 2, 8, 8, 1000)).ok());
  std::unique_ptr<client::AppendPipeline> pipe = client_->OpenAppendPipeline(4);
  std::vector<RandomBatch> good;
  for (int i = 0; i < 3; ++i) {
    good.push_back(MakeRandomBatch("s", 0, i * 10, 10, 2, 8, 8));
    ASSERT_TRUE(pipe->Send(good.back().request).ok());
  }
  // A gap, then a batch that would be valid after it: never stored.
  ASSERT_TRUE(
      pipe->Send(MakeRandomBatch("s", 0, 31, 10, 2, 8, 8).request).ok());
  pipe->Send(MakeRandomBatch("s", 0, 30, 10, 2, 8, 8).request).IgnoreError();
  const absl::Status end = pipe->Finish();
  EXPECT_EQ(end.code(), absl::StatusCode::kFailedPrecondition) << end;
  EXPECT_NE(end.message().find("first_position"), absl::string_view::npos)
      << end;
  EXPECT_EQ(pipe->Send(good[0].request).code(), end.code());  // stays ended
  ASSERT_EQ(pipe->acknowledged().size(), 3u);
  EXPECT_EQ(pipe->acknowledged()[2].next_position(), 30);
  auto info = client_->GetStream("s");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->layers(0).next_position(), 30);

  // Unknown streams and bad tensors end a call with their codes too, and
  // the server keeps serving.
  auto unknown = client_->OpenAppendPipeline();
  unknown->Send(MakeRandomBatch("nope", 0, 0, 1, 2, 8, 8).request)
      .IgnoreError();
  EXPECT_EQ(unknown->Finish().code(), absl::StatusCode::kNotFound);
  auto bad = client_->OpenAppendPipeline();
  RandomBatch wrong_dim = MakeRandomBatch("s", 0, 30, 1, 2, 4, 8);
  bad->Send(wrong_dim.request).IgnoreError();
  const absl::Status shape = bad->Finish();
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(shape.message().find("keys"), absl::string_view::npos) << shape;
  EXPECT_TRUE(client_->Health().ok());
  Written written;
  written.capacity = 1000;
  for (size_t i = 0; i < good.size(); ++i) {
    Record(good[i], pipe->acknowledged()[i], DType::kFloat32, &written);
  }
  ASSERT_TRUE(
      AppendRandom("s", 0, 30, 5, 2, 8, 8, DType::kFloat32, &written).ok());
  SearchAndCheck("s", 0, 8, 35, written, DType::kFloat32, 5);
}

TEST_F(AppendStreamTest, AcknowledgedBatchesSurviveSigkill) {
  ASSERT_TRUE(client_->CreateStream("k", MakeSpec(1, 2, 16, 16, 100000)).ok());
  Written written;
  written.capacity = 100000;
  std::vector<RandomBatch> batches;
  for (int i = 0; i < 30; ++i) {
    batches.push_back(MakeRandomBatch("k", 0, i * 128, 128, 2, 16, 16));
  }
  std::unique_ptr<client::AppendPipeline> pipe = client_->OpenAppendPipeline(2);
  for (const RandomBatch& b : batches) ASSERT_TRUE(pipe->Send(b.request).ok());
  ASSERT_TRUE(pipe->Finish().ok());
  for (size_t i = 0; i < batches.size(); ++i) {
    Record(batches[i], pipe->acknowledged()[i], DType::kFloat32, &written);
  }
  pipe.reset();
  server_->Kill();  // SIGKILL right after the last acknowledgement
  StartServer();
  auto info = client_->GetStream("k");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), 30 * 128);
  SearchAndCheck("k", 0, 16, 64, written, DType::kFloat32, 6);
}

}  // namespace
}  // namespace knnmem::testing
