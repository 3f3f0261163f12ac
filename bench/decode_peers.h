// The peers of W-decode: FAISS indexes per (stream, head), each searched
// with the one query a decode step asks of it, all of a step's searches in
// parallel over this process's OpenMP threads (each search itself on one
// thread, as FAISS runs a single query).
//   kFlat  IndexFlatIP (exact)
//   kIvf   IndexIVFFlat, inner product, `nlist` lists trained by FAISS
//          k-means (10 iterations) on the index's first 64 x nlist keys,
//          `nprobe` lists probed: what knnmem's APPROXIMATE tier does
//   kHnsw  IndexHNSWFlat, M = 15, inner product, FAISS's default
//          efConstruction; efSearch set by the caller
// With FAISS, this file and peers.cc are the benchmark's only FAISS users.
#ifndef KNNMEM_BENCH_DECODE_PEERS_H_
#define KNNMEM_BENCH_DECODE_PEERS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace faiss {
struct Index;
}

namespace knnmem::bench {

class DecodePeer {
 public:
  enum class Kind { kFlat, kIvf, kHnsw };

  // `indexes` empty indexes of `dim` dimensions.
  DecodePeer(Kind kind, int indexes, int dim, int nlist = 0, int nprobe = 0);
  ~DecodePeer();

  // Adds `rows` keys (row-major, `dim` floats each) to index `i`: all of
  // its keys at once (IVF trains on the first of them).
  absl::Status Add(int i, const float* keys, int64_t rows);
  // Index i of the step searches queries[i] (`dim` floats) for its top k;
  // labels [indexes.size(), k]. Runs the searches in parallel.
  absl::StatusOr<std::vector<int64_t>> Search(
      const std::vector<int>& indexes, const std::vector<const float*>& queries,
      int k) const;
  void set_ef_search(int ef);   // kHnsw
  void set_nprobe(int nprobe);  // kIvf
  int size() const { return static_cast<int>(indexes_.size()); }

 private:
  Kind kind_;
  int dim_, nlist_, nprobe_;
  std::vector<std::unique_ptr<faiss::Index>> indexes_;
  std::vector<std::unique_ptr<faiss::Index>> quantizers_;  // kIvf
};

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_DECODE_PEERS_H_
