// DecodeStep against a real server: many streams, one query per head each,
// optional one-token appends first; every answer checked against the
// brute-force attention oracle, and every step failing alone.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "client/sharded_client.h"
#include "tests/support/attention_oracle.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

constexpr int kHeads = 4, kKeyDim = 32, kValueDim = 16;

// A step that asks `queries` [n, kHeads, key_dim] of layer `layer`.
client::Step Ask(const std::string& id, uint32_t layer,
                 absl::Span<const float> queries, int64_t key_dim = kKeyDim) {
  client::Step step;
  step.stream_id = id;
  step.layer = layer;
  step.heads = kHeads;
  step.key_dim = key_dim;
  step.value_dim = kValueDim;
  step.queries = queries;
  return step;
}

// The same, after appending keys and values at `first`.
client::Step AskAfter(const std::string& id, uint32_t layer,
                      absl::Span<const float> queries, int64_t first,
                      absl::Span<const float> keys,
                      absl::Span<const float> values) {
  client::Step step = Ask(id, layer, queries);
  step.first_position = first;
  step.keys = keys;
  step.values = values;
  return step;
}

client::StepParams WithK(uint32_t k) {
  client::StepParams params;
  params.k = k;
  return params;
}

// Checks one step's answer against the oracle of what it holds.
void ExpectAttention(const client::StepResult& got, const Written& written,
                     const std::vector<float>& queries, int n, uint32_t k,
                     const std::vector<float>& scale,
                     const std::vector<float>& alpha, float tau) {
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_EQ(got.attention.queries, n);
  ASSERT_EQ(got.attention.value_dim, kValueDim);
  for (int q = 0; q < n; ++q) {
    for (int h = 0; h < kHeads; ++h) {
      const OracleAttention want = AttendOracle(
          written.oracle, written.values, kValueDim,
          queries.data() + q * kHeads * kKeyDim, h, static_cast<int>(k),
          scale.empty() ? 1.0 / std::sqrt(double(kKeyDim)) : scale[h],
          alpha.empty() ? 0.0 : alpha[h], tau);
      if (std::isinf(want.lse)) {
        EXPECT_TRUE(std::isinf(got.attention.lse[q * kHeads + h]));
        continue;
      }
      EXPECT_NEAR(got.attention.lse[q * kHeads + h], want.lse, 1e-3);
      for (int d = 0; d < kValueDim; ++d) {
        ASSERT_NEAR(got.attention.output[(q * kHeads + h) * kValueDim + d],
                    want.output[d], 1e-4)
            << "query " << q << " head " << h;
      }
    }
  }
}

class DecodeStepTest : public ServerFixture {
 protected:
  // Creates `id` and appends `rows` random rows to layer `layer`.
  void Fill(const std::string& id, v1::DType dtype, int64_t rows,
            Written* written, uint32_t layers = 1, uint32_t layer = 0) {
    ASSERT_TRUE(client_
                    ->CreateStream(id, MakeSpec(layers, kHeads, kKeyDim,
                                                kValueDim, 100000, dtype))
                    .ok());
    written->capacity = 100000;
    written->oracle = {kHeads, kKeyDim, {}};
    written->value_dim = kValueDim;
    if (rows == 0) return;
    auto r = AppendRandom(id, layer, 0, rows, kHeads, kKeyDim, kValueDim,
                          static_cast<DType>(dtype), written);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::vector<float> RandomQueries(int n) {
    std::normal_distribution<float> normal;
    std::vector<float> q(size_t(n) * kHeads * kKeyDim);
    for (float& x : q) x = normal(rng_);
    return q;
  }
};

TEST_F(DecodeStepTest, ManyStreamsWithAndWithoutAppendsEqualTheOracle) {
  const v1::DType dtypes[] = {v1::FLOAT32, v1::FLOAT16, v1::BFLOAT16};
  constexpr int kStreams = 9;
  std::vector<Written> written(kStreams);
  std::vector<int64_t> next(kStreams);
  for (int s = 0; s < kStreams; ++s) {
    next[s] = 200 + 150 * s;  // stream 0 small, stream 8 larger
    if (s == 4) next[s] = 0;  // an empty memory: lse -inf, zero output
    Fill("s" + std::to_string(s), dtypes[s % 3], next[s], &written[s]);
  }
  const std::vector<float> scale = {0.3f, 0.2f, 0.1f, 0.25f};
  const std::vector<float> alpha = {0.0f, 1.5f, 0.4f, 3.0f};
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool appends = round % 2 == 1, penalty = round >= 2;
    std::vector<std::vector<float>> queries(kStreams);
    std::vector<RandomBatch> rows(kStreams);
    std::vector<client::Step> steps(kStreams);
    for (int s = 0; s < kStreams; ++s) {
      const std::string id = "s" + std::to_string(s);
      queries[s] = RandomQueries(1);
      steps[s] = Ask(id, 0, queries[s]);
      if (appends && s % 3 != 2) {  // some streams append a token first
        rows[s] =
            MakeRandomBatch(id, 0, next[s], 1, kHeads, kKeyDim, kValueDim);
        steps[s].first_position = next[s];
        steps[s].keys = rows[s].keys;
        steps[s].values = rows[s].values;
      }
    }
    client::StepParams params;
    params.k = 32;
    params.scale = scale;
    if (penalty) {
      params.age_alpha = alpha;
      params.age_tau = 50.0f;
    }
    auto out = client_->DecodeStep(steps, params);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), size_t{kStreams});
    for (int s = 0; s < kStreams; ++s) {
      SCOPED_TRACE("stream " + std::to_string(s));
      if (!steps[s].keys.empty()) {
        v1::AppendResponse ack;
        ack.set_next_position(next[s] + 1);
        ack.set_stored(1);
        Record(rows[s], ack, static_cast<DType>(dtypes[s % 3]), &written[s]);
        ++next[s];
      }
      EXPECT_EQ((*out)[s].next_position, next[s]);
      ExpectAttention((*out)[s], written[s], queries[s], 1, 32, scale,
                      penalty ? alpha : std::vector<float>(), 50.0f);
    }
  }
  // The rows appended by steps are stored like an Append's, and survive a
  // crash.
  server_->Kill();
  StartServer();
  for (int s = 0; s < kStreams; ++s) {
    auto info = client_->GetStream("s" + std::to_string(s));
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->layers(0).next_position(), next[s]) << "stream " << s;
  }
  SearchAndCheck("s1", 0, 3, 16, written[1], DType::kFloat16, 7);
}

