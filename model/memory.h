// Memory: where the kNN layer's keys and values go once they leave the
// local window, one stream per document, and where its queries find their
// top-k. Two backends share this interface: InProcessMemory (the server's
// core linked into the model process, for training speed and tests) and
// RemoteMemory (a knnmem server over gRPC). Calls name the stream by its id
// (MemoryLink makes one per document a lane reads).
#ifndef KNNMEM_MODEL_MEMORY_H_
#define KNNMEM_MODEL_MEMORY_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace knnmem::model {

struct MemoryShape {
  int heads = 0;
  int key_dim = 0;
  int value_dim = 0;
  int64_t capacity = 0;  // entries kept per head, first in first out
};

// Search's answer for n queries (the server's and the clients' Neighbours
// as tensors), float32 on the CPU: keys [n, heads, k, key_dim], values
// [n, heads, k, value_dim], positions int64 [n, heads, k] (-1 where the
// memory holds fewer than k entries).
struct Neighbours {
  torch::Tensor keys, values, positions;
};

// Attend's answer: output [n, heads, value_dim], lse [n, heads] (-inf
// where the memory is empty).
struct Attention {
  torch::Tensor output, lse;
};

// Softmax temperature and staleness penalty of Attend, per head: logits
// are scale[h] * (score - age_alpha[h] * log1p(age / age_tau)), age being
// the newest position minus the entry's. Empty age_alpha: no penalty.
struct AttendOptions {
  std::vector<float> scale;
  std::vector<float> age_alpha;
  float age_tau = 1.0f;
};

// One stream's queries [n, heads, key_dim] in a call for several.
struct StreamQueries {
  std::string stream;
  torch::Tensor queries;
};

class Memory {
 public:
  virtual ~Memory() = default;

  // Starts `stream` empty (a stream of that id is replaced).
  virtual absl::Status BeginStream(const std::string& stream,
                                   const MemoryShape& shape) = 0;
  // Drops the stream.
  virtual absl::Status EndStream(const std::string& stream) = 0;
  // keys [n, heads, key_dim] and values [n, heads, value_dim], float32, at
  // positions first, first + 1, ...
  virtual absl::Status Append(const std::string& stream, int64_t first,
                              const torch::Tensor& keys,
                              const torch::Tensor& values) = 0;
  // Top-k by inner product of float32 queries [n, heads, key_dim], with the
  // keys and values (training: the scores are recomputed in the graph so
  // that gradients reach the queries).
  virtual absl::StatusOr<Neighbours> Search(const std::string& stream,
                                            const torch::Tensor& queries,
                                            int k) = 0;
  // The finished memory attention (inference: only outputs travel).
  virtual absl::StatusOr<Attention> Attend(const std::string& stream,
                                           const torch::Tensor& queries, int k,
                                           const AttendOptions& options) = 0;
  // Attend for several streams at once (a decode step of several lanes),
  // each answered or failed on its own, in order. This default asks one
  // stream after the other; RemoteMemory makes one DecodeStep call.
  virtual std::vector<absl::StatusOr<Attention>> AttendMany(
      const std::vector<StreamQueries>& asks, int k,
      const AttendOptions& options) {
    std::vector<absl::StatusOr<Attention>> out;
    out.reserve(asks.size());
    for (const StreamQueries& a : asks) {
      out.push_back(Attend(a.stream, a.queries, k, options));
    }
    return out;
  }
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_MEMORY_H_
