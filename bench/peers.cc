#include "bench/peers.h"

#include <cblas.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/FaissException.h>
#include <omp.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <exception>
#include <functional>

#include "absl/strings/str_cat.h"
#include "server/storage/rocksdb_options.h"

namespace knnmem::bench {
namespace {

using FaissId = faiss::Index::idx_t;

// Runs `fn`, turning any exception into INTERNAL "`peer`: what".
absl::Status Guard(const char* peer, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const faiss::FaissException& e) {
    return absl::InternalError(absl::StrCat(peer, ": FAISS: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(peer, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status CheckRows(const char* peer, const BenchData& data, int64_t first,
                       int64_t rows) {
  if (first < 0 || rows <= 0 || first + rows > data.shape.entries) {
    return absl::OutOfRangeError(absl::StrCat(peer, ": rows [", first, ", ",
                                              first + rows, ") not in data"));
  }
  return absl::OkStatus();
}

// Searches every head's index and converts the labels to TopK.
template <typename Index>
absl::StatusOr<TopK> SearchHeads(
    const char* peer, const Shape& shape,
    const std::vector<std::unique_ptr<Index>>& heads, const BenchData& data) {
  const int n = static_cast<int>(heads.size());
  TopK top;
  top.queries = shape.queries;
  top.heads = n;
  top.k = shape.k;
  top.ids.resize(n);
  std::vector<float> distances(static_cast<size_t>(shape.queries) * shape.k);
  std::vector<FaissId> labels(distances.size());
  for (int h = 0; h < n; ++h) {
    absl::Status s = Guard(peer, [&] {
      heads[h]->search(shape.queries, data.head_queries[h].data(), shape.k,
                       distances.data(), labels.data());
    });
    if (!s.ok()) return s;
    top.ids[h].assign(labels.begin(), labels.end());
  }
  return top;
}

template <typename Index>
absl::Status AddHeads(const char* peer, const Shape& shape,
                      std::vector<std::unique_ptr<Index>>& heads,
                      const BenchData& data, int64_t first, int64_t rows) {
  absl::Status s = CheckRows(peer, data, first, rows);
  if (!s.ok()) return s;
  for (size_t h = 0; h < heads.size(); ++h) {
    s = Guard(peer, [&] {
      heads[h]->add(rows, data.head_keys[h].data() + first * shape.key_dim);
    });
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

}  // namespace

void SetPeerThreads(int threads) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

void SetOmpThreads(int threads) { omp_set_num_threads(threads); }

int OmpThreads() { return omp_get_max_threads(); }
int BlasThreads() { return openblas_get_num_threads(); }

// --- FlatPeer ---------------------------------------------------------------

FlatPeer::FlatPeer(const Shape& shape) : shape_(shape) {
  for (int h = 0; h < shape.heads; ++h) {
    heads_.push_back(std::make_unique<faiss::IndexFlatIP>(shape.key_dim));
  }
}

FlatPeer::~FlatPeer() = default;

absl::Status FlatPeer::Add(const BenchData& data, int64_t first, int64_t rows) {
  return AddHeads("faiss-flat", shape_, heads_, data, first, rows);
}

absl::StatusOr<TopK> FlatPeer::Search(const BenchData& data) {
  return SearchHeads("faiss-flat", shape_, heads_, data);
}

int64_t FlatPeer::entries() const { return heads_[0]->ntotal; }

// --- HnswPeer ---------------------------------------------------------------

HnswPeer::HnswPeer(const Shape& shape, int indexed_heads) : shape_(shape) {
  const int n = indexed_heads > 0 && indexed_heads < shape.heads ? indexed_heads
                                                                 : shape.heads;
  for (int h = 0; h < n; ++h) {
    heads_.push_back(std::make_unique<faiss::IndexHNSWFlat>(
        shape.key_dim, kM, faiss::METRIC_INNER_PRODUCT));
  }
}

HnswPeer::~HnswPeer() = default;

absl::Status HnswPeer::Add(const BenchData& data, int64_t first, int64_t rows) {
  return AddHeads("faiss-hnsw", shape_, heads_, data, first, rows);
}

absl::StatusOr<TopK> HnswPeer::Search(const BenchData& data) {
  return SearchHeads("faiss-hnsw", shape_, heads_, data);
}

int64_t HnswPeer::entries() const { return heads_[0]->ntotal; }
int HnswPeer::ef_construction() const { return heads_[0]->hnsw.efConstruction; }
int HnswPeer::ef_search() const { return heads_[0]->hnsw.efSearch; }
void HnswPeer::set_ef_search(int ef) {
  for (auto& index : heads_) index->hnsw.efSearch = ef;
}

// --- SgemmPeer --------------------------------------------------------------

void SgemmPeer::Scores(const BenchData& data, int64_t entries) {
  const size_t need = static_cast<size_t>(shape_.queries) * entries;
  if (scores_.size() < need) scores_.resize(need);
  for (int h = 0; h < shape_.heads; ++h) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, shape_.queries,
                static_cast<blasint>(entries), shape_.key_dim, 1.0f,
                data.head_queries[h].data(), shape_.key_dim,
                data.head_keys[h].data(), shape_.key_dim, 0.0f, scores_.data(),
                static_cast<blasint>(entries));
  }
}

// --- RocksDbPeer ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RocksDbPeer>> RocksDbPeer::Open(
    const std::string& dir) {
  // The server's own options, as it runs without a memory budget.
  const rocksdb::Options options = StorageOptions(size_t{64} << 20, kMemtables);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("rocksdb peer: cannot open '", dir, "': ", s.ToString()));
  }
  return std::unique_ptr<RocksDbPeer>(
      new RocksDbPeer(std::unique_ptr<rocksdb::DB>(raw)));
}

