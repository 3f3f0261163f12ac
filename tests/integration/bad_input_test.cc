// Every bad input of DESIGN.md's error list gets its documented code and a
// message naming the field, and the server keeps serving correctly after
// each one. Table-driven: one row per bad request.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

constexpr int kHeads = 2, kDim = 8;

struct BadCase {
  std::string name;
  absl::StatusCode code;
  std::string field;  // the message must start with this
  std::function<absl::Status(client::MemoryClient&)> call;
};

v1::AppendRequest GoodAppend(int64_t first = 0, int64_t rows = 2) {
  std::vector<float> k(rows * kHeads * kDim, 0.25f),
      v(rows * kHeads * kDim, -0.5f);
  v1::AppendRequest r;
  r.set_stream_id("ok");
  r.set_first_position(first);
  *r.mutable_keys() = MakeTensor(k, {rows, kHeads, kDim}, DType::kFloat32);
  *r.mutable_values() = MakeTensor(v, {rows, kHeads, kDim}, DType::kFloat32);
  return r;
}

v1::AppendRequest GoodAppendTo(const std::string& id, int64_t first,
                               int64_t rows) {
  v1::AppendRequest r = GoodAppend(first, rows);
  r.set_stream_id(id);
  return r;
}

v1::SearchRequest GoodSearch() {
  std::vector<float> q(3 * kHeads * kDim, 0.1f);
  v1::SearchRequest r;
  r.set_stream_id("ok");
  r.set_k(4);
  *r.mutable_queries() = MakeTensor(q, {3, kHeads, kDim}, DType::kFloat32);
  return r;
}

absl::Status Append(client::MemoryClient& c, const v1::AppendRequest& r) {
  return c.Append(r).status();
}
absl::Status Search(client::MemoryClient& c, const v1::SearchRequest& r) {
  return c.Search(r).status();
}

template <typename F>
std::function<absl::Status(client::MemoryClient&)> AppendWith(F mutate) {
  return [mutate](client::MemoryClient& c) {
    v1::AppendRequest r = GoodAppend(1000000);  // past the end unless mutated
    r.set_first_position(0);
    mutate(r);
    return Append(c, r);
  };
}

template <typename F>
std::function<absl::Status(client::MemoryClient&)> SearchWith(F mutate) {
  return [mutate](client::MemoryClient& c) {
    v1::SearchRequest r = GoodSearch();
    mutate(r);
    return Search(c, r);
  };
}

template <typename F>
std::function<absl::Status(client::MemoryClient&)> AttendWith(F mutate) {
  return [mutate](client::MemoryClient& c) {
    const v1::SearchRequest s = GoodSearch();
    v1::AttendRequest r;
    r.set_stream_id(s.stream_id());
    r.set_k(s.k());
    *r.mutable_queries() = s.queries();
    mutate(r);
    return c.Attend(r).status();
  };
}

template <typename F>
std::function<absl::Status(client::MemoryClient&)> CreateWith(F mutate) {
  return [mutate](client::MemoryClient& c) {
    v1::StreamSpec s = ServerFixture::MakeSpec(1, kHeads, kDim, kDim, 100);
    std::string id = "fresh";
    mutate(id, s);
    return c.CreateStream(id, s).status();
  };
}

void SetFloat(v1::Tensor* t, size_t index, float f) {
  std::memcpy(t->mutable_data()->data() + index * 4, &f, 4);
}

