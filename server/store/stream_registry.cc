#include "server/store/stream_registry.h"

#include <algorithm>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace knnmem {

absl::Status StreamNotFound(absl::string_view stream_id) {
  return absl::NotFoundError(
      absl::StrCat("stream_id: stream '", stream_id, "' does not exist"));
}

StreamRegistry::StreamRegistry(int shards) {
  for (int i = 0; i < std::max(1, shards); ++i) {
    shards_.push_back(std::make_unique<Shard>());
  }
}

StreamRegistry::Shard& StreamRegistry::ShardOf(
    absl::string_view stream_id) const {
  const size_t h = absl::HashOf(stream_id);
  return *shards_[h % shards_.size()];
}

std::shared_ptr<Stream> StreamRegistry::Find(
    absl::string_view stream_id) const {
  Shard& shard = ShardOf(stream_id);
  ReaderMutexLock lock(&shard.mu);
  auto it = shard.streams.find(stream_id);
  return it == shard.streams.end() ? nullptr : it->second;
}

bool StreamRegistry::Insert(std::shared_ptr<Stream> stream) {
  Shard& shard = ShardOf(stream->id());
  MutexLock lock(&shard.mu);
  const std::string& id = stream->id();
  if (!shard.streams.emplace(id, std::move(stream)).second) return false;
  ++size_;
  return true;
}

bool StreamRegistry::Erase(absl::string_view stream_id) {
  Shard& shard = ShardOf(stream_id);
  MutexLock lock(&shard.mu);
  if (shard.streams.erase(stream_id) == 0) return false;
  --size_;
  return true;
}

Mutex& StreamRegistry::AdminMutex(absl::string_view stream_id) const {
  return ShardOf(stream_id).admin_mu;
}

void StreamRegistry::ForEach(
    const std::function<void(const std::shared_ptr<Stream>&)>& fn) const {
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    for (const auto& [id, stream] : shard->streams) fn(stream);
  }
}

std::vector<std::shared_ptr<Stream>> StreamRegistry::All() const {
  std::vector<std::shared_ptr<Stream>> all;
  ForEach([&](const std::shared_ptr<Stream>& s) { all.push_back(s); });
  return all;
}

std::vector<std::shared_ptr<Stream>> StreamRegistry::List(
    absl::string_view after, size_t limit, bool* more,
    absl::string_view prefix) const {
  std::vector<std::shared_ptr<Stream>> all;
  ForEach([&](const std::shared_ptr<Stream>& s) {
    if (s->id() > after && absl::StartsWith(s->id(), prefix)) all.push_back(s);
  });
  auto by_id = [](const std::shared_ptr<Stream>& a,
                  const std::shared_ptr<Stream>& b) {
    return a->id() < b->id();
  };
  *more = all.size() > limit;
  if (*more) {
    std::nth_element(all.begin(), all.begin() + limit, all.end(), by_id);
    all.resize(limit);
  }
  std::sort(all.begin(), all.end(), by_id);
  return all;
}

}  // namespace knnmem
