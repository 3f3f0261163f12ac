// libFuzzer target over the edge of every knnmem.v1.Memory RPC.
//
// Each input (layout in fuzz_common.h) picks an RPC, one of the fixed stream
// specs and a few flags, and carries that RPC's serialized request. The
// target parses it and runs exactly what the service runs at the edge
// (ValidateStreamId, SpecFromProto, ValidateAppend / ValidateSearch /
// ValidateAttend against the spec, SearchResponseBytes). A request that
// validates is then executed against an in-RAM LayerMemory of that spec (no
// RocksDB): Appends are converted to the storage dtype as MemoryStore::Append
// does and stored with LayerMemory::AppendRows; Searches and Attends run
// ExactSearch and Attend on a snapshot of what earlier Appends stored.
//
// Invariants are checked with __builtin_trap() after a line on stderr that
// says which one failed:
// - a validation error is INVALID_ARGUMENT with a message that starts with
//   the request field it is about;
// - a validated command is consistent with its request and never fails
//   later (ExactSearch returns OK, the stored rows are the sent rows);
// - search results are n * heads * k, positions are -1 or retained, scores
//   are non-increasing per (query, head), and agree with a brute-force
//   oracle when the search is small;
// - attention lse is finite (or -inf for an empty memory) and the output is
//   finite and within the range of the attended values.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/sync.h"
#include "base/worker_pool.h"
#include "google/protobuf/stubs/logging.h"
#include "knnmem/v1/memory.pb.h"
#include "proto/tensor_codec.h"
#include "server/memory/layer_memory.h"
#include "server/search/attention.h"
#include "server/search/exact_search.h"
#include "server/service/request_validation.h"
#include "server/spec/stream_spec.h"
#include "server/store/new_rows.h"
#include "tests/fuzz/fuzz_common.h"

