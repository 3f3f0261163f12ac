#include "model/memory_link.h"

#include <chrono>
#include <cstdio>
#include <string>

namespace knnmem::model {

MemoryLink::MemoryLink(Memory* memory, int lanes, const MemoryShape& shape,
                       bool use_attend)
    : memory_(shape.capacity > 0 ? memory : nullptr),
      shape_(shape),
      use_attend_(use_attend),
      lanes_(static_cast<size_t>(lanes)) {}

MemoryLink::~MemoryLink() {
  for (size_t i = 0; i < lanes_.size(); ++i) EndStream(static_cast<int>(i));
}

bool MemoryLink::Usable(const Lane& lane) const {
  return memory_ != nullptr && !lane.stream.empty() && !lane.broken;
}

void MemoryLink::Failed(Lane& lane, const absl::Status& status,
                        const char* call) {
  if (failures_++ == 0) {
    std::fprintf(stderr,
                 "knnmem-model: memory %s failed (%s); continuing with local "
                 "attention only for that document (failures are counted)\n",
                 call, std::string(status.message()).c_str());
  }
  lane.broken = true;
}

void MemoryLink::BeginStream(int lane, const std::string& stream) {
  EndStream(lane);
  Lane& l = lanes_[lane];
  l = Lane{stream, 0, false};
  if (memory_ == nullptr) return;
  absl::Status s = memory_->BeginStream(stream, shape_);
  if (!s.ok()) Failed(l, s, "BeginStream");
}

void MemoryLink::EndStream(int lane) {
  Lane& l = lanes_[lane];
  if (memory_ != nullptr && !l.stream.empty()) {
    // A failure here only leaves a stream for the server's TTL to drop.
    memory_->EndStream(l.stream).IgnoreError();
  }
  l = Lane{};
}

void MemoryLink::Push(int lane, const torch::Tensor& keys,
                      const torch::Tensor& values) {
  Lane& l = lanes_[lane];
  const int64_t rows = keys.size(1);
  if (Usable(l)) {
    absl::Status s =
        memory_->Append(l.stream, l.next, keys.transpose(0, 1).contiguous(),
                        values.transpose(0, 1).contiguous());
    if (!s.ok()) Failed(l, s, "Append");
  }
  l.next += rows;
}

std::vector<std::optional<Neighbours>> MemoryLink::Search(
    const torch::Tensor& queries, int k) {
  std::vector<std::optional<Neighbours>> out(lanes_.size());
  for (size_t i = 0; i < lanes_.size(); ++i) {
    Lane& l = lanes_[i];
    if (!Usable(l) || l.next == 0) continue;
    absl::StatusOr<Neighbours> r = memory_->Search(l.stream, queries[i], k);
    if (r.ok()) {
      out[i] = std::move(*r);
    } else {
      Failed(l, r.status(), "Search");
    }
  }
  return out;
}

std::vector<std::optional<Attention>> MemoryLink::Attend(
    const torch::Tensor& queries, int k, const AttendOptions& options) {
  std::vector<std::optional<Attention>> out(lanes_.size());
  // Every lane with memory in one call (one DecodeStep when remote).
  std::vector<StreamQueries> asks;
  std::vector<size_t> asked;
  for (size_t i = 0; i < lanes_.size(); ++i) {
    const Lane& l = lanes_[i];
    if (!Usable(l) || l.next == 0) continue;
    asks.push_back({l.stream, queries[static_cast<int64_t>(i)]});
    asked.push_back(i);
  }
  if (asks.empty()) return out;
  const auto start = std::chrono::steady_clock::now();
  std::vector<absl::StatusOr<Attention>> got =
      memory_->AttendMany(asks, k, options);
  attend_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  for (size_t j = 0; j < asked.size(); ++j) {
    if (got[j].ok()) {
      out[asked[j]] = *std::move(got[j]);
    } else {
      Failed(lanes_[asked[j]], got[j].status(), "Attend");
    }
  }
  return out;
}

}  // namespace knnmem::model