// A server whose blocks keep int8 codes of their keys (--exact-int8-codes)
// answers as the oracle does: small layers (scanned in two passes) and a
// large one (in one), every storage dtype, with steps that append, and
// again after a crash, from codes rebuilt as the rows load.
TEST_F(DecodeStepTest, WithInt8CodesEqualsTheOracleAcrossACrash) {
  StopServer();
  StartServer({"--exact-int8-codes"});
  const v1::DType dtypes[] = {v1::FLOAT32, v1::FLOAT16, v1::BFLOAT16,
                              v1::FLOAT32};
  const int64_t sizes[] = {700, 3000, 40, 9500};
  constexpr int kStreams = 4;
  std::vector<Written> written(kStreams);
  std::vector<int64_t> next(kStreams);
  for (int s = 0; s < kStreams; ++s) {
    next[s] = sizes[s];
    Fill("c" + std::to_string(s), dtypes[s], next[s], &written[s]);
  }
  auto step = [&](bool appends) {
    std::vector<std::vector<float>> queries(kStreams);
    std::vector<RandomBatch> rows(kStreams);
    std::vector<client::Step> steps(kStreams);
    for (int s = 0; s < kStreams; ++s) {
      const std::string id = "c" + std::to_string(s);
      queries[s] = RandomQueries(1);
      steps[s] = Ask(id, 0, queries[s]);
      if (appends) {
        rows[s] =
            MakeRandomBatch(id, 0, next[s], 1, kHeads, kKeyDim, kValueDim);
        steps[s] =
            AskAfter(id, 0, queries[s], next[s], rows[s].keys, rows[s].values);
      }
    }
    auto out = client_->DecodeStep(steps, WithK(32));
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), size_t{kStreams});
    for (int s = 0; s < kStreams; ++s) {
      SCOPED_TRACE("stream " + std::to_string(s));
      if (appends) {
        v1::AppendResponse ack;
        ack.set_next_position(next[s] + 1);
        ack.set_stored(1);
        Record(rows[s], ack, static_cast<DType>(dtypes[s]), &written[s]);
        ++next[s];
      }
      ExpectAttention((*out)[s], written[s], queries[s], 1, 32, {}, {}, 50.0f);
    }
  };
  step(false);
  step(true);
  server_->Kill();
  StartServer({"--exact-int8-codes"});
  step(false);
  SearchAndCheck("c3", 0, 3, 16, written[3], DType::kFloat32, 8);
}