namespace knnmem {
namespace fuzz {
namespace {

// Reports which invariant failed, then stops the fuzzer with a crash.
#define FUZZ_CHECK(cond, ...)                                               \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "request_fuzzer: invariant failed at %s:%d: %s", \
                   __FILE__, __LINE__, #cond);                              \
      const std::string detail = absl::StrCat("", ##__VA_ARGS__);           \
      std::fprintf(stderr, "%s%s\n", detail.empty() ? "" : ": ",            \
                   detail.c_str());                                         \
      __builtin_trap();                                                     \
    }                                                                       \
  } while (0)

// Bounds that keep one input fast and the process small.
constexpr size_t kMaxAppendRows = 4096;
// n * heads * (entries + k): the work of one search.
constexpr uint64_t kMaxSearchWork = uint64_t{1} << 21;
// Bytes of one search result (scores, positions, keys, values).
constexpr uint64_t kMaxResultBytes = uint64_t{32} << 20;
// n * heads * entries * key_dim: when the brute-force oracle runs.
constexpr uint64_t kMaxOracleWork = uint64_t{1} << 22;
// Row bytes of a fuzzed CreateStream spec that gets a scratch memory.
constexpr size_t kMaxScratchRowBytes = 16 << 10;

constexpr float kInf = std::numeric_limits<float>::infinity();

// The fuzzer's streams: one per fixed spec, each with its layers in RAM.
struct SpecState {
  std::vector<std::unique_ptr<LayerMemory>> layers;
};

void NewLayers(const StreamSpec& spec, SpecState& state) {
  state.layers.clear();
  for (uint32_t l = 0; l < spec.layers; ++l) {
    state.layers.push_back(std::make_unique<LayerMemory>(spec));
  }
}

// Never destroyed: reachable until exit, so not a leak.
SpecState& StateOf(size_t spec_index) {
  static std::vector<SpecState>* states = [] {
    auto* s = new std::vector<SpecState>(kSpecCount);
    for (size_t i = 0; i < kSpecCount; ++i) NewLayers(kSpecs[i], (*s)[i]);
    return s;
  }();
  return (*states)[spec_index];
}

WorkerPool& Pool() {
  static WorkerPool* pool = new WorkerPool(1);
  return *pool;
}

std::string StreamIdOf(size_t spec_index) {
  return absl::StrCat("fuzz-s", spec_index);
}

// A validation error: INVALID_ARGUMENT, with a message that names one of
// `fields` first ("keys.shape[1] = ...", "k: ...", "scale[0] = ...").
void CheckValidationError(const absl::Status& s,
                          std::initializer_list<absl::string_view> fields) {
  FUZZ_CHECK(!s.ok());
  FUZZ_CHECK(!s.message().empty(), "code ", absl::StatusCodeToString(s.code()));
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, s.ToString());
  bool named = false;
  for (absl::string_view f : fields) {
    if (absl::StartsWith(s.message(), f) && s.message().size() > f.size()) {
      const char next = s.message()[f.size()];
      named = named || next == ':' || next == '.' || next == '[' || next == ' ';
    }
  }
  FUZZ_CHECK(named,
             "message does not start with a request field: ", s.message());
}

// The key or value row of `position`, head `head`, in the storage dtype.
const char* StoredRow(const StreamSpec& spec, const LayerSnapshot& snapshot,
                      int64_t position, uint32_t head, bool keys) {
  const Block& b = snapshot.BlockOf(position);
  const size_t dim = keys ? spec.key_dim : spec.value_dim;
  const size_t row = static_cast<size_t>(position - b.first_position());
  return (keys ? b.keys(head) : b.values(head)) +
         row * dim * ElementSize(spec.storage_dtype);
}

std::vector<float> StoredRowFloats(const StreamSpec& spec,
                                   const LayerSnapshot& snapshot,
                                   int64_t position, uint32_t head, bool keys) {
  std::vector<float> out(keys ? spec.key_dim : spec.value_dim);
  DecodeFloats(StoredRow(spec, snapshot, position, head, keys), out.size(),
               spec.storage_dtype, out.data());
  return out;
}

// Snapshot bookkeeping: a contiguous retained range, at most `capacity`
// long, covered by blocks sorted by position.
void CheckSnapshot(const StreamSpec& spec, const LayerSnapshot& snap) {
  FUZZ_CHECK(snap.first_position >= 0);
  FUZZ_CHECK(snap.first_position <= snap.next_position);
  FUZZ_CHECK(static_cast<uint64_t>(snap.entries()) <= spec.capacity);
  if (snap.entries() == 0) return;
  FUZZ_CHECK(!snap.blocks.empty());
  FUZZ_CHECK(snap.blocks.front()->first_position() <= snap.first_position);
  const Block& last = *snap.blocks.back();
  FUZZ_CHECK(last.first_position() + int64_t{last.capacity_rows()} >=
             snap.next_position);
  for (size_t i = 1; i < snap.blocks.size(); ++i) {
    const Block& a = *snap.blocks[i - 1];
    FUZZ_CHECK(a.first_position() + int64_t{a.capacity_rows()} ==
               snap.blocks[i]->first_position());
  }
  // Retained blocks span at most entries + 2 * kMaxBlockRows rows, and each
  // holds at least min(kMinBlockRows, capacity) of them.
  const uint64_t min_rows = std::min<uint64_t>(kMinBlockRows, spec.capacity);
  FUZZ_CHECK(
      snap.blocks.size() <= (spec.capacity + 2 * kMaxBlockRows) / min_rows + 2,
      snap.blocks.size(), " blocks for capacity ", spec.capacity);
}

// Checks a search result against the snapshot it ran on and, when the search
// is small and cannot overflow, against a brute-force oracle.
void CheckNeighbours(const StreamSpec& spec, const LayerSnapshot& snap,
                     const std::vector<float>& queries,
                     const SearchOptions& options, const Neighbours& r) {
  const uint32_t heads = spec.heads, dk = spec.key_dim, k = options.k;
  const size_t n = queries.size() / (size_t{heads} * dk);
  FUZZ_CHECK(r.queries == n && r.heads == heads && r.k == k);
  const size_t cells = n * heads * k;
  FUZZ_CHECK(r.scores.size() == cells && r.positions.size() == cells);
  const size_t es = ElementSize(spec.storage_dtype);
  FUZZ_CHECK(r.keys.size() == (options.return_keys ? cells * dk * es : 0));
  FUZZ_CHECK(r.values.size() ==
             (options.return_values ? cells * spec.value_dim * es : 0));
  const uint64_t entries = static_cast<uint64_t>(snap.entries());
  const bool oracle = n * heads * entries * dk <= kMaxOracleWork;
  std::vector<int64_t> seen;
  std::vector<double> ref(entries);
  for (size_t q = 0; q < n; ++q) {
    for (uint32_t h = 0; h < heads; ++h) {
      const size_t base = (q * heads + h) * k;
      const float* scores = r.scores.data() + base;
      const int64_t* positions = r.positions.data() + base;
      uint32_t present = 0;
      while (present < k && positions[present] >= 0) ++present;
      for (uint32_t j = 0; j < k; ++j) {
        const int64_t p = positions[j];
        if (j >= present) {
          FUZZ_CHECK(p == -1, "an entry after an empty one, q ", q, " h ", h,
                     " j ", j, " position ", p);
          FUZZ_CHECK(scores[j] == -kInf, "empty entry with score ", scores[j]);
          continue;
        }
        FUZZ_CHECK(p >= snap.first_position && p < snap.next_position,
                   "position ", p, " outside [", snap.first_position, ", ",
                   snap.next_position, ")");
        FUZZ_CHECK(!std::isnan(scores[j]), "NaN score at position ", p);
        if (j > 0) {
          FUZZ_CHECK(scores[j] <= scores[j - 1], "scores rise at rank ", j,
                     ": ", scores[j - 1], " then ", scores[j]);
        }
      }
      FUZZ_CHECK(present <= std::min<uint64_t>(k, entries));
      seen.assign(positions, positions + present);
      std::sort(seen.begin(), seen.end());
      FUZZ_CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end(),
                 "a position is returned twice");
      // Returned keys and values are the stored rows, zeros when empty.
      for (int pass = 0; pass < 2; ++pass) {
        const bool keys = pass == 0;
        if (keys ? !options.return_keys : !options.return_values) continue;
        const size_t row_bytes = (keys ? dk : spec.value_dim) * es;
        const std::string& out = keys ? r.keys : r.values;
        for (uint32_t j = 0; j < k; ++j) {
          const char* got = out.data() + (base + j) * row_bytes;
          if (j < present) {
            FUZZ_CHECK(
                std::memcmp(got, StoredRow(spec, snap, positions[j], h, keys),
                            row_bytes) == 0,
                keys ? "keys" : "values", " of position ", positions[j],
                " differ from the stored row");
          } else {
            FUZZ_CHECK(std::all_of(got, got + row_bytes,
                                   [](char c) { return c == 0; }),
                       "empty entry with non-zero ", keys ? "keys" : "values");
          }
        }
      }
      if (!oracle) continue;
      // Brute force in double precision. Skipped when float32 accumulation
      // could overflow (the server's scores are float32).
      const float* query = queries.data() + (q * heads + h) * dk;
      double max_abs = 0;
      for (uint64_t e = 0; e < entries; ++e) {
        const int64_t p = snap.first_position + static_cast<int64_t>(e);
        const std::vector<float> key = StoredRowFloats(spec, snap, p, h, true);
        double dot = 0, abs = 0;
        for (uint32_t d = 0; d < dk; ++d) {
          dot += double{query[d]} * key[d];
          abs += std::fabs(double{query[d]} * key[d]);
        }
        ref[e] = dot;
        max_abs = std::max(max_abs, abs);
      }
      if (max_abs > 1e37) continue;
      const double tol = 1e-4 * max_abs + 1e-30;
      FUZZ_CHECK(present == std::min<uint64_t>(k, entries), "only ", present,
                 " of ", std::min<uint64_t>(k, entries), " entries found");
      if (present == 0) continue;
      std::vector<double> sorted(ref);
      std::nth_element(sorted.begin(), sorted.begin() + (present - 1),
                       sorted.end(), std::greater<double>());
      const double kth = sorted[present - 1];
      for (uint32_t j = 0; j < present; ++j) {
        const double want =
            ref[static_cast<size_t>(positions[j] - snap.first_position)];
        FUZZ_CHECK(std::fabs(scores[j] - want) <= tol, "score ", scores[j],
                   " of position ", positions[j], ", brute force ", want);
        FUZZ_CHECK(want >= kth - 2 * tol, "position ", positions[j], " (score ",
                   want, ") is not in the top ", present, " (k-th score ", kth,
                   ")");
      }
    }
  }
}

