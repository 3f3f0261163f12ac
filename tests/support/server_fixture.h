// ServerFixture: a gtest fixture with a real knnmem-server on 127.0.0.1:0 in
// a temp dir, a client connected to it, and helpers that keep a
// brute-force oracle of what the test stored.
#ifndef KNNMEM_TESTS_SUPPORT_SERVER_FIXTURE_H_
#define KNNMEM_TESTS_SUPPORT_SERVER_FIXTURE_H_

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "client/sharded_client.h"
#include "tests/support/oracle.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {

// What the test wrote to one (stream, layer): keys for the oracle, and the
// stored bytes of keys and values (as float32 after the storage rounding).
struct Written {
  OracleMemory oracle;
  std::map<int64_t, std::vector<float>>
      values;  // position -> [heads, value_dim]
  int value_dim = 0;
  uint64_t capacity = 0;
};

// `n` real servers, in dir/shard0.., named "shard-0".. in `list`: with
// named shards, placement depends on the names, not on the free ports a run
// happened to get. A server that fails to start fails the test.
struct Shards {
  std::vector<std::unique_ptr<ServerProcess>> servers;
  std::vector<client::ServerAddress> list;
};
Shards StartShards(const TempDir& dir, int n);

class ServerFixture : public ::testing::Test {
 public:
  static v1::StreamSpec MakeSpec(uint32_t layers, uint32_t heads,
                                 uint32_t key_dim, uint32_t value_dim,
                                 uint64_t capacity,
                                 v1::DType dtype = v1::FLOAT32);

 protected:
  void SetUp() override;
  void TearDown() override;

  // (Re)starts the server on the same data dir and reconnects.
  void StartServer(std::vector<std::string> extra_args = {});
  // Disconnects the client, then stops the server with SIGTERM; returns its
  // exit status.
  int StopServer();

  // `rows` normal random rows at `first`, as an Append request sent as
  // `wire`. Record adds them to `written` once the server acknowledged them.
  struct RandomBatch {
    v1::AppendRequest request;
    std::vector<float> keys, values;  // float32, before any rounding
    int64_t first = 0, rows = 0;
    int heads = 0, key_dim = 0, value_dim = 0;
    DType wire = DType::kFloat32;
  };
  RandomBatch MakeRandomBatch(const std::string& stream, uint32_t layer,
                              int64_t first, int64_t rows, int heads,
                              int key_dim, int value_dim,
                              DType wire = DType::kFloat32);
  static void Record(const RandomBatch& batch, const v1::AppendResponse& ack,
                     DType storage, Written* written);

  // Appends `rows` normal random rows at `first`, sent as `wire`; on success
  // records them (rounded to `storage`) in `written`, evicting past capacity.
  absl::StatusOr<v1::AppendResponse> AppendRandom(
      const std::string& stream, uint32_t layer, int64_t first, int64_t rows,
      int heads, int key_dim, int value_dim, DType storage, Written* written,
      DType wire = DType::kFloat32);

  // Searches `n` random queries with keys and values returned and checks
  // every answer against the oracle, and keys/values against what was
  // written. Returns the raw answer for further comparison.
  client::Neighbours SearchAndCheck(const std::string& stream, uint32_t layer,
                                    int n, uint32_t k, const Written& written,
                                    DType storage, uint64_t query_seed);

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<client::MemoryClient> client_;
  std::mt19937 rng_{12345};
};

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_SERVER_FIXTURE_H_
