// Tenants' namespaces in the store: what a stream is charged, quotas at
// create (also under concurrent creates), refunds on delete and idle expiry,
// charges rebuilt on reopen, and ListStreams by prefix.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/temp_dir.h"
#include "server/storage/storage.h"
#include "server/store/memory_store.h"
#include "server/store/namespace_ledger.h"

namespace knnmem {
namespace {

StreamSpec Spec(uint64_t capacity) {
  StreamSpec s;
  s.layers = 3;
  s.heads = 2;
  s.key_dim = 8;
  s.value_dim = 4;
  s.capacity = capacity;
  s.storage_dtype = DType::kFloat16;
  return s;
}

TEST(NamespaceLedgerTest, NamespaceIsTheIdUpToItsFirstSlash) {
  EXPECT_EQ(NamespaceOf("acme/doc"), "acme");
  EXPECT_EQ(NamespaceOf("acme/a/b"), "acme");
  EXPECT_EQ(NamespaceOf("acme/"), "acme");
  EXPECT_EQ(NamespaceOf("/doc"), "");
  EXPECT_EQ(NamespaceOf("doc"), "");
}

TEST(NamespaceLedgerTest, AStreamIsChargedItsEntriesAtCapacity) {
  const StreamSpec exact = Spec(1000);
  const NamespaceUsage c = ChargeOf(exact);
  // 3 layers x 1000 entries x 2 heads x (8 + 4) float16 elements.
  EXPECT_EQ(c.streams, 1u);
  EXPECT_EQ(c.ram_bytes, 3u * 1000 * 2 * 12 * 2);
  EXPECT_EQ(c.disk_bytes, 3u * 1000 * Storage::RecordBytes(2 * 12 * 2));
  StreamSpec approximate = exact;
  approximate.index = IndexKind::kApproximate;
  approximate.nlist = 64;
  // Plus an int64 id per (entry, head) and float32 centroids per (layer,
  // head, list).
  EXPECT_EQ(ChargeOf(approximate).ram_bytes,
            c.ram_bytes + 3u * 1000 * 2 * 8 + 3u * 2 * 64 * 8 * 4);
}

TEST(NamespaceLedgerTest, AChargePastAQuotaIsRefusedNamingIt) {
  NamespaceLedger ledger;
  const NamespaceUsage one{1, 100, 1000};
  const Quota quota{3, 250, 0};
  ASSERT_TRUE(ledger.Charge("acme/a", one, &quota).ok());
  ASSERT_TRUE(ledger.Charge("acme/b", one, &quota).ok());
  const absl::Status third = ledger.Charge("acme/c", one, &quota);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StartsWith(third.message(),
                               "quota ram_bytes of tenant 'acme': 250"))
      << third;
  EXPECT_TRUE(IsQuotaRefusal(third));
  EXPECT_FALSE(IsQuotaRefusal(absl::ResourceExhaustedError("budget")));
  EXPECT_EQ(ledger.Usage("acme").streams, 2u);  // the refusal took nothing
  // Another namespace, and ids in none, are not charged to acme.
  ASSERT_TRUE(ledger.Charge("globex/a", one, &quota).ok());
  ASSERT_TRUE(ledger.Charge("plain", one, &quota).ok());
  EXPECT_EQ(ledger.Usage("acme").ram_bytes, 200u);
  EXPECT_EQ(ledger.Usage("").streams, 0u);
  ledger.Refund("acme/a", one);
  EXPECT_TRUE(ledger.Charge("acme/c", one, &quota).ok());
  const Quota streams{2, 0, 0};
  const absl::Status over = ledger.Charge("acme/d", one, &streams);
  EXPECT_TRUE(
      absl::StartsWith(over.message(), "quota streams of tenant 'acme': 2"))
      << over;
  ledger.Refund("acme/b", one);
  ledger.Refund("acme/c", one);
  EXPECT_EQ(ledger.Usage("acme").streams, 0u);
  EXPECT_EQ(ledger.Usage("acme").disk_bytes, 0u);
}

TEST(NamespaceLedgerTest, ConcurrentChargesNeverPassTheQuota) {
  NamespaceLedger ledger;
  const Quota quota{0, 1000, 0};
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (ledger.Charge("acme/x", {1, 7, 0}, &quota).ok()) ++granted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(granted.load(), 1000 / 7);
  EXPECT_EQ(ledger.Usage("acme").ram_bytes, uint64_t{1000 / 7 * 7});
}

class NamespaceStoreTest : public ::testing::Test {
 protected:
  void Open() {
    store_.reset();
    MemoryStore::Options options;
    options.data_dir = dir_.path();
    options.shards = 4;
    options.pool = &pool_;
    options.clock = &clock_;
    absl::StatusOr<std::unique_ptr<MemoryStore>> s = MemoryStore::Open(options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void SetUp() override { Open(); }
  absl::Status Create(const std::string& id, const StreamSpec& spec,
                      const Quota* quota) {
    bool created = false;
    return store_->CreateStream(id, spec, &created, quota).status();
  }
  std::set<std::string> List(absl::string_view prefix, size_t page) {
    std::set<std::string> ids;
    std::string after;
    bool more = true;
    while (more) {
      std::vector<StreamState> states =
          store_->ListStreams(after, page, &more, prefix);
      for (const StreamState& s : states) {
        EXPECT_TRUE(ids.insert(s.stream_id).second) << s.stream_id;
      }
      if (states.empty()) break;
      after = states.back().stream_id;
    }
    return ids;
  }

  TempDir dir_;
  WorkerPool pool_{2};
  FakeClock clock_;
  std::unique_ptr<MemoryStore> store_;
};

TEST_F(NamespaceStoreTest, CreatesPastAQuotaAreRefusedAndDeletesRefund) {
  const StreamSpec spec = Spec(100);
  const uint64_t each = ChargeOf(spec).ram_bytes;
  const Quota quota{0, 2 * each, 0};
  ASSERT_TRUE(Create("acme/a", spec, &quota).ok());
  ASSERT_TRUE(Create("acme/b", spec, &quota).ok());
  // Creating an existing stream again charges nothing.
  ASSERT_TRUE(Create("acme/b", spec, &quota).ok());
  const absl::Status third = Create("acme/c", spec, &quota);
  EXPECT_TRUE(IsQuotaRefusal(third)) << third;
  EXPECT_EQ(store_->GetStream("acme/c").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(Create("globex/c", spec, &quota).ok());  // its own namespace
  ASSERT_TRUE(store_->DeleteStream("acme/a").ok());
  EXPECT_TRUE(Create("acme/c", spec, &quota).ok());

  // Reopened, the store charges every stream it recovers.
  Open();
  const NamespaceUsage acme = store_->NamespaceCharge("acme");
  EXPECT_EQ(acme.streams, 2u);
  EXPECT_EQ(acme.ram_bytes, 2 * each);
  EXPECT_EQ(acme.disk_bytes, 2 * ChargeOf(spec).disk_bytes);
  EXPECT_TRUE(IsQuotaRefusal(Create("acme/d", spec, &quota)));

  // Idle expiry refunds too.
  StreamSpec short_lived = Spec(100);
  short_lived.ttl_seconds = 5;
  ASSERT_TRUE(Create("initech/x", short_lived, nullptr).ok());
  EXPECT_EQ(store_->NamespaceCharge("initech").streams, 1u);
  clock_.AdvanceSeconds(10);
  EXPECT_GE(store_->DeleteIdleStreams(), 1u);
  EXPECT_EQ(store_->NamespaceCharge("initech").streams, 0u);
}

TEST_F(NamespaceStoreTest, ListStreamsByPrefixPagesThroughExactlyThoseIds) {
  std::set<std::string> all, acme;
  for (const char* ns : {"acme", "acmex", "globex", ""}) {
    for (int i = 0; i < 7; ++i) {
      const std::string id =
          *ns ? absl::StrCat(ns, "/doc-", i) : absl::StrCat("doc-", i);
      ASSERT_TRUE(Create(id, Spec(10), nullptr).ok());
      all.insert(id);
      if (absl::StartsWith(id, "acme/")) acme.insert(id);
    }
  }
  for (size_t page : {1, 3, 100}) {
    EXPECT_EQ(List("acme/", page), acme) << page;
    EXPECT_EQ(List("", page), all) << page;
  }
  EXPECT_TRUE(List("initech/", 10).empty());
}

}  // namespace
}  // namespace knnmem
