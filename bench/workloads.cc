#include "bench/workloads.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "bench/knnmem_calls.h"
#include "bench/peers.h"

namespace knnmem::bench {
namespace {

constexpr int64_t kSmall = 8192;  // W-search-8K, and the W-mixed streams
// The second HNSW search setting: FAISS's default efSearch (16) trades most
// of the recall away at k = 32.
constexpr int kHnswTunedEf = 128;

std::string SearchWorkload(int64_t entries) {
  return entries == kSmall ? "W-search-8K" : "W-search-64K";
}

Result Timed(const std::string& workload, const std::string& system,
             const std::string& dtype, const Samples& samples) {
  Result r;
  r.workload = workload;
  r.system = system;
  r.dtype = dtype;
  r.runs = static_cast<int>(samples.size());
  r.median_seconds = samples.Median();
  return r;
}

}  // namespace

Workloads::Workloads(client::ShardedClient& client, const BenchData& data,
                     const WorkloadConfig& config, Report& report)
    : client_(client), data_(data), config_(config), report_(report) {}

absl::Status Workloads::Fill(const std::string& stream, int64_t from,
                             int64_t to, DType wire, Samples* samples,
                             int64_t* request_bytes) {
  const int64_t rows = data_.shape.batch_rows;
  client::MemoryClient& client = client_.For(stream);
  for (int64_t p = from; p < to; p += rows) {
    v1::AppendRequest req = MakeAppendRequest(stream, data_, p, rows, wire);
    if (request_bytes != nullptr) {
      *request_bytes = static_cast<int64_t>(req.ByteSizeLong());
    }
    const double start = NowSeconds();
    RETURN_IF_ERROR(AppendChecked(client, std::move(req)));
    if (samples != nullptr) samples->Add(NowSeconds() - start);
  }
  return absl::OkStatus();
}

absl::StatusOr<Result> Workloads::MeasureAppendStream() {
  const Shape& sh = data_.shape;
  constexpr size_t kWindow = 2;
  const std::string stream = config_.stream_prefix + ".append-stream";
  RETURN_IF_ERROR(CreateFreshStream(
      client_, stream, BenchSpec(sh, sh.entries, DType::kFloat32)));
  Progress(absl::StrFormat(
      "W-append: knnmem AppendStream of rows [0, %d), %d unacknowledged",
      sh.entries, kWindow));
  client::MemoryClient& client = client_.For(stream);
  std::unique_ptr<client::AppendPipeline> pipe =
      client.OpenAppendPipeline(kWindow, std::chrono::minutes(10));
  Samples samples;
  const double first = NowSeconds();
  int64_t sent = 0;
  for (int64_t p = 0; p < sh.entries; p += sh.batch_rows, ++sent) {
    v1::AppendRequest req =
        MakeAppendRequest(stream, data_, p, sh.batch_rows, DType::kFloat32);
    const double start = NowSeconds();
    RETURN_IF_ERROR(
        WithContext(pipe->Send(std::move(req)),
                    absl::StrCat("AppendStream to '", stream, "'")));
    // Once the window is full each Send first waits for one
    // acknowledgement: its time is the time per batch.
    if (sent >= static_cast<int64_t>(kWindow)) {
      samples.Add(NowSeconds() - start);
    }
  }
  RETURN_IF_ERROR(WithContext(pipe->Finish(),
                              absl::StrCat("AppendStream to '", stream, "'")));
  const double total = NowSeconds() - first;
  for (int64_t i = 0; i < sent; ++i) {
    const int64_t expected = (i + 1) * sh.batch_rows;
    if (pipe->acknowledged()[i].next_position() != expected) {
      return absl::DataLossError(absl::StrCat(
          "AppendStream: batch ", i, " acknowledged next_position ",
          pipe->acknowledged()[i].next_position(), ", expected ", expected));
    }
  }
  pipe.reset();
  RETURN_IF_ERROR(client.DeleteStream(stream));
  Result r = Timed("W-append", "knnmem", "float32", samples);
  r.variant = "AppendStream";
  r.p99_seconds = samples.P99();
  r.vectors_per_second = sh.batch_rows / r.median_seconds;
  r.note = absl::StrFormat(
      "the same %d batches of %d rows on one AppendStream call, %d "
      "unacknowledged: each sample is one Send that waits for an "
      "acknowledgement; sustained %.0f rows/s",
      sent, sh.batch_rows, kWindow, static_cast<double>(sh.entries) / total);
  return r;
}

absl::StatusOr<Result> Workloads::MeasureKnnmemSearch(
    const std::string& workload, const std::string& stream, DType storage,
    int64_t entries, TopK* found) {
  const Shape& sh = data_.shape;
  Progress(absl::StrCat(workload, ": knnmem Search, ", DTypeName(storage),
                        " storage"));
  const v1::SearchRequest req = MakeSearchRequest(stream, data_, false);
  client::MemoryClient& client = client_.For(stream);
  v1::SearchResponse last;
  ASSIGN_OR_RETURN(
      Samples samples, Measure(1, config_.reps, [&]() -> absl::Status {
        absl::StatusOr<v1::SearchResponse> r = client.Search(req);
        if (!r.ok()) {
          return WithContext(r.status(),
                             absl::StrCat(workload, ": Search '", stream, "'"));
        }
        last = std::move(*r);
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(CheckSearchResponse(last, sh));
  ASSIGN_OR_RETURN(client::Neighbours n, client::DecodeNeighbours(last));
  *found = TopKFromPositions(n.positions, sh.queries, sh.heads, sh.k);
  Result r = Timed(workload, "knnmem", DTypeName(storage), samples);
  r.entries = entries;
  r.bytes = static_cast<int64_t>(last.ByteSizeLong());
  r.note = "Search RPC round trip, positions and scores; bytes = response";
  return r;
}

absl::StatusOr<std::vector<Result>> Workloads::MeasureFlat(
    const std::string& workload, int64_t entries, FlatPeer& flat, TopK* truth) {
  // Both thread settings, each its own row. "default" is FAISS as a user
  // gets it: OpenMP (FAISS's own loops) and OpenBLAS (its GEMM) each on
  // every core. "omp1" keeps OpenBLAS on every core and OpenMP on one.
  // With libgomp's default wait policy FAISS's idle OpenMP threads spin
  // while OpenBLAS's threads compute its GEMM, so at full width the two
  // pools fight over the cores: on 2 cores "default" was 5-8x slower than
  // "omp1", and as fast with OMP_WAIT_POLICY=passive (the header shows it).
  const int cores = OmpThreads();
  const int blas = BlasThreads();
  TopK default_top;
  std::vector<Result> rows;
  for (const bool omp1 : {true, false}) {
    const std::string variant = omp1 ? "omp1" : "default";
    const int threads = omp1 ? 1 : cores;
    // A default-threads search at 64K takes seconds here: --quick times it
    // once after its warm-up.
    const bool fewer = config_.quick && !omp1 && entries > kSmall;
    const int reps = fewer ? 1 : config_.reps;
    Progress(absl::StrFormat(
        "%s: faiss-flat IndexFlatIP search, %s: %d OpenMP / %d OpenBLAS "
        "threads, %d run(s) after 1 warm-up",
        workload, variant, threads, blas, reps));
    TopK* out = omp1 ? truth : &default_top;
    SetOmpThreads(threads);
    absl::StatusOr<Samples> samples = Measure(1, reps, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(*out, flat.Search(data_));
      return absl::OkStatus();
    });
    SetOmpThreads(cores);
    if (!samples.ok()) return samples.status();
    Result r = Timed(workload, "faiss-flat", "float32", *samples);
    r.variant = variant;
    r.entries = entries;
    r.recall_at_k = omp1 ? 1.0 : RecallAtK(*truth, default_top);
    r.note = absl::StrFormat(
        "exact top-k per head%s; %d OpenMP thread(s) (FAISS's loops), %d "
        "OpenBLAS threads (its GEMM)%s%s",
        omp1 ? ": the recall reference" : ", recall vs omp1", threads, blas,
        omp1 ? "" : ": FAISS as a user gets it",
        fewer ? absl::StrFormat("; --quick: %d timed run after the warm-up "
                                "(seconds per search at this size)",
                                reps)
              : "");
    // In the table, "default" comes first.
    rows.insert(omp1 ? rows.end() : rows.begin(), std::move(r));
  }
  return rows;
}

absl::Status Workloads::RunFloat32() {
  const Shape& sh = data_.shape;
  const int reps = config_.reps;
  const std::string stream = config_.stream_prefix + ".float32";
  RETURN_IF_ERROR(CreateFreshStream(
      client_, stream, BenchSpec(sh, sh.entries, DType::kFloat32)));
  streams_.push_back(stream);

  ASSIGN_OR_RETURN(std::unique_ptr<TempDir> rocks_dir,
                   TempDir::Create("knnmem-bench-rocksdb-"));
  ASSIGN_OR_RETURN(std::unique_ptr<RocksDbPeer> rocks,
                   RocksDbPeer::Open(rocks_dir->path()));
  FlatPeer flat(sh);
  // FAISS HNSW inserts a few thousand vectors per second here: --quick
  // indexes one head and scales its times by the number of heads (the heads'
  // indexes are independent, so the work is linear in heads).
  HnswPeer hnsw(sh, config_.quick ? 1 : 0);
  const double hnsw_scale =
      static_cast<double>(sh.heads) / hnsw.indexed_heads();
  const std::string hnsw_scaled =
      hnsw.indexed_heads() == sh.heads
          ? ""
          : absl::StrFormat("; --quick: %d of %d heads indexed, times x%g",
                            hnsw.indexed_heads(), sh.heads, hnsw_scale);
  SgemmPeer sgemm(sh);
  Samples knnmem_append, rocks_append, hnsw_add;
  int64_t append_bytes = -1;
  int64_t rocks_bytes = -1;
  int64_t hnsw_timed_rows = 0;  // the HNSW adds timed grow 0 -> this

  int64_t filled = 0;
  for (const int64_t size : {kSmall, sh.entries}) {
    const std::string workload = SearchWorkload(size);
    Progress(absl::StrFormat(
        "W-append: knnmem Append of rows [%d, %d), 512 per call", filled,
        size));
    RETURN_IF_ERROR(Fill(stream, filled, size, DType::kFloat32, &knnmem_append,
                         &append_bytes));
    Progress("W-append: rocksdb WriteBatch of the same rows");
    for (int64_t p = filled; p < size; p += sh.batch_rows) {
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(const size_t bytes,
                       rocks->Append(data_, p, sh.batch_rows));
      rocks_append.Add(NowSeconds() - start);
      rocks_bytes = static_cast<int64_t>(bytes);
    }
    if (config_.quick && filled > 0) {
      // --quick times the adds up to 8K only; the rest goes in one call,
      // which FAISS does faster than in 512-row pieces.
      Progress(absl::StrFormat(
          "faiss-hnsw: untimed add of rows [%d, %d) in one call (--quick)",
          filled, size));
      RETURN_IF_ERROR(hnsw.Add(data_, filled, size - filled));
    } else {
      Progress(absl::StrFormat(
          "W-append: faiss-hnsw add of the same rows (%d indexes)",
          hnsw.indexed_heads()));
      for (int64_t p = filled; p < size; p += sh.batch_rows) {
        const double start = NowSeconds();
        RETURN_IF_ERROR(hnsw.Add(data_, p, sh.batch_rows));
        hnsw_add.Add((NowSeconds() - start) * hnsw_scale);
      }
      hnsw_timed_rows = size;
    }
    RETURN_IF_ERROR(flat.Add(data_, filled, size - filled));
    filled = size;

    // knnmem first: the peers' thread pools are idle while it runs.
    TopK knnmem_top;
    ASSIGN_OR_RETURN(Result knnmem,
                     MeasureKnnmemSearch(workload, stream, DType::kFloat32,
                                         size, &knnmem_top));

    TopK truth;
    ASSIGN_OR_RETURN(std::vector<Result> flat_rows,
                     MeasureFlat(workload, size, flat, &truth));
    knnmem.recall_at_k = RecallAtK(truth, knnmem_top);
    report_.Add(knnmem);
    for (Result& r : flat_rows) report_.Add(std::move(r));

    for (const int ef : {0, kHnswTunedEf}) {
      if (ef > 0 && config_.quick) continue;  // one setting is enough there
      const int default_ef = hnsw.ef_search();
      if (ef > 0) hnsw.set_ef_search(ef);
      Progress(absl::StrFormat("%s: faiss-hnsw search, efSearch=%d", workload,
                               hnsw.ef_search()));
      TopK approx;
      ASSIGN_OR_RETURN(Samples hnsw_samples,
                       Measure(1, reps, [&]() -> absl::Status {
                         ASSIGN_OR_RETURN(approx, hnsw.Search(data_));
                         return absl::OkStatus();
                       }));
      Result r = Timed(workload, "faiss-hnsw", "float32",
                       hnsw_samples.Scaled(hnsw_scale));
      r.entries = size;
      r.recall_at_k = RecallAtK(truth, approx);
      if (ef > 0) r.variant = absl::StrCat("efSearch=", ef);
      r.note = absl::StrFormat(
          "IndexHNSWFlat M=%d inner product, efConstruction=%d, efSearch=%d "
          "(%s)%s",
          HnswPeer::kM, hnsw.ef_construction(), hnsw.ef_search(),
          ef > 0 ? "raised for recall"
                 : "FAISS defaults, as memorizing-transformers-pytorch",
          hnsw_scaled);
      report_.Add(r);
      hnsw.set_ef_search(default_ef);
    }

    Progress(workload + ": bare cblas_sgemm of the score matrix");
    ASSIGN_OR_RETURN(Samples sgemm_samples,
                     Measure(1, reps, [&]() -> absl::Status {
                       sgemm.Scores(data_, size);
                       return absl::OkStatus();
                     }));
    Result sgemm_result = Timed(workload, "sgemm", "float32", sgemm_samples);
    sgemm_result.entries = size;
    sgemm_result.note = absl::StrFormat(
        "[%d,%d] x [%d,%d] per head, %d heads, into one [%d,%d] buffer, no "
        "top-k, %d OpenBLAS threads: the compute floor",
        sh.queries, sh.key_dim, sh.key_dim, size, sh.heads, sh.queries, size,
        BlasThreads());
    report_.Add(sgemm_result);

    (size == kSmall ? truth_8k_ : truth_64k_) = std::move(truth);
  }

  Result a = Timed("W-append", "knnmem", "float32", knnmem_append);
  a.variant = "Append";
  a.p99_seconds = knnmem_append.P99();
  a.vectors_per_second = sh.batch_rows / a.median_seconds;
  a.bytes = append_bytes;
  a.note = absl::StrFormat(
      "the %d Append RPCs of %d rows that fill the 64K stream (sync=false); "
      "vectors/s = rows/s, a row = %d heads x (key + value); sustained %.0f "
      "rows/s; bytes = request",
      a.runs, sh.batch_rows, sh.heads,
      static_cast<double>(sh.entries) / knnmem_append.Total());
  report_.Add(a);
  ASSIGN_OR_RETURN(Result pipelined, MeasureAppendStream());
  report_.Add(std::move(pipelined));
  Result d = Timed("W-append", "rocksdb", "float32", rocks_append);
  d.p99_seconds = rocks_append.P99();
  d.vectors_per_second = sh.batch_rows / d.median_seconds;
  d.bytes = rocks_bytes;
  d.note = absl::StrFormat(
      "one WriteBatch of %d records (21-byte key, %d-byte value), WAL on, "
      "sync=false, the server's RocksDB options; sustained %.0f rows/s; "
      "bytes = batch data",
      sh.batch_rows, 4 * sh.heads * (sh.key_dim + sh.value_dim),
      static_cast<double>(sh.entries) / rocks_append.Total());
  report_.Add(d);
  Result h = Timed("W-append", "faiss-hnsw", "float32", hnsw_add);
  h.p99_seconds = hnsw_add.P99();
  h.vectors_per_second = sh.batch_rows / h.median_seconds;
  h.note = absl::StrFormat(
      "add of the same %d rows to %d IndexHNSWFlat (one per head, growing 0 "
      "-> %d); vectors/s = rows/s (x%d head vectors); sustained %.0f "
      "rows/s%s",
      sh.batch_rows, sh.heads, hnsw_timed_rows, sh.heads,
      static_cast<double>(hnsw_timed_rows) / hnsw_add.Total(), hnsw_scaled);
  report_.Add(h);

  return MeasureAttend(stream);
}

absl::Status Workloads::MeasureAttend(const std::string& stream) {
  const Shape& sh = data_.shape;
  const std::string workload = "W-attend-64K";
  Progress(workload + ": knnmem Attend");
  const v1::AttendRequest attend_req = MakeAttendRequest(stream, data_);
  client::MemoryClient& client = client_.For(stream);
  v1::AttendResponse attend_last;
  ASSIGN_OR_RETURN(
      Samples attend, Measure(1, config_.reps, [&]() -> absl::Status {
        absl::StatusOr<v1::AttendResponse> r = client.Attend(attend_req);
        if (!r.ok()) {
          return WithContext(r.status(),
                             absl::StrCat(workload, ": Attend '", stream, "'"));
        }
        attend_last = std::move(*r);
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(CheckAttendResponse(attend_last, sh));
  Result a = Timed(workload, "knnmem", "float32", attend);
  a.variant = "attend";
  a.entries = sh.entries;
  a.bytes = static_cast<int64_t>(attend_last.ByteSizeLong());
  a.note = "Attend RPC (default scale 1/sqrt(key_dim)); bytes = response";
  report_.Add(a);

  // The neighbours themselves are 128 MiB per call: fewer runs in --quick.
  Progress(workload + ": knnmem Search returning keys and values");
  const v1::SearchRequest search_req = MakeSearchRequest(stream, data_, true);
  int64_t search_bytes = -1;
  ASSIGN_OR_RETURN(
      Samples search,
      Measure(config_.quick ? 0 : 1, config_.quick ? 1 : config_.reps,
              [&]() -> absl::Status {
                absl::StatusOr<v1::SearchResponse> r =
                    client.Search(search_req);
                if (!r.ok()) {
                  return WithContext(
                      r.status(),
                      absl::StrCat(workload, ": Search with keys and values '",
                                   stream, "'"));
                }
                RETURN_IF_ERROR(CheckSearchResponse(*r, sh));
                search_bytes = static_cast<int64_t>(r->ByteSizeLong());
                return absl::OkStatus();
              }));
  Result s = Timed(workload, "knnmem", "float32", search);
  s.variant = "search+keys+values";
  s.entries = sh.entries;
  s.bytes = search_bytes;
  s.note =
      "Search RPC with return_keys and return_values, same queries; "
      "bytes = response";
  report_.Add(s);

  const Result* sgemm = report_.Find("W-search-64K", "sgemm", "float32");
  if (sgemm != nullptr) {
    Result g = *sgemm;
    g.workload = workload;
    g.note = "the W-search-64K sgemm measurement (the same score matrix)";
    report_.Add(g);
  }
  return absl::OkStatus();
}

absl::Status Workloads::RunStorageDtype(DType storage) {
  const Shape& sh = data_.shape;
  const std::string stream =
      absl::StrCat(config_.stream_prefix, ".", DTypeName(storage));
  RETURN_IF_ERROR(
      CreateFreshStream(client_, stream, BenchSpec(sh, sh.entries, storage)));
  streams_.push_back(stream);
  int64_t filled = 0;
  for (const int64_t size : {kSmall, sh.entries}) {
    if (config_.quick && size != kSmall) break;
    const std::string workload = SearchWorkload(size);
    Progress(absl::StrFormat("%s: filling the %s stream to %d entries",
                             workload, DTypeName(storage), size));
    RETURN_IF_ERROR(Fill(stream, filled, size, storage, nullptr, nullptr));
    filled = size;
    TopK found;
    ASSIGN_OR_RETURN(
        Result r, MeasureKnnmemSearch(workload, stream, storage, size, &found));
    r.recall_at_k = RecallAtK(size == kSmall ? truth_8k_ : truth_64k_, found);
    r.note += "; recall vs the float32 exact top-k";
    report_.Add(r);
  }
  return absl::OkStatus();
}

}  // namespace knnmem::bench
