#include "tests/support/server_fixture.h"

namespace knnmem::testing {

void ServerFixture::SetUp() { StartServer(); }

void ServerFixture::TearDown() {
  if (server_) {
    EXPECT_EQ(StopServer(), 0);
  }
}

int ServerFixture::StopServer() {
  client_.reset();
  return server_->Stop();
}

void ServerFixture::StartServer(std::vector<std::string> extra_args) {
  server_ =
      std::make_unique<ServerProcess>(dir_.Sub("data"), std::move(extra_args));
  ASSERT_TRUE(server_->Start()) << server_->error();
  client_ = client::MemoryClient::Connect(server_->address());
}

v1::StreamSpec ServerFixture::MakeSpec(uint32_t layers, uint32_t heads,
                                       uint32_t key_dim, uint32_t value_dim,
                                       uint64_t capacity, v1::DType dtype) {
  v1::StreamSpec s;
  s.set_layers(layers);
  s.set_heads(heads);
  s.set_key_dim(key_dim);
  s.set_value_dim(value_dim);
  s.set_capacity(capacity);
  s.set_storage_dtype(dtype);
  return s;
}

ServerFixture::RandomBatch ServerFixture::MakeRandomBatch(
    const std::string& stream, uint32_t layer, int64_t first, int64_t rows,
    int heads, int key_dim, int value_dim, DType wire) {
  RandomBatch b;
  b.first = first;
  b.rows = rows;
  b.heads = heads;
  b.key_dim = key_dim;
  b.value_dim = value_dim;
  b.wire = wire;
  std::normal_distribution<float> normal;
  b.keys.resize(rows * heads * key_dim);
  b.values.resize(rows * heads * value_dim);
  for (float& x : b.keys) x = normal(rng_);
  for (float& x : b.values) x = normal(rng_);
  b.request = *client::MakeAppendRequest(stream, layer, first, b.keys, b.values,
                                         rows, heads, wire);
  return b;
}

Shards StartShards(const TempDir& dir, int n) {
  Shards shards;
  for (int i = 0; i < n; ++i) {
    shards.servers.push_back(
        std::make_unique<ServerProcess>(dir.Sub("shard" + std::to_string(i))));
    EXPECT_TRUE(shards.servers.back()->Start())
        << shards.servers.back()->error();
    shards.list.push_back(
        {"shard-" + std::to_string(i), shards.servers.back()->address()});
  }
  return shards;
}

void ServerFixture::Record(const RandomBatch& b, const v1::AppendResponse& ack,
                           DType storage, Written* written) {
  auto round = [&](const std::vector<float>& x) {
    return UnpackFloats(
        PackFloats(UnpackFloats(PackFloats(x, b.wire), b.wire), storage),
        storage);
  };
  const std::vector<float> rk = round(b.keys), rv = round(b.values);
  const int heads = b.heads, key_dim = b.key_dim, value_dim = b.value_dim;
  written->oracle.heads = heads;
  written->oracle.key_dim = key_dim;
  written->value_dim = value_dim;
  const int64_t new_from =
      ack.next_position() - static_cast<int64_t>(ack.stored());
  for (int64_t i = 0; i < b.rows; ++i) {
    if (b.first + i < new_from) continue;  // already stored earlier
    written->oracle.keys[b.first + i].assign(
        rk.begin() + i * heads * key_dim,
        rk.begin() + (i + 1) * heads * key_dim);
    written->values[b.first + i].assign(
        rv.begin() + i * heads * value_dim,
        rv.begin() + (i + 1) * heads * value_dim);
  }
  while (written->oracle.keys.size() > written->capacity) {
    written->values.erase(written->oracle.keys.begin()->first);
    written->oracle.keys.erase(written->oracle.keys.begin());
  }
}

absl::StatusOr<v1::AppendResponse> ServerFixture::AppendRandom(
    const std::string& stream, uint32_t layer, int64_t first, int64_t rows,
    int heads, int key_dim, int value_dim, DType storage, Written* written,
    DType wire) {
  const RandomBatch b = MakeRandomBatch(stream, layer, first, rows, heads,
                                        key_dim, value_dim, wire);
  auto r = client_->Append(b.request);
  if (r.ok() && written != nullptr) Record(b, *r, storage, written);
  return r;
}

client::Neighbours ServerFixture::SearchAndCheck(
    const std::string& stream, uint32_t layer, int n, uint32_t k,
    const Written& written, DType storage, uint64_t query_seed) {
  const int heads = written.oracle.heads, dk = written.oracle.key_dim;
  const int dv = written.value_dim;
  std::mt19937 qrng(static_cast<uint32_t>(query_seed));
  std::normal_distribution<float> normal;
  std::vector<float> queries(n * heads * dk);
  for (float& x : queries) x = normal(qrng);
  auto r = client_->Search(stream, layer, queries, n, heads, k, true, true);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  EXPECT_EQ(r->queries, n);
  EXPECT_EQ(r->heads, heads);
  EXPECT_EQ(r->k, static_cast<int64_t>(k));
  for (int q = 0; q < n; ++q) {
    for (int h = 0; h < heads; ++h) {
      const size_t base = (static_cast<size_t>(q) * heads + h) * k;
      const std::string diff = CompareWithOracle(
          written.oracle, queries.data() + q * heads * dk, h, k,
          r->scores.data() + base, r->positions.data() + base, 2e-3);
      EXPECT_EQ(diff, "") << "query " << q << " head " << h << " ("
                          << DTypeName(storage) << ")";
      if (!diff.empty()) return *r;
      for (uint32_t j = 0; j < k; ++j) {
        const int64_t p = r->positions[base + j];
        for (int d = 0; d < dk; ++d) {
          const float want =
              p < 0 ? 0.0f : written.oracle.keys.at(p)[h * dk + d];
          if (r->keys[(base + j) * dk + d] != want) {
            ADD_FAILURE() << "key of position " << p << " differs at " << d;
            return *r;
          }
        }
        for (int d = 0; d < dv; ++d) {
          const float want = p < 0 ? 0.0f : written.values.at(p)[h * dv + d];
          if (r->values[(base + j) * dv + d] != want) {
            ADD_FAILURE() << "value of position " << p << " differs at " << d;
            return *r;
          }
        }
      }
    }
  }
  return *r;
}

}  // namespace knnmem::testing
