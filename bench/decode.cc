#include "bench/decode.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/stable_hash.h"
#include "base/status_macros.h"
#include "bench/decode_peers.h"
#include "bench/knnmem_calls.h"
#include "bench/stats.h"
#include "client/memory_client.h"
#include "proto/tensor_codec.h"
#include "server/spec/stream_spec.h"

namespace knnmem::bench {
namespace {

constexpr int kHeads = 8, kDim = 128, kK = 32, kCentres = 1024;
constexpr int kBatchRows = 512, kWarmups = 3;
constexpr int64_t kPeerBytes = int64_t{2} << 30;  // float32 keys held

// SplitMix64's step from state x (a hash of x).
uint64_t Mix(uint64_t x) { return SplitMix64Next(&x); }

// Two uniform floats in [-1, 1) from one 64-bit draw.
inline void Uniform2(uint64_t& state, float* a, float* b) {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  const uint64_t x = Mix(state);
  *a = static_cast<float>(x >> 40) * (2.0f / 16777216.0f) - 1.0f;
  *b = static_cast<float>((x >> 16) & 0xffffff) * (2.0f / 16777216.0f) - 1.0f;
}

// Rows as a function of (seed, stream, position): keys and queries near
// one of kCentres centres per head, normalised; values uniform.
class DecodeData {
 public:
  explicit DecodeData(uint64_t seed) : seed_(seed) {
    centres_.resize(static_cast<size_t>(kHeads) * kCentres * kDim);
    uint64_t state = Mix(seed);
    for (size_t i = 0; i < centres_.size(); i += 2) {
      Uniform2(state, &centres_[i], &centres_[i + 1]);
    }
  }

  // Keys [rows, heads, dim] of `stream` at positions first.. (kind 0), or
  // the queries of step `first`.. (kind 1).
  void Near(int kind, uint64_t stream, int64_t first, int64_t rows,
            float* out) const {
    for (int64_t r = 0; r < rows; ++r) {
      for (int h = 0; h < kHeads; ++h) {
        uint64_t state = Mix(seed_ ^ Mix(stream * 0x100000001b3ull + kind) ^
                             Mix(static_cast<uint64_t>(first + r) * 16 + h));
        const float* c =
            centres_.data() +
            (static_cast<size_t>(h) * kCentres + state % kCentres) * kDim;
        float* v = out + (static_cast<size_t>(r) * kHeads + h) * kDim;
        float norm = 0;
        for (int j = 0; j < kDim; j += 2) {
          float a, b;
          Uniform2(state, &a, &b);
          v[j] = c[j] + 0.5f * a;
          v[j + 1] = c[j + 1] + 0.5f * b;
          norm += v[j] * v[j] + v[j + 1] * v[j + 1];
        }
        const float inv = 1.0f / std::sqrt(norm);
        for (int j = 0; j < kDim; ++j) v[j] *= inv;
      }
    }
  }
  std::vector<float> Keys(uint64_t stream, int64_t first, int64_t rows) const {
    std::vector<float> out(static_cast<size_t>(rows) * kHeads * kDim);
    Near(0, stream, first, rows, out.data());
    return out;
  }
  std::vector<float> Query(uint64_t stream, int64_t step) const {
    std::vector<float> out(static_cast<size_t>(kHeads) * kDim);
    Near(1, stream, step, 1, out.data());
    return out;
  }
  std::vector<float> Values(uint64_t stream, int64_t first,
                            int64_t rows) const {
    std::vector<float> out(static_cast<size_t>(rows) * kHeads * kDim);
    uint64_t state =
        Mix(seed_ ^ Mix(stream * 31 + 7) ^ Mix(static_cast<uint64_t>(first)));
    for (size_t i = 0; i < out.size(); i += 2) {
      Uniform2(state, &out[i], &out[i + 1]);
    }
    return out;
  }

