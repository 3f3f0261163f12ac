#include "server/approximate/approximate_index.h"

#include <cblas.h>
#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/approximate/bf16_list_scan.h"
#include "server/search/bf16_prefilter.h"
#include "server/search/few_query_scan.h"
#include "server/search/int8_list_scan.h"
#include "server/search/score_scan.h"
#include "server/search/top_k.h"

namespace knnmem {
namespace {

// The most one Extend adds (bounds its float32 staging per head).
constexpr int64_t kMaxExtend = 131072;
// Keys to train on, per list: the first this many of the stream.
constexpr int64_t kTrainPerList = 64;

// Float32 keys of `head` for positions [from, to), which `snapshot` retains.
std::vector<float> KeysOf(const StreamSpec& spec, const LayerSnapshot& snapshot,
                          uint32_t head, int64_t from, int64_t to) {
  const size_t dk = spec.key_dim, es = ElementSize(spec.storage_dtype);
  std::vector<float> out(static_cast<size_t>(to - from) * dk);
  for (int64_t p = from; p < to;) {
    const Block& b = snapshot.BlockOf(p);
    const int64_t end =
        std::min<int64_t>(to, b.first_position() + b.capacity_rows());
    const size_t row = static_cast<size_t>(p - b.first_position());
    DecodeFloats(b.keys(head) + row * dk * es,
                 static_cast<size_t>(end - p) * dk, spec.storage_dtype,
                 out.data() + static_cast<size_t>(p - from) * dk);
    p = end;
  }
  return out;
}

// Finds one head's keys of a list's positions in the blocks that hold them,
// and gathers them as float32 rows for a GEMM: the blocks' copy (in the
// storage dtype) is the one exact copy of a key in RAM; the lists hold
// positions (and, with TierOptions::int8_codes, int8 codes).
class KeyGather {
 public:
  // Rows per gather: kRows float32 keys stay in the L2 cache for the GEMM.
  static constexpr uint32_t kRows = 256;

  KeyGather(const StreamSpec& spec, const LayerSnapshot& snapshot,
            uint32_t head)
      : dtype_(spec.storage_dtype),
        dk_(spec.key_dim),
        row_bytes_(size_t{spec.key_dim} * ElementSize(spec.storage_dtype)) {
    starts_.reserve(snapshot.blocks.size());
    keys_.reserve(snapshot.blocks.size());
    for (const auto& block : snapshot.blocks) {
      starts_.push_back(block->first_position());
      keys_.push_back(block->keys(head));
    }
  }

  // Where the keys of `rows` increasing positions (which the snapshot
  // retains) are: row r's at out[r].
  void Locate(const int64_t* ids, uint32_t rows, const char** out) const {
    Find(
        rows, [ids](uint32_t r) { return ids[r]; }, out);
  }
  // The same for the positions ids[pick[i]], `count` increasing picks.
  void LocateSome(const int64_t* ids, const uint32_t* pick, uint32_t count,
                  const char** out) const {
    Find(
        count, [ids, pick](uint32_t i) { return ids[pick[i]]; }, out);
  }

  // `ids`: `rows` (<= kRows) increasing positions the snapshot retains.
  void Gather(const int64_t* ids, uint32_t rows, float* out) const {
    const char* row[kRows];
    Locate(ids, rows, row);
    // The rows are scattered over the blocks: fetch a few ahead.
    constexpr uint32_t kAhead = 8;
    for (uint32_t r = 0; r < std::min(rows, kAhead); ++r) Prefetch(row[r]);
    for (uint32_t r = 0; r < rows; ++r) {
      if (r + kAhead < rows) Prefetch(row[r + kAhead]);
      DecodeFloats(row[r], dk_, dtype_, out + size_t{r} * dk_);
    }
  }

 private:
  template <class Id>
  void Find(uint32_t count, Id id, const char** out) const {
    if (count == 0) return;
    size_t b = static_cast<size_t>(
        std::upper_bound(starts_.begin(), starts_.end(), id(0)) -
        starts_.begin() - 1);
    for (uint32_t r = 0; r < count; ++r) {
      const int64_t p = id(r);
      if (b + 1 < starts_.size() && starts_[b + 1] <= p) {
        b = static_cast<size_t>(
            std::upper_bound(starts_.begin() + b + 1, starts_.end(), p) -
            starts_.begin() - 1);
      }
      out[r] = keys_[b] + static_cast<size_t>(p - starts_[b]) * row_bytes_;
    }
  }

