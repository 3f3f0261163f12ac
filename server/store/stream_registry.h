// StreamRegistry: the streams a MemoryStore holds, by id, spread over shards
// by a hash of the id so that calls on different streams rarely meet on a
// lock. It holds the streams, not their state: a stream found here may be
// deleted by the time it is used (Stream::deleted(), under its lifecycle
// lock, says so).
//
// Every method is thread-safe. Lookups take their shard's lock, shared and
// briefly; Insert and Erase take it exclusively, as briefly. Callers that
// check, write storage, then insert or erase (create, reset, delete) hold
// the shard's AdminMutex across all three, so that lookups never wait for
// storage.
#ifndef KNNMEM_SERVER_STORE_STREAM_REGISTRY_H_
#define KNNMEM_SERVER_STORE_STREAM_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/sync.h"
#include "server/store/stream.h"

namespace knnmem {

// NOT_FOUND naming `stream_id`: how the store reports a stream it does not
// hold (or no longer: deleted since it was found).
absl::Status StreamNotFound(absl::string_view stream_id);

class StreamRegistry {
 public:
  // `shards` below 1 counts as 1.
  explicit StreamRegistry(int shards);

  StreamRegistry(const StreamRegistry&) = delete;
  StreamRegistry& operator=(const StreamRegistry&) = delete;

  // The stream with this id, or nullptr.
  std::shared_ptr<Stream> Find(absl::string_view stream_id) const;
  // Adds `stream` under its id; false, changing nothing, if the id is held.
  bool Insert(std::shared_ptr<Stream> stream);
  // Removes the stream with this id; false if none was held.
  bool Erase(absl::string_view stream_id);

  // Serializes create, reset and delete of the ids of one shard (the one
  // `stream_id` falls in). Nothing in the registry takes it.
  Mutex& AdminMutex(absl::string_view stream_id) const;

  // Calls `fn` for every stream, one shard at a time under its lock: `fn`
  // must be brief and must not call the registry.
  void ForEach(
      const std::function<void(const std::shared_ptr<Stream>&)>& fn) const;
  // Every stream, in no particular order.
  std::vector<std::shared_ptr<Stream>> All() const;
  // Up to `limit` streams with id > `after` that start with `prefix`, sorted
  // by id; *more tells whether further such streams follow.
  std::vector<std::shared_ptr<Stream>> List(absl::string_view after,
                                            size_t limit, bool* more,
                                            absl::string_view prefix) const;

  // Streams held: a count kept beside the shards, read without a lock.
  int64_t size() const { return size_.load(); }

 private:
  struct Shard {
    Mutex admin_mu;
    mutable Mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<Stream>> streams
        ABSL_GUARDED_BY(mu);
  };

  Shard& ShardOf(absl::string_view stream_id) const;

  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<int64_t> size_{0};
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_STREAM_REGISTRY_H_