TEST_F(DecodeStepTest, SeveralQueriesPerStreamAndAppendOnlySteps) {
  Written a, b;
  Fill("a", v1::FLOAT32, 900, &a);
  Fill("b", v1::FLOAT32, 50, &b);
  const std::vector<float> qa = RandomQueries(5);
  const std::vector<float> qa20 = RandomQueries(20);
  RandomBatch rb = MakeRandomBatch("b", 0, 50, 3, kHeads, kKeyDim, kValueDim);
  std::vector<client::Step> steps = {
      Ask("a", 0, qa20), AskAfter("b", 0, {}, 50, rb.keys, rb.values)};
  auto out = client_->DecodeStep(steps, WithK(7));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectAttention((*out)[0], a, qa20, 20, 7, {}, {}, 1.0f);
  ASSERT_TRUE((*out)[1].status.ok()) << (*out)[1].status;
  EXPECT_EQ((*out)[1].next_position, 53);
  EXPECT_EQ((*out)[1].attention.queries, 0);  // it asked nothing
  v1::AppendResponse ack;
  ack.set_next_position(53);
  ack.set_stored(3);
  Record(rb, ack, DType::kFloat32, &b);
  steps = {Ask("b", 0, qa)};
  out = client_->DecodeStep(steps, WithK(64));
  ASSERT_TRUE(out.ok()) << out.status();
  ExpectAttention((*out)[0], b, qa, 5, 64, {}, {}, 1.0f);
}

TEST_F(DecodeStepTest, EachStepFailsAloneWithItsFieldNamed) {
  Written good, two, three;
  Fill("good", v1::FLOAT32, 300, &good);
  Fill("two", v1::FLOAT32, 10, &two, /*layers=*/2, /*layer=*/1);
  Fill("three", v1::FLOAT32, 0, &three);
  const std::vector<float> q = RandomQueries(1);
  const std::vector<float> short_q(kHeads * (kKeyDim - 1), 0.5f);
  RandomBatch gap =
      MakeRandomBatch("good", 0, 999, 1, kHeads, kKeyDim, kValueDim);
  std::vector<float> nan_q = q;
  nan_q[3] = std::nanf("");
  std::vector<client::Step> steps = {
      Ask("missing", 0, q),                 // 0
      Ask("good", 0, q),                    // 1: fine
      Ask("good", 0, q),                    // 2: again
      Ask("two", 5, q),                     // 3: layer
      Ask("two", 0, short_q, kKeyDim - 1),  // 4: shape
      Ask("three", 0, nan_q),               // 5: NaN
      Ask("bad id!", 0, q),                 // 6
      Ask("two", 1, q),                     // 7: fine
  };
  // 8: layer 1 of a 1-layer stream
  client::Step with_gap = AskAfter("good", 1, q, 999, gap.keys, gap.values);
  steps.push_back(with_gap);
  auto out = client_->DecodeStep(steps, WithK(16));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), steps.size());
  struct Want {
    absl::StatusCode code;
    std::string prefix;
  };
  const std::vector<Want> want = {
      {absl::StatusCode::kNotFound, "steps[0].stream_id"},
      {absl::StatusCode::kOk, ""},
      {absl::StatusCode::kInvalidArgument, "steps[2].stream_id"},
      {absl::StatusCode::kInvalidArgument, "steps[3].layer"},
      {absl::StatusCode::kInvalidArgument, "steps[4].queries"},
      {absl::StatusCode::kInvalidArgument, "steps[5].queries"},
      {absl::StatusCode::kInvalidArgument, "steps[6].stream_id"},
      {absl::StatusCode::kOk, ""},
      {absl::StatusCode::kInvalidArgument, "steps[8].layer"},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    const absl::Status& s = (*out)[i].status;
    EXPECT_EQ(s.code(), want[i].code) << "step " << i << ": " << s;
    EXPECT_TRUE(absl::StartsWith(s.message(), want[i].prefix))
        << "step " << i << ": " << s;
  }
  ExpectAttention((*out)[1], good, q, 1, 16, {}, {}, 1.0f);
  ExpectAttention((*out)[7], two, q, 1, 16, {}, {}, 1.0f);

  // A position gap fails the step, before its lookup.
  steps = {AskAfter("good", 0, q, 999, gap.keys, gap.values), Ask("two", 1, q)};
  out = client_->DecodeStep(steps, WithK(16));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(
      absl::StartsWith((*out)[0].status.message(), "steps[0].first_position"))
      << (*out)[0].status;
  ExpectAttention((*out)[1], two, q, 1, 16, {}, {}, 1.0f);

  // A scale that does not fit a step's stream fails that step, naming the
  // call's field and the stream's heads.
  client::StepParams three_scales = WithK(16);
  three_scales.scale = {0.1f, 0.2f, 0.3f};
  out = client_->DecodeStep(steps, three_scales);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[1].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith((*out)[1].status.message(), "scale: 3 values"))
      << (*out)[1].status;
  EXPECT_TRUE(absl::StrContains((*out)[1].status.message(), "steps[1]"))
      << (*out)[1].status;
}

