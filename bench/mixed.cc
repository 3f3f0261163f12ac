#include "bench/mixed.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "base/sync.h"
#include "bench/knnmem_calls.h"
#include "bench/stats.h"

namespace knnmem::bench {
namespace {

// State shared by the threads of one phase.
class Phase {
 public:
  explicit Phase(int streams) : pending_(streams, 0) {}

  // Records `s` as the phase's error (the first one wins) and stops it.
  void Fail(absl::Status s) {
    MutexLock lock(&mu_);
    if (status_.ok()) status_ = std::move(s);
    stop_ = true;
  }
  bool stopped() {
    MutexLock lock(&mu_);
    return stop_;
  }
  // An Attend on `stream` completed: its appender may send one Append.
  void AttendDone(int stream) {
    MutexLock lock(&mu_);
    ++pending_[stream];
  }
  // Every attend thread finished: appenders stop.
  void Finish() {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  // Blocks until an Append is due on `stream` (true) or the phase ended.
  bool AwaitAppend(int stream) {
    MutexLock lock(&mu_);
    auto due = [this, stream]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || pending_[stream] > 0;
    };
    mu_.Await(absl::Condition(&due));
    if (stop_) return false;
    --pending_[stream];
    return true;
  }
  absl::Status status() {
    MutexLock lock(&mu_);
    return status_;
  }