 private:
  uint64_t seed_;
  std::vector<float> centres_;
};

// Sums 64-bit words with AVX2: a pure streaming read.
__attribute__((target("avx2"))) uint64_t ReadAll(const char* p, size_t bytes) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  size_t i = 0;
  for (; i + 128 <= bytes; i += 128) {
    a = _mm256_add_epi64(
        a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_add_epi64(
        b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_add_epi64(
        c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_add_epi64(
        d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(
      reinterpret_cast<__m256i*>(lanes),
      _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Seconds to read `bytes` on `threads` threads: a buffer of that size (at
// most 1 GiB, read again until the bytes are reached), split between the
// threads; the median of 5 reads after a warm-up.
double StreamingReadSeconds(int64_t bytes, int threads) {
  const size_t size =
      static_cast<size_t>(std::min<int64_t>(bytes, int64_t{1} << 30)) / 4096 *
          4096 +
      4096;
  auto free_buffer = [](char* p) { std::free(p); };
  std::unique_ptr<char, decltype(free_buffer)> buffer(
      static_cast<char*>(std::aligned_alloc(4096, size)), free_buffer);
  std::memset(buffer.get(), 1, size);
  const int passes = static_cast<int>((bytes + size - 1) / size);
  std::atomic<uint64_t> sink{0};
  auto read_once = [&] {
    std::vector<std::thread> pool;
    const size_t part = size / threads / 128 * 128;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        uint64_t s = 0;
        for (int p = 0; p < passes; ++p) {
          // Each pass reads the memory again: without the barrier the
          // compiler may read once and reuse the sum.
          asm volatile("" ::: "memory");
          s += ReadAll(buffer.get() + t * part, part);
        }
        sink += s;
      });
    }
    for (auto& th : pool) th.join();
  };
  read_once();
  Samples samples;
  for (int i = 0; i < 5; ++i) {
    const double start = NowSeconds();
    read_once();
    samples.Add(NowSeconds() - start);
  }
  // The threads read `passes` x size bytes; scale to `bytes`.
  return samples.Median() * static_cast<double>(bytes) /
         (static_cast<double>(passes) * static_cast<double>(size));
}

v1::StreamSpec Spec(const DecodeShape& shape, const DecodeConfig& config) {
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(kHeads);
  spec.set_key_dim(kDim);
  spec.set_value_dim(kDim);
  spec.set_capacity(static_cast<uint64_t>(shape.entries));
  spec.set_storage_dtype(DTypeToProto(shape.dtype));
  if (shape.approximate) {
    spec.set_index(v1::APPROXIMATE);
    spec.set_nlist(config.nlist);
    spec.set_nprobe(config.nprobe);
  }
  return spec;
}

std::string ShapeName(const DecodeShape& shape, int b) {
  return absl::StrCat(shape.approximate ? "approximate" : "exact", " B=", b);
}

// Key bytes a step reads per (stream, head): every key for EXACT; for
// APPROXIMATE, the keys not indexed (the exact tail, up to the chunk grid),
// nprobe/nlist of the rest (their int8 codes and scales with
// --tier-int8-codes, else their keys), and the float32 centroids.
double KeyBytesRead(const DecodeShape& shape, const DecodeConfig& config) {
  const double key_bytes = kDim * ElementSize(shape.dtype);
  if (!shape.approximate) return shape.entries * key_bytes;
  const int64_t indexed =
      std::max<int64_t>(0, shape.entries - int64_t{kDefaultExactTail}) /
      kIndexChunk * kIndexChunk;
  const double tail = static_cast<double>(shape.entries - indexed);
  const double listed =
      static_cast<double>(indexed) * config.nprobe / config.nlist;
  return tail * key_bytes +
         listed * (config.tier_int8_codes ? kDim + 4.0 : key_bytes) +
         config.nlist * kDim * 4.0;
}

class DecodeRun {
 public:
  DecodeRun(client::ShardedClient& client, const DecodeConfig& config,
            const DecodeShape& shape, Report& report)
      : client_(client),
        config_(config),
        shape_(shape),
        report_(report),
        data_(config.seed) {}

  absl::Status Run(std::vector<std::string>* created) {
    const int most = shape_.streams.back();
    for (int s = 0; s < most; ++s) {
      ids_.push_back(absl::StrCat(config_.stream_prefix, ".decode-",
                                  DTypeName(shape_.dtype), "-", shape_.entries,
                                  shape_.approximate ? "a" : "e", "-", s));
    }
    RETURN_IF_ERROR(Fill(created));
    for (int b : shape_.streams) {
      RETURN_IF_ERROR(Measure(b, b == most));
    }
    for (const std::string& id : ids_) {
      RETURN_IF_ERROR(client_.DeleteStream(id));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Fill(std::vector<std::string>* created) {
    const v1::StreamSpec spec = Spec(shape_, config_);
    Progress(absl::StrFormat(
        "W-decode: filling %d %s streams of %d entries per head (%s)",
        ids_.size(), shape_.approximate ? "APPROXIMATE" : "EXACT",
        shape_.entries, DTypeName(shape_.dtype)));
    for (size_t s = 0; s < ids_.size(); ++s) {
      RETURN_IF_ERROR(CreateFreshStream(client_, ids_[s], spec));
      created->push_back(ids_[s]);
      client::MemoryClient& c = client_.For(ids_[s]);
      for (int64_t p = 0; p < shape_.entries; p += kBatchRows) {
        const int64_t rows = std::min<int64_t>(kBatchRows, shape_.entries - p);
        ASSIGN_OR_RETURN(
            v1::AppendRequest req,
            client::MakeAppendRequest(ids_[s], 0, p, data_.Keys(s, p, rows),
                                      data_.Values(s, p, rows), rows, kHeads,
                                      shape_.dtype));
        RETURN_IF_ERROR(c.Append(std::move(req)).status());
      }
      next_.push_back(shape_.entries);
    }
    if (!shape_.approximate) return absl::OkStatus();
    // The tier covers everything but the exact tail before timing. It
    // trains once 64 x nlist keys are past the tail.
    const int64_t past_tail = shape_.entries - int64_t{kDefaultExactTail};
    if (past_tail < int64_t{64} * config_.nlist) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "W-decode: %d entries leave %d past the exact tail, fewer than the "
          "64 x nlist (%d) the tier trains on",
          shape_.entries, past_tail, config_.nlist));
    }
    const int64_t want = past_tail / kIndexChunk * kIndexChunk;
    for (const std::string& id : ids_) {
      RETURN_IF_ERROR(AwaitIndexed(client_.For(id), id, want, "W-decode"));
    }
    return absl::OkStatus();
  }

  // The vectors of a step of the first `b` streams: one query per head each
  // (queries of step `step`), and one appended token each with `append`.
  struct StepVectors {
    std::vector<std::vector<float>> q, k, v;
  };
  StepVectors Vectors(int b, int64_t step, bool append) const {
    StepVectors in;
    in.q.resize(b);
    if (append) {
      in.k.resize(b);
      in.v.resize(b);
    }
    for (int s = 0; s < b; ++s) {
      in.q[s] = data_.Query(s, step);
      if (append) {
        in.k[s] = data_.Keys(s, next_[s], 1);
        in.v[s] = data_.Values(s, next_[s], 1);
      }
    }
    return in;
  }

  // The step's request from its vectors.
  absl::StatusOr<v1::DecodeStepRequest> StepRequest(const StepVectors& in,
                                                    bool append) const {
    const int b = static_cast<int>(in.q.size());
    std::vector<client::Step> steps(b);
    for (int s = 0; s < b; ++s) {
      steps[s].stream_id = ids_[s];
      steps[s].heads = kHeads;
      steps[s].key_dim = steps[s].value_dim = kDim;
      steps[s].queries = in.q[s];
      if (append) {
        steps[s].first_position = next_[s];
        steps[s].keys = in.k[s];
        steps[s].values = in.v[s];
      }
    }
    client::StepParams params;
    params.k = kK;
    params.wire_dtype = shape_.dtype;
    return client::MakeDecodeStepRequest(steps, params);
  }

  // Sends DecodeSteps of `b` streams; every step's result must be OK. The
  // time is the call's, and with config.time_request also building its
  // request from the vectors (the vectors are made untimed).
  absl::StatusOr<Samples> TimeSteps(int b, bool append, int steps,
                                    int warmups = kWarmups) {
    Samples samples;
    client::MemoryClient& c = client_.At(0);
    for (int i = 0; i < warmups + steps; ++i) {
      const StepVectors in = Vectors(b, step_++, append);
      const double building = NowSeconds();
      ASSIGN_OR_RETURN(v1::DecodeStepRequest req, StepRequest(in, append));
      const double start = config_.time_request ? building : NowSeconds();
      ASSIGN_OR_RETURN(v1::DecodeStepResponse resp, c.DecodeStep(req));
      const double seconds = NowSeconds() - start;
      for (const v1::StreamStepResult& r : resp.results()) {
        if (r.code() != 0) {
          return absl::Status(static_cast<absl::StatusCode>(r.code()),
                              absl::StrCat("W-decode step: ", r.message()));
        }
      }
      if (append) {
        for (int s = 0; s < b; ++s) ++next_[s];
      }
      if (i >= warmups) samples.Add(seconds);
    }
    return samples;
  }

  // Steps with and without a one-token append per stream, alternating (so
  // that both see the same disturbances of the machine), as many pairs as
  // fit in about kPairedSeconds, at least config_.steps and at most
  // kMostPairs: a p99 needs a hundred samples or more to be one, not the
  // largest of 30. `median` is the plain step's, measured before.
  static constexpr double kPairedSeconds = 4.0;
  static constexpr int kMostPairs = 400;
  absl::StatusOr<std::pair<Samples, Samples>> TimePairs(int b, double median) {
    const int pairs = std::clamp(
        static_cast<int>(kPairedSeconds / (2 * std::max(median, 1e-6))),
        config_.steps, kMostPairs);
    std::pair<Samples, Samples> plain_appending;
    for (int i = 0; i < pairs; ++i) {
      for (const bool append : {false, true}) {
        ASSIGN_OR_RETURN(Samples one, TimeSteps(b, append, 1, /*warmups=*/0));
        (append ? plain_appending.second : plain_appending.first)
            .Add(one.seconds[0]);
      }
    }
    return plain_appending;
  }

  // B Attend calls, one after the other, per step.
  absl::StatusOr<Samples> TimeSequential(int b) {
    Samples samples;
    for (int i = 0; i < kWarmups + config_.steps; ++i) {
      std::vector<v1::AttendRequest> reqs(b);
      for (int s = 0; s < b; ++s) {
        reqs[s].set_stream_id(ids_[s]);
        reqs[s].set_k(kK);
        *reqs[s].mutable_queries() = MakeTensor(
            data_.Query(s, step_), {1, kHeads, kDim}, DType::kFloat32);
      }
      ++step_;
      const double start = NowSeconds();
      for (int s = 0; s < b; ++s) {
        RETURN_IF_ERROR(client_.For(ids_[s]).Attend(reqs[s]).status());
      }
      if (i >= kWarmups) samples.Add(NowSeconds() - start);
    }
    return samples;
  }

  Result Row(const std::string& system, const std::string& variant,
             const Samples& s, int b) const {
    Result r;
    r.workload = "W-decode";
    r.system = system;
    r.dtype = DTypeName(shape_.dtype);
    r.variant = variant;
    r.entries = shape_.entries;
    r.runs = static_cast<int>(s.size());
    r.median_seconds = s.Median();
    r.p99_seconds = s.P99();
    r.vectors_per_second = b / s.Median();  // stream-tokens per second
    return r;
  }

  absl::Status Measure(int b, bool largest) {
    const std::string name = ShapeName(shape_, b);
    const int64_t key_bytes =
        static_cast<int64_t>(b * kHeads * KeyBytesRead(shape_, config_));
    Progress(absl::StrFormat("W-decode: %s, %d entries, %s", name,
                             shape_.entries, DTypeName(shape_.dtype)));
    const double floor = StreamingReadSeconds(
        key_bytes, static_cast<int>(std::thread::hardware_concurrency()));
    Result f;
    f.workload = "W-decode";
    f.system = "floor";
    f.dtype = DTypeName(shape_.dtype);
    f.variant = name;
    f.entries = shape_.entries;
    f.runs = 5;
    f.median_seconds = floor;
    f.bytes = key_bytes;
    f.note = absl::StrFormat(
        "the key bytes of a step / this machine's streaming read (%.1f GB/s "
        "on %d threads, measured now)%s",
        key_bytes / floor / 1e9, std::thread::hardware_concurrency(),
        shape_.approximate ? "; bytes estimated from nprobe/nlist" : "");
    report_.Add(f);

    ASSIGN_OR_RETURN(Samples plain, TimeSteps(b, false, config_.steps));
    Result r = Row("knnmem", name, plain, b);
    r.bytes = key_bytes;
    r.ratios.emplace_back("over_floor", plain.Median() / floor);
    r.note =
        "one DecodeStep: one query per head per stream, k = 32; "
        "vectors/s column = stream-tokens per second";
    if (shape_.approximate) {
      ASSIGN_OR_RETURN(const double recall, Recall(b));
      r.recall_at_k = recall;
    }
    if (shape_.with_append) {
      ASSIGN_OR_RETURN(auto paired, TimePairs(b, plain.Median()));
      const Samples& without = paired.first;
      const Samples& appending = paired.second;
      Result a = Row("knnmem", name + " +append", appending, b);
      a.ratios.emplace_back("p99_over_plain_p99",
                            appending.P99() / without.P99());
      a.ratios.emplace_back("median_over_plain_median",
                            appending.Median() / without.Median());
      a.note = absl::StrFormat(
          "the same step, each stream first appending one token in the same "
          "call; %d steps alternating with as many without (p99 %.3g ms, "
          "median %.3g ms), the ratios against those",
          static_cast<int>(appending.size()), without.P99() * 1e3,
          without.Median() * 1e3);
      report_.Add(a);
    }
    if (shape_.sequential && (largest || b == 32)) {
      ASSIGN_OR_RETURN(Samples sequential, TimeSequential(b));
      Result q = Row("knnmem", name + " sequential", sequential, b);
      q.note = absl::StrFormat("%d Attend calls one after the other", b);
      r.ratios.emplace_back("batched_speedup_over_sequential",
                            sequential.Median() / plain.Median());
      report_.Add(q);
    }
    if (shape_.peers) {
      RETURN_IF_ERROR(MeasurePeers(b, plain.Median(), &r));
    }
    report_.Add(r);
    return absl::OkStatus();
  }

  // Streams whose keys the peers hold (float32, within kPeerBytes).
  int PeerStreams(int b) const {
    const int64_t per_stream = shape_.entries * kHeads * kDim * 4;
    return static_cast<int>(std::clamp<int64_t>(kPeerBytes / per_stream, 1, b));
  }

  // Builds `peer`'s indexes for the first `held` streams: index
  // s * kHeads + h holds head h of stream s.
  absl::Status Build(DecodePeer& peer, int held) {
    for (int s = 0; s < held; ++s) {
      const std::vector<float> keys = data_.Keys(s, 0, shape_.entries);
      std::vector<float> head(static_cast<size_t>(shape_.entries) * kDim);
      for (int h = 0; h < kHeads; ++h) {
        for (int64_t r = 0; r < shape_.entries; ++r) {
          std::memcpy(head.data() + r * kDim,
                      keys.data() + (r * kHeads + h) * kDim, kDim * 4);
        }
        RETURN_IF_ERROR(peer.Add(s * kHeads + h, head.data(), shape_.entries));
      }
    }
    return absl::OkStatus();
  }

  // Times `peer` on steps of `b` streams (stream s searches the indexes of
  // held stream s % held); returns the labels of the first timed step.
  absl::StatusOr<Samples> TimePeer(const DecodePeer& peer, int b, int held,
                                   std::vector<int64_t>* first_labels) {
    Samples samples;
    for (int i = 0; i < kWarmups + config_.steps; ++i) {
      std::vector<std::vector<float>> q(b);
      std::vector<int> indexes;
      std::vector<const float*> queries;
      for (int s = 0; s < b; ++s) {
        q[s] = data_.Query(s % held, 1000000 + i);
        for (int h = 0; h < kHeads; ++h) {
          indexes.push_back((s % held) * kHeads + h);
          queries.push_back(q[s].data() + h * kDim);
        }
      }
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(std::vector<int64_t> labels,
                       peer.Search(indexes, queries, kK));
      if (i >= kWarmups) samples.Add(NowSeconds() - start);
      if (i == kWarmups && first_labels != nullptr) *first_labels = labels;
    }
    return samples;
  }

  absl::Status MeasurePeers(int b, double knnmem_median, Result* knnmem) {
    const int held = PeerStreams(b);
    const std::string name = ShapeName(shape_, b);
    const std::string cycled =
        held < b ? absl::StrFormat("; %d streams held, cycled", held) : "";
    Progress(absl::StrFormat("W-decode: FAISS peers, %d streams held", held));
    DecodePeer flat(DecodePeer::Kind::kFlat, held * kHeads, kDim);
    RETURN_IF_ERROR(Build(flat, held));
    std::vector<int64_t> truth;
    ASSIGN_OR_RETURN(Samples flat_samples, TimePeer(flat, b, held, &truth));
    Result f = Row("faiss-flat", name, flat_samples, b);
    f.note =
        "IndexFlatIP per (stream, head), float32, one query each, in "
        "parallel" +
        cycled;
    report_.Add(f);
    knnmem->ratios.emplace_back("faiss_flat_over_knnmem_time",
                                flat_samples.Median() / knnmem_median);
    if (!shape_.approximate) return absl::OkStatus();

    DecodePeer ivf(DecodePeer::Kind::kIvf, held * kHeads, kDim,
                   static_cast<int>(config_.nlist),
                   static_cast<int>(config_.nprobe));
    RETURN_IF_ERROR(Build(ivf, held));
    std::vector<int64_t> labels;
    ASSIGN_OR_RETURN(Samples ivf_samples, TimePeer(ivf, b, held, &labels));
    Result v = Row("faiss-ivf", name, ivf_samples, b);
    v.recall_at_k = Overlap(truth, labels);
    v.note = absl::StrFormat(
        "IndexIVFFlat per (stream, head), nlist %d, nprobe %d, k-means on "
        "its first 64 x nlist keys%s",
        config_.nlist, config_.nprobe, cycled);
    report_.Add(v);
    knnmem->ratios.emplace_back("faiss_ivf_over_knnmem_time",
                                ivf_samples.Median() / knnmem_median);

    Progress("W-decode: building HNSW (M = 15) per (stream, head)");
    DecodePeer hnsw(DecodePeer::Kind::kHnsw, held * kHeads, kDim);
    const double build_start = NowSeconds();
    RETURN_IF_ERROR(Build(hnsw, held));
    const double build = NowSeconds() - build_start;
    // The smallest efSearch with recall@32 >= 0.95 against the flat index.
    Samples hnsw_samples;
    double recall = 0;
    int ef = 32;
    for (; ef <= 1024; ef *= 2) {
      hnsw.set_ef_search(ef);
      ASSIGN_OR_RETURN(hnsw_samples, TimePeer(hnsw, b, held, &labels));
      recall = Overlap(truth, labels);
      if (recall >= 0.95) break;
    }
    Result h = Row("faiss-hnsw", name, hnsw_samples, b);
    h.recall_at_k = recall;
    h.note = absl::StrFormat(
        "IndexHNSWFlat per (stream, head), M 15, efSearch %d (the smallest "
        "power of two from 32 with recall@32 >= 0.95); building it took %.0f "
        "s for %d x %d entries%s",
        std::min(ef, 1024), build, held * kHeads, shape_.entries, cycled);
    report_.Add(h);
    knnmem->ratios.emplace_back("faiss_hnsw_over_knnmem_time",
                                hnsw_samples.Median() / knnmem_median);
    return absl::OkStatus();
  }

  // Share of the exact top-k labels found, per (stream, head) block of k.
  static double Overlap(const std::vector<int64_t>& truth,
                        const std::vector<int64_t>& found) {
    size_t hits = 0;
    for (size_t base = 0; base + kK <= truth.size(); base += kK) {
      std::vector<int64_t> want(truth.begin() + base,
                                truth.begin() + base + kK);
      std::sort(want.begin(), want.end());
      for (int j = 0; j < kK; ++j) {
        hits += std::binary_search(want.begin(), want.end(), found[base + j]);
      }
    }
    return truth.empty() ? kNotApplicable
                         : static_cast<double>(hits) / truth.size();
  }

  // knnmem's recall@32 on the first `b` streams: Search with and without
  // exact = true, one query per head each.
  absl::StatusOr<double> Recall(int b) {
    std::vector<int64_t> truth, found;
    for (int s = 0; s < b; ++s) {
      v1::SearchRequest req;
      req.set_stream_id(ids_[s]);
      req.set_k(kK);
      *req.mutable_queries() = MakeTensor(data_.Query(s, 2000000),
                                          {1, kHeads, kDim}, DType::kFloat32);
      for (bool exact : {true, false}) {
        req.set_exact(exact);
        ASSIGN_OR_RETURN(v1::SearchResponse resp,
                         client_.For(ids_[s]).Search(req));
        ASSIGN_OR_RETURN(client::Neighbours n, client::DecodeNeighbours(resp));
        std::vector<int64_t>& out = exact ? truth : found;
        out.insert(out.end(), n.positions.begin(), n.positions.end());
      }
    }
    return Overlap(truth, found);
  }

  client::ShardedClient& client_;
  const DecodeConfig& config_;
  const DecodeShape& shape_;
  Report& report_;
  DecodeData data_;
  std::vector<std::string> ids_;
  std::vector<int64_t> next_;
  int64_t step_ = 0;
};

}  // namespace

std::vector<DecodeShape> DefaultDecodeShapes(bool quick) {
  auto shape = [](int64_t entries, DType dtype, bool approximate,
                  std::vector<int> streams) {
    DecodeShape s;
    s.entries = entries;
    s.dtype = dtype;
    s.approximate = approximate;
    s.streams = std::move(streams);
    return s;
  };
  if (quick) {
    return {shape(1024, DType::kFloat32, false, {1, 8, 32}),
            shape(8192, DType::kFloat16, false, {1, 8}),
            shape(65536, DType::kFloat16, true, {1})};
  }
  // RAM: B x entries x 8 heads x 256 floats of keys and values, at most
  // ~8.6 GB per shape (32 x 64K float16).
  return {
      shape(1024, DType::kFloat32, false, {1, 8, 32, 128}),
      shape(8192, DType::kFloat32, false, {1, 8, 32, 128}),
      shape(8192, DType::kFloat16, false, {32}),
      shape(65536, DType::kFloat32, false, {1, 8}),
      shape(65536, DType::kFloat16, false, {1, 8, 32}),
      shape(65536, DType::kBFloat16, false, {8, 32}),
      shape(262144, DType::kFloat16, false, {1, 8}),
      shape(262144, DType::kFloat16, true, {1, 8}),
  };
}

std::string DecodeShapeName(const DecodeShape& shape) {
  return absl::StrCat(shape.entries, ":", DTypeName(shape.dtype),
                      shape.approximate ? ":approximate" : "");
}

absl::StatusOr<std::vector<DecodeShape>> SelectDecodeShapes(
    const std::vector<DecodeShape>& shapes,
    const std::vector<std::string>& names) {
  if (names.empty()) return shapes;
  std::vector<DecodeShape> chosen;
  std::vector<std::string> known;
  for (const DecodeShape& shape : shapes) {
    known.push_back(DecodeShapeName(shape));
  }
  for (const std::string& name : names) {
    auto it = std::find(known.begin(), known.end(), name);
    if (it == known.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--decode-shapes: '", name, "' is none of ",
                       absl::StrJoin(known, ", ")));
    }
    chosen.push_back(shapes[static_cast<size_t>(it - known.begin())]);
  }
  return chosen;
}

absl::Status RunDecode(client::ShardedClient& client,
                       const DecodeConfig& config, Report& report,
                       std::vector<std::string>* created) {
  for (const DecodeShape& shape : config.shapes) {
    DecodeRun run(client, config, shape, report);
    std::vector<std::string> ids;
    absl::Status s = run.Run(&ids);
    if (!s.ok()) {
      // What is left goes with the run's other streams.
      created->insert(created->end(), ids.begin(), ids.end());
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace knnmem::bench
