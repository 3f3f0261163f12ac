// The peers knnmem is measured against, in-process, on the same BenchData:
//   FlatPeer    FAISS IndexFlatIP, one index per head (exact top-k)
//   HnswPeer    FAISS IndexHNSWFlat, M = 15, METRIC_INNER_PRODUCT, one index
//               per head (what memorizing-transformers-pytorch uses), FAISS's
//               default efConstruction (40) and efSearch (16)
//   SgemmPeer   bare cblas_sgemm of the score matrix: the compute floor
//   RocksDbPeer bare RocksDB WriteBatch of an Append's bytes: the storage
//               floor
// The only module that touches FAISS, OpenBLAS and RocksDB in the benchmark.
// Every FAISS exception (faiss::FaissException and std::exception) is caught
// here and returned as an INTERNAL status naming the peer.
#ifndef KNNMEM_BENCH_PEERS_H_
#define KNNMEM_BENCH_PEERS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/data.h"
#include "bench/recall.h"

namespace faiss {
struct IndexFlatIP;
struct IndexHNSWFlat;
}  // namespace faiss

namespace rocksdb {
class DB;
}

namespace knnmem::bench {

// Sets the threads of OpenMP (FAISS) and of OpenBLAS (sgemm, and FAISS's own
// BLAS calls, which reach the same libopenblas) in this process.
void SetPeerThreads(int threads);
// Sets OpenMP's threads only (FAISS's own parallel loops).
void SetOmpThreads(int threads);
// The counts in effect: omp_get_max_threads(), openblas_get_num_threads().
int OmpThreads();
int BlasThreads();

// FAISS IndexFlatIP per head: the exact top-k (the recall reference).
class FlatPeer {
 public:
  explicit FlatPeer(const Shape& shape);
  ~FlatPeer();

  // Adds rows [first, first + rows) of every head, in position order.
  absl::Status Add(const BenchData& data, int64_t first, int64_t rows);
  // Top shape.k of every query of every head.
  absl::StatusOr<TopK> Search(const BenchData& data);
  int64_t entries() const;

 private:
  Shape shape_;
  std::vector<std::unique_ptr<faiss::IndexFlatIP>> heads_;
};

// FAISS IndexHNSWFlat per head, for the first `indexed_heads` heads (all
// of them by default). Search returns TopK of those heads only.
class HnswPeer {
 public:
  static constexpr int kM = 15;

  explicit HnswPeer(const Shape& shape, int indexed_heads = 0);
  ~HnswPeer();

  absl::Status Add(const BenchData& data, int64_t first, int64_t rows);
  absl::StatusOr<TopK> Search(const BenchData& data);
  int64_t entries() const;
  int ef_construction() const;
  int ef_search() const;
  void set_ef_search(int ef);
  int indexed_heads() const { return static_cast<int>(heads_.size()); }

 private:
  Shape shape_;
  std::vector<std::unique_ptr<faiss::IndexHNSWFlat>> heads_;
};

// For every head, C[queries, entries] = Q_h[queries, key_dim] x
// K_h[entries, key_dim]^T into one reused buffer; no top-k.
class SgemmPeer {
 public:
  explicit SgemmPeer(const Shape& shape) : shape_(shape) {}
  // Scores every query against the first `entries` keys of every head: one
  // call per head writing the whole [queries, entries] matrix.
  void Scores(const BenchData& data, int64_t entries);
  // The score of (query 0, entry 0) of the last head: keeps the work alive.
  float first_score() const { return scores_.empty() ? 0.0f : scores_[0]; }

 private:
  Shape shape_;
  std::vector<float> scores_;
};

// A RocksDB with the options the server uses (no compression, 2 background
// jobs, 64 MiB write buffer) written like the server writes one Append: one
// WriteBatch, one record per token, key 'D' + incarnation(8) + layer(4) +
// position(8) big-endian (21 bytes), value = the token's keys [heads,
// key_dim] then values [heads, value_dim] as float32; WAL on, sync = false.
class RocksDbPeer {
 public:
  static absl::StatusOr<std::unique_ptr<RocksDbPeer>> Open(
      const std::string& dir);
  ~RocksDbPeer();

  // Writes rows [first, first + rows) at positions first..; returns the
  // batch's data size in bytes.
  absl::StatusOr<size_t> Append(const BenchData& data, int64_t first,
                                int64_t rows);

 private:
  explicit RocksDbPeer(std::unique_ptr<rocksdb::DB> db);
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_PEERS_H_
