#include "bench/real_keys.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/npy.h"
#include "base/status_macros.h"
#include "bench/decode_peers.h"
#include "bench/knnmem_calls.h"
#include "bench/stats.h"
#include "client/memory_client.h"

namespace knnmem::bench {
namespace {

constexpr int64_t kBatchRows = 512;
constexpr int64_t kIndexChunk = 8192;  // the indexer's step (decode.cc)

struct DumpDoc {
  std::string name;
  int64_t key_row = 0, keys = 0;
};
struct QueryCall {
  std::string document;
  int64_t row = 0, rows = 0, keys_in_memory = 0;
};
struct Dump {
  NpyArray keys, values, queries;
  std::vector<DumpDoc> documents;
  std::vector<QueryCall> calls;
  int heads = 0, key_dim = 0, value_dim = 0;
};

// The rows of a .tsv with a header line, each with `columns` fields.
absl::StatusOr<std::vector<std::vector<std::string>>> ReadTsv(
    const std::string& path, size_t columns) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::vector<std::vector<std::string>> rows;
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    if (fields.size() != columns) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": '", line, "' has not ", columns, " fields"));
    }
    rows.push_back(std::move(fields));
  }
  return rows;
}

absl::StatusOr<int64_t> Int(const std::string& path, const std::string& s) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(s, &v) || v < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": '", s, "' is not a count"));
  }
  return v;
}

absl::StatusOr<Dump> LoadDump(const std::string& dir) {
  Dump d;
  ASSIGN_OR_RETURN(d.keys, ReadNpy(dir + "/keys.npy"));
  ASSIGN_OR_RETURN(d.values, ReadNpy(dir + "/values.npy"));
  ASSIGN_OR_RETURN(d.queries, ReadNpy(dir + "/queries.npy"));
  if (d.keys.shape.size() != 3 || d.values.shape.size() != 3 ||
      d.queries.shape.size() != 3 || d.keys.shape[0] != d.values.shape[0] ||
      d.keys.shape[1] != d.queries.shape[1] ||
      d.keys.shape[2] != d.queries.shape[2]) {
    return absl::InvalidArgumentError(
        absl::StrCat("--keys ", dir,
                     ": keys, values and queries.npy do not agree in shape"));
  }
  d.heads = static_cast<int>(d.keys.shape[1]);
  d.key_dim = static_cast<int>(d.keys.shape[2]);
  d.value_dim = static_cast<int>(d.values.shape[2]);
  const std::string docs = dir + "/documents.tsv", calls = dir + "/queries.tsv";
  ASSIGN_OR_RETURN(auto doc_rows, ReadTsv(docs, 3));
  for (const auto& r : doc_rows) {
    DumpDoc doc{r[0]};
    ASSIGN_OR_RETURN(doc.key_row, Int(docs, r[1]));
    ASSIGN_OR_RETURN(doc.keys, Int(docs, r[2]));
    if (doc.key_row + doc.keys > d.keys.shape[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat(docs, ": '", doc.name, "' runs past keys.npy"));
    }
    d.documents.push_back(doc);
  }
  ASSIGN_OR_RETURN(auto call_rows, ReadTsv(calls, 4));
  for (const auto& r : call_rows) {
    QueryCall c{r[0]};
    ASSIGN_OR_RETURN(c.row, Int(calls, r[1]));
    ASSIGN_OR_RETURN(c.rows, Int(calls, r[2]));
    ASSIGN_OR_RETURN(c.keys_in_memory, Int(calls, r[3]));
    if (c.row + c.rows > d.queries.shape[0]) {
      return absl::InvalidArgumentError(absl::StrCat(
          calls, ": a call of '", c.document, "' runs past queries.npy"));
    }
    d.calls.push_back(c);
  }
  if (d.documents.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--keys ", dir, ": documents.tsv lists no document"));
  }
  return d;
}

// One memory size: the keys and values of its streams and the queries
// ([heads, key_dim] each) of its steps.
struct Case {
  std::string document;
  const float* keys = nullptr;
  const float* values = nullptr;
  int64_t entries = 0;
  std::vector<const float*> queries;
};