// The server's response for a search, built as MemoryService::Search does:
// its size must stay within SearchResponseBytes.
void CheckResponseSize(const StreamSpec& spec, const SearchCommand& cmd,
                       const Neighbours& r) {
  v1::SearchResponse response;
  const int64_t shape[] = {r.queries, r.heads, r.k};
  v1::Tensor* scores = response.mutable_scores();
  scores->set_dtype(v1::FLOAT32);
  for (int64_t d : shape) scores->add_shape(d);
  scores->mutable_data()->assign(reinterpret_cast<const char*>(r.scores.data()),
                                 r.scores.size() * sizeof(float));
  v1::Tensor* positions = response.mutable_positions();
  positions->set_dtype(v1::INT64);
  for (int64_t d : shape) positions->add_shape(d);
  positions->mutable_data()->assign(
      reinterpret_cast<const char*>(r.positions.data()),
      r.positions.size() * sizeof(int64_t));
  const v1::DType stored = DTypeToProto(spec.storage_dtype);
  if (cmd.options.return_keys) {
    v1::Tensor* t = response.mutable_keys();
    t->set_dtype(stored);
    for (int64_t d : shape) t->add_shape(d);
    t->add_shape(spec.key_dim);
    t->set_data(r.keys);
  }
  if (cmd.options.return_values) {
    v1::Tensor* t = response.mutable_values();
    t->set_dtype(stored);
    for (int64_t d : shape) t->add_shape(d);
    t->add_shape(spec.value_dim);
    t->set_data(r.values);
  }
  const size_t bound = SearchResponseBytes(cmd);
  FUZZ_CHECK(response.ByteSizeLong() <= bound, "response of ",
             response.ByteSizeLong(), " bytes, SearchResponseBytes ", bound);
}

// Checks an attention result against the search result it attended over.
void CheckAttention(const StreamSpec& spec, const LayerSnapshot& snap,
                    const Neighbours& top, const AttendOptions& options,
                    const Attention& r) {
  const uint32_t heads = spec.heads, dv = spec.value_dim, k = top.k;
  FUZZ_CHECK(r.queries == top.queries && r.heads == heads && r.value_dim == dv);
  FUZZ_CHECK(r.output.size() == size_t{r.queries} * heads * dv);
  FUZZ_CHECK(r.lse.size() == size_t{r.queries} * heads);
  std::vector<float> lo(dv), hi(dv);
  for (size_t q = 0; q < r.queries; ++q) {
    for (uint32_t h = 0; h < heads; ++h) {
      const size_t cell = q * heads + h;
      const float* out = r.output.data() + cell * dv;
      const float lse = r.lse[cell];
      const int64_t* positions = top.positions.data() + cell * k;
      uint32_t present = 0;
      while (present < k && positions[present] >= 0) ++present;
      if (present == 0) {
        FUZZ_CHECK(lse == -kInf, "lse ", lse, " over an empty memory");
        for (uint32_t d = 0; d < dv; ++d) {
          FUZZ_CHECK(out[d] == 0.0f, "output ", out[d], " over nothing");
        }
        continue;
      }
      FUZZ_CHECK(std::isfinite(lse), "lse ", lse, " at query ", q, " head ", h,
                 " over ", present, " entries (top score ",
                 top.scores[cell * k], ", scale ", options.scale[h],
                 options.age_alpha.empty()
                     ? std::string()
                     : absl::StrCat(", age_alpha ", options.age_alpha[h],
                                    ", age_tau ", options.age_tau),
                 ")");
      // The output is a convex combination of the attended values.
      std::fill(lo.begin(), lo.end(), kInf);
      std::fill(hi.begin(), hi.end(), -kInf);
      float max_abs = 0;
      for (uint32_t j = 0; j < present; ++j) {
        const std::vector<float> v =
            StoredRowFloats(spec, snap, positions[j], h, false);
        for (uint32_t d = 0; d < dv; ++d) {
          lo[d] = std::min(lo[d], v[d]);
          hi[d] = std::max(hi[d], v[d]);
          max_abs = std::max(max_abs, std::fabs(v[d]));
        }
      }
      const double tol = 1e-3 * max_abs + 1e-30;
      for (uint32_t d = 0; d < dv; ++d) {
        FUZZ_CHECK(std::isfinite(out[d]), "output[", d, "] = ", out[d],
                   " at query ", q, " head ", h);
        FUZZ_CHECK(out[d] >= lo[d] - tol && out[d] <= hi[d] + tol, "output[", d,
                   "] = ", out[d], " outside the values' range [", lo[d], ", ",
                   hi[d], "]");
      }
    }
  }
}

