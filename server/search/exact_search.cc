#include "server/search/exact_search.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "server/search/bf16_prefilter.h"
#include "server/search/coded_block_scan.h"
#include "server/search/few_query_scan.h"
#include "server/search/score_scan.h"
#include "server/search/top_k.h"

namespace knnmem {
namespace {

// Queries scored together against one block: bounds the score tile to
// kQueryTile x kMaxBlockRows floats (1 MiB).
constexpr uint32_t kQueryTile = 256;

// The prefilter scores 32 queries per register tile; below this many in a
// tile, sgemm is faster.
constexpr uint32_t kMinPrefilterQueries = 24;

bool UsePrefilter(ScoreKernel kernel, uint32_t queries) {
  switch (kernel) {
    case ScoreKernel::kAuto:
      return queries >= kMinPrefilterQueries && Bf16PrefilterSupported();
    case ScoreKernel::kSgemm:
    case ScoreKernel::kFewQueries:
      return false;
    case ScoreKernel::kBf16Prefilter:
      return Bf16CpuSupported();
  }
  return false;
}

// The streaming scan's instruction set when it scores a tile of `queries`,
// else kNone (the prefilter or sgemm scores it).
FewQueryIsa FewQueryIsaFor(ScoreKernel kernel, uint32_t queries) {
  static const FewQueryIsa cpu = FewQueryIsaOfCpu();
  switch (kernel) {
    case ScoreKernel::kAuto:
    case ScoreKernel::kFewQueries:
      return queries <= kMaxFewQueries ? cpu : FewQueryIsa::kNone;
    case ScoreKernel::kSgemm:
    case ScoreKernel::kBf16Prefilter:
      return FewQueryIsa::kNone;
  }
  return FewQueryIsa::kNone;
}

// Copies the stored key or value of every result entry of one (query tile,
// head) into the output, zero for empty entries.
void GatherRows(const StreamSpec& spec, const LayerSnapshot& snapshot,
                bool keys, uint32_t head, uint32_t q0, uint32_t q1, uint32_t k,
                const int64_t* positions, char* out) {
  const size_t dim = keys ? spec.key_dim : spec.value_dim;
  const size_t row_bytes = dim * ElementSize(spec.storage_dtype);
  for (uint32_t q = q0; q < q1; ++q) {
    const size_t base = (static_cast<size_t>(q) * spec.heads + head) * k;
    for (uint32_t j = 0; j < k; ++j) {
      char* dst = out + (base + j) * row_bytes;
      const int64_t p = positions[base + j];
      if (p < 0) {
        std::memset(dst, 0, row_bytes);
        continue;
      }
      const Block& b = snapshot.BlockOf(p);
      const char* src = (keys ? b.keys(head) : b.values(head)) +
                        static_cast<size_t>(p - b.first_position()) * row_bytes;
      std::memcpy(dst, src, row_bytes);
    }
  }
}

}  // namespace

void PinBlasToOneThread() { openblas_set_num_threads(1); }

void GatherNeighbourRows(const StreamSpec& spec, const LayerSnapshot& snapshot,
                         const SearchOptions& options, Neighbours* result) {
  const size_t es = ElementSize(spec.storage_dtype);
  const size_t entries = result->positions.size();
  if (options.return_keys) result->keys.resize(entries * spec.key_dim * es);
  if (options.return_values) {
    result->values.resize(entries * spec.value_dim * es);
  }
  for (uint32_t h = 0; h < spec.heads; ++h) {
    if (options.return_keys) {
      GatherRows(spec, snapshot, true, h, 0, result->queries, result->k,
                 result->positions.data(), result->keys.data());
    }
    if (options.return_values) {
      GatherRows(spec, snapshot, false, h, 0, result->queries, result->k,
                 result->positions.data(), result->values.data());
    }
  }
}

absl::StatusOr<Neighbours> ExactSearch(const StreamSpec& spec,
                                       const LayerSnapshot& snapshot,
                                       absl::Span<const float> queries,
                                       const SearchOptions& options,
                                       WorkerPool& pool) {
  const uint32_t heads = spec.heads;
  const uint32_t dk = spec.key_dim;
  const uint32_t n = static_cast<uint32_t>(queries.size() / (heads * dk));
  const uint32_t k = options.k;
  Neighbours result;
  result.queries = n;
  result.heads = heads;
  result.k = k;
  result.scores.resize(static_cast<size_t>(n) * heads * k);
  result.positions.resize(result.scores.size());
  const size_t es = ElementSize(spec.storage_dtype);
  if (options.return_keys) result.keys.resize(result.scores.size() * dk * es);
  if (options.return_values) {
    result.values.resize(result.scores.size() * spec.value_dim * es);
  }

  const uint32_t tiles = (n + kQueryTile - 1) / kQueryTile;
  std::atomic<bool> stopped{false};
  pool.ParallelFor(static_cast<size_t>(tiles) * heads, [&](size_t task) {
    const uint32_t head = static_cast<uint32_t>(task % heads);
    const uint32_t q0 = static_cast<uint32_t>(task / heads) * kQueryTile;
    const uint32_t q1 = std::min(n, q0 + kQueryTile);
    const uint32_t m = q1 - q0;
    thread_local std::vector<float> scores;
    thread_local std::vector<float> widened;
    scores.resize(static_cast<size_t>(kQueryTile) * kMaxBlockRows);
    std::vector<TopK> top;
    top.reserve(m);
    for (uint32_t q = 0; q < m; ++q) top.emplace_back(k);
    // Query q of this head starts at queries[(q * heads + head) * dk].
    const float* qbase =
        queries.data() + (static_cast<size_t>(q0) * heads + head) * dk;
    const int lda = static_cast<int>(heads * dk);
    const FewQueryIsa streaming = FewQueryIsaFor(options.kernel, m);
    std::optional<Bf16Prefilter> prefilter;
    if (streaming == FewQueryIsa::kNone && UsePrefilter(options.kernel, m)) {
      prefilter.emplace(qbase, lda, m, dk);
    }
    // Blocks with int8 codes (LayerOptions::int8_codes): the streaming scan
    // reads the codes and scores again only the rows that may enter; a
    // small layer all at once.
    std::optional<CodedBlockScan> coded;
    bool scanned = false;  // every block, by the coded scan
    if (streaming != FewQueryIsa::kNone &&
        CodedBlockScan::Applies(snapshot, head)) {
      coded.emplace(streaming, spec, head, qbase, lda, m, k, top.data());
      if (snapshot.entries() <= kTwoPassRows) {
        coded->ScanSmallLayer(snapshot);
        scanned = true;
      }
    }
    uint64_t prefiltered_rows = 0;
    for (const auto& block : snapshot.blocks) {
      if (scanned) break;
      if (stopped.load(std::memory_order_relaxed)) return;
      if (options.cancelled && options.cancelled()) {
        stopped = true;
        return;
      }
      const int64_t lo =
          std::max(snapshot.first_position, block->first_position());
      const int64_t hi =
          std::min<int64_t>(snapshot.next_position,
                            block->first_position() + block->capacity_rows());
      if (hi <= lo) continue;
      const uint32_t rows = static_cast<uint32_t>(hi - lo);
      const size_t row0 = static_cast<size_t>(lo - block->first_position());
      const char* raw = block->keys(head) + row0 * dk * es;
      if (coded) {
        coded->ScanBlock(*block, lo, hi);
        continue;
      }
      if (streaming != FewQueryIsa::kNone) {
        ScanFewQueries(streaming, qbase, lda, m, dk, raw, spec.storage_dtype,
                       rows, lo, top.data());
        continue;
      }
      if (prefilter &&
          prefilter->ScanBlock(raw, spec.storage_dtype, rows, lo, top.data())) {
        // Filling the 2k buffers takes a few k per query; beyond that, more
        // than an eighth of the keys through means they are too alike.
        prefiltered_rows += rows;
        if (options.kernel == ScoreKernel::kAuto &&
            prefilter->rescored() > m * (prefiltered_rows / 8 + 4 * k)) {
          prefilter.reset();
        }
        continue;
      }
      const float* keys;
      if (spec.storage_dtype == DType::kFloat32) {
        keys = reinterpret_cast<const float*>(raw);
      } else {
        widened.resize(static_cast<size_t>(rows) * dk);
        DecodeFloats(raw, widened.size(), spec.storage_dtype, widened.data());
        keys = widened.data();
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                  static_cast<int>(rows), static_cast<int>(dk), 1.0f, qbase,
                  lda, keys, static_cast<int>(dk), 0.0f, scores.data(),
                  static_cast<int>(rows));
      for (uint32_t q = 0; q < m; ++q) {
        ScanScores(scores.data() + static_cast<size_t>(q) * rows, rows, lo,
                   top[q]);
      }
    }
    for (uint32_t q = 0; q < m; ++q) {
      const size_t base = (static_cast<size_t>(q0 + q) * heads + head) * k;
      top[q].Finish(result.scores.data() + base,
                    result.positions.data() + base);
    }
    if (options.return_keys) {
      GatherRows(spec, snapshot, true, head, q0, q1, k, result.positions.data(),
                 result.keys.data());
    }
    if (options.return_values) {
      GatherRows(spec, snapshot, false, head, q0, q1, k,
                 result.positions.data(), result.values.data());
    }
  });
  if (stopped) {
    return absl::DeadlineExceededError(
        "search stopped: the call's deadline passed or it was cancelled");
  }
  return result;
}

}  // namespace knnmem