std::vector<BadCase> Cases() {
  using C = absl::StatusCode;
  const auto kInvalid = C::kInvalidArgument;
  return {
      {"KeysDimMismatch", kInvalid, "keys.shape[2]",
       AppendWith(
           [](v1::AppendRequest& r) { r.mutable_keys()->set_shape(2, 4); })},
      {"KeysHeadsMismatch", kInvalid, "keys.shape[1]",
       AppendWith(
           [](v1::AppendRequest& r) { r.mutable_keys()->set_shape(1, 3); })},
      {"KeysRank", kInvalid, "keys: shape has rank",
       AppendWith(
           [](v1::AppendRequest& r) { r.mutable_keys()->add_shape(1); })},
      {"ValuesRowsMismatch", kInvalid, "values.shape[0]",
       AppendWith([](v1::AppendRequest& r) {
         *r.mutable_values() = GoodAppend(0, 3).values();
       })},
      {"KeysByteLength", kInvalid, "keys.data",
       AppendWith([](v1::AppendRequest& r) {
         r.mutable_keys()->mutable_data()->pop_back();
       })},
      {"KeysDtypeUnspecified", kInvalid, "keys: dtype",
       AppendWith([](v1::AppendRequest& r) {
         r.mutable_keys()->set_dtype(v1::DTYPE_UNSPECIFIED);
       })},
      {"KeysDtypeInt64", kInvalid, "keys: dtype",
       AppendWith([](v1::AppendRequest& r) {
         r.mutable_keys()->set_dtype(v1::INT64);
       })},
      {"ValuesDtypeDiffers", kInvalid, "values",
       AppendWith([](v1::AppendRequest& r) {
         std::vector<float> v(2 * kHeads * kDim, 0.5f);
         *r.mutable_values() =
             MakeTensor(v, {2, kHeads, kDim}, DType::kFloat16);
       })},
      {"KeysNaN", kInvalid, "keys: contains NaN",
       AppendWith(
           [](v1::AppendRequest& r) { SetFloat(r.mutable_keys(), 5, NAN); })},
      {"ValuesInf", kInvalid, "values: contains NaN or Inf",
       AppendWith([](v1::AppendRequest& r) {
         SetFloat(r.mutable_values(), 0, INFINITY);
       })},
      {"KeysHuge", kInvalid, "keys: a value exceeds 1e+15 in magnitude",
       AppendWith(
           [](v1::AppendRequest& r) { SetFloat(r.mutable_keys(), 3, 1e20f); })},
      {"ValuesOverflowFloat16Storage", kInvalid,
       "values: a value exceeds 65504 in magnitude, the largest the stream's "
       "float16",
       [](client::MemoryClient& c) {
         std::vector<float> k(2 * kHeads * kDim, 0.5f), v(k.size(), 70000.0f);
         return c.Append("half", 0, 0, k, v, 2, kHeads).status();
       }},
      {"EmptyBatch", kInvalid, "keys: empty batch",
       AppendWith([](v1::AppendRequest& r) {
         r.clear_keys();
         r.clear_values();
       })},
      {"ZeroRows", kInvalid, "keys", AppendWith([](v1::AppendRequest& r) {
         r.mutable_keys()->set_shape(0, 0);
         r.mutable_keys()->clear_data();
       })},
      {"LayerOutOfRange", kInvalid, "layer: 1 is out of range",
       AppendWith([](v1::AppendRequest& r) { r.set_layer(1); })},
      {"NegativePosition", kInvalid, "first_position",
       AppendWith([](v1::AppendRequest& r) { r.set_first_position(-1); })},
      {"PositionOverflow", kInvalid, "first_position",
       AppendWith([](v1::AppendRequest& r) {
         r.set_first_position((int64_t{1} << 62) - 1);
       })},
      {"PositionGap", C::kFailedPrecondition,
       "first_position: 1000000 leaves a gap",
       AppendWith([](v1::AppendRequest& r) { r.set_first_position(1000000); })},
      {"AppendUnknownStream", C::kNotFound, "stream_id: stream 'nope'",
       AppendWith([](v1::AppendRequest& r) { r.set_stream_id("nope"); })},
      {"AppendEmptyId", kInvalid, "stream_id: must not be empty",
       AppendWith([](v1::AppendRequest& r) { r.set_stream_id(""); })},
      {"AppendLongId", kInvalid, "stream_id: 129 characters",
       AppendWith([](v1::AppendRequest& r) {
         r.set_stream_id(std::string(129, 'x'));
       })},
      {"AppendIllFormedId", kInvalid, "stream_id: character 3",
       AppendWith([](v1::AppendRequest& r) { r.set_stream_id("doc\n1"); })},
      {"SearchKZero", kInvalid, "k: 0",
       SearchWith([](v1::SearchRequest& r) { r.set_k(0); })},
      {"SearchKTooLarge", kInvalid, "k: 2049",
       SearchWith([](v1::SearchRequest& r) { r.set_k(2049); })},
      {"SearchQueriesDim", kInvalid, "queries.shape[2]",
       SearchWith([](v1::SearchRequest& r) {
         r.mutable_queries()->set_shape(2, 16);
       })},
      {"SearchQueriesNaN", kInvalid, "queries: contains NaN",
       SearchWith([](v1::SearchRequest& r) {
         SetFloat(r.mutable_queries(), 1, NAN);
       })},
      {"SearchNoQueries", kInvalid, "queries: empty",
       SearchWith([](v1::SearchRequest& r) { r.clear_queries(); })},
      {"SearchLayer", kInvalid, "layer: 9 is out of range",
       SearchWith([](v1::SearchRequest& r) { r.set_layer(9); })},
      {"SearchUnknownStream", C::kNotFound, "stream_id",
       SearchWith([](v1::SearchRequest& r) { r.set_stream_id("missing"); })},
      {"SearchResponseTooLarge", C::kResourceExhausted,
       "queries: the response would be", SearchWith([](v1::SearchRequest& r) {
         // 20,000 queries x 2 heads x 2048 x 12 bytes is about 1 GB of answer.
         std::vector<float> q(20000 * kHeads * kDim, 0.1f);
         *r.mutable_queries() =
             MakeTensor(q, {20000, kHeads, kDim}, DType::kFloat32);
         r.set_k(2048);
       })},
      {"AttendScaleCount", kInvalid, "scale: 3 values",
       AttendWith([](v1::AttendRequest& r) {
         for (float f : {1.0f, 2.0f, 3.0f}) r.add_scale(f);
       })},
      {"AttendScaleNegative", kInvalid, "scale[0] = -1",
       AttendWith([](v1::AttendRequest& r) { r.add_scale(-1); })},
      {"AttendAlphaNaN", kInvalid, "age_alpha[1] = nan",
       AttendWith([](v1::AttendRequest& r) {
         r.add_age_alpha(1);
         r.add_age_alpha(NAN);
         r.set_age_tau(1);
       })},
      {"AttendScaleHuge", kInvalid, "scale[0] = 1e+06 must be in (0, 10000]",
       AttendWith([](v1::AttendRequest& r) { r.add_scale(1e6f); })},
      {"AttendTauTiny", kInvalid, "age_tau: 1e-10 must be in",
       AttendWith([](v1::AttendRequest& r) {
         r.add_age_alpha(1);
         r.set_age_tau(1e-10f);
       })},
      {"AttendQueriesHuge", kInvalid, "queries: a value exceeds",
       AttendWith([](v1::AttendRequest& r) {
         SetFloat(r.mutable_queries(), 2, -3e16f);
       })},
      {"AttendTauMissing", kInvalid, "age_tau: 0",
       AttendWith([](v1::AttendRequest& r) { r.add_age_alpha(1); })},
      {"AttendKZero", kInvalid, "k: 0",
       AttendWith([](v1::AttendRequest& r) { r.set_k(0); })},
      {"AttendQueriesInf", kInvalid, "queries: contains NaN or Inf",
       AttendWith([](v1::AttendRequest& r) {
         SetFloat(r.mutable_queries(), 0, -INFINITY);
       })},
      {"AttendUnknownStream", C::kNotFound, "stream_id: stream 'zz'",
       AttendWith([](v1::AttendRequest& r) { r.set_stream_id("zz"); })},
      {"CreateZeroHeads", kInvalid, "spec.heads = 0",
       CreateWith([](std::string&, v1::StreamSpec& s) { s.set_heads(0); })},
      {"CreateAbsurdDim", kInvalid, "spec.key_dim = 1000000",
       CreateWith(
           [](std::string&, v1::StreamSpec& s) { s.set_key_dim(1000000); })},
      {"CreateZeroCapacity", kInvalid, "spec.capacity = 0",
       CreateWith([](std::string&, v1::StreamSpec& s) { s.set_capacity(0); })},
      {"CreateAbsurdCapacity", kInvalid, "spec.capacity",
       CreateWith([](std::string&, v1::StreamSpec& s) {
         s.set_capacity(uint64_t{1} << 40);
       })},
      {"CreateZeroLayers", kInvalid, "spec.layers = 0",
       CreateWith([](std::string&, v1::StreamSpec& s) { s.set_layers(0); })},
      {"CreateInt64Storage", kInvalid, "spec.storage_dtype",
       CreateWith([](std::string&, v1::StreamSpec& s) {
         s.set_storage_dtype(v1::INT64);
       })},
      {"CreateUnknownIndex", kInvalid, "spec.index",
       CreateWith([](std::string&, v1::StreamSpec& s) {
         s.set_index(static_cast<v1::IndexKind>(7));
       })},
      {"CreateNlistOnExact", kInvalid, "spec.nlist, spec.nprobe",
       CreateWith([](std::string&, v1::StreamSpec& s) { s.set_nlist(64); })},
      {"CreateNprobeOverNlist", kInvalid, "spec.nprobe = 65 must be in [1, 64]",
       CreateWith([](std::string&, v1::StreamSpec& s) {
         s.set_index(v1::APPROXIMATE);
         s.set_nlist(64);
         s.set_nprobe(65);
       })},
      {"CreateTinyNlist", kInvalid, "spec.nlist = 2 must be in [16, 65536]",
       CreateWith([](std::string&, v1::StreamSpec& s) {
         s.set_index(v1::APPROXIMATE);
         s.set_nlist(2);
       })},
      {"CreateExactTailOverCapacity", kInvalid, "spec.exact_tail",
       CreateWith([](std::string&, v1::StreamSpec& s) {
         s.set_index(v1::APPROXIMATE);
         s.set_exact_tail(s.capacity() + 1);
       })},
      {"CreateBadId", kInvalid, "stream_id: character 0",
       CreateWith([](std::string& id, v1::StreamSpec&) { id = " x"; })},
      {"CreateDifferentSpec", C::kAlreadyExists,
       "stream_id: stream 'ok' already exists",
       CreateWith([](std::string& id, v1::StreamSpec& s) {
         id = "ok";
         s.set_capacity(5);
       })},
      {"GetUnknown", C::kNotFound, "stream_id",
       [](client::MemoryClient& c) { return c.GetStream("unknown").status(); }},
      {"ResetUnknown", C::kNotFound, "stream_id",
       [](client::MemoryClient& c) { return c.ResetStream("unknown"); }},
      {"DeleteBadId", kInvalid, "stream_id",
       [](client::MemoryClient& c) { return c.DeleteStream("a|b"); }},
  };
}

class BadInputTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    ASSERT_TRUE(
        client_->CreateStream("ok", MakeSpec(1, kHeads, kDim, kDim, 100)).ok());
    ASSERT_TRUE(client_
                    ->CreateStream("half", MakeSpec(1, kHeads, kDim, kDim, 100,
                                                    v1::FLOAT16))
                    .ok());
  }
};

TEST_F(BadInputTest, EachBadInputGetsItsCodeAndFieldAndTheServerKeepsServing) {
  Written written;
  written.capacity = 100;
  int64_t next = 0;
  for (const BadCase& c : Cases()) {
    SCOPED_TRACE(c.name);
    const absl::Status s = c.call(*client_);
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_TRUE(absl::StartsWith(s.message(), c.field)) << s;
    // The server still answers health, a valid Append and a correct Search.
    ASSERT_TRUE(client_->Health().ok());
    auto r = AppendRandom("ok", 0, next, 3, kHeads, kDim, kDim, DType::kFloat32,
                          &written);
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->next_position();
    SearchAndCheck("ok", 0, 2, 5, written, DType::kFloat32, next);
  }
}

TEST_F(BadInputTest, AppendsRacingADeleteGetOkOrNotFoundAndLeaveNothingBehind) {
  const v1::StreamSpec spec = MakeSpec(1, kHeads, kDim, kDim, 100000);
  for (int round = 0; round < 5; ++round) {
    ASSERT_TRUE(client_->CreateStream("racing", spec).ok());
    std::atomic<int> ok{0}, not_found{0}, other{0};
    std::thread appender([&] {
      auto c = client::MemoryClient::Connect(server_->address());
      for (int64_t next = 0;;) {
        auto r = c->Append(GoodAppendTo("racing", next, 64));
        if (r.ok()) {
          ++ok;
          next = r->next_position();
        } else if (r.status().code() == absl::StatusCode::kNotFound &&
                   absl::StartsWith(r.status().message(), "stream_id")) {
          ++not_found;
          return;
        } else {
          ++other;
          return;
        }
      }
    });
    while (ok.load() < 3) {
      // Let a few appends land first; the loop ends as soon as they have.
      std::this_thread::yield();
    }
    ASSERT_TRUE(client_->DeleteStream("racing").ok());
    appender.join();
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(not_found.load(), 1);
    EXPECT_EQ(client_->GetStream("racing").status().code(),
              absl::StatusCode::kNotFound);
  }
  // A stream created again under the same id starts empty: nothing of the
  // deleted incarnation leaks into it.
  ASSERT_TRUE(client_->CreateStream("racing", spec).ok());
  EXPECT_EQ(client_->GetStream("racing")->layers(0).next_position(), 0);
  EXPECT_TRUE(client_->Health().ok());
}

