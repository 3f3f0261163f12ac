#include "approximate_index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/IDSelector.h>
#include <omp.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "status_macros.h"
#include "top_k.h"

namespace knnmem {
namespace {

// New positions an Extend waits for (fewer: the exact scan is cheap), and
// the most one call adds (bounds its float32 staging per head).
constexpr int64_t kChunk = 8192;
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

}  // namespace

struct ApproximateIndex::Head {
  Head(uint32_t dim, uint32_t nlist)
      : quantizer(dim),
        ivf(&quantizer, dim, nlist, faiss::METRIC_INNER_PRODUCT) {
    ivf.cp.min_points_per_centroid = 1;  // we pick the sample size
    ivf.cp.niter = 10;
  }
  faiss::IndexFlatIP quantizer;
  faiss::IndexIVFFlat ivf;
};

ApproximateIndex::ApproximateIndex(const StreamSpec& spec)
    : spec_(spec),
      nlist_(spec.effective_nlist()),
      nprobe_(spec.effective_nprobe()) {
  for (uint32_t h = 0; h < spec.heads; ++h) {
    heads_.push_back(std::make_unique<Head>(spec.key_dim, nlist_));
  }
}

ApproximateIndex::~ApproximateIndex() = default;

int64_t ApproximateIndex::IndexableEnd(const LayerSnapshot& snapshot) const {
  // On the grid of chunks, so that a layer rebuilt after a restart is
  // indexed to the same position as before.
  int64_t end = snapshot.next_position -
                static_cast<int64_t>(spec_.effective_exact_tail());
  end -= end % kChunk;
  const int64_t from = std::max(indexed_end_.load(), snapshot.first_position);
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
  std::vector<faiss::Index::idx_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = from + i;
  for (uint32_t h = 0; h < spec_.heads; ++h) {
    const std::vector<float> keys = KeysOf(spec_, snapshot, h, from, end);
    Head& head = *heads_[h];
    if (train) {
      // The first keys of the stream, in order: the same centroids every
      // time the same data is indexed (FAISS's k-means seed is fixed).
      const int64_t sample =
          std::min<int64_t>(n, kTrainPerList * int64_t{nlist_});
      head.ivf.train(sample, keys.data());
    }
    std::vector<faiss::Index::idx_t> lists(static_cast<size_t>(n));
    head.quantizer.assign(n, keys.data(), lists.data());
    MutexLock lock(&mu_);
    head.ivf.add_core(n, keys.data(), ids.data(), lists.data());
  }
  MutexLock lock(&mu_);
  if (train) begin_ = from;
  indexed_end_ = end;
  return absl::OkStatus();
}

size_t ApproximateIndex::Forget(int64_t first) {
  MutexLock lock(&mu_);
  const faiss::IDSelectorRange below(0, first);
  size_t removed = 0;
  for (auto& head : heads_) removed += head->ivf.remove_ids(below);
  if (begin_.load() >= 0 && begin_.load() < first) begin_ = first;
  return removed;
}

void ApproximateIndex::Search(absl::Span<const float> queries, uint32_t n,
                              uint32_t k, int64_t lo, int64_t hi, float* scores,
                              int64_t* positions, WorkerPool& pool) const {
  const uint32_t heads = spec_.heads, dk = spec_.key_dim;
  lo = std::max(lo, begin_.load());
  pool.ParallelFor(heads, [&](size_t h) {
    omp_set_num_threads(1);  // the pool provides the parallelism
    std::vector<float> q(static_cast<size_t>(n) * dk);
    for (uint32_t i = 0; i < n; ++i) {
      std::copy_n(queries.data() + (static_cast<size_t>(i) * heads + h) * dk,
                  dk, q.data() + static_cast<size_t>(i) * dk);
    }
    std::vector<float> d(static_cast<size_t>(n) * k);
    std::vector<faiss::Index::idx_t> ids(d.size(), -1);
    if (hi > lo) {
      faiss::IDSelectorRange range(lo, hi);
      faiss::SearchParametersIVF params;
      params.nprobe = nprobe_;
      params.sel = &range;
      ReaderMutexLock lock(&mu_);
      heads_[h]->ivf.search(n, q.data(), k, d.data(), ids.data(), &params);
    }
    for (uint32_t i = 0; i < n; ++i) {
      const size_t out = (static_cast<size_t>(i) * heads + h) * k;
      for (uint32_t j = 0; j < k; ++j) {
        const faiss::Index::idx_t id = ids[static_cast<size_t>(i) * k + j];
        scores[out + j] = id < 0 ? -std::numeric_limits<float>::infinity()
                                 : d[static_cast<size_t>(i) * k + j];
        positions[out + j] = id < 0 ? -1 : id;
      }
    }
  });
}

absl::StatusOr<SearchResult> TieredSearch(const StreamSpec& spec,
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
  ASSIGN_OR_RETURN(SearchResult result,
                   ExactSearch(spec, tail, queries, exact_options, pool));
  const uint32_t n = result.queries, k = result.k;
  std::vector<float> scores(result.scores.size());
  std::vector<int64_t> positions(result.positions.size());
  snapshot.index->Search(queries, n, k, snapshot.first_position, split,
                         scores.data(), positions.data(), pool);
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