absl::StatusOr<Case> PickCase(const Dump& d, int64_t entries, int steps) {
  const DumpDoc& doc = *std::max_element(
      d.documents.begin(), d.documents.end(),
      [](const DumpDoc& a, const DumpDoc& b) { return a.keys < b.keys; });
  if (doc.keys < entries) {
    return absl::OutOfRangeError(
        absl::StrFormat("the longest document ('%s') holds %d keys per head",
                        doc.name, doc.keys));
  }
  const int64_t row = int64_t{d.heads} * d.key_dim;
  Case c;
  c.document = doc.name;
  c.keys = d.keys.data.data() + doc.key_row * row;
  c.values =
      d.values.data.data() + doc.key_row * int64_t{d.heads} * d.value_dim;
  c.entries = entries;
  std::vector<const float*> later, all;  // asked with >= entries; every one
  for (const QueryCall& call : d.calls) {
    if (call.document != doc.name) continue;
    for (int64_t i = 0; i < call.rows; ++i) {
      const float* q = d.queries.data.data() + (call.row + i) * row;
      all.push_back(q);
      if (call.keys_in_memory >= entries) later.push_back(q);
    }
  }
  std::vector<const float*>& from =
      static_cast<int>(later.size()) >= steps ? later : all;
  if (static_cast<int>(from.size()) < steps) {
    return absl::OutOfRangeError(
        absl::StrFormat("'%s' asked %d queries, fewer than %d steps", doc.name,
                        all.size(), steps));
  }
  // Spread over the queries available (consecutive ones are alike).
  for (int s = 0; s < steps; ++s) {
    c.queries.push_back(from[from.size() * s / steps]);
  }
  return c;
}

// The brute-force top-k positions of every (step, head): [steps, heads, k].
std::vector<int64_t> BruteTopK(const Case& c, int heads, int dim, int k) {
  const int steps = static_cast<int>(c.queries.size());
  std::vector<int64_t> out(static_cast<size_t>(steps) * heads * k);
  auto work = [&](int first, int stride) {
    std::vector<float> scores(static_cast<size_t>(c.entries));
    std::vector<int64_t> order(static_cast<size_t>(c.entries));
    for (int s = first; s < steps; s += stride) {
      for (int h = 0; h < heads; ++h) {
        const float* q = c.queries[s] + int64_t{h} * dim;
        for (int64_t e = 0; e < c.entries; ++e) {
          const float* key = c.keys + (e * heads + h) * dim;
          float dot = 0;
          for (int j = 0; j < dim; ++j) dot += q[j] * key[j];
          scores[e] = dot;
        }
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(
            order.begin(), order.begin() + k, order.end(),
            [&](int64_t a, int64_t b) {
              return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
            });
        std::copy(order.begin(), order.begin() + k,
                  out.begin() + (static_cast<size_t>(s) * heads + h) * k);
      }
    }
  };
  const int threads =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work, t, threads);
  for (std::thread& t : pool) t.join();
  return out;
}

// Mean share of the true top-k found, per (step, head).
double Recall(const std::vector<int64_t>& got,
              const std::vector<int64_t>& truth, int k) {
  double sum = 0;
  const size_t groups = truth.size() / k;
  for (size_t g = 0; g < groups; ++g) {
    absl::flat_hash_set<int64_t> want(truth.begin() + g * k,
                                      truth.begin() + (g + 1) * k);
    int found = 0;
    for (int i = 0; i < k; ++i) found += want.contains(got[g * k + i]);
    sum += static_cast<double>(found) / k;
  }
  return groups == 0 ? kNotApplicable : sum / groups;
}

Result Row(const std::string& system, const std::string& variant,
           int64_t entries, const Samples& steps, double recall,
           const std::string& note) {
  Result r;
  r.workload = "W-real";
  r.system = system;
  r.dtype = "float32";
  r.variant = variant;
  r.entries = entries;
  r.runs = static_cast<int>(steps.size());
  r.median_seconds = steps.Median();
  r.p99_seconds = steps.P99();
  r.recall_at_k = recall;
  r.note = note;
  return r;
}

class RealKeys {
 public:
  RealKeys(client::ShardedClient& client, const RealKeysConfig& config,
           const Dump& dump, Report& report, std::vector<std::string>* created)
      : client_(client),
        config_(config),
        dump_(dump),
        report_(report),
        created_(created) {}

