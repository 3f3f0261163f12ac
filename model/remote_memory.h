// RemoteMemory: the Memory interface over a knnmem server, through the
// gRPC client. Search (with keys and values) for training, Attend for
// inference, DecodeStep for several streams at once (generation).
#ifndef KNNMEM_MODEL_REMOTE_MEMORY_H_
#define KNNMEM_MODEL_REMOTE_MEMORY_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "model/memory.h"

namespace knnmem::client {
class MemoryClient;
}  // namespace knnmem::client

namespace knnmem::model {

class RemoteMemory : public Memory {
 public:
  // The server at `address` (HOST:PORT); each call has `deadline`. With
  // `approximate`, the streams are APPROXIMATE (the server's default nlist,
  // nprobe and exact tail), else EXACT.
  RemoteMemory(const std::string& address, std::chrono::milliseconds deadline,
               bool approximate = false);
  ~RemoteMemory() override;

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
  // APPROXIMATE streams: how many of the memory's entries were in the
  // approximate tier when streams ended, summed over the streams (GetStream
  // before each EndStream); both 0 otherwise.
  int64_t indexed_at_end() const { return indexed_at_end_; }
  int64_t entries_at_end() const { return entries_at_end_; }

  // One DecodeStep for all the streams.
  std::vector<absl::StatusOr<Attention>> AttendMany(
      const std::vector<StreamQueries>& asks, int k,
      const AttendOptions& options) override;

 private:
  absl::StatusOr<const MemoryShape*> ShapeOf(const std::string& stream) const;

  std::unique_ptr<client::MemoryClient> client_;
  const bool approximate_;
  int64_t indexed_at_end_ = 0, entries_at_end_ = 0;
  absl::flat_hash_map<std::string, MemoryShape> shapes_;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_REMOTE_MEMORY_H_