// Whether a search of n queries is small enough to run.
bool SearchIsBounded(const StreamSpec& spec, size_t n, uint32_t k,
                     bool return_keys, bool return_values,
                     const LayerSnapshot& snap) {
  const uint64_t cells = uint64_t{n} * spec.heads;
  if (cells * (static_cast<uint64_t>(snap.entries()) + k) > kMaxSearchWork) {
    return false;
  }
  const uint64_t es = ElementSize(spec.storage_dtype);
  uint64_t bytes = cells * k * (sizeof(float) + sizeof(int64_t));
  if (return_keys) bytes += cells * k * spec.key_dim * es;
  if (return_values) bytes += cells * k * spec.value_dim * es;
  return bytes <= kMaxResultBytes;
}

// Runs a validated search and checks it. Returns the result for Attend.
absl::StatusOr<Neighbours> RunSearch(const StreamSpec& spec,
                                     const LayerSnapshot& snap,
                                     const std::vector<float>& queries,
                                     const SearchOptions& options) {
  absl::StatusOr<Neighbours> r =
      ExactSearch(spec, snap, queries, options, Pool());
  FUZZ_CHECK(r.ok(), "a validated search failed: ", r.status().ToString());
  CheckNeighbours(spec, snap, queries, options, *r);
  return r;
}

// Stores a validated Append as MemoryStore::Append does (without the
// storage write): a gap is refused, NewRows skips the positions already
// stored and converts rows in another dtype, then LayerMemory::AppendRows
// (StageRows + Publish) stores them. With
// `discard_staged` the rows are staged and dropped instead, as when the
// storage write fails.
void ExecuteAppend(const AppendCommand& cmd, LayerMemory& layer,
                   bool discard_staged) {
  const StreamSpec& spec = cmd.spec;
  MutexLock append(&layer.append_mutex());
  const int64_t first_before = layer.first_position();
  const int64_t next = layer.next_position();
  if (cmd.first_position > next) return;  // FAILED_PRECONDITION: a gap
  const int64_t end = cmd.first_position + static_cast<int64_t>(cmd.rows);
  if (end <= next) return;  // a replay: already stored

  const NewRows fresh(cmd, next);
  const size_t rows = fresh.rows();
  const char* keys = fresh.keys();
  const char* values = fresh.values();
  const size_t key_elems = size_t{spec.heads} * spec.key_dim;
  const size_t value_elems = size_t{spec.heads} * spec.value_dim;
  const size_t es = ElementSize(spec.storage_dtype);
  const size_t key_stride = fresh.key_row_bytes();
  const size_t value_stride = fresh.value_row_bytes();
  // The memory holds only finite numbers: ValidateAppend refuses NaN and
  // Inf, and a search over an Inf key scores NaN or Inf.
  const bool finite = AllFinite(keys, rows * key_elems, spec.storage_dtype) &&
                      AllFinite(values, rows * value_elems, spec.storage_dtype);
  FUZZ_CHECK(finite, "finite ", DTypeName(cmd.dtype), " rows become Inf in ",
             DTypeName(spec.storage_dtype), " storage (rows ", next, "..",
             end - 1, ")");
  if (discard_staged) {
    // As when the WAL write fails: the rows are staged, the Staged is
    // dropped, and nothing may have changed for readers.
    const LayerSnapshot before = layer.Snapshot();
    const size_t bytes_before = layer.BytesInRam();
    {
      LayerMemory::Staged staged =
          layer.StageRows(keys, key_stride, values, value_stride, rows);
      FUZZ_CHECK(staged.next_position == end);
    }
    const LayerSnapshot after = layer.Snapshot();
    FUZZ_CHECK(after.first_position == before.first_position &&
                   after.next_position == before.next_position &&
                   after.blocks == before.blocks &&
                   layer.BytesInRam() == bytes_before,
               "dropping staged rows changed the layer");
    return;
  }
  layer.AppendRows(keys, key_stride, values, value_stride, rows);

  FUZZ_CHECK(layer.next_position() == end);
  const int64_t want_first = std::max<int64_t>(
      first_before, end - static_cast<int64_t>(spec.capacity));
  FUZZ_CHECK(layer.first_position() == want_first, "first_position ",
             layer.first_position(), ", want ", want_first);
  const LayerSnapshot snap = layer.Snapshot();
  CheckSnapshot(spec, snap);
  const size_t bytes = layer.BytesInRam();
  FUZZ_CHECK(bytes >= static_cast<size_t>(snap.entries()) * spec.RowBytes());
  FUZZ_CHECK(bytes <= (static_cast<size_t>(snap.entries()) +
                       2 * size_t{kMaxBlockRows}) *
                          spec.RowBytes(),
             bytes, " bytes in RAM for ", snap.entries(), " entries");
  // The oldest and the newest row of this batch that are still retained
  // hold exactly the (converted) bytes that were sent.
  const size_t key_bytes = spec.key_dim * es, value_bytes = spec.value_dim * es;
  for (int64_t p : {std::max(next, snap.first_position), end - 1}) {
    const size_t r = static_cast<size_t>(p - next);
    for (uint32_t h = 0; h < spec.heads; ++h) {
      FUZZ_CHECK(
          std::memcmp(StoredRow(spec, snap, p, h, true),
                      keys + r * key_stride + h * key_bytes, key_bytes) == 0,
          "stored key of position ", p, " head ", h, " differs");
      FUZZ_CHECK(std::memcmp(StoredRow(spec, snap, p, h, false),
                             values + r * value_stride + h * value_bytes,
                             value_bytes) == 0,
                 "stored value of position ", p, " head ", h, " differs");
    }
  }
}