  void Prefetch(const char* p) const {
    for (size_t o = 0; o < row_bytes_; o += 64) __builtin_prefetch(p + o);
  }

  const DType dtype_;
  const uint32_t dk_;
  const size_t row_bytes_;
  std::vector<int64_t> starts_;    // each block's first position
  std::vector<const char*> keys_;  // each block's keys of the head
};

}  // namespace

// One head: the coarse centroids (trained by FAISS k-means, searched by its
// BLAS-backed flat index) and our own inverted lists, scanned by Search.
struct ApproximateIndex::Head {
  explicit Head(uint32_t dim, uint32_t nlist) : quantizer(dim), lists(nlist) {}
  // A list's positions, increasing, and (with TierOptions::int8_codes)
  // their keys' int8 codes and scales (int8_list_scan.h) in the same order,
  // else empty. The keys themselves stay in the layer's blocks (see
  // KeyGather).
  struct List {
    std::vector<int64_t> positions;
    std::vector<int8_t> codes;  // [positions.size(), key_dim]
    std::vector<float> scales;  // [positions.size()]
  };
  faiss::IndexFlatIP quantizer;  // nlist centroids once trained
  std::vector<List> lists;
};

size_t ApproximateIndex::ListRowBytes() const {
  return sizeof(int64_t) +
         (options_.int8_codes ? spec_.key_dim + sizeof(float) : 0);
}

ApproximateIndex::ApproximateIndex(const StreamSpec& spec,
                                   const TierOptions& options)
    : spec_(spec),
      options_(options),
      nlist_(spec.effective_nlist()),
      nprobe_(spec.effective_nprobe()) {
  for (uint32_t h = 0; h < spec.heads; ++h) {
    heads_.push_back(std::make_unique<Head>(spec.key_dim, nlist_));
  }
}

ApproximateIndex::~ApproximateIndex() = default;

int64_t ApproximateIndex::IndexableEnd(int64_t first, int64_t next) const {
  // On the grid of chunks, so that a layer rebuilt after a restart is
  // indexed to the same position as before.
  int64_t end = next - static_cast<int64_t>(spec_.effective_exact_tail());
  end -= end % kIndexChunk;
  const int64_t from = std::max(indexed_end_.load(), first);
  // Training waits for a full sample.
  const int64_t need = begin_.load() < 0 ? kTrainPerList * int64_t{nlist_} : 1;
  return end - from >= need ? end : indexed_end_.load();
}

absl::Status ApproximateIndex::Extend(const LayerSnapshot& snapshot,
                                      int64_t end) {
  omp_set_num_threads(1);  // a background thread: leave the cores to requests
  const int64_t from = std::max(indexed_end_.load(), snapshot.first_position);
  const int64_t limit =
      std::max(from + kMaxExtend, from + kTrainPerList * int64_t{nlist_});
  end = std::min({end, limit, snapshot.next_position});
  if (end <= from) return absl::OkStatus();
  const bool train = begin_.load() < 0;
  const int64_t n = end - from;
  const uint32_t dk = spec_.key_dim;
  for (uint32_t h = 0; h < spec_.heads; ++h) {
    const std::vector<float> keys = KeysOf(spec_, snapshot, h, from, end);
    Head& head = *heads_[h];
    if (train) {
      // The first keys of the stream, in order: the same centroids every
      // time the same data is indexed (FAISS's k-means seed is fixed).
      const int64_t sample =
          std::min<int64_t>(n, kTrainPerList * int64_t{nlist_});
      faiss::ClusteringParameters cp;
      cp.niter = 10;
      cp.spherical = true;             // inner product on normalised centroids
      cp.min_points_per_centroid = 1;  // we chose the sample size
      faiss::Clustering clustering(static_cast<int>(dk),
                                   static_cast<int>(nlist_), cp);
      clustering.train(sample, keys.data(), head.quantizer);
    }
    std::vector<faiss::Index::idx_t> lists(static_cast<size_t>(n));
    head.quantizer.assign(n, keys.data(), lists.data());
    std::vector<int8_t> codes;
    std::vector<float> scales;
    if (options_.int8_codes) {
      codes.resize(keys.size());
      scales.resize(static_cast<size_t>(n));
      QuantizeRows(keys.data(), static_cast<uint32_t>(n), dk, codes.data(),
                   scales.data());
    }
    MutexLock lock(&mu_);
    for (int64_t i = 0; i < n; ++i) {
      Head::List& list = head.lists[static_cast<size_t>(lists[i])];
      list.positions.push_back(from + i);
      if (options_.int8_codes) {
        list.codes.insert(list.codes.end(), codes.begin() + i * dk,
                          codes.begin() + (i + 1) * dk);
        list.scales.push_back(scales[static_cast<size_t>(i)]);
      }
    }
    bytes_ += static_cast<size_t>(n) * ListRowBytes();
  }
  MutexLock lock(&mu_);
  if (train) begin_ = from;
  indexed_end_ = end;
  return absl::OkStatus();
}

std::string ApproximateIndex::Centroids() const {
  std::string out;
  if (begin_.load() < 0) return out;
  for (const auto& head : heads_) {
    out.append(reinterpret_cast<const char*>(head->quantizer.get_xb()),
               sizeof(float) * head->quantizer.ntotal * spec_.key_dim);
  }
  return out;
}

absl::Status ApproximateIndex::RestoreCentroids(absl::string_view centroids,
                                                int64_t begin) {
  const size_t per_head = sizeof(float) * size_t{nlist_} * spec_.key_dim;
  if (centroids.size() != per_head * heads_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("centroids: ", centroids.size(), " bytes, expected ",
                     per_head * heads_.size()));
  }
  MutexLock lock(&mu_);
  for (size_t h = 0; h < heads_.size(); ++h) {
    std::vector<float> c(per_head / sizeof(float));
    std::memcpy(c.data(), centroids.data() + h * per_head, per_head);
    heads_[h]->quantizer.reset();
    heads_[h]->quantizer.add(nlist_, c.data());
  }
  begin_ = begin;
  indexed_end_ = begin;
  return absl::OkStatus();
}

