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
#include "bench/real_dump.h"
#include "bench/stats.h"
#include "client/decode_step.h"
#include "client/memory_client.h"

namespace knnmem::bench {
namespace {

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
        RETURN_IF_ERROR(FillStream(client_, id, dump_, c,
                                   {true, nlist_, nprobe, tail}, created_));
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
    RETURN_IF_ERROR(Decode(c, truth));
    return Peers(c, truth);
  }

 private:
  // The decode shape: one DecodeStep per step asks one query per head of
  // each of b streams (stream s, step i: query (i + s) % steps), k = 32, no
  // appends. b EXACT streams, each holding the case's keys, and b streams
  // of its first 64 keys (what the call costs without a scan); then, for
  // each decode tail, b APPROXIMATE streams. The recall is every stream's
  // Search of every query against the brute force.
  absl::Status Decode(const Case& c, const std::vector<int64_t>& truth) {
    if (config_.decode_streams.empty()) return absl::OkStatus();
    const int most = *std::max_element(config_.decode_streams.begin(),
                                       config_.decode_streams.end());
    Case tiny = c;
    tiny.entries = std::min<int64_t>(64, c.entries);
    const std::string id =
        absl::StrFormat("%s-real-decode-%d", config_.stream_prefix, c.entries);
    std::vector<std::string> exact, small;
    for (int s = 0; s < most; ++s) {
      exact.push_back(absl::StrCat(id, "-exact-", s));
      small.push_back(absl::StrCat(id, "-small-", s));
      RETURN_IF_ERROR(
          FillStream(client_, exact.back(), dump_, c, {false}, created_));
      RETURN_IF_ERROR(
          FillStream(client_, small.back(), dump_, tiny, {false}, created_));
    }
    std::vector<double> exact_median;
    for (int b : config_.decode_streams) {
      const std::string shape = absl::StrFormat("decode B=%d, ", b);
      ASSIGN_OR_RETURN(Samples on_exact, DecodeSteps(c, exact, b));
      exact_median.push_back(on_exact.Median());
      report_.Add(Row("knnmem", shape + "exact", c.entries, on_exact,
                      kNotApplicable, "EXACT streams"));
      ASSIGN_OR_RETURN(Samples on_small, DecodeSteps(tiny, small, b));
      report_.Add(Row("knnmem", shape + "64 keys (the call alone)",
                      tiny.entries, on_small, kNotApplicable, ""));
    }
    RETURN_IF_ERROR(Delete(exact));
    RETURN_IF_ERROR(Delete(small));
    for (uint64_t tail : config_.decode_tails) {
      const FillSpec tier{true, nlist_, config_.decode_nprobe, tail};
      if (c.entries - static_cast<int64_t>(tail) < int64_t{64} * nlist_) {
        continue;  // too few keys for the tier (reported above)
      }
      std::vector<std::string> approx;
      for (int s = 0; s < most; ++s) {
        approx.push_back(absl::StrCat(id, "-tail-", tail, "-", s));
        RETURN_IF_ERROR(
            FillStream(client_, approx.back(), dump_, c, tier, created_));
      }
      for (size_t i = 0; i < config_.decode_streams.size(); ++i) {
        const int b = config_.decode_streams[i];
        ASSIGN_OR_RETURN(Samples on_tier, DecodeSteps(c, approx, b));
        std::vector<int64_t> got, want;
        for (int s = 0; s < b; ++s) {
          client::MemoryClient& m = client_.For(approx[s]);
          for (size_t j = 0; j < c.queries.size(); ++j) {
            const size_t q = (j + s) % c.queries.size();
            ASSIGN_OR_RETURN(client::Neighbours n,
                             Search(m, approx[s], c.queries[q], false));
            got.insert(got.end(), n.positions.begin(), n.positions.end());
            const auto from = truth.begin() + q * dump_.heads * config_.k;
            want.insert(want.end(), from, from + dump_.heads * config_.k);
          }
        }
        Result r =
            Row("knnmem",
                absl::StrFormat("decode B=%d, nlist %d nprobe %d tail %d", b,
                                nlist_, tier.nprobe, tail),
                c.entries, on_tier, Recall(got, want, config_.k), "");
        r.ratios.push_back(
            {"exact step / this", exact_median[i] / r.median_seconds});
        report_.Add(std::move(r));
      }
      RETURN_IF_ERROR(Delete(approx));
    }
    return absl::OkStatus();
  }

  // Deletes the streams `ids` (their RAM, for the next) and forgets them.
  absl::Status Delete(const std::vector<std::string>& ids) {
    for (const std::string& id : ids) {
      RETURN_IF_ERROR(client_.DeleteStream(id));
      created_->erase(std::find(created_->begin(), created_->end(), id));
    }
    return absl::OkStatus();
  }

  // Times DecodeSteps over the first b of `ids` (3 warm-up steps first).
  absl::StatusOr<Samples> DecodeSteps(const Case& c,
                                      const std::vector<std::string>& ids,
                                      int b) {
    constexpr int kWarmups = 3;
    const int steps = static_cast<int>(c.queries.size());
    const size_t row = static_cast<size_t>(dump_.heads) * dump_.key_dim;
    client::MemoryClient& m = client_.For(ids[0]);
    client::StepParams params;
    params.k = static_cast<uint32_t>(config_.k);
    Samples samples;
    for (int i = 0; i < kWarmups + steps; ++i) {
      std::vector<client::Step> parts(b);
      for (int s = 0; s < b; ++s) {
        if (&client_.For(ids[s]) != &m) {
          return absl::FailedPreconditionError(
              "W-real decode: its streams must share one server");
        }
        parts[s].stream_id = ids[s];
        parts[s].heads = dump_.heads;
        parts[s].key_dim = dump_.key_dim;
        parts[s].queries = {c.queries[(i + s) % steps], row};
      }
      ASSIGN_OR_RETURN(v1::DecodeStepRequest request,
                       client::MakeDecodeStepRequest(parts, params));
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(v1::DecodeStepResponse response, m.DecodeStep(request));
      const double seconds = NowSeconds() - start;
      for (const v1::StreamStepResult& r : response.results()) {
        if (r.code() != 0) {
          return absl::Status(
              static_cast<absl::StatusCode>(r.code()),
              absl::StrCat("W-real decode step: ", r.message()));
        }
      }
      if (i >= kWarmups) samples.Add(seconds);
    }
    return samples;
  }

  // One Search: one query per head, positions only.
  absl::StatusOr<client::Neighbours> Search(client::MemoryClient& m,
                                            const std::string& id,
                                            const float* query, bool exact) {
    const size_t row = static_cast<size_t>(dump_.heads) * dump_.key_dim;
    return m.Search(id, 0, {query, row}, 1, dump_.heads,
                    static_cast<uint32_t>(config_.k), false, false, exact);
  }

  // Times one Search per step (one query per head); the positions found
  // go to *got, [steps, heads, k].
  absl::StatusOr<Samples> Steps(client::MemoryClient& m, const std::string& id,
                                const Case& c, bool exact,
                                std::vector<int64_t>* got) {
    Samples samples;
    for (const float* q : c.queries) {
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(client::Neighbours n, Search(m, id, q, exact));
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