TEST_F(BadInputTest, DeleteDuringASearchOfTheSameStreamIsSafe) {
  ASSERT_TRUE(client_->CreateStream("big", MakeSpec(1, 1, 128, 1, 65536)).ok());
  std::vector<float> k(8192 * 128, 0.5f), v(8192, 1.0f);
  for (int b = 0; b < 8; ++b)
    ASSERT_TRUE(client_->Append("big", 0, b * 8192, k, v, 8192, 1).ok());
  std::atomic<int> code{-1};
  std::thread searcher([&] {
    auto c = client::MemoryClient::Connect(server_->address());
    // 4,096 queries x 65,536 keys: long enough to be in flight.
    code = static_cast<int>(
        c->Search("big", 0, std::vector<float>(4096 * 128, 0.1f), 4096, 1, 8)
            .status()
            .code());
  });
  ASSERT_TRUE(client_->DeleteStream("big").ok());
  searcher.join();
  // The search either ran on its snapshot or found the stream gone.
  EXPECT_TRUE(code == static_cast<int>(absl::StatusCode::kOk) ||
              code == static_cast<int>(absl::StatusCode::kNotFound))
      << code;
  EXPECT_EQ(client_->GetStream("big").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(client_->Health().ok());
  EXPECT_TRUE(client_->Search(GoodSearch()).ok());
}

TEST_F(BadInputTest, RequestOverTheMessageLimitIsResourceExhausted) {
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--max-message-bytes=200000"});
  v1::AppendRequest r =
      GoodAppend(0, 2000);  // 2 x 2000 x 16 x 4 bytes = 256 KB
  const absl::Status s = client_->Append(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "keys, values: the request is"))
      << s;
  EXPECT_TRUE(client_->Health().ok());
  EXPECT_TRUE(client_->Append(GoodAppend(0, 2)).ok());
}

TEST_F(BadInputTest, ExpiredDeadlineIsDeadlineExceeded) {
  client::MemoryClient::Options options;
  options.deadline = std::chrono::milliseconds(-1000);  // already passed
  auto impatient = client::MemoryClient::Connect(server_->address(), options);
  EXPECT_EQ(impatient->Search(GoodSearch()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(client_->Search(GoodSearch()).ok());
}

}  // namespace
}  // namespace knnmem::testing
