// The model's parts against oracles written here: config round trip, the
// kNN layer's normalisation and gate, Search vs Attend, and the in-process
// vs the remote backend (a real server on 127.0.0.1:0).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/temp_dir.h"
#include "model/config.h"
#include "model/document_reader.h"
#include "model/generator.h"
#include "model/in_process_memory.h"
#include "model/remote_memory.h"
#include "model/transformer.h"
#include "tests/support/server_process.h"

namespace knnmem::model {
namespace {

ModelConfig Tiny() {
  ModelConfig c;
  c.layers = 3;
  c.d_model = 32;
  c.heads = 2;
  c.ffn = 64;
  c.segment = 16;
  c.top_k = 4;
  c.gate_init = 0.4f;
  return c;
}

// Lanes of random bytes, `segments` segments each, as DocumentReader eats
// them: one document per lane.
std::vector<std::vector<std::optional<Segment>>> Batches(int lanes,
                                                         int segments,
                                                         int segment) {
  torch::manual_seed(7);
  const torch::Tensor bytes =
      torch::randint(0, 256, {lanes, segments * segment + 1}, torch::kInt64);
  std::vector<std::vector<std::optional<Segment>>> out(segments);
  for (int s = 0; s < segments; ++s) {
    for (int l = 0; l < lanes; ++l) {
      Segment seg;
      seg.document = l;
      seg.offset = s * segment;
      seg.first = s == 0;
      seg.last = s == segments - 1;
      for (int j = 0; j <= segment; ++j) {
        seg.bytes.push_back(
            static_cast<char>(bytes[l][s * segment + j].item<int64_t>()));
      }
      out[s].push_back(seg);
    }
  }
  return out;
}

std::vector<torch::Tensor> Logits(Transformer model, Memory* memory,
                                  bool use_attend, int64_t capacity) {
  torch::NoGradGuard no_grad;
  DocumentReader reader(model, memory, 2, capacity, use_attend, "doc");
  std::vector<torch::Tensor> logits;
  for (const auto& batch : Batches(2, 6, model->config().segment)) {
    logits.push_back(reader.Step(batch).logits);
  }
  return logits;
}

void ExpectClose(const std::vector<torch::Tensor>& a,
                 const std::vector<torch::Tensor>& b, double tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LT((a[i] - b[i]).abs().max().item<float>(), tolerance)
        << "segment " << i;
  }
}

TEST(ModelConfigTest, RoundTripsAndNamesBadLines) {
  ModelConfig c = Tiny();
  c.mix = MemoryMix::kJoint;
  c.age_penalty = true;
  c.edge_bias = true;
  absl::StatusOr<ModelConfig> back = ParseConfig(FormatConfig(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(FormatConfig(*back), FormatConfig(c));
  EXPECT_EQ(back->mix, MemoryMix::kJoint);
  EXPECT_TRUE(back->edge_bias);
  absl::StatusOr<ModelConfig> bad = ParseConfig("layers=3\nmix=sometimes\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos);
  bad = ParseConfig("d_model=30\nheads=4\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("heads"), std::string::npos);
}

// A memory that records the queries it saw and answers Attend with a fixed
// output and lse.
class FixedMemory : public MemoryReader {
 public:
  FixedMemory(torch::Tensor output, torch::Tensor lse)
      : output_(output), lse_(lse) {}
  bool use_attend() const override { return true; }
  std::vector<std::optional<Neighbours>> Search(const torch::Tensor&,
                                                int) override {
    return {};
  }
  std::vector<std::optional<Attention>> Attend(const torch::Tensor& queries,
                                               int,
                                               const AttendOptions&) override {
    queries_ = queries;
    return std::vector<std::optional<Attention>>(
        static_cast<size_t>(queries.size(0)), Attention{output_, lse_});
  }
  int64_t newest(int) const override { return 0; }
  torch::Tensor queries_;

 private:
  torch::Tensor output_, lse_;
};

TEST(KnnLayerTest, NormalisesQueriesAndKeysAndGatesPerHead) {
  torch::manual_seed(1);
  const ModelConfig c = Tiny();
  AttentionLayer knn(c, /*knn=*/true);
  const int64_t t = c.segment, h = c.heads, dh = c.head_dim();
  const torch::Tensor x = torch::randn({1, t, c.d_model});
  const torch::Tensor mem_out = torch::randn({t, h, dh});
  FixedMemory memory(mem_out, torch::zeros({t, h}));
  torch::NoGradGuard no_grad;
  torch::Tensor keys, values;
  const torch::Tensor valid = torch::zeros({1}, torch::kBool);
  const torch::Tensor mixed =
      knn->forward(x, {}, {}, valid, &memory, &keys, &values);
  // The memory was asked with unit queries; the keys kept are unit too.
  EXPECT_TRUE(torch::allclose(memory.queries_.norm(2, -1),
                              torch::ones({1, t, h}), 1e-5, 1e-5));
  EXPECT_TRUE(
      torch::allclose(keys.norm(2, -1), torch::ones({1, h, t}), 1e-5, 1e-5));
  // out = g * memory + (1 - g) * local per head, before the output
  // projection W (affine: W((1-g)l + gm) + b = (1-g)(Wl + b) + g(Wm + b)
  // when g is the same for every head).
  const torch::Tensor local =
      knn->forward(x, {}, {}, valid, nullptr, &keys, &values);
  auto out = knn->named_modules()["out"]->as<torch::nn::Linear>();
  const torch::Tensor memory_part =
      out->forward(mem_out.reshape({1, t, h * dh}));
  const float g = 1.0f / (1.0f + std::exp(-c.gate_init));
  EXPECT_NEAR(knn->gate()[0].item<float>(), g, 1e-6);
  EXPECT_TRUE(
      torch::allclose(mixed, (1 - g) * local + g * memory_part, 1e-4, 1e-5));
}

// memory_share: the mix weight of memory per head, averaged over queries
// that had memory. Gate: sigmoid(b_h). Joint: sigmoid(lse_mem + b_h -
// lse_local), lse_local recomputed here from the layer's projection.
TEST(KnnLayerTest, MemoryShareIsTheMeanMixWeightOverQueriesWithMemory) {
  torch::manual_seed(8);
  ModelConfig c = Tiny();
  const int64_t t = c.segment, h = c.heads, dh = c.head_dim();
  const torch::Tensor x = torch::randn({1, t, c.d_model});
  const torch::Tensor valid = torch::zeros({1}, torch::kBool);
  torch::NoGradGuard no_grad;
  torch::Tensor keys, values;
  {
    AttentionLayer gate(c, /*knn=*/true);
    FixedMemory memory(torch::randn({t, h, dh}), torch::zeros({t, h}));
    gate->forward(x, {}, {}, valid, &memory, &keys, &values);
    const float g = 1.0f / (1.0f + std::exp(-c.gate_init));
    EXPECT_TRUE(torch::allclose(gate->memory_share(), torch::full({h}, g)));
    // Queries without memory do not count; none at all: NaN.
    gate->ResetMemoryShare();
    FixedMemory empty(
        torch::randn({t, h, dh}),
        torch::full({t, h}, -std::numeric_limits<float>::infinity()));
    gate->forward(x, {}, {}, valid, &empty, &keys, &values);
    EXPECT_TRUE(torch::isnan(gate->memory_share()).all().item<bool>());
  }
  c.mix = MemoryMix::kJoint;
  c.gate_init = -0.5f;
  AttentionLayer joint(c, /*knn=*/true);
  joint->named_parameters()["position_bias"].zero_();
  const float mem_lse = 2.0f;
  FixedMemory memory(torch::randn({t, h, dh}), torch::full({t, h}, mem_lse));
  joint->forward(x, {}, {}, valid, &memory, &keys, &values);
  auto qkv = joint->named_modules()["qkv"]->as<torch::nn::Linear>();
  const torch::Tensor parts =
      qkv->forward(x).view({t, 3, h, dh}).permute({1, 2, 0, 3});
  const torch::Tensor q = parts[0] / parts[0].norm(2, -1, true);
  const torch::Tensor k = parts[1] / parts[1].norm(2, -1, true);
  torch::Tensor scores =
      torch::matmul(q, k.transpose(-2, -1)) * joint->scale().view({h, 1, 1});
  const torch::Tensor future = torch::ones({t, t}).triu(1).to(torch::kBool);
  scores = scores.masked_fill(future, -1e30);
  const torch::Tensor local_lse = torch::logsumexp(scores, -1);  // [H, T]
  const torch::Tensor expected =
      torch::sigmoid(mem_lse + c.gate_init - local_lse).mean(-1);
  EXPECT_TRUE(torch::allclose(joint->memory_share(), expected, 1e-4, 1e-5))
      << joint->memory_share() << expected;
}

TEST(KnnLayerTest, AnEmptyMemoryLeavesTheLocalAnswer) {
  torch::manual_seed(2);
  const ModelConfig c = Tiny();
  AttentionLayer knn(c, /*knn=*/true);
  const int64_t t = c.segment, h = c.heads, dh = c.head_dim();
  const torch::Tensor x = torch::randn({1, t, c.d_model});
  FixedMemory memory(
      torch::randn({t, h, dh}),
      torch::full({t, h}, -std::numeric_limits<float>::infinity()));
  torch::NoGradGuard no_grad;
  torch::Tensor keys, values;
  const torch::Tensor valid = torch::zeros({1}, torch::kBool);
  EXPECT_TRUE(
      torch::allclose(knn->forward(x, {}, {}, valid, &memory, &keys, &values),
                      knn->forward(x, {}, {}, valid, nullptr, &keys, &values)));
}

// A memory holding one set of (key, value) pairs per head that answers
// Attend over all of them (no top-k: they are fewer than k).
class AllPairsMemory : public MemoryReader {
 public:
  AllPairsMemory(torch::Tensor keys, torch::Tensor values)
      : keys_(keys), values_(values) {}  // [H, M, Dh]
  bool use_attend() const override { return true; }
  std::vector<std::optional<Neighbours>> Search(const torch::Tensor&,
                                                int) override {
    return {};
  }
  std::vector<std::optional<Attention>> Attend(
      const torch::Tensor& queries, int,
      const AttendOptions& options) override {
    const torch::Tensor scale =
        torch::tensor(options.scale).view({1, -1, 1});  // [1, H, 1]
    const torch::Tensor scores =
        torch::einsum("thd,hmd->thm", {queries[0], keys_}) * scale;
    const torch::Tensor p = torch::softmax(scores, -1);
    return {Attention{torch::einsum("thm,hmd->thd", {p, values_}),
                      torch::logsumexp(scores, -1)}};
  }
  int64_t newest(int) const override { return 0; }

 private:
  torch::Tensor keys_, values_;
};

// Every parameter of `from` that `to` has too (a layer with an option off
// into the same layer with it on).
void CopyParameters(AttentionLayer& from, AttentionLayer& to) {
  torch::NoGradGuard no_grad;
  for (auto& p : from->named_parameters()) {
    to->named_parameters()[p.key()].copy_(p.value());
  }
}

// Joint softmax: the retrieved pairs join the local ones, memory's mass
// weighted by exp(b_h). Oracle: the same layer with the memory's pairs put
// in its XL cache, twice (b_h = log 2), and no position bias.
TEST(KnnLayerTest, JointSoftmaxIsOneSoftmaxOverLocalAndMemoryPairs) {
  torch::manual_seed(4);
  ModelConfig c = Tiny();
  c.mix = MemoryMix::kJoint;
  AttentionLayer knn(c, /*knn=*/true);
  const int64_t t = c.segment, h = c.heads, dh = c.head_dim(), m = 3;
  torch::NoGradGuard no_grad;
  knn->named_parameters()["position_bias"].zero_();
  knn->named_parameters()["gate_bias"].fill_(std::log(2.0f));
  const torch::Tensor x = torch::randn({1, t, c.d_model});
  const torch::Tensor mk = torch::randn({h, m, dh});
  const torch::Tensor mv = torch::randn({h, m, dh});
  AllPairsMemory memory(mk, mv);
  torch::Tensor keys, values;
  const torch::Tensor mixed = knn->forward(
      x, {}, {}, torch::zeros({1}, torch::kBool), &memory, &keys, &values);
  const torch::Tensor twice_k = torch::cat({mk, mk}, 1).unsqueeze(0);
  const torch::Tensor twice_v = torch::cat({mv, mv}, 1).unsqueeze(0);
  const torch::Tensor oracle =
      knn->forward(x, twice_k, twice_v, torch::ones({1}, torch::kBool), nullptr,
                   &keys, &values);
  EXPECT_TRUE(torch::allclose(mixed, oracle, 1e-4, 1e-5));
  // And the memory mattered: local attention alone differs.
  const torch::Tensor local = knn->forward(
      x, {}, {}, torch::zeros({1}, torch::kBool), nullptr, &keys, &values);
  EXPECT_GT((mixed - local).abs().max().item<float>(), 1e-2);
}

// With edge_bias, memory's prior also takes the position bias of the
// window's farthest key. Segment 16: the farthest local key is 31 back, T5
// bucket 16 + floor(log(31 / 16) / log(4096 / 16) * 16) = 17. Oracle: the
// layer without edge_bias, that bias moved into b_h.
TEST(KnnLayerTest, EdgeBiasGivesMemoryTheFarthestLocalKeysPositionBias) {
  torch::manual_seed(6);
  ModelConfig c = Tiny();
  c.mix = MemoryMix::kJoint;
  ModelConfig with_edge = c;
  with_edge.edge_bias = true;
  AttentionLayer plain(c, /*knn=*/true), edge(with_edge, /*knn=*/true);
  torch::NoGradGuard no_grad;
  CopyParameters(plain, edge);
  const torch::Tensor far = torch::tensor({-1.5f, 0.7f});
  edge->named_parameters()["position_bias"].zero_();
  edge->named_parameters()["position_bias"].select(1, 17).copy_(far);
  edge->named_parameters()["gate_bias"].zero_();
  plain->named_parameters()["position_bias"].zero_();
  plain->named_parameters()["gate_bias"].copy_(far);
  const int64_t h = c.heads, dh = c.head_dim(), m = 5;
  const torch::Tensor x = torch::randn({1, c.segment, c.d_model});
  AllPairsMemory memory(torch::randn({h, m, dh}), torch::randn({h, m, dh}));
  torch::Tensor keys, values;
  const torch::Tensor none = torch::zeros({1}, torch::kBool);
  const torch::Tensor got =
      edge->forward(x, {}, {}, none, &memory, &keys, &values);
  const torch::Tensor oracle =
      plain->forward(x, {}, {}, none, &memory, &keys, &values);
  EXPECT_TRUE(torch::allclose(got, oracle, 1e-4, 1e-5));
  // The bias mattered: with b_h 0 and no edge bias the answer differs.
  plain->named_parameters()["gate_bias"].zero_();
  const torch::Tensor unbiased =
      plain->forward(x, {}, {}, none, &memory, &keys, &values);
  EXPECT_GT((got - unbiased).abs().max().item<float>(), 1e-3);
}

// memory_scale: memory's scores get a scale of their own, local ones keep
// theirs. Oracle: q.(c k) s = (q.k)(c s): memory scale c times the local
// one equals the shared scale with memory's keys times c.
TEST(KnnLayerTest, MemoryScaleScalesOnlyMemorysScores) {
  torch::manual_seed(9);
  ModelConfig c = Tiny();
  c.mix = MemoryMix::kJoint;
  ModelConfig with_own = c;
  with_own.memory_scale = true;
  AttentionLayer plain(c, /*knn=*/true), own(with_own, /*knn=*/true);
  torch::NoGradGuard no_grad;
  CopyParameters(plain, own);
  const torch::Tensor log_scale = torch::tensor({0.3f, -0.8f});
  plain->named_parameters()["log_scale"].copy_(std::log(10.0f) + log_scale);
  own->named_parameters()["log_scale"].copy_(std::log(10.0f) + log_scale);
  own->named_parameters()["memory_log_scale"].copy_(std::log(10.0f * 3.0f) +
                                                    log_scale);
  const int64_t h = c.heads, dh = c.head_dim(), m = 5;
  const torch::Tensor x = torch::randn({1, c.segment, c.d_model});
  const torch::Tensor mk = torch::randn({h, m, dh});
  const torch::Tensor mv = torch::randn({h, m, dh});
  AllPairsMemory memory(mk, mv), tripled(mk * 3.0f, mv);
  torch::Tensor keys, values;
  const torch::Tensor none = torch::zeros({1}, torch::kBool);
  const torch::Tensor got =
      own->forward(x, {}, {}, none, &memory, &keys, &values);
  EXPECT_TRUE(torch::allclose(
      got, plain->forward(x, {}, {}, none, &tripled, &keys, &values), 1e-4,
      1e-5));
  EXPECT_GT((got - plain->forward(x, {}, {}, none, &memory, &keys, &values))
                .abs()
                .max()
                .item<float>(),
            1e-3);
}

class BackendTest : public ::testing::TestWithParam<MemoryMix> {};

TEST_P(BackendTest, SearchAndAttendAndBothBackendsGiveTheSameLogits) {
  ModelConfig c = Tiny();
  c.mix = GetParam();
  // Joint: with memory's own scale (not the local one) and the edge bias.
  c.memory_scale = c.edge_bias = c.mix == MemoryMix::kJoint;
  torch::manual_seed(3);
  Transformer model(c);
  if (c.memory_scale) {
    torch::NoGradGuard no_grad;
    model->knn_attention()->named_parameters()["memory_log_scale"].fill_(
        std::log(4.0f));
  }
  auto in_process = InProcessMemory::Create("", 2);
  ASSERT_TRUE(in_process.ok()) << in_process.status();
  TempDir dir;
  testing::ServerProcess server(dir.path());
  ASSERT_TRUE(server.Start()) << server.error();
  RemoteMemory remote(server.address(), std::chrono::seconds(30));

  const auto reference = Logits(model, in_process->get(), false, 1000);
  // Memory changes the answer (segments 2.. see segments 0..): the
  // comparison below is not of two memory-less runs.
  const auto without = Logits(model, nullptr, false, 0);
  EXPECT_GT((reference.back() - without.back()).abs().max().item<float>(),
            1e-3);
  EXPECT_LT((reference[1] - without[1]).abs().max().item<float>(), 1e-5);
  ExpectClose(Logits(model, in_process->get(), true, 1000), reference, 1e-4);
  ExpectClose(Logits(model, &remote, false, 1000), reference, 1e-4);
  ExpectClose(Logits(model, &remote, true, 1000), reference, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Mixes, BackendTest,
                         ::testing::Values(MemoryMix::kGate, MemoryMix::kJoint),
                         [](const auto& info) {
                           return std::string(info.param == MemoryMix::kGate
                                                  ? "Gate"
                                                  : "Joint");
                         });

TEST(AgePenaltyTest, SearchInTheGraphMatchesTheServersAttend) {
  // With a staleness penalty, the scores recomputed from Search's
  // neighbours (training) and the server's Attend (inference) use the same
  // ages and formula, and the penalty changes the answer.
  ModelConfig c = Tiny();
  c.age_penalty = true;
  c.age_tau = 8;
  torch::manual_seed(5);
  Transformer model(c);
  auto memory = InProcessMemory::Create("", 2);
  ASSERT_TRUE(memory.ok()) << memory.status();
  const auto no_penalty = Logits(model, memory->get(), true, 1000);
  {
    torch::NoGradGuard no_grad;
    model->knn_attention()->age_alpha().copy_(torch::tensor({0.5f, 2.0f}));
  }
  const auto searched = Logits(model, memory->get(), false, 1000);
  ExpectClose(Logits(model, memory->get(), true, 1000), searched, 1e-4);
  EXPECT_GT((searched.back() - no_penalty.back()).abs().max().item<float>(),
            1e-3);
}

// Incremental decoding against whole segments: the logits at every
// position equal those of the full forward of its segment (causal: the same
// as re-running the partial segment), memory and XL cache included, with
// the memory in process and on a server (one DecodeStep per step).
TEST(GeneratorTest, OnePositionPerStepEqualsWholeSegments) {
  ModelConfig c = Tiny();
  torch::manual_seed(6);
  Transformer model(c);
  model->eval();
  torch::NoGradGuard no_grad;
  constexpr int kLanes = 3;
  const int64_t positions = 4 * c.segment + 5;  // memory fills from 3
  const torch::Tensor bytes =
      torch::randint(0, 256, {kLanes, positions}, torch::kInt64);
  const MemoryShape shape{c.heads, c.head_dim(), c.head_dim(), 1000};

  // The reference: ForwardAndEvict per whole segment; the partial last
  // segment on a copy of the state.
  auto reference_memory = InProcessMemory::Create("", 2);
  ASSERT_TRUE(reference_memory.ok()) << reference_memory.status();
  MemoryLink reference_link(reference_memory->get(), kLanes, shape, true);
  std::vector<torch::Tensor> want;  // [lanes, 256] per position
  XlState state;
  for (int64_t first = 0; first < positions; first += c.segment) {
    const int64_t t = std::min<int64_t>(c.segment, positions - first);
    if (first == 0) {
      for (int l = 0; l < kLanes; ++l) {
        reference_link.BeginStream(l, "ref-" + std::to_string(l));
      }
    }
    const torch::Tensor tokens = bytes.narrow(1, first, t);
    torch::Tensor logits;
    if (t == c.segment) {
      logits = ForwardAndEvict(model, tokens, state, &reference_link);
    } else {
      XlState scratch = state;
      logits = model->forward(tokens, scratch, &reference_link);
    }
    for (int64_t j = 0; j < t; ++j) want.push_back(logits.select(1, j));
  }

  auto in_process = InProcessMemory::Create("", 2);
  ASSERT_TRUE(in_process.ok()) << in_process.status();
  TempDir dir;
  testing::ServerProcess server(dir.path());
  ASSERT_TRUE(server.Start()) << server.error();
  RemoteMemory remote(server.address(), std::chrono::seconds(30));
  for (Memory* memory : {static_cast<Memory*>(in_process->get()),
                         static_cast<Memory*>(&remote)}) {
    SCOPED_TRACE(memory == &remote ? "remote" : "in process");
    MemoryLink link(memory, kLanes, shape, true);
    for (int l = 0; l < kLanes; ++l) {
      link.BeginStream(l, "gen-" + std::to_string(l));
    }
    Generator generator(model, &link, kLanes);
    for (int64_t p = 0; p < positions; ++p) {
      const torch::Tensor got = generator.Step(bytes.select(1, p));
      ASSERT_LT((got - want[p]).abs().max().item<float>(), 1e-4)
          << "position " << p;
    }
    EXPECT_EQ(link.failures(), 0);
    // Memory was read: three segments left the window.
    EXPECT_EQ(link.newest(0), 3 * c.segment - 1);
  }
  // Without memory the last positions differ: the test above compares
  // runs that used it.
  Generator local(model, nullptr, kLanes);
  torch::Tensor last;
  for (int64_t p = 0; p < positions; ++p) last = local.Step(bytes.select(1, p));
  EXPECT_GT((last - want.back()).abs().max().item<float>(), 1e-3);
}

TEST(DegradationTest, AServerKilledMidDocumentLeavesLocalAttention) {
  ModelConfig c = Tiny();
  torch::manual_seed(4);
  Transformer model(c);
  TempDir dir;
  testing::ServerProcess server(dir.path());
  ASSERT_TRUE(server.Start()) << server.error();
  RemoteMemory remote(server.address(), std::chrono::seconds(5));
  torch::NoGradGuard no_grad;
  DocumentReader reader(model, &remote, 2, 1000, true, "doc");
  const auto batches = Batches(2, 6, c.segment);
  for (int s = 0; s < 3; ++s) reader.Step(batches[s]);
  EXPECT_EQ(reader.link().failures(), 0);
  server.Kill();
  for (int s = 3; s < 6; ++s) {
    StepResult r = reader.Step(batches[s]);
    EXPECT_TRUE(torch::isfinite(r.logits).all().item<bool>()) << s;
    EXPECT_TRUE(std::isfinite(r.loss.item<float>()));
  }
  // One failure per lane: a lane that failed does not ask again.
  EXPECT_EQ(reader.link().failures(), 2);
}

}  // namespace
}  // namespace knnmem::model