 private:
  Mutex mu_;
  std::vector<int> pending_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

struct PhaseSamples {
  Samples attend;
  Samples append;
  double wall_seconds = 0;
};

absl::StatusOr<PhaseSamples> RunPhase(client::ShardedClient& client,
                                      const BenchData& data,
                                      const MixedConfig& config,
                                      const std::vector<std::string>& ids,
                                      std::vector<int64_t>& next_position,
                                      bool with_appends) {
  Phase phase(config.streams);
  std::vector<Samples> attend(config.attend_threads);
  std::vector<Samples> append(config.streams);
  std::vector<v1::AttendRequest> requests;
  std::vector<client::MemoryClient*> clients;  // of each stream's server
  for (const std::string& id : ids) {
    requests.push_back(MakeAttendRequest(id, data));
    clients.push_back(&client.For(id));
  }
  const double start = NowSeconds();
  std::vector<std::thread> appenders;
  if (with_appends) {
    for (int s = 0; s < config.streams; ++s) {
      appenders.emplace_back([&, s] {
        while (phase.AwaitAppend(s)) {
          v1::AppendRequest req =
              MakeAppendRequest(ids[s], data, next_position[s],
                                data.shape.batch_rows, DType::kFloat32);
          const double t0 = NowSeconds();
          absl::Status st = AppendChecked(*clients[s], std::move(req));
          if (!st.ok()) {
            phase.Fail(WithContext(st, "W-mixed"));
            return;
          }
          append[s].Add(NowSeconds() - t0);
          next_position[s] += data.shape.batch_rows;
        }
      });
    }
  }
  std::vector<std::thread> readers;
  for (int t = 0; t < config.attend_threads; ++t) {
    readers.emplace_back([&, t] {
      const int s = t % config.streams;
      for (int i = 0; i <= config.attends_per_round; ++i) {  // 0: warm-up
        if (phase.stopped()) return;
        const double t0 = NowSeconds();
        absl::StatusOr<v1::AttendResponse> r = clients[s]->Attend(requests[s]);
        const double elapsed = NowSeconds() - t0;
        if (!r.ok()) {
          phase.Fail(WithContext(
              r.status(), absl::StrCat("W-mixed: Attend '", ids[s], "'")));
          return;
        }
        if (i > 0) attend[t].Add(elapsed);
        phase.AttendDone(s);
      }
    });
  }
  for (std::thread& t : readers) t.join();
  phase.Finish();
  for (std::thread& t : appenders) t.join();
  RETURN_IF_ERROR(phase.status());
  PhaseSamples out;
  out.wall_seconds = NowSeconds() - start;
  for (const Samples& s : attend) {
    for (double v : s.seconds) out.attend.Add(v);
  }
  for (const Samples& s : append) {
    for (double v : s.seconds) out.append.Add(v);
  }
  return out;
}

Result MixedResult(const std::string& variant, const Samples& samples) {
  Result r;
  r.workload = "W-mixed";
  r.system = "knnmem";
  r.dtype = "float32";
  r.variant = variant;
  r.runs = static_cast<int>(samples.size());
  r.median_seconds = samples.Median();
  r.p99_seconds = samples.P99();
  return r;
}

}  // namespace

absl::Status RunMixed(client::ShardedClient& client, const BenchData& data,
                      const MixedConfig& config, Report& report,
                      std::vector<std::string>* created) {
  const Shape& sh = data.shape;
  std::vector<std::string> ids;
  std::vector<int64_t> next_position(config.streams, 0);
  Progress(absl::StrFormat("W-mixed: filling %d streams to %d entries",
                           config.streams, config.entries));
  for (int s = 0; s < config.streams; ++s) {
    ids.push_back(absl::StrCat(config.stream_prefix, ".mixed", s));
    RETURN_IF_ERROR(CreateFreshStream(
        client, ids.back(),
        BenchSpec(sh, static_cast<uint64_t>(config.entries), DType::kFloat32)));
    created->push_back(ids.back());
    for (int64_t p = 0; p < config.entries; p += sh.batch_rows) {
      RETURN_IF_ERROR(
          AppendChecked(client.For(ids.back()),
                        MakeAppendRequest(ids.back(), data, p, sh.batch_rows,
                                          DType::kFloat32)));
    }
    next_position[s] = config.entries;
  }

  PhaseSamples alone, mixed;
  for (int round = 0; round < config.rounds; ++round) {
    for (const bool with_appends : {round % 2 == 1, round % 2 == 0}) {
      Progress(absl::StrFormat(
          "W-mixed round %d/%d: %d threads x %d Attends%s", round + 1,
          config.rounds, config.attend_threads, config.attends_per_round,
          with_appends ? absl::StrFormat(", one Append per Attend from %d "
                                         "appender threads",
                                         config.streams)
                       : ", nothing else running"));
      ASSIGN_OR_RETURN(
          PhaseSamples phase,
          RunPhase(client, data, config, ids, next_position, with_appends));
      PhaseSamples& total = with_appends ? mixed : alone;
      total.wall_seconds += phase.wall_seconds;
      for (double v : phase.attend.seconds) total.attend.Add(v);
      for (double v : phase.append.seconds) total.append.Add(v);
    }
  }

  // Where the streams went, when there are several servers.
  std::string spread;
  if (client.servers().size() > 1) {
    std::vector<int> per_server(client.servers().size(), 0);
    for (const std::string& id : ids) ++per_server[client.ServerIndexOf(id)];
    std::vector<std::string> parts;
    for (size_t i = 0; i < per_server.size(); ++i) {
      parts.push_back(absl::StrCat(per_server[i], " on ",
                                   ServerLabel(client.servers()[i])));
    }
    spread = absl::StrCat(" (", absl::StrJoin(parts, ", "), ")");
  }
  const std::string shape = absl::StrFormat(
      "%d streams x %d entries%s, %d client threads (one stream each)",
      config.streams, config.entries, spread, config.attend_threads);
  Result a = MixedResult("attend-only", alone.attend);
  a.entries = config.entries;
  a.note = absl::StrFormat("Attend latency, %s; %.2f Attends/s in all", shape,
                           alone.attend.size() / alone.wall_seconds);
  report.Add(a);
  Result m = MixedResult("attend+append", mixed.attend);
  m.entries = config.entries;
  m.note = absl::StrFormat(
      "Attend latency, %s, with concurrent Appends of 512 rows to the same "
      "streams from %d other threads; %.2f Attends/s in all",
      shape, config.streams, mixed.attend.size() / mixed.wall_seconds);
  report.Add(m);
  Result w = MixedResult("append-during-attend", mixed.append);
  w.entries = config.entries;
  w.vectors_per_second = sh.batch_rows / w.median_seconds;
  w.note =
      "Append latency during the attend+append phase (FIFO eviction "
      "keeps each stream at its capacity)";
  report.Add(w);
  return absl::OkStatus();
}

}  // namespace knnmem::bench
