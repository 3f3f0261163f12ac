#include "server/service/request_validation.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace knnmem {
namespace {

StreamSpec Spec() {
  StreamSpec s;
  s.layers = 2;
  s.heads = 2;
  s.key_dim = 4;
  s.value_dim = 3;
  s.capacity = 10;
  return s;
}

v1::AppendRequest Append(int64_t rows, DType dtype = DType::kFloat16) {
  v1::AppendRequest r;
  r.set_stream_id("s");
  r.set_layer(1);
  r.set_first_position(5);
  *r.mutable_keys() =
      MakeTensor(std::vector<float>(rows * 8, 1.0f), {rows, 2, 4}, dtype);
  *r.mutable_values() =
      MakeTensor(std::vector<float>(rows * 6, 2.0f), {rows, 2, 3}, dtype);
  return r;
}

TEST(RequestValidationTest, GoodAppendBecomesACommandThatViewsTheRequest) {
  const v1::AppendRequest r = Append(3);
  auto cmd = ValidateAppend(r, Spec());
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->rows, 3u);
  EXPECT_EQ(cmd->layer, 1u);
  EXPECT_EQ(cmd->first_position, 5);
  EXPECT_EQ(cmd->dtype, DType::kFloat16);
  EXPECT_EQ(cmd->keys.data(), r.keys().data().data());
}

TEST(RequestValidationTest, MissingValuesAreCalledMissing) {
  v1::AppendRequest r = Append(3);
  r.clear_values();
  const absl::Status s = ValidateAppend(r, Spec()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(), "values: missing")) << s;
}

TEST(RequestValidationTest, UnknownDTypeIsPrintedByNumber) {
  v1::AppendRequest r = Append(3);
  r.mutable_keys()->set_dtype(static_cast<v1::DType>(7));
  const absl::Status s = ValidateAppend(r, Spec()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "keys: dtype 7 (unknown) is not a float dtype (FLOAT32, FLOAT16, "
            "BFLOAT16)")
      << s;
}

TEST(RequestValidationTest, SpecDefaultsAndRejections) {
  v1::StreamSpec s;
  s.set_layers(1);
  s.set_heads(1);
  s.set_key_dim(1);
  s.set_value_dim(1);
  s.set_capacity(1);
  auto spec = SpecFromProto(s);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->storage_dtype, DType::kFloat32);
  s.set_storage_dtype(v1::INT64);
  EXPECT_TRUE(absl::StartsWith(SpecFromProto(s).status().message(),
                               "spec.storage_dtype"));
}

TEST(RequestValidationTest, SearchDecodesQueriesAndChecksK) {
  v1::SearchRequest r;
  r.set_stream_id("s");
  r.set_k(3);
  *r.mutable_queries() =
      MakeTensor(std::vector<float>(8, 0.5f), {1, 2, 4}, DType::kBFloat16);
  auto cmd = ValidateSearch(r, Spec());
  ASSERT_TRUE(cmd.ok()) << cmd.status();
  EXPECT_EQ(cmd->queries, std::vector<float>(8, 0.5f));
  r.set_k(kMaxK + 1);
  EXPECT_TRUE(
      absl::StartsWith(ValidateSearch(r, Spec()).status().message(), "k: "));
}

TEST(RequestValidationTest, ResponseSizeCountsKeysAndValuesOnlyWhenAsked) {
  SearchCommand cmd;
  cmd.spec = Spec();
  cmd.queries.resize(10 * 2 * 4);
  cmd.options.k = 7;
  const size_t base = SearchResponseBytes(cmd);
  EXPECT_GE(base, 10u * 2 * 7 * 12);
  cmd.options.return_values = true;
  EXPECT_EQ(SearchResponseBytes(cmd), base + 10u * 2 * 7 * 3 * 4);
}

}  // namespace
}  // namespace knnmem