// A StreamInfo as MemoryService::FillInfo builds it, checked against the
// layers it describes.
v1::StreamInfo InfoOf(const std::string& id, const StreamSpec& spec,
                      const SpecState& state) {
  v1::StreamInfo info;
  info.set_stream_id(id);
  SpecToProto(spec, info.mutable_spec());
  uint64_t bytes = 0;
  for (size_t l = 0; l < state.layers.size(); ++l) {
    const LayerSnapshot snap = state.layers[l]->Snapshot();
    CheckSnapshot(spec, snap);
    v1::LayerInfo* layer = info.add_layers();
    layer->set_layer(static_cast<uint32_t>(l));
    layer->set_first_position(snap.first_position);
    layer->set_next_position(snap.next_position);
    layer->set_entries(static_cast<uint64_t>(snap.entries()));
    bytes += state.layers[l]->BytesInRam();
  }
  info.set_bytes_in_ram(bytes);
  info.set_resident(true);
  absl::StatusOr<StreamSpec> back = SpecFromProto(info.spec());
  FUZZ_CHECK(back.ok() && *back == spec, "SpecToProto does not round-trip");
  return info;
}

// ---- One function per RPC ----

void FuzzCreateStream(const v1::CreateStreamRequest& req) {
  const absl::Status id = ValidateStreamId(req.stream_id());
  if (!id.ok()) return CheckValidationError(id, {"stream_id"});
  if (!req.has_spec()) return;  // the service answers "spec: missing"
  absl::StatusOr<StreamSpec> spec = SpecFromProto(req.spec());
  if (!spec.ok()) return CheckValidationError(spec.status(), {"spec"});

  const v1::StreamSpec& in = req.spec();
  FUZZ_CHECK(
      spec->layers == in.layers() && spec->heads == in.heads() &&
      spec->key_dim == in.key_dim() && spec->value_dim == in.value_dim() &&
      spec->capacity == in.capacity() && spec->ttl_seconds == in.ttl_seconds());
  FUZZ_CHECK(ValidateSpec(*spec).ok());
  FUZZ_CHECK(spec->layers >= 1 && spec->layers <= kMaxLayers);
  FUZZ_CHECK(spec->heads >= 1 && spec->heads <= kMaxHeads);
  FUZZ_CHECK(spec->key_dim >= 1 && spec->key_dim <= kMaxDim);
  FUZZ_CHECK(spec->value_dim >= 1 && spec->value_dim <= kMaxDim);
  FUZZ_CHECK(spec->capacity >= 1 && spec->capacity <= kMaxCapacity);
  FUZZ_CHECK(in.storage_dtype() == v1::DTYPE_UNSPECIFIED
                 ? spec->storage_dtype == DType::kFloat32
                 : DTypeToProto(spec->storage_dtype) == in.storage_dtype());
  v1::StreamSpec wire;
  SpecToProto(*spec, &wire);
  absl::StatusOr<StreamSpec> again = SpecFromProto(wire);
  FUZZ_CHECK(again.ok() && *again == *spec, "SpecToProto does not round-trip");
  absl::StatusOr<StreamSpec> decoded = DecodeSpec(EncodeSpec(*spec));
  FUZZ_CHECK(decoded.ok() && *decoded == *spec,
             "EncodeSpec does not round-trip");

  // A small spec gets a scratch memory: a few rows past its capacity, then
  // a search and an attention over them, so that odd shapes reach the
  // search code.
  if (spec->RowBytes() > kMaxScratchRowBytes) return;
  LayerMemory layer(*spec);
  const size_t rows =
      static_cast<size_t>(std::min<uint64_t>(spec->capacity, 3)) + 1;
  const size_t key_elems = size_t{spec->heads} * spec->key_dim;
  const size_t value_elems = size_t{spec->heads} * spec->value_dim;
  std::vector<float> keys(rows * key_elems), values(rows * value_elems);
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i] = static_cast<float>(static_cast<int>((i * 7) % 17) - 8) * 0.25f;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<float>(static_cast<int>((i * 5) % 13) - 6) * 0.5f;
  }
  const std::string packed_keys = PackFloats(keys, spec->storage_dtype);
  const std::string packed_values = PackFloats(values, spec->storage_dtype);
  const size_t es = ElementSize(spec->storage_dtype);
  {
    MutexLock append(&layer.append_mutex());
    layer.AppendRows(packed_keys.data(), key_elems * es, packed_values.data(),
                     value_elems * es, rows);
  }
  const LayerSnapshot snap = layer.Snapshot();
  CheckSnapshot(*spec, snap);
  FUZZ_CHECK(snap.next_position == static_cast<int64_t>(rows));
  FUZZ_CHECK(static_cast<uint64_t>(snap.entries()) ==
             std::min<uint64_t>(rows, spec->capacity));
  const std::vector<float> query(key_elems, 0.5f);
  SearchOptions options;
  options.k = static_cast<uint32_t>(std::min<uint64_t>(spec->capacity, 4));
  options.return_keys = options.return_values = true;
  absl::StatusOr<Neighbours> top = RunSearch(*spec, snap, query, options);
  AttendOptions attend;
  attend.scale.assign(spec->heads,
                      1.0f / std::sqrt(static_cast<float>(spec->key_dim)));
  CheckAttention(*spec, snap, *top, attend,
                 Attend(*spec, snap, *top, attend, Pool()));
}

void FuzzGetStream(const v1::GetStreamRequest& req, size_t spec_index) {
  const absl::Status id = ValidateStreamId(req.stream_id());
  if (!id.ok()) return CheckValidationError(id, {"stream_id"});
  const v1::StreamInfo info =
      InfoOf(req.stream_id(), kSpecs[spec_index], StateOf(spec_index));
  v1::StreamInfo parsed;
  FUZZ_CHECK(parsed.ParseFromString(info.SerializeAsString()));
  FUZZ_CHECK(parsed.layers_size() ==
             static_cast<int>(kSpecs[spec_index].layers));
}

