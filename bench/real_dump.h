// What W-real reads and fills: a dump of `knnmem-model dump-keys` (the
// files: model/recording_memory.h), one memory size's keys, values and
// queries taken from it (a Case), a knnmem stream filled with a case, and
// the oracle: the brute-force top-k of the case's queries and the recall
// of an answer against it.
#ifndef KNNMEM_BENCH_REAL_DUMP_H_
#define KNNMEM_BENCH_REAL_DUMP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/npy.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

struct DumpDoc {
  std::string name;
  int64_t key_row = 0, keys = 0;
};
struct QueryCall {
  std::string document;
  int64_t row = 0, rows = 0, keys_in_memory = 0;
};
struct Dump {
  NpyArray keys, values, queries;  // [rows, heads, dim], float32
  std::vector<DumpDoc> documents;
  std::vector<QueryCall> calls;
  int heads = 0, key_dim = 0, value_dim = 0;
};

// Reads keys/values/queries.npy, documents.tsv and queries.tsv of `dir`;
// INVALID_ARGUMENT naming the file when they disagree.
absl::StatusOr<Dump> LoadDump(const std::string& dir);

// One memory size: the first `entries` keys and values of the longest
// document, and the queries ([heads, key_dim] each) of `steps` decode steps.
struct Case {
  std::string document;
  const float* keys = nullptr;    // [entries, heads, key_dim]
  const float* values = nullptr;  // [entries, heads, value_dim]
  int64_t entries = 0;
  std::vector<const float*> queries;
};

// The queries the document asked once it had appended `entries` keys (the
// model's own next queries to that memory), or all of its queries if too
// few were, spread evenly over `steps`. OUT_OF_RANGE when the longest
// document is shorter or asked fewer queries.
absl::StatusOr<Case> PickCase(const Dump& dump, int64_t entries, int steps);

// The brute-force top-k positions of every (step, head): [steps, heads, k],
// ties to the lower position (on all cores).
std::vector<int64_t> BruteTopK(const Case& c, int heads, int dim, int k);

// Mean share of the true top-k found in `got`, per group of k.
double Recall(const std::vector<int64_t>& got,
              const std::vector<int64_t>& truth, int k);

// How a filled stream indexes its keys.
struct FillSpec {
  bool approximate = true;
  uint32_t nlist = 0, nprobe = 0;
  uint64_t exact_tail = 0;
};

// Creates `id` (float32 storage, capacity = the case's entries), appends
// the case's keys and values, and for APPROXIMATE waits until the tier
// holds every chunk past the exact tail. `id` goes to *created.
absl::Status FillStream(client::ShardedClient& client, const std::string& id,
                        const Dump& dump, const Case& c, const FillSpec& spec,
                        std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_REAL_DUMP_H_
