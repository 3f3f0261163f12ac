// RecordingMemory: what it writes equals what was sent (read back with
// ReadNpy, checked against the tensors kept here), every call reaches the
// inner memory, and it refuses interleaved documents and position gaps.
#include "model/recording_memory.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "base/npy.h"
#include "base/temp_dir.h"

namespace knnmem::model {
namespace {

// Counts the calls that reach it; answers with zeros.
class CountingMemory final : public Memory {
 public:
  absl::Status BeginStream(const std::string&, const MemoryShape&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::Status EndStream(const std::string&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::Status Append(const std::string&, int64_t, const torch::Tensor&,
                      const torch::Tensor&) override {
    ++calls;
    return absl::OkStatus();
  }
  absl::StatusOr<Neighbours> Search(const std::string&, const torch::Tensor& q,
                                    int) override {
    ++calls;
    return Neighbours{q, q, q};
  }
  absl::StatusOr<Attention> Attend(const std::string&, const torch::Tensor& q,
                                   int, const AttendOptions&) override {
    ++calls;
    return Attention{q, q};
  }
  int calls = 0;
};

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The rows of `a` as float32, flattened.
std::vector<float> Flat(const std::vector<torch::Tensor>& parts) {
  std::vector<float> out;
  for (const torch::Tensor& t : parts) {
    const torch::Tensor c = t.contiguous();
    out.insert(out.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return out;
}

TEST(RecordingMemoryTest, WritesWhatTheKnnLayerSentAndPassesItOn) {
  TempDir dir;
  CountingMemory inner;
  auto recorder = RecordingMemory::Create(dir.Sub("dump"), &inner);
  ASSERT_TRUE(recorder.ok()) << recorder.status();
  const MemoryShape shape{2, 3, 4, 100};
  torch::manual_seed(3);
  std::vector<torch::Tensor> keys, values, queries;
  int expected_calls = 0;
  for (const char* doc : {"a", "b"}) {
    ASSERT_TRUE((*recorder)->BeginStream(doc, shape).ok());
    queries.push_back(torch::randn({5, 2, 3}));  // before any key
    ASSERT_TRUE((*recorder)->Attend(doc, queries.back(), 2, {}).ok());
    int64_t at = 0;
    for (int64_t rows : {4, 7}) {
      keys.push_back(torch::randn({rows, 2, 3}));
      values.push_back(torch::randn({rows, 2, 4}));
      // A transposed view: recorded in row order all the same.
      ASSERT_TRUE(
          (*recorder)
              ->Append(doc, at,
                       keys.back().transpose(0, 1).contiguous().transpose(0, 1),
                       values.back())
              .ok());
      at += rows;
      queries.push_back(torch::randn({3, 2, 3}));
      ASSERT_TRUE((*recorder)->Search(doc, queries.back(), 2).ok());
      expected_calls += 2;
    }
    ASSERT_TRUE((*recorder)->EndStream(doc).ok());
    expected_calls += 3;
  }
  ASSERT_TRUE((*recorder)->Close().ok());
  EXPECT_EQ(inner.calls, expected_calls);

  absl::StatusOr<NpyArray> k = ReadNpy(dir.Sub("dump/keys.npy"));
  absl::StatusOr<NpyArray> v = ReadNpy(dir.Sub("dump/values.npy"));
  absl::StatusOr<NpyArray> q = ReadNpy(dir.Sub("dump/queries.npy"));
  ASSERT_TRUE(k.ok() && v.ok() && q.ok()) << k.status() << v.status();
  EXPECT_EQ(k->shape, (std::vector<int64_t>{22, 2, 3}));
  EXPECT_EQ(v->shape, (std::vector<int64_t>{22, 2, 4}));
  EXPECT_EQ(q->shape, (std::vector<int64_t>{22, 2, 3}));
  EXPECT_EQ(k->data, Flat(keys));
  EXPECT_EQ(v->data, Flat(values));
  EXPECT_EQ(q->data, Flat(queries));
  EXPECT_EQ(Read(dir.Sub("dump/documents.tsv")),
            "document\tkey_row\tkeys\na\t0\t11\nb\t11\t11\n");
  EXPECT_EQ(Read(dir.Sub("dump/queries.tsv")),
            "document\tquery_row\tqueries\tkeys_in_memory\n"
            "a\t0\t5\t0\na\t5\t3\t4\na\t8\t3\t11\n"
            "b\t11\t5\t0\nb\t16\t3\t4\nb\t19\t3\t11\n");
}

TEST(RecordingMemoryTest, RefusesInterleavedDocumentsAndGaps) {
  TempDir dir;
  CountingMemory inner;
  auto recorder = RecordingMemory::Create(dir.Sub("dump"), &inner);
  ASSERT_TRUE(recorder.ok()) << recorder.status();
  const MemoryShape shape{1, 2, 2, 10};
  ASSERT_TRUE((*recorder)->BeginStream("a", shape).ok());
  EXPECT_EQ((*recorder)->BeginStream("b", shape).code(),
            absl::StatusCode::kFailedPrecondition);
  const torch::Tensor row = torch::ones({1, 1, 2});
  EXPECT_EQ((*recorder)->Append("b", 0, row, row).code(),
            absl::StatusCode::kFailedPrecondition);
  const absl::Status gap = (*recorder)->Append("a", 3, row, row);
  EXPECT_EQ(gap.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(gap.message().find("appends at 3 after 0 keys"), std::string::npos)
      << gap;
  EXPECT_EQ(inner.calls, 1);  // only the first BeginStream reached it
}

}  // namespace
}  // namespace knnmem::model