  absl::Status Run(const Case& c) {
    const std::vector<int64_t> truth =
        BruteTopK(c, dump_.heads, dump_.key_dim, config_.k);
    // The tier trains on 64 x nlist keys past the exact tail: the largest
    // power of two (up to config.nlist) the largest tail leaves room for.
    const uint64_t tail_max = *std::max_element(config_.exact_tails.begin(),
                                                config_.exact_tails.end());
    nlist_ = config_.nlist;
    while (nlist_ > 16 &&
           c.entries - static_cast<int64_t>(tail_max) < int64_t{64} * nlist_) {
      nlist_ /= 2;
    }
    double exact_median = kNotApplicable;
    for (uint64_t tail : config_.exact_tails) {
      if (c.entries - static_cast<int64_t>(tail) < int64_t{64} * nlist_) {
        Progress(absl::StrFormat(
            "W-real: %d entries leave fewer than 64 x nlist past a tail of "
            "%d: skipped",
            c.entries, tail));
        continue;
      }
      for (uint32_t nprobe : config_.nprobes) {
        const std::string id = absl::StrFormat(
            "%s-real-%d-%d-%d", config_.stream_prefix, c.entries, tail, nprobe);
        RETURN_IF_ERROR(Fill(id, c, tail, nprobe));
        client::MemoryClient& m = client_.For(id);
        if (std::isnan(exact_median)) {
          std::vector<int64_t> got;
          ASSIGN_OR_RETURN(Samples exact, Steps(m, id, c, true, &got));
          exact_median = exact.Median();
          report_.Add(Row("knnmem", "exact scan", c.entries, exact,
                          Recall(got, truth, config_.k), c.document));
        }
        std::vector<int64_t> got;
        ASSIGN_OR_RETURN(Samples approx, Steps(m, id, c, false, &got));
        Result r = Row(
            "knnmem",
            absl::StrFormat("nlist %d nprobe %d tail %d", nlist_, nprobe, tail),
            c.entries, approx, Recall(got, truth, config_.k), "");
        r.ratios.push_back(
            {"exact scan / this", exact_median / r.median_seconds});
        report_.Add(std::move(r));
        RETURN_IF_ERROR(m.DeleteStream(id));  // its RAM, for the next
        created_->pop_back();
      }
    }
    return Peers(c, truth);
  }

 private:
  // Creates `id` (APPROXIMATE, float32) and appends the case's keys, then
  // waits for the tier to cover all but the tail.
  absl::Status Fill(const std::string& id, const Case& c, uint64_t tail,
                    uint32_t nprobe) {
    v1::StreamSpec spec;
    spec.set_layers(1);
    spec.set_heads(dump_.heads);
    spec.set_key_dim(dump_.key_dim);
    spec.set_value_dim(dump_.value_dim);
    spec.set_capacity(static_cast<uint64_t>(c.entries));
    spec.set_index(v1::APPROXIMATE);
    spec.set_storage_dtype(v1::FLOAT32);
    spec.set_nlist(nlist_);
    spec.set_nprobe(nprobe);
    spec.set_exact_tail(tail);
    RETURN_IF_ERROR(CreateFreshStream(client_, id, spec));
    created_->push_back(id);
    Progress(absl::StrFormat("W-real: %d keys of '%s' into %s", c.entries,
                             c.document, id));
    const int64_t key_row = int64_t{dump_.heads} * dump_.key_dim;
    const int64_t value_row = int64_t{dump_.heads} * dump_.value_dim;
    client::MemoryClient& m = client_.For(id);
    for (int64_t first = 0; first < c.entries; first += kBatchRows) {
      const int64_t rows = std::min(kBatchRows, c.entries - first);
      ASSIGN_OR_RETURN(
          v1::AppendRequest request,
          knnmem::client::MakeAppendRequest(
              id, 0, first, {c.keys + first * key_row, size_t(rows * key_row)},
              {c.values + first * value_row, size_t(rows * value_row)}, rows,
              dump_.heads));
      RETURN_IF_ERROR(AppendChecked(m, std::move(request)));
    }
    const int64_t want =
        (c.entries - static_cast<int64_t>(tail)) / kIndexChunk * kIndexChunk;
    return AwaitIndexed(m, id, want, "W-real");
  }

  // Times one Search per step (one query per head); the positions found
  // go to *got, [steps, heads, k].
  absl::StatusOr<Samples> Steps(client::MemoryClient& m, const std::string& id,
                                const Case& c, bool exact,
                                std::vector<int64_t>* got) {
    const size_t row = static_cast<size_t>(dump_.heads) * dump_.key_dim;
    Samples samples;
    for (const float* q : c.queries) {
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(
          client::Neighbours n,
          m.Search(id, 0, {q, row}, 1, dump_.heads,
                   static_cast<uint32_t>(config_.k), false, false, exact));
      samples.Add(NowSeconds() - start);
      got->insert(got->end(), n.positions.begin(), n.positions.end());
    }
    return samples;
  }

