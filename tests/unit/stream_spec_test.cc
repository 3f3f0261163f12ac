#include "server/spec/stream_spec.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace knnmem {
namespace {

StreamSpec GoodSpec() {
  StreamSpec s;
  s.layers = 2;
  s.heads = 8;
  s.key_dim = 128;
  s.value_dim = 64;
  s.capacity = 65536;
  s.storage_dtype = DType::kBFloat16;
  s.ttl_seconds = 30;
  return s;
}

TEST(StreamSpecTest, EncodingRoundTrips) {
  const StreamSpec s = GoodSpec();
  absl::StatusOr<StreamSpec> back = DecodeSpec(EncodeSpec(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
}

TEST(StreamSpecTest, CorruptEncodingIsDataLoss) {
  std::string bytes = EncodeSpec(GoodSpec());
  EXPECT_EQ(DecodeSpec(bytes.substr(0, 10)).status().code(),
            absl::StatusCode::kDataLoss);
  bytes[0] = 9;  // unknown version
  EXPECT_EQ(DecodeSpec(bytes).status().code(), absl::StatusCode::kDataLoss);
}

TEST(StreamSpecTest, OutOfRangeFieldsAreNamed) {
  StreamSpec s = GoodSpec();
  s.heads = 0;
  EXPECT_EQ(ValidateSpec(s).message(), "spec.heads = 0 must be in [1, 256]");
  s = GoodSpec();
  s.capacity = kMaxCapacity + 1;
  EXPECT_TRUE(absl::StartsWith(ValidateSpec(s).message(), "spec.capacity = "));
  s = GoodSpec();
  s.key_dim = 1 << 20;
  EXPECT_TRUE(absl::StartsWith(ValidateSpec(s).message(), "spec.key_dim = "));
  EXPECT_TRUE(ValidateSpec(GoodSpec()).ok());
}

TEST(StreamSpecTest, StreamIdsAreCheckedForLengthAndCharacters) {
  EXPECT_TRUE(ValidateStreamId("doc-1/part.2:x_y").ok());
  EXPECT_EQ(ValidateStreamId("").message(), "stream_id: must not be empty");
  EXPECT_TRUE(
      absl::StartsWith(ValidateStreamId(std::string(129, 'a')).message(),
                       "stream_id: 129 characters"));
  EXPECT_TRUE(absl::StartsWith(ValidateStreamId("a b").message(),
                               "stream_id: character 1"));
  EXPECT_FALSE(ValidateStreamId(std::string("a\0b", 3)).ok());
}

}  // namespace
}  // namespace knnmem
