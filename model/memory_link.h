// MemoryLink: the model's side of the memory for a batch of lanes, each
// reading one document at a time. It opens a stream when a lane starts a
// document, appends the kNN layer's keys and values as they leave the XL
// cache, asks for neighbours, and drops the stream at the document's end.
//
// Degradation: when a call fails (the server is unreachable, misses its
// deadline, or refuses), the lane carries on with local attention only for
// the rest of its document; failures are counted and reported once.
#ifndef KNNMEM_MODEL_MEMORY_LINK_H_
#define KNNMEM_MODEL_MEMORY_LINK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/memory.h"
#include "model/memory_reader.h"

namespace knnmem::model {

class MemoryLink : public MemoryReader {
 public:
  // `memory` (not owned) may be null, and capacity 0, for no memory.
  MemoryLink(Memory* memory, int lanes, const MemoryShape& shape,
             bool use_attend);
  ~MemoryLink() override;

  // Lane `lane` starts a document, whose memory is the new stream `stream`
  // (the lane's previous stream is dropped).
  void BeginStream(int lane, const std::string& stream);
  // The lane's document ended: drops its stream.
  void EndStream(int lane);
  // keys and values [heads, rows, head_dim] that left lane's XL cache.
  void Push(int lane, const torch::Tensor& keys, const torch::Tensor& values);

  bool use_attend() const override { return use_attend_; }
  std::vector<std::optional<Neighbours>> Search(const torch::Tensor& queries,
                                                int k) override;
  std::vector<std::optional<Attention>> Attend(
      const torch::Tensor& queries, int k,
      const AttendOptions& options) override;
  int64_t newest(int lane) const override { return lanes_[lane].next - 1; }

  // Calls that failed (each turned its lane local-only for its document).
  int64_t failures() const { return failures_; }
  // Seconds spent waiting on Attend calls so far.
  double attend_seconds() const { return attend_seconds_; }

 private:
  struct Lane {
    std::string stream;   // empty: no stream open
    int64_t next = 0;     // the next position to append
    bool broken = false;  // a call failed: local only until the next doc
  };
  bool Usable(const Lane& lane) const;
  void Failed(Lane& lane, const absl::Status& status, const char* call);

  Memory* const memory_;
  const MemoryShape shape_;
  const bool use_attend_;
  std::vector<Lane> lanes_;
  int64_t failures_ = 0;
  double attend_seconds_ = 0;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_MEMORY_LINK_H_