  // FAISS IVF (each nprobe) and HNSW (each efSearch), one index per head.
  absl::Status Peers(const Case& c, const std::vector<int64_t>& truth) {
    const int heads = dump_.heads, dim = dump_.key_dim;
    std::vector<std::vector<float>> per_head(heads);
    for (int h = 0; h < heads; ++h) {
      per_head[h].resize(static_cast<size_t>(c.entries) * dim);
      for (int64_t e = 0; e < c.entries; ++e) {
        std::copy_n(c.keys + (e * heads + h) * dim, dim,
                    per_head[h].begin() + e * dim);
      }
    }
    std::vector<int> indexes(heads);
    std::iota(indexes.begin(), indexes.end(), 0);
    auto time_peer = [&](const DecodePeer& peer, const std::string& system,
                         const std::string& variant,
                         const std::string& note) -> absl::Status {
      Samples samples;
      std::vector<int64_t> got;
      for (const float* q : c.queries) {
        std::vector<const float*> qs(heads);
        for (int h = 0; h < heads; ++h) qs[h] = q + int64_t{h} * dim;
        const double start = NowSeconds();
        ASSIGN_OR_RETURN(std::vector<int64_t> labels,
                         peer.Search(indexes, qs, config_.k));
        samples.Add(NowSeconds() - start);
        got.insert(got.end(), labels.begin(), labels.end());
      }
      report_.Add(Row(system, variant, c.entries, samples,
                      Recall(got, truth, config_.k), note));
      return absl::OkStatus();
    };
    {
      DecodePeer ivf(DecodePeer::Kind::kIvf, heads, dim,
                     static_cast<int>(nlist_),
                     static_cast<int>(config_.nprobes.front()));
      Progress("W-real: faiss-ivf");
      for (int h = 0; h < heads; ++h) {
        RETURN_IF_ERROR(ivf.Add(h, per_head[h].data(), c.entries));
      }
      for (uint32_t nprobe : config_.nprobes) {
        ivf.set_nprobe(static_cast<int>(nprobe));
        RETURN_IF_ERROR(time_peer(
            ivf, "faiss-ivf",
            absl::StrFormat("nlist %d nprobe %d", nlist_, nprobe), ""));
      }
    }
    DecodePeer hnsw(DecodePeer::Kind::kHnsw, heads, dim);
    Progress(
        absl::StrFormat("W-real: faiss-hnsw, %d inserts per head", c.entries));
    const double build = NowSeconds();
    for (int h = 0; h < heads; ++h) {
      RETURN_IF_ERROR(hnsw.Add(h, per_head[h].data(), c.entries));
    }
    const std::string built =
        absl::StrFormat("built in %.1f s", NowSeconds() - build);
    for (int ef : config_.ef_searches) {
      hnsw.set_ef_search(ef);
      RETURN_IF_ERROR(time_peer(
          hnsw, "faiss-hnsw", absl::StrFormat("M 15 efSearch %d", ef), built));
    }
    return absl::OkStatus();
  }

  client::ShardedClient& client_;
  const RealKeysConfig& config_;
  const Dump& dump_;
  Report& report_;
  std::vector<std::string>* created_;
  uint32_t nlist_ = 0;  // of the case running
};

}  // namespace

absl::Status RunRealKeys(client::ShardedClient& client,
                         const RealKeysConfig& config, Report& report,
                         std::vector<std::string>* created) {
  Progress(absl::StrCat("W-real: reading the dump in ", config.dir));
  ASSIGN_OR_RETURN(Dump dump, LoadDump(config.dir));
  Progress(absl::StrFormat(
      "W-real: %d documents, %d keys and %d queries of %d heads x %d",
      dump.documents.size(), dump.keys.shape[0], dump.queries.shape[0],
      dump.heads, dump.key_dim));
  RealKeys run(client, config, dump, report, created);
  for (int64_t entries : config.entries) {
    absl::StatusOr<Case> c = PickCase(dump, entries, config.steps);
    if (!c.ok()) {
      Progress(absl::StrFormat("W-real: %d entries skipped: %s", entries,
                               c.status().message()));
      Result r = Row("knnmem", "skipped", entries, Samples(), kNotApplicable,
                     std::string(c.status().message()));
      report.Add(std::move(r));
      continue;
    }
    RETURN_IF_ERROR(run.Run(*c));
  }
  return absl::OkStatus();
}

}  // namespace knnmem::bench
