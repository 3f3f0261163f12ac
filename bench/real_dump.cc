#include "bench/real_dump.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "bench/knnmem_calls.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "client/memory_client.h"
#include "server/spec/stream_spec.h"

namespace knnmem::bench {
namespace {

constexpr int64_t kBatchRows = 512;
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

}  // namespace

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

absl::Status FillStream(client::ShardedClient& client, const std::string& id,
                        const Dump& dump, const Case& c, const FillSpec& spec,
                        std::vector<std::string>* created) {
  v1::StreamSpec s;
  s.set_layers(1);
  s.set_heads(dump.heads);
  s.set_key_dim(dump.key_dim);
  s.set_value_dim(dump.value_dim);
  s.set_capacity(static_cast<uint64_t>(c.entries));
  s.set_storage_dtype(v1::FLOAT32);
  s.set_index(spec.approximate ? v1::APPROXIMATE : v1::EXACT);
  if (spec.approximate) {
    s.set_nlist(spec.nlist);
    s.set_nprobe(spec.nprobe);
    s.set_exact_tail(spec.exact_tail);
  }
  RETURN_IF_ERROR(CreateFreshStream(client, id, s));
  created->push_back(id);
  Progress(absl::StrFormat("W-real: %d keys of '%s' into %s", c.entries,
                           c.document, id));
  const int64_t key_row = int64_t{dump.heads} * dump.key_dim;
  const int64_t value_row = int64_t{dump.heads} * dump.value_dim;
  client::MemoryClient& m = client.For(id);
  for (int64_t first = 0; first < c.entries; first += kBatchRows) {
    const int64_t rows = std::min(kBatchRows, c.entries - first);
    ASSIGN_OR_RETURN(
        v1::AppendRequest request,
        knnmem::client::MakeAppendRequest(
            id, 0, first, {c.keys + first * key_row, size_t(rows * key_row)},
            {c.values + first * value_row, size_t(rows * value_row)}, rows,
            dump.heads));
    RETURN_IF_ERROR(AppendChecked(m, std::move(request)));
  }
  if (!spec.approximate) return absl::OkStatus();
  const int64_t past_tail = c.entries - static_cast<int64_t>(spec.exact_tail);
  return AwaitIndexed(m, id, past_tail / kIndexChunk * kIndexChunk, "W-real");
}

}  // namespace knnmem::bench