void FuzzListStreams(const v1::ListStreamsRequest& req) {
  // What MemoryService::ListStreams checks before listing.
  constexpr uint32_t kDefaultPage = 1000, kMaxPage = 10000;
  if (req.page_size() > kMaxPage) return;  // INVALID_ARGUMENT "page_size: ..."
  const size_t limit = req.page_size() == 0 ? kDefaultPage : req.page_size();
  v1::ListStreamsResponse response;
  for (size_t i = 0;
       i < kSpecCount && static_cast<size_t>(response.streams_size()) < limit;
       ++i) {
    const std::string id = StreamIdOf(i);
    if (id > req.page_token()) {
      *response.add_streams() = InfoOf(id, kSpecs[i], StateOf(i));
    }
  }
  v1::ListStreamsResponse parsed;
  FUZZ_CHECK(parsed.ParseFromString(response.SerializeAsString()));
  FUZZ_CHECK(parsed.streams_size() == response.streams_size());
}

// ResetStream and DeleteStream: only the stream id is validated; with
// kFlagDropEntries a valid request drops the stream's entries (a delete
// followed by a create with the same spec leaves the same state).
template <typename Request>
void FuzzDrop(const Request& req, size_t spec_index, uint8_t flags) {
  const absl::Status id = ValidateStreamId(req.stream_id());
  if (!id.ok()) return CheckValidationError(id, {"stream_id"});
  if ((flags & kFlagDropEntries) == 0) return;
  SpecState& state = StateOf(spec_index);
  NewLayers(kSpecs[spec_index], state);
  for (const auto& layer : state.layers) {
    FUZZ_CHECK(layer->next_position() == 0 && layer->BytesInRam() == 0);
  }
}

void FuzzAppend(v1::AppendRequest& req, size_t spec_index, uint8_t flags) {
  const StreamSpec& spec = kSpecs[spec_index];
  SpecState& state = StateOf(spec_index);
  if ((flags & kFlagFollow) != 0 && req.layer() < spec.layers) {
    const int64_t next = state.layers[req.layer()]->next_position();
    req.set_first_position(
        std::max<int64_t>(0, next - (req.first_position() & 7)));
  }
  const absl::Status id = ValidateStreamId(req.stream_id());
  if (!id.ok()) return CheckValidationError(id, {"stream_id"});
  absl::StatusOr<AppendCommand> cmd = ValidateAppend(req, spec);
  if (!cmd.ok()) {
    return CheckValidationError(
        cmd.status(),
        {"stream_id", "layer", "first_position", "keys", "values"});
  }
  // The command is what the request says, and its bytes are exactly
  // rows x heads x dim elements: MemoryStore trusts that.
  FUZZ_CHECK(cmd->spec == spec && cmd->stream_id == req.stream_id());
  FUZZ_CHECK(cmd->layer == req.layer() && cmd->layer < spec.layers);
  FUZZ_CHECK(cmd->first_position == req.first_position() &&
             cmd->first_position >= 0);
  FUZZ_CHECK(cmd->rows >= 1 && req.keys().shape_size() == 3 &&
             cmd->rows == static_cast<uint64_t>(req.keys().shape(0)));
  FUZZ_CHECK(cmd->first_position + static_cast<int64_t>(cmd->rows) <=
             kMaxPosition);
  FUZZ_CHECK(DTypeToProto(cmd->dtype) == req.keys().dtype() &&
             req.values().dtype() == req.keys().dtype());
  const size_t es = ElementSize(cmd->dtype);
  FUZZ_CHECK(cmd->keys.size() == cmd->rows * spec.heads * spec.key_dim * es,
             cmd->keys.size(), " key bytes for ", cmd->rows, " rows");
  FUZZ_CHECK(cmd->values.size() == cmd->rows * spec.heads * spec.value_dim * es,
             cmd->values.size(), " value bytes for ", cmd->rows, " rows");
  FUZZ_CHECK(cmd->keys.data() == req.keys().data().data() &&
             cmd->values.data() == req.values().data().data());
  FUZZ_CHECK(AllFinite(cmd->keys.data(), cmd->keys.size() / es, cmd->dtype));
  FUZZ_CHECK(
      AllFinite(cmd->values.data(), cmd->values.size() / es, cmd->dtype));
  FUZZ_CHECK(cmd->sync == req.sync());
  if (cmd->rows > kMaxAppendRows) return;
  ExecuteAppend(*cmd, *state.layers[cmd->layer],
                (flags & kFlagDiscardStaged) != 0);
}

// Checks shared by a validated Search and Attend.
void CheckQueries(const StreamSpec& spec, const v1::Tensor& wire,
                  const std::vector<float>& queries) {
  FUZZ_CHECK(wire.shape_size() == 3 && wire.shape(0) >= 1 &&
             wire.shape(1) == spec.heads && wire.shape(2) == spec.key_dim);
  const size_t n = static_cast<size_t>(wire.shape(0));
  FUZZ_CHECK(queries.size() == n * spec.heads * spec.key_dim, queries.size(),
             " query floats for ", n, " queries");
  for (float f : queries) FUZZ_CHECK(std::isfinite(f), "query ", f);
}

