// MemoryBudget: the RAM the streams' entries may take, and the decisions
// that keep them in it: which streams to unload and in what order, when to
// give freed memory back to the system, and when to refuse a call. It holds
// numbers only, no streams and no storage: MemoryStore tells it what loads,
// grows and shrinks, and applies its decisions through Unloadable
// (memory_store_residency.cc); tests drive it with streams of their own.
//
// The budget is in bytes of blocks (keys, values and approximate-tier
// entries) of resident streams. Its limit is the streams' share of
// --memory-budget (what RocksDB's memtables and block cache and the server's
// own RSS leave of it) less kBytesPerStream for every stream held, resident
// or not. Past the limit, MakeRoom unloads least recently used idle streams
// down to a little under it (1/32 of it), so that the calls that follow find
// room without walking every stream again.
//
// Every method is thread-safe; MakeRoom runs one at a time.
#ifndef KNNMEM_SERVER_STORE_MEMORY_BUDGET_H_
#define KNNMEM_SERVER_STORE_MEMORY_BUDGET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/sync.h"

namespace knnmem {

// Streams moved between RAM and storage for the memory budget.
struct ResidencyCounters {
  uint64_t loads = 0;
  uint64_t unloads = 0;
  uint64_t refused_appends = 0;  // the active set alone was over budget
};

class MemoryBudget {
 public:
  // RAM a stream costs while not resident (its spec, id, layer heads and
  // map entry; W-streams measures 1.3 KiB): counted against the budget for
  // every stream held.
  static constexpr int64_t kBytesPerStream = 1536;

  // The streams one MakeRoom may unload: every stream held but the one the
  // call is for.
  class Unloadable {
   public:
    virtual ~Unloadable() = default;
    // When each candidate was last used (Clock microseconds); candidate i
    // is the i-th. Called at most once per MakeRoom.
    virtual std::vector<int64_t> LastUsed() = 0;
    // Unloads candidate i unless a call is using it, without waiting for
    // one: the bytes its blocks took (0 is possible), or nullopt when it
    // was in use or not resident.
    virtual std::optional<uint64_t> TryUnload(size_t i) = 0;
    // Gives freed heap back to the system (malloc_trim).
    virtual void ReleaseFreedMemory() = 0;
  };

  // `configured_bytes` is --memory-budget as given (for messages), `share`
  // what the streams may take of it; 0 for both: no limit.
  MemoryBudget(uint64_t configured_bytes, uint64_t share);

  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Makes room for `bytes` more, with `streams_held` streams held: OK at
  // once if they fit. Else unloads candidates of `streams`, least recently
  // used first (ties: the lower index first), until the bytes fit 1/32
  // under the limit; OK if they then fit under it, else RESOURCE_EXHAUSTED
  // naming `field` and --memory-budget. Each time unloads have freed a
  // sixteenth of the limit since the last time, freed memory goes back to
  // the system.
  absl::Status MakeRoom(uint64_t bytes, int64_t streams_held,
                        absl::string_view field, Unloadable& streams);

  // A stream of `bytes` came into RAM (counts a load).
  void Loaded(uint64_t bytes);
  // A resident stream's blocks grew or shrank by `delta` bytes (an append,
  // the indexer, a reset, a delete).
  void Resized(int64_t delta);

  // Takes `bytes` out of the share for the process's own RAM outside
  // streams (code, threads, gRPC), unless it is over a quarter of the share
  // (a toy budget, as in tests: then the share stays).
  void ReserveForServer(uint64_t bytes);

  // Bytes the resident streams' blocks take.
  uint64_t resident_bytes() const;
  ResidencyCounters counters() const;

 private:
  // Gives freed memory back once a sixteenth of `limit` was freed since the
  // last time.
  void ReleaseIfDue(int64_t limit, Unloadable& streams)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(evict_mu_);

  const uint64_t configured_bytes_;
  std::atomic<uint64_t> share_;
  std::atomic<int64_t> resident_bytes_{0};
  std::atomic<uint64_t> loads_{0}, unloads_{0}, refused_appends_{0};
  Mutex evict_mu_;  // one MakeRoom at a time
  int64_t untrimmed_bytes_ ABSL_GUARDED_BY(evict_mu_) = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_MEMORY_BUDGET_H_
