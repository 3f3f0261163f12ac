#include "model/in_process_memory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "base/worker_pool.h"
#include "model/memory_tensors.h"
#include "server/store/memory_store.h"

namespace knnmem::model {
namespace {

// The float32 rows a knnmem::Neighbours carries (the streams store float32),
// read in place.
absl::Span<const float> FloatsIn(const std::string& bytes) {
  return {reinterpret_cast<const float*>(bytes.data()),
          bytes.size() / sizeof(float)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<InProcessMemory>> InProcessMemory::Create(
    const std::string& data_dir, int workers) {
  std::string dir = data_dir;
  std::unique_ptr<TempDir> temp;
  if (dir.empty()) {
    ASSIGN_OR_RETURN(temp, TempDir::Create("knnmem-model-"));
    dir = temp->path();
  }
  auto pool = std::make_unique<WorkerPool>(std::max(1, workers));
  MemoryStore::Options options;
  options.data_dir = dir;
  options.pool = pool.get();
  options.shards = 4;
  ASSIGN_OR_RETURN(std::unique_ptr<MemoryStore> store,
                   MemoryStore::Open(options));
  return std::unique_ptr<InProcessMemory>(
      new InProcessMemory(std::move(temp), std::move(pool), std::move(store)));
}

InProcessMemory::InProcessMemory(std::unique_ptr<TempDir> temp_dir,
                                 std::unique_ptr<WorkerPool> pool,
                                 std::unique_ptr<MemoryStore> store)
    : temp_dir_(std::move(temp_dir)),
      pool_(std::move(pool)),
      store_(std::move(store)) {}

InProcessMemory::~InProcessMemory() {
  store_.reset();  // closes RocksDB before temp_dir_ removes its directory
  pool_.reset();
}

absl::StatusOr<StreamSpec> InProcessMemory::SpecOf(
    const std::string& stream) const {
  auto it = shapes_.find(stream);
  if (it == shapes_.end()) {
    return absl::NotFoundError(
        absl::StrCat("document '", stream, "' has no memory open"));
  }
  StreamSpec spec;
  spec.layers = 1;
  spec.heads = static_cast<uint32_t>(it->second.heads);
  spec.key_dim = static_cast<uint32_t>(it->second.key_dim);
  spec.value_dim = static_cast<uint32_t>(it->second.value_dim);
  spec.capacity = static_cast<uint64_t>(it->second.capacity);
  return spec;
}

absl::Status InProcessMemory::BeginStream(const std::string& stream,
                                          const MemoryShape& shape) {
  absl::Status dropped = store_->DeleteStream(stream);
  if (!dropped.ok() && !absl::IsNotFound(dropped)) return dropped;
  shapes_[stream] = shape;
  ASSIGN_OR_RETURN(StreamSpec spec, SpecOf(stream));
  RETURN_IF_ERROR(ValidateSpec(spec));
  bool created = false;
  return store_->CreateStream(stream, spec, &created).status();
}

absl::Status InProcessMemory::EndStream(const std::string& stream) {
  shapes_.erase(stream);
  absl::Status s = store_->DeleteStream(stream);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status InProcessMemory::Append(const std::string& stream, int64_t first,
                                     const torch::Tensor& keys,
                                     const torch::Tensor& values) {
  ASSIGN_OR_RETURN(StreamSpec spec, SpecOf(stream));
  RETURN_IF_ERROR(CheckRows(keys, "keys", spec.heads, spec.key_dim));
  RETURN_IF_ERROR(CheckRows(values, "values", spec.heads, spec.value_dim));
  const torch::Tensor k = Flat(keys), v = Flat(values);
  AppendCommand cmd;
  cmd.stream_id = stream;
  cmd.spec = spec;
  cmd.first_position = first;
  cmd.rows = static_cast<size_t>(k.size(0));
  cmd.keys = absl::string_view(reinterpret_cast<const char*>(k.data_ptr()),
                               k.numel() * sizeof(float));
  cmd.values = absl::string_view(reinterpret_cast<const char*>(v.data_ptr()),
                                 v.numel() * sizeof(float));
  return store_->Append(cmd).status();
}

struct InProcessMemory::Queries {
  StreamSpec spec;
  std::vector<float> floats;  // [n, heads, key_dim]
  int64_t n = 0;
};

absl::StatusOr<InProcessMemory::Queries> InProcessMemory::QueriesOf(
    const std::string& stream, const torch::Tensor& queries) const {
  ASSIGN_OR_RETURN(StreamSpec spec, SpecOf(stream));
  RETURN_IF_ERROR(CheckRows(queries, "queries", spec.heads, spec.key_dim));
  const torch::Tensor flat = Flat(queries);
  const absl::Span<const float> q = FloatsOf(flat);
  return Queries{spec, std::vector<float>(q.begin(), q.end()), queries.size(0)};
}

absl::StatusOr<Neighbours> InProcessMemory::Search(const std::string& stream,
                                                   const torch::Tensor& queries,
                                                   int k) {
  ASSIGN_OR_RETURN(Queries q, QueriesOf(stream, queries));
  SearchCommand cmd{stream, q.spec, 0, std::move(q.floats), {}};
  cmd.options.k = static_cast<uint32_t>(k);
  cmd.options.return_keys = cmd.options.return_values = true;
  ASSIGN_OR_RETURN(knnmem::Neighbours r, store_->Search(cmd));
  return MakeNeighbours(q.n, shapes_.at(stream), k, FloatsIn(r.keys),
                        FloatsIn(r.values), r.positions);
}

absl::StatusOr<Attention> InProcessMemory::Attend(
    const std::string& stream, const torch::Tensor& queries, int k,
    const AttendOptions& options) {
  ASSIGN_OR_RETURN(Queries q, QueriesOf(stream, queries));
  AttendCommand cmd{
      stream, q.spec, 0, std::move(q.floats), static_cast<uint32_t>(k), {}, {}};
  cmd.options.scale = options.scale;
  cmd.options.age_alpha = options.age_alpha;
  cmd.options.age_tau = options.age_tau;
  ASSIGN_OR_RETURN(knnmem::Attention r, store_->Attend(cmd));
  const int64_t h = q.spec.heads;
  return Attention{FloatTensor(r.output, {q.n, h, int64_t{q.spec.value_dim}}),
                   FloatTensor(r.lse, {q.n, h})};
}

}  // namespace knnmem::model