void FuzzSearch(const v1::SearchRequest& req, size_t spec_index) {
  const StreamSpec& spec = kSpecs[spec_index];
  const absl::Status id = ValidateStreamId(req.stream_id());
  if (!id.ok()) return CheckValidationError(id, {"stream_id"});
  absl::StatusOr<SearchCommand> cmd = ValidateSearch(req, spec);
  if (!cmd.ok()) {
    return CheckValidationError(cmd.status(),
                                {"stream_id", "layer", "k", "queries"});
  }
  FUZZ_CHECK(cmd->spec == spec && cmd->stream_id == req.stream_id());
  FUZZ_CHECK(cmd->layer == req.layer() && cmd->layer < spec.layers);
  FUZZ_CHECK(cmd->options.k == req.k() && req.k() >= 1 && req.k() <= kMaxK);
  FUZZ_CHECK(cmd->options.return_keys == req.return_keys() &&
             cmd->options.return_values == req.return_values());
  CheckQueries(spec, req.queries(), cmd->queries);
  const size_t n = cmd->queries.size() / (size_t{spec.heads} * spec.key_dim);
  const size_t cells = n * spec.heads * req.k();
  FUZZ_CHECK(SearchResponseBytes(*cmd) >=
             cells * (sizeof(float) + sizeof(int64_t)));

  const LayerSnapshot snap = StateOf(spec_index).layers[cmd->layer]->Snapshot();
  CheckSnapshot(spec, snap);
  if (!SearchIsBounded(spec, n, cmd->options.k, cmd->options.return_keys,
                       cmd->options.return_values, snap)) {
    return;
  }
  absl::StatusOr<Neighbours> r =
      RunSearch(spec, snap, cmd->queries, cmd->options);
  CheckResponseSize(spec, *cmd, *r);
}

void FuzzAttend(const v1::AttendRequest& req, size_t spec_index) {
  const StreamSpec& spec = kSpecs[spec_index];
  const absl::Status id = ValidateStreamId(req.stream_id());
  if (!id.ok()) return CheckValidationError(id, {"stream_id"});
  // The same request as a Search: Attend checks everything Search checks,
  // in the same order, and then its own fields.
  v1::SearchRequest twin;
  twin.set_stream_id(req.stream_id());
  twin.set_layer(req.layer());
  if (req.has_queries()) *twin.mutable_queries() = req.queries();
  twin.set_k(req.k());
  absl::StatusOr<SearchCommand> search = ValidateSearch(twin, spec);
  absl::StatusOr<AttendCommand> cmd = ValidateAttend(req, spec);
  if (!search.ok()) {
    FUZZ_CHECK(!cmd.ok() && cmd.status() == search.status(),
               "Attend: ", cmd.status().ToString(),
               ", Search: ", search.status().ToString());
  }
  if (!cmd.ok()) {
    if (search.ok()) {
      return CheckValidationError(cmd.status(),
                                  {"scale", "age_alpha", "age_tau"});
    }
    return CheckValidationError(cmd.status(),
                                {"stream_id", "layer", "k", "queries"});
  }
  FUZZ_CHECK(cmd->spec == spec && cmd->stream_id == req.stream_id());
  FUZZ_CHECK(cmd->layer == req.layer() && cmd->layer < spec.layers);
  FUZZ_CHECK(cmd->k == req.k());
  CheckQueries(spec, req.queries(), cmd->queries);
  FUZZ_CHECK(cmd->queries == search->queries);
  const AttendOptions& o = cmd->options;
  FUZZ_CHECK(o.scale.size() == spec.heads, o.scale.size(), " scales");
  for (uint32_t h = 0; h < spec.heads; ++h) {
    FUZZ_CHECK(std::isfinite(o.scale[h]) && o.scale[h] > 0, "scale ",
               o.scale[h]);
    if (req.scale().empty()) {
      FUZZ_CHECK(o.scale[h] ==
                 1.0f / std::sqrt(static_cast<float>(spec.key_dim)));
    } else {
      FUZZ_CHECK(o.scale[h] ==
                 req.scale(req.scale_size() == 1 ? 0 : static_cast<int>(h)));
    }
  }
  FUZZ_CHECK(o.age_alpha.empty() == req.age_alpha().empty());
  if (!o.age_alpha.empty()) {
    FUZZ_CHECK(o.age_alpha.size() == spec.heads);
    for (float a : o.age_alpha) FUZZ_CHECK(std::isfinite(a), "age_alpha ", a);
    FUZZ_CHECK(std::isfinite(o.age_tau) && o.age_tau > 0, "age_tau ",
               o.age_tau);
  }

  const LayerSnapshot snap = StateOf(spec_index).layers[cmd->layer]->Snapshot();
  CheckSnapshot(spec, snap);
  const size_t n = cmd->queries.size() / (size_t{spec.heads} * spec.key_dim);
  if (!SearchIsBounded(spec, n, cmd->k, false, false, snap)) return;
  SearchOptions options;
  options.k = cmd->k;
  absl::StatusOr<Neighbours> top = RunSearch(spec, snap, cmd->queries, options);
  CheckAttention(spec, snap, *top, o, Attend(spec, snap, *top, o, Pool()));
}