RocksDbPeer::RocksDbPeer(std::unique_ptr<rocksdb::DB> db)
    : db_(std::move(db)) {}

RocksDbPeer::~RocksDbPeer() {
  if (db_ != nullptr) db_->Close().PermitUncheckedError();
}

absl::StatusOr<size_t> RocksDbPeer::Append(const BenchData& data, int64_t first,
                                           int64_t rows) {
  absl::Status check = CheckRows("rocksdb", data, first, rows);
  if (!check.ok()) return check;
  const Shape& sh = data.shape;
  const size_t key_row = sizeof(float) * sh.heads * sh.key_dim;
  const size_t value_row = sizeof(float) * sh.heads * sh.value_dim;
  constexpr size_t kKeySize = 21;
  rocksdb::WriteBatch batch(rows * (key_row + value_row + kKeySize + 16) + 64);
  std::string key;
  key.push_back('D');
  PutBigEndian(key, /*incarnation=*/1, 8);
  PutBigEndian(key, /*layer=*/0, 4);
  const char* keys = reinterpret_cast<const char*>(data.KeyRows(first));
  const char* values = reinterpret_cast<const char*>(data.ValueRows(first));
  for (int64_t r = 0; r < rows; ++r) {
    key.resize(kKeySize - 8);
    PutBigEndian(key, static_cast<uint64_t>(first + r), 8);
    const rocksdb::Slice key_slice(key);
    const rocksdb::Slice parts[2] = {
        rocksdb::Slice(keys + r * key_row, key_row),
        rocksdb::Slice(values + r * value_row, value_row)};
    rocksdb::Status s = batch.Put(rocksdb::SliceParts(&key_slice, 1),
                                  rocksdb::SliceParts(parts, 2));
    if (!s.ok()) {
      return absl::InternalError(absl::StrCat("rocksdb peer: ", s.ToString()));
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = false;
  rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("rocksdb peer: ", s.ToString()));
  }
  return batch.GetDataSize();
}

}  // namespace knnmem::bench
