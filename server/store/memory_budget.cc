#include "server/store/memory_budget.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace knnmem {

MemoryBudget::MemoryBudget(uint64_t configured_bytes, uint64_t share)
    : configured_bytes_(configured_bytes), share_(share) {}

absl::Status MemoryBudget::MakeRoom(uint64_t bytes, int64_t streams_held,
                                    absl::string_view field,
                                    Unloadable& streams) {
  const uint64_t share = share_.load();
  if (share == 0) return absl::OkStatus();
  // Blocks share the budget with every stream's bookkeeping.
  const int64_t limit = std::max<int64_t>(
      0, static_cast<int64_t>(share) - streams_held * kBytesPerStream);
  const int64_t need = static_cast<int64_t>(bytes);
  if (resident_bytes_.load() + need <= limit) return absl::OkStatus();
  MutexLock evicting(&evict_mu_);
  if (resident_bytes_.load() + need <= limit) return absl::OkStatus();
  // Least recently used first.
  const std::vector<int64_t> last_used = streams.LastUsed();
  std::vector<size_t> order(last_used.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return last_used[a] != last_used[b] ? last_used[a] < last_used[b] : a < b;
  });
  const int64_t target = limit - limit / 32;
  for (size_t i : order) {
    if (resident_bytes_.load() + need <= target) {
      ReleaseIfDue(limit, streams);
      return absl::OkStatus();
    }
    const std::optional<uint64_t> freed = streams.TryUnload(i);
    if (!freed.has_value()) continue;
    resident_bytes_ -= static_cast<int64_t>(*freed);
    ++unloads_;
    untrimmed_bytes_ += static_cast<int64_t>(*freed);
  }
  ReleaseIfDue(limit, streams);
  if (resident_bytes_.load() + need <= limit) return absl::OkStatus();
  ++refused_appends_;
  return absl::ResourceExhaustedError(absl::StrCat(
      field, ": the memory budget (--memory-budget ", configured_bytes_,
      " bytes, ", limit, " of them for the blocks of ", streams_held,
      " streams) is full: the streams in use hold ", resident_bytes_.load(),
      " bytes and this call needs ", bytes,
      " more; retry later, or raise the budget"));
}

void MemoryBudget::ReleaseIfDue(int64_t limit, Unloadable& streams) {
  // RSS follows the budget at little cost: a trim walks the whole heap.
  if (untrimmed_bytes_ >= limit / 16) {
    streams.ReleaseFreedMemory();
    untrimmed_bytes_ = 0;
  }
}

void MemoryBudget::Loaded(uint64_t bytes) {
  resident_bytes_ += static_cast<int64_t>(bytes);
  ++loads_;
}

void MemoryBudget::Resized(int64_t delta) { resident_bytes_ += delta; }

void MemoryBudget::ReserveForServer(uint64_t bytes) {
  const uint64_t share = share_.load();
  if (bytes <= share / 4) share_ = share - bytes;
}

uint64_t MemoryBudget::resident_bytes() const {
  return static_cast<uint64_t>(std::max<int64_t>(0, resident_bytes_.load()));
}

ResidencyCounters MemoryBudget::counters() const {
  return {loads_.load(), unloads_.load(), refused_appends_.load()};
}

}  // namespace knnmem