size_t ApproximateIndex::Forget(int64_t first) {
  MutexLock lock(&mu_);
  size_t removed = 0;
  const size_t dk = spec_.key_dim;
  for (auto& head : heads_) {
    for (Head::List& list : head->lists) {
      // Positions increase along a list: the evicted ones are a prefix.
      const size_t drop =
          static_cast<size_t>(std::lower_bound(list.positions.begin(),
                                               list.positions.end(), first) -
                              list.positions.begin());
      removed += drop;
      list.positions.erase(list.positions.begin(),
                           list.positions.begin() + drop);
      if (options_.int8_codes) {
        list.codes.erase(list.codes.begin(), list.codes.begin() + drop * dk);
        list.scales.erase(list.scales.begin(), list.scales.begin() + drop);
      }
    }
  }
  bytes_ -= removed * ListRowBytes();
  if (begin_.load() >= 0 && begin_.load() < first) begin_ = first;
  return removed;
}

void ApproximateIndex::Search(const LayerSnapshot& snapshot,
                              absl::Span<const float> queries, uint32_t n,
                              uint32_t k, int64_t lo, int64_t hi, float* scores,
                              int64_t* positions, WorkerPool& pool) const {
  static const FewQueryIsa isa = FewQueryIsaOfCpu();
  const uint32_t heads = spec_.heads, dk = spec_.key_dim;
  lo = std::max(lo, begin_.load());
  pool.ParallelFor(heads, [&](size_t h) {
    omp_set_num_threads(1);  // the pool provides the parallelism
    std::vector<float> q(static_cast<size_t>(n) * dk);
    for (uint32_t i = 0; i < n; ++i) {
      std::copy_n(queries.data() + (static_cast<size_t>(i) * heads + h) * dk,
                  dk, q.data() + static_cast<size_t>(i) * dk);
    }
    std::vector<TopK> top;
    top.reserve(n);
    for (uint32_t i = 0; i < n; ++i) top.emplace_back(k);
    if (hi > lo) {
      const Head& head = *heads_[h];
      // The lists each query probes: its nprobe nearest centroids. A few
      // queries read the centroids once with the streaming scan (FAISS
      // scores one query at a time with scalar code as Debian builds it);
      // more, FAISS's GEMM.
      std::vector<float> d(static_cast<size_t>(n) * nprobe_);
      std::vector<faiss::Index::idx_t> probe(d.size());
      ReaderMutexLock lock(&mu_);
      if (n <= kMaxFewQueries && isa != FewQueryIsa::kNone) {
        std::vector<TopK> nearest;
        nearest.reserve(n);
        for (uint32_t i = 0; i < n; ++i) nearest.emplace_back(nprobe_);
        ScanFewQueries(isa, q.data(), dk, n, dk,
                       reinterpret_cast<const char*>(head.quantizer.get_xb()),
                       DType::kFloat32,
                       static_cast<uint32_t>(head.quantizer.ntotal), 0,
                       nearest.data());
        for (uint32_t i = 0; i < n; ++i) {
          nearest[i].Finish(d.data() + size_t{i} * nprobe_,
                            probe.data() + size_t{i} * nprobe_);
        }
      } else {
        head.quantizer.search(n, q.data(), nprobe_, d.data(), probe.data());
      }
      // FAISS, as Debian builds it, scans a list one query at a time with
      // scalar code. Here each list is scanned once for all the queries
      // that probe it, by a GEMM, and fed to the same threshold top-k as
      // the exact search.
      // (list, query) for every probe, grouped by list. The top-k sees a
      // list's row r as (list << 32) + r: ordered as the lists and rows.
      std::vector<std::pair<uint32_t, uint32_t>> probes;
      probes.reserve(probe.size());
      for (uint32_t i = 0; i < n; ++i) {
        for (uint32_t j = 0; j < nprobe_; ++j) {
          const faiss::Index::idx_t l = probe[i * nprobe_ + j];
          if (l >= 0) probes.emplace_back(static_cast<uint32_t>(l), i);
        }
      }
      std::sort(probes.begin(), probes.end());
      auto ref = [](uint32_t l, uint32_t row) {
        return (static_cast<int64_t>(l) << 32) + row;
      };
      const KeyGather gather(spec_, snapshot, static_cast<uint32_t>(h));
      std::vector<float> qs, keys(size_t{KeyGather::kRows} * dk), block;
      // A decode step's few queries: with int8 codes, each list's codes
      // read in order and the rows that may enter scored again from the
      // blocks (int8_list_scan.h); without, each list's keys read in
      // place, once, by the streaming scan (few_query_scan.h). More
      // queries: the keys gathered from the blocks, bfloat16 with float32
      // rescoring where the CPU has it (bf16_list_scan.h); sgemm and the
      // threshold scan otherwise.
      const FewQueryIsa streaming =
          n <= kMaxFewQueries ? isa : FewQueryIsa::kNone;
      std::vector<const char*> rows_at;
      std::optional<Int8ListScan> int8;
      if (streaming != FewQueryIsa::kNone && options_.int8_codes) {
        int8.emplace(streaming, q.data(), n, dk, k, spec_.storage_dtype);
      }
      std::optional<Bf16ListScan> bf16;
      if (streaming == FewQueryIsa::kNone && Bf16PrefilterSupported()) {
        bf16.emplace(q.data(), n, dk);
      }
      std::vector<TopK*> tops;
      std::vector<uint32_t> who;
      for (size_t p = 0; p < probes.size();) {
        const uint32_t l = probes[p].first;
        who.clear();
        for (; p < probes.size() && probes[p].first == l; ++p) {
          who.push_back(probes[p].second);
        }
        const Head::List& list = head.lists[l];
        const std::vector<int64_t>& at = list.positions;
        const uint32_t m = static_cast<uint32_t>(who.size());
        qs.resize(static_cast<size_t>(m) * dk);
        for (uint32_t r = 0; r < m; ++r) {
          std::copy_n(q.data() + static_cast<size_t>(who[r]) * dk, dk,
                      qs.data() + static_cast<size_t>(r) * dk);
        }
        // Positions increase along a list: those in [lo, hi) (neither
        // evicted nor added after the snapshot) are one run of it, most
        // often the whole list (its ends are read first: a binary search
        // of a cold list costs a cache miss per step).
        const uint32_t b =
            at.empty() || at.front() >= lo
                ? 0
                : static_cast<uint32_t>(
                      std::lower_bound(at.begin(), at.end(), lo) - at.begin());
        const uint32_t e =
            at.empty() || at.back() < hi
                ? static_cast<uint32_t>(at.size())
                : static_cast<uint32_t>(
                      std::lower_bound(at.begin(), at.end(), hi) - at.begin());
        tops.clear();
        for (uint32_t r = 0; r < m; ++r) tops.push_back(&top[who[r]]);
        if (int8) {
          if (e == b) continue;
          int8->Scan(
              qs.data(), who.data(), m, list.codes.data() + size_t{b} * dk,
              list.scales.data() + b, e - b,
              [&](const uint32_t* rows, uint32_t count, const char** out) {
                gather.LocateSome(at.data() + b, rows, count, out);
              },
              ref(l, b), tops.data());
          continue;
        }
        if (streaming != FewQueryIsa::kNone) {
          if (e == b) continue;
          rows_at.resize(e - b);
          gather.Locate(at.data() + b, e - b, rows_at.data());
          ScanFewQueryRows(streaming, qs.data(), dk, m, dk, rows_at.data(),
                           spec_.storage_dtype, e - b, ref(l, b), tops.data());
          continue;
        }
        for (uint32_t c = b; c < e; c += KeyGather::kRows) {
          const uint32_t rows = std::min(KeyGather::kRows, e - c);
          gather.Gather(at.data() + c, rows, keys.data());
          if (bf16 && bf16->Scan(keys.data(), rows, who.data(), m, tops.data(),
                                 ref(l, c))) {
            continue;
          }
          block.resize(static_cast<size_t>(m) * rows);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                      static_cast<int>(m), static_cast<int>(rows),
                      static_cast<int>(dk), 1.0f, qs.data(),
                      static_cast<int>(dk), keys.data(), static_cast<int>(dk),
                      0.0f, block.data(), static_cast<int>(rows));
          for (uint32_t r = 0; r < m; ++r) {
            ScanScores(block.data() + static_cast<size_t>(r) * rows, rows,
                       ref(l, c), top[who[r]]);
          }
        }
      }
      // Back from (list, row) to positions while the lists cannot change.
      for (uint32_t i = 0; i < n; ++i) {
        const size_t out = (static_cast<size_t>(i) * heads + h) * k;
        top[i].Finish(scores + out, positions + out);
        for (uint32_t j = 0; j < k && positions[out + j] >= 0; ++j) {
          const int64_t g = positions[out + j];
          positions[out + j] =
              head.lists[static_cast<size_t>(g >> 32)]
                  .positions[static_cast<size_t>(g & 0xffffffff)];
        }
      }
      return;
    }
    for (uint32_t i = 0; i < n; ++i) {  // nothing indexed in [lo, hi)
      top[i].Finish(scores + (static_cast<size_t>(i) * heads + h) * k,
                    positions + (static_cast<size_t>(i) * heads + h) * k);
    }
  });
}

