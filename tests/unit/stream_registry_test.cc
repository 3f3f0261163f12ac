// StreamRegistry against a std::map of the same streams.
#include "server/store/stream_registry.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace knnmem {
namespace {

std::shared_ptr<Stream> NewStream(const std::string& id) {
  StreamSpec spec;
  spec.layers = 1;
  spec.heads = 1;
  spec.key_dim = 4;
  spec.value_dim = 4;
  spec.capacity = 8;
  return std::make_shared<Stream>(id, spec, TierOptions(), LayerOptions(),
                                  /*incarnation=*/1);
}

std::vector<std::string> Ids(const std::vector<std::shared_ptr<Stream>>& v) {
  std::vector<std::string> ids;
  for (const auto& s : v) ids.push_back(s->id());
  return ids;
}

TEST(StreamRegistryTest, FindsInsertsErasesListsAndCountsAsAMapDoes) {
  std::mt19937 rng(3);
  auto uniform = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  const std::vector<std::string> prefixes = {"", "a", "a/", "acme/", "b/"};
  auto random_id = [&] {
    return absl::StrCat(prefixes[uniform(0, prefixes.size() - 1)], "doc-",
                        uniform(0, 60));
  };
  for (int shards : {1, 4, 16}) {
    StreamRegistry registry(shards);
    std::map<std::string, std::shared_ptr<Stream>> oracle;
    for (int op = 0; op < 3000; ++op) {
      const std::string id = random_id();
      switch (uniform(0, 3)) {
        case 0:
        case 1: {
          auto stream = NewStream(id);
          const bool inserted = registry.Insert(stream);
          EXPECT_EQ(inserted, oracle.count(id) == 0) << id;
          if (inserted) oracle[id] = stream;
          break;
        }
        case 2:
          EXPECT_EQ(registry.Erase(id), oracle.erase(id) == 1) << id;
          break;
        default: {
          auto it = oracle.find(id);
          EXPECT_EQ(registry.Find(id),
                    it == oracle.end() ? nullptr : it->second)
              << id;
        }
      }
      ASSERT_EQ(registry.size(), static_cast<int64_t>(oracle.size()));
      if (op % 50 != 0) continue;
      // A page: ids after `after`, starting with `prefix`, in id order.
      const std::string after = uniform(0, 2) == 0 ? "" : random_id();
      const std::string prefix = prefixes[uniform(0, prefixes.size() - 1)];
      const size_t limit = static_cast<size_t>(uniform(0, 40));
      std::vector<std::string> expected;
      size_t matching = 0;
      for (const auto& [oid, stream] : oracle) {
        if (oid <= after || !absl::StartsWith(oid, prefix)) continue;
        if (++matching <= limit) expected.push_back(oid);
      }
      bool more = false;
      EXPECT_EQ(Ids(registry.List(after, limit, &more, prefix)), expected)
          << "after '" << after << "' prefix '" << prefix << "' limit "
          << limit;
      EXPECT_EQ(more, matching > limit);
      // Every stream, once.
      std::multiset<std::string> all, visited, want;
      for (const auto& s : registry.All()) all.insert(s->id());
      registry.ForEach(
          [&](const std::shared_ptr<Stream>& s) { visited.insert(s->id()); });
      for (const auto& [oid, stream] : oracle) want.insert(oid);
      EXPECT_EQ(all, want);
      EXPECT_EQ(visited, want);
    }
  }
}

TEST(StreamRegistryTest, AnIdHasOneAdminMutexAndShardsHaveTheirOwn) {
  StreamRegistry one(1), many(16);
  std::set<const Mutex*> of_one, of_many;
  for (int i = 0; i < 200; ++i) {
    const std::string id = absl::StrCat("doc-", i);
    EXPECT_EQ(&many.AdminMutex(id), &many.AdminMutex(id));
    of_one.insert(&one.AdminMutex(id));
    of_many.insert(&many.AdminMutex(id));
  }
  EXPECT_EQ(of_one.size(), 1u);
  EXPECT_GT(of_many.size(), 1u);  // 200 ids in one of 16 shards: never
}

TEST(StreamRegistryTest, ConcurrentInsertsErasesAndListsKeepTheCount) {
  StreamRegistry registry(4);
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&registry, t] {
      for (int round = 0; round < 200; ++round) {
        const std::string id = absl::StrCat("w", t, "/", round % 7);
        registry.Insert(NewStream(id));
        EXPECT_NE(registry.Find(id), nullptr);
        if (round % 2 == 1) {
          EXPECT_TRUE(registry.Erase(id));
        }
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    bool more = false;
    const auto page = registry.List("", 5, &more, "w1/");
    for (size_t j = 1; j < page.size(); ++j) {
      EXPECT_LT(page[j - 1]->id(), page[j]->id());
    }
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(registry.size(), static_cast<int64_t>(registry.All().size()));
}

}  // namespace
}  // namespace knnmem
