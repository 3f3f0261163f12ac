// InProcessMemory: the Memory interface over the server's own MemoryStore,
// linked into the model process (RocksDB in a directory of its own, the
// same exact top-k kernel and attention as the server), with no network.
#ifndef KNNMEM_MODEL_IN_PROCESS_MEMORY_H_
#define KNNMEM_MODEL_IN_PROCESS_MEMORY_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "model/memory.h"

namespace knnmem {
class MemoryStore;
class TempDir;
class WorkerPool;
struct StreamSpec;
}  // namespace knnmem

namespace knnmem::model {

class InProcessMemory : public Memory {
 public:
  // A store in `data_dir`, or in a fresh temporary directory (removed on
  // destruction) when it is empty; `workers` threads search.
  static absl::StatusOr<std::unique_ptr<InProcessMemory>> Create(
      const std::string& data_dir, int workers);
  ~InProcessMemory() override;

  absl::Status BeginStream(const std::string& stream,
                           const MemoryShape& shape) override;
  absl::Status EndStream(const std::string& stream) override;
  absl::Status Append(const std::string& stream, int64_t first,
                      const torch::Tensor& keys,
                      const torch::Tensor& values) override;
  absl::StatusOr<Neighbours> Search(const std::string& stream,
                                    const torch::Tensor& queries,
                                    int k) override;
  absl::StatusOr<Attention> Attend(const std::string& stream,
                                   const torch::Tensor& queries, int k,
                                   const AttendOptions& options) override;

 private:
  InProcessMemory(std::unique_ptr<TempDir> temp_dir,
                  std::unique_ptr<WorkerPool> pool,
                  std::unique_ptr<MemoryStore> store);
  absl::StatusOr<StreamSpec> SpecOf(const std::string& stream) const;
  // A stream's spec and `queries` checked against it, as floats.
  struct Queries;
  absl::StatusOr<Queries> QueriesOf(const std::string& stream,
                                    const torch::Tensor& queries) const;

  // Null with a data_dir; destroyed (removed) after the store, which is
  // declared after it.
  std::unique_ptr<TempDir> temp_dir_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<MemoryStore> store_;
  absl::flat_hash_map<std::string, MemoryShape> shapes_;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_IN_PROCESS_MEMORY_H_