absl::StatusOr<Neighbours> TieredSearch(const StreamSpec& spec,
                                        const LayerSnapshot& snapshot,
                                        absl::Span<const float> queries,
                                        const SearchOptions& options,
                                        WorkerPool& pool) {
  // Indexed positions below `split` (the index may have grown past this
  // snapshot's end since it was taken: those are not in its blocks).
  const int64_t split =
      std::min(std::max(snapshot.first_position, snapshot.indexed_end),
               snapshot.next_position);
  LayerSnapshot tail = snapshot;
  tail.first_position = split;
  SearchOptions exact_options = options;
  exact_options.return_keys = exact_options.return_values = false;
  ASSIGN_OR_RETURN(Neighbours result,
                   ExactSearch(spec, tail, queries, exact_options, pool));
  const uint32_t n = result.queries, k = result.k;
  std::vector<float> scores(result.scores.size());
  std::vector<int64_t> positions(result.positions.size());
  TierOf(snapshot)->Search(snapshot, queries, n, k, snapshot.first_position,
                           split, scores.data(), positions.data(), pool);
  // Merge the two best-first lists of each (query, head).
  for (size_t base = 0; base < scores.size(); base += k) {
    std::vector<ScoredPosition> both;
    both.reserve(2 * k);
    for (uint32_t j = 0; j < k; ++j) {
      if (result.positions[base + j] >= 0) {
        both.push_back({result.scores[base + j], result.positions[base + j]});
      }
      if (positions[base + j] >= 0) {
        both.push_back({scores[base + j], positions[base + j]});
      }
    }
    std::sort(both.begin(), both.end(), RanksBefore);
    for (uint32_t j = 0; j < k; ++j) {
      result.scores[base + j] = j < both.size()
                                    ? both[j].score
                                    : -std::numeric_limits<float>::infinity();
      result.positions[base + j] = j < both.size() ? both[j].position : -1;
    }
  }
  GatherNeighbourRows(spec, snapshot, options, &result);
  return result;
}

}  // namespace knnmem