TEST_F(DecodeStepTest, WholeCallErrorsNameTheirField) {
  Written w;
  Fill("w", v1::FLOAT32, 10, &w);
  const std::vector<float> q = RandomQueries(1);
  v1::DecodeStepRequest empty;
  empty.set_k(4);
  auto r = client_->DecodeStep(empty);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "steps: empty"))
      << r.status();
  std::vector<client::Step> steps = {Ask("w", 0, q)};
  auto k0 = client_->DecodeStep(steps, WithK(0));
  EXPECT_EQ(k0.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(k0.status().message(), "k: 0")) << k0.status();
  v1::DecodeStepRequest many;
  many.set_k(4);
  for (int i = 0; i < 4097; ++i) many.add_steps()->set_stream_id("w");
  auto over = client_->DecodeStep(many);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(over.status().message(), "steps: 4097"))
      << over.status();
  // A step with neither rows nor queries.
  v1::DecodeStepRequest nothing;
  nothing.set_k(4);
  nothing.add_steps()->set_stream_id("w");
  auto n = client_->DecodeStep(nothing);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->results(0).code(), int(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(absl::StartsWith(n->results(0).message(), "steps[0].queries"))
      << n->results(0).message();
  // The server still serves.
  auto ok = client_->DecodeStep(steps, WithK(4));
  ASSERT_TRUE(ok.ok()) << ok.status();
  ExpectAttention((*ok)[0], w, q, 1, 4, {}, {}, 1.0f);
}

// Streams on three servers, one call per server; a server that is down
// fails only its own steps.
TEST(ShardedDecodeStepTest, ResultsInRequestOrderAndServersFailAlone) {
  TempDir dir;
  Shards shards = StartShards(dir, 3);
  ASSERT_FALSE(HasFailure());
  std::vector<std::unique_ptr<ServerProcess>>& servers = shards.servers;
  const std::vector<client::ServerAddress>& list = shards.list;
  client::ShardedClient client(list, client::MemoryClient::Options());
  const v1::StreamSpec spec =
      ServerFixture::MakeSpec(1, kHeads, kKeyDim, kValueDim, 1000);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  constexpr int kStreams = 30;
  std::vector<Written> written(kStreams);
  std::vector<std::vector<float>> queries(kStreams);
  std::vector<client::Step> steps;
  for (int s = 0; s < kStreams; ++s) {
    const std::string id = "doc-" + std::to_string(s);
    ASSERT_TRUE(client.CreateStream(id, spec).ok());
    const int64_t rows = 40 + s;
    std::vector<float> k(rows * kHeads * kKeyDim), v(rows * kHeads * kValueDim);
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    ASSERT_TRUE(client.For(id).Append(id, 0, 0, k, v, rows, kHeads).ok());
    written[s].oracle = {kHeads, kKeyDim, {}};
    written[s].value_dim = kValueDim;
    for (int64_t r = 0; r < rows; ++r) {
      written[s].oracle.keys[r].assign(k.begin() + r * kHeads * kKeyDim,
                                       k.begin() + (r + 1) * kHeads * kKeyDim);
      written[s].values[r].assign(v.begin() + r * kHeads * kValueDim,
                                  v.begin() + (r + 1) * kHeads * kValueDim);
    }
    queries[s].resize(kHeads * kKeyDim);
    for (float& x : queries[s]) x = normal(rng);
  }
  for (int s = 0; s < kStreams; ++s) {
    steps.push_back(Ask("doc-" + std::to_string(s), 0, queries[s]));
  }
  auto out = client.DecodeStep(steps, WithK(8));
  ASSERT_TRUE(out.ok()) << out.status();
  for (int s = 0; s < kStreams; ++s) {
    SCOPED_TRACE("stream " + std::to_string(s));
    ExpectAttention((*out)[s], written[s], queries[s], 1, 8, {}, {}, 1.0f);
  }
  // A missing stream on one server names the caller's index.
  steps.push_back(Ask("nowhere", 0, queries[0]));
  out = client.DecodeStep(steps, WithK(8));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->back().status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(out->back().status.message(),
                               "steps[" + std::to_string(kStreams) + "]"))
      << out->back().status;
  steps.pop_back();
  // Server 1 down: its streams' steps are UNAVAILABLE, the rest answer.
  servers[1]->Kill();
  out = client.DecodeStep(steps, WithK(8));
  ASSERT_TRUE(out.ok()) << out.status();
  int down = 0;
  for (int s = 0; s < kStreams; ++s) {
    SCOPED_TRACE("stream " + std::to_string(s));
    if (client.ServerIndexOf(steps[s].stream_id) == 1) {
      ++down;
      EXPECT_EQ((*out)[s].status.code(), absl::StatusCode::kUnavailable)
          << (*out)[s].status;
      EXPECT_TRUE(
          absl::StrContains((*out)[s].status.message(), list[1].address));
    } else {
      ExpectAttention((*out)[s], written[s], queries[s], 1, 8, {}, {}, 1.0f);
    }
  }
  EXPECT_GT(down, 0);
  EXPECT_LT(down, kStreams);
}

}  // namespace
}  // namespace knnmem::testing