// Every step is checked against the spec, as if each stream had it: a step
// validates exactly as the Append and the Attend it stands for (the same
// status, the same commands), and its errors name "steps[i]." and a field.
void FuzzDecodeStep(const v1::DecodeStepRequest& req, size_t spec_index) {
  const StreamSpec& spec = kSpecs[spec_index];
  const absl::Status call = ValidateDecodeStepCall(req);
  if (!call.ok()) return CheckValidationError(call, {"steps", "k"});
  FUZZ_CHECK(req.steps_size() >= 1 && req.steps_size() <= kMaxSteps);
  constexpr int kStepsChecked = 16;  // bounds the time of one input
  for (int i = 0; i < std::min(req.steps_size(), kStepsChecked); ++i) {
    const v1::StreamStep& step = req.steps(i);
    // The service checks the id (and finds the spec) before the step.
    if (!ValidateStreamId(step.stream_id()).ok()) continue;
    const std::string prefix = absl::StrCat("steps[", i, "].");
    absl::StatusOr<StepCommand> cmd = ValidateStep(req, i, spec);
    const bool rows = step.has_keys() || step.has_values();
    v1::AppendRequest append;
    append.set_stream_id(step.stream_id());
    append.set_layer(step.layer());
    append.set_first_position(step.first_position());
    if (step.has_keys()) *append.mutable_keys() = step.keys();
    if (step.has_values()) *append.mutable_values() = step.values();
    append.set_sync(req.sync());
    v1::AttendRequest attend;
    attend.set_stream_id(step.stream_id());
    attend.set_layer(step.layer());
    if (step.has_queries()) *attend.mutable_queries() = step.queries();
    attend.set_k(req.k());
    *attend.mutable_scale() = req.scale();
    *attend.mutable_age_alpha() = req.age_alpha();
    attend.set_age_tau(req.age_tau());
    absl::StatusOr<AppendCommand> append_cmd =
        rows ? ValidateAppend(append, spec)
             : absl::StatusOr<AppendCommand>(AppendCommand());
    absl::StatusOr<AttendCommand> attend_cmd =
        step.has_queries() ? ValidateAttend(attend, spec)
                           : absl::StatusOr<AttendCommand>(AttendCommand());
    if (!cmd.ok()) {
      FUZZ_CHECK(cmd.status().code() == absl::StatusCode::kInvalidArgument,
                 cmd.status().ToString());
      if (!rows && !step.has_queries()) {
        FUZZ_CHECK(absl::StartsWith(cmd.status().message(), prefix),
                   cmd.status().message());
        continue;
      }
      // The first failing twin, with the step's prefix on step fields; the
      // call's scale and age fields keep their own names.
      const absl::Status& twin =
          !append_cmd.ok() ? append_cmd.status() : attend_cmd.status();
      FUZZ_CHECK(!twin.ok(),
                 "step failed, twins passed: ", cmd.status().ToString());
      const std::string& message = std::string(cmd.status().message());
      FUZZ_CHECK(message == prefix + std::string(twin.message()) ||
                     absl::StartsWith(message, twin.message()),
                 "step: ", message, ", twin: ", twin.message());
      continue;
    }
    FUZZ_CHECK(append_cmd.ok() && attend_cmd.ok(),
               "step passed, twin: ", append_cmd.status().ToString(), " ",
               attend_cmd.status().ToString());
    FUZZ_CHECK(cmd->append.has_value() == rows);
    FUZZ_CHECK(cmd->attend.has_value() == step.has_queries());
    if (cmd->append) {
      const AppendCommand& a = *cmd->append;
      FUZZ_CHECK(a.stream_id == append_cmd->stream_id &&
                 a.layer == append_cmd->layer &&
                 a.first_position == append_cmd->first_position &&
                 a.rows == append_cmd->rows && a.dtype == append_cmd->dtype &&
                 a.keys.data() == step.keys().data().data() &&
                 a.values.data() == step.values().data().data() &&
                 a.keys.size() == append_cmd->keys.size() &&
                 a.values.size() == append_cmd->values.size() &&
                 a.sync == req.sync() && a.spec == spec);
    }
    if (cmd->attend) {
      const AttendCommand& a = *cmd->attend;
      FUZZ_CHECK(a.stream_id == attend_cmd->stream_id &&
                 a.layer == attend_cmd->layer && a.k == attend_cmd->k &&
                 a.queries == attend_cmd->queries && a.spec == spec &&
                 a.options.scale == attend_cmd->options.scale &&
                 a.options.age_alpha == attend_cmd->options.age_alpha &&
                 a.options.age_tau == attend_cmd->options.age_tau);
    }
  }
}

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message& m) {
  return m.ParseFromArray(data, static_cast<int>(size));
}

}  // namespace
}  // namespace fuzz
}  // namespace knnmem

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  knnmem::PinBlasToOneThread();  // as the server does: the pool parallelises
  // Parse failures (e.g. a string field that is not UTF-8) are expected
  // here; protobuf would log each of them.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace knnmem;
  using namespace knnmem::fuzz;
  if (size < kHeaderBytes || size > (size_t{1} << 30)) return 0;
  const auto rpc = static_cast<Rpc>(data[0] % kRpcCount);
  const size_t spec_index = data[1] % kSpecCount;
  const uint8_t flags = data[2];
  const uint8_t* body = data + kHeaderBytes;
  const size_t body_size = size - kHeaderBytes;
  switch (rpc) {
    case Rpc::kCreateStream: {
      v1::CreateStreamRequest req;
      if (Parse(body, body_size, req)) FuzzCreateStream(req);
      break;
    }
    case Rpc::kGetStream: {
      v1::GetStreamRequest req;
      if (Parse(body, body_size, req)) FuzzGetStream(req, spec_index);
      break;
    }
    case Rpc::kListStreams: {
      v1::ListStreamsRequest req;
      if (Parse(body, body_size, req)) FuzzListStreams(req);
      break;
    }
    case Rpc::kResetStream: {
      v1::ResetStreamRequest req;
      if (Parse(body, body_size, req)) FuzzDrop(req, spec_index, flags);
      break;
    }
    case Rpc::kDeleteStream: {
      v1::DeleteStreamRequest req;
      if (Parse(body, body_size, req)) FuzzDrop(req, spec_index, flags);
      break;
    }
    case Rpc::kAppend: {
      v1::AppendRequest req;
      if (Parse(body, body_size, req)) FuzzAppend(req, spec_index, flags);
      break;
    }
    case Rpc::kSearch: {
      v1::SearchRequest req;
      if (Parse(body, body_size, req)) FuzzSearch(req, spec_index);
      break;
    }
    case Rpc::kAttend: {
      v1::AttendRequest req;
      if (Parse(body, body_size, req)) FuzzAttend(req, spec_index);
      break;
    }
    case Rpc::kDecodeStep: {
      v1::DecodeStepRequest req;
      if (Parse(body, body_size, req)) FuzzDecodeStep(req, spec_index);
      break;
    }
  }
  return 0;
}
