// knnmem crash oracle, after RocksDB's crash tests and Qdrant's crasher.
//
// Several threads append to many streams while the server is SIGKILLed at
// random moments; the server restarts on the same data dir each cycle. The
// driver records every batch as acknowledged, rejected or indeterminate
// (deadline, unavailable, cancelled) and, after every restart, checks:
//  - every acknowledged row is present and byte-identical;
//  - each indeterminate batch is all there or all absent;
//  - nothing is duplicated or invented;
//  - exact Search equals an oracle rebuilt from the driver's record;
//  - with the server down, RAM rebuilt from the data dir equals RocksDB
//    (MemoryStore::VerifyAgainstStorage).
//
// With --disk-faults the data dir is a 64 MiB tmpfs (root only) whose space
// another writer fills up to a margin while the load runs, and frees again
// on every other cycle: the server must refuse writes with
// RESOURCE_EXHAUSTED "disk: ..." (a determinate rejection: nothing stored),
// never abort, and lose no acknowledged row across the kills.
//
//   crash_oracle [--cycles N] [--streams N] [--threads N] [--seed N]
//                [--disk-faults]
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/flags.h"
#include "base/sync.h"
#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "server/store/memory_store.h"
#include "tests/support/oracle.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {
namespace {

constexpr int kHeads = 2, kKeyDim = 16, kValueDim = 8;
constexpr int64_t kCapacity = 256;

struct Batch {
  int64_t first = 0;
  int64_t rows = 0;
  std::vector<float> keys, values;  // as stored (rounded to the dtype)
};

// What the driver knows of one stream.
struct Record {
  std::string id;
  DType dtype = DType::kFloat32;
  int64_t acked_end = 0;  // positions [0, acked_end) were acknowledged
  std::map<int64_t, std::vector<float>> keys, values;  // retained window
  std::optional<Batch> indeterminate;  // at most one: the stream then waits
  int64_t acked_rows = 0, indeterminate_batches = 0, present_after_crash = 0;

  void Accept(const Batch& b) {
    for (int64_t r = 0; r < b.rows; ++r) {
      keys[b.first + r].assign(b.keys.begin() + r * kHeads * kKeyDim,
                               b.keys.begin() + (r + 1) * kHeads * kKeyDim);
      values[b.first + r].assign(
          b.values.begin() + r * kHeads * kValueDim,
          b.values.begin() + (r + 1) * kHeads * kValueDim);
    }
    acked_end = b.first + b.rows;
    while (static_cast<int64_t>(keys.size()) > kCapacity) {
      values.erase(keys.begin()->first);
      keys.erase(keys.begin());
    }
  }
};

bool Indeterminate(absl::StatusCode c) {
  return c == absl::StatusCode::kUnavailable ||
         c == absl::StatusCode::kDeadlineExceeded ||
         c == absl::StatusCode::kCancelled || c == absl::StatusCode::kUnknown ||
         c == absl::StatusCode::kInternal;
}

struct Failure {
  std::string what;
};

// The machine does not allow what the run needs (ctest: SKIP_RETURN_CODE).
struct Skipped {
  std::string why;
};
constexpr int kSkippedExitCode = 77;

class Oracle {
 public:
  Oracle(int streams, int threads, uint64_t seed, bool disk_faults)
      : threads_(threads),
        disk_faults_(disk_faults),
        rng_(seed),
        server_(dir_.Sub("data"),
                disk_faults ? std::vector<std::string>{"--disk-reserve", "4MiB"}
                            : std::vector<std::string>{}) {
    if (disk_faults_) {
      const std::string data = dir_.Sub("data");
      if (mkdir(data.c_str(), 0755) != 0 ||
          mount("tmpfs", data.c_str(), "tmpfs", 0, "size=64m") != 0) {
        throw Skipped{absl::StrCat("--disk-faults: cannot mount a tmpfs on ",
                                   data, " (", std::strerror(errno),
                                   "); it needs root")};
      }
      mounted_ = data;
    }
    for (int i = 0; i < streams; ++i) {
      Record r;
      r.id = "crash-" + std::to_string(i);
      r.dtype = static_cast<DType>(1 + i % 3);
      records_.push_back(std::move(r));
    }
  }

  // One cycle: start, verify the previous state, load, kill at random.
  void Cycle(int cycle) {
    if (!server_.Start())
      throw Failure{"server did not start: " + server_.error()};
    auto client = client::MemoryClient::Connect(server_.address());
    if (cycle == 0) {
      for (Record& r : records_) {
        v1::StreamSpec spec;
        spec.set_layers(1);
        spec.set_heads(kHeads);
        spec.set_key_dim(kKeyDim);
        spec.set_value_dim(kValueDim);
        spec.set_capacity(kCapacity);
        spec.set_storage_dtype(static_cast<v1::DType>(r.dtype));
        auto created = client->CreateStream(r.id, spec);
        if (!created.ok())
          throw Failure{"create: " + created.status().ToString()};
      }
    } else {
      for (Record& r : records_) Verify(*client, r);
    }
    client.reset();
    Load(cycle);
  }

  ~Oracle() {
    if (!mounted_.empty()) {
      server_.Kill();
      umount2(mounted_.c_str(), MNT_DETACH);
    }
  }

  void Report(int cycle) const {
    int64_t acked = 0, indeterminate = 0, present = 0;
    for (const Record& r : records_) {
      acked += r.acked_rows;
      indeterminate += r.indeterminate_batches;
      present += r.present_after_crash;
    }
    std::printf(
        "cycle %d: %ld rows acknowledged, %ld indeterminate batches (%ld found "
        "present), %d rejected, %d refused for disk space; verified\n",
        cycle, long(acked), long(indeterminate), long(present),
        rejected_.load(), disk_refusals_.load());
    std::fflush(stdout);
  }

  // After the last cycle: restart once more, verify, and stop cleanly.
  void Finish() {
    if (!server_.Start())
      throw Failure{"server did not start: " + server_.error()};
    auto client = client::MemoryClient::Connect(server_.address());
    for (Record& r : records_) Verify(*client, r);
    client.reset();
    if (server_.Stop() != 0) throw Failure{"server did not stop cleanly"};
  }

 private:
  void Load(int cycle) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads_; ++t) {
      workers.emplace_back([this, t, cycle, &stop] { Append(t, cycle, stop); });
    }
    std::uniform_int_distribution<int> delay_ms(20, 400);
    const int delay = delay_ms(rng_);
    std::thread filler;
    if (disk_faults_) {
      const int fill_at =
          delay * std::uniform_int_distribution<int>(0, 50)(rng_) / 100;
      const bool free_again = cycle % 2 == 0;
      filler = std::thread([this, fill_at, free_again, delay] {
        std::this_thread::sleep_for(std::chrono::milliseconds(fill_at));
        FillDisk();
        if (free_again) {
          std::this_thread::sleep_for(
              std::chrono::milliseconds((delay - fill_at) / 2));
          std::remove(Filler().c_str());
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    if (disk_faults_) {
      filler.join();
      // The server must still be running: it never aborts on a full disk.
      if (!server_.Running()) {
        throw Failure{absl::StrCat(
            "the server died by itself under a full disk (exit status ",
            server_.Wait(), ", 128 + N for signal N)")};
      }
    }
    server_.Kill();
    stop = true;
    for (auto& w : workers) w.join();
    // The restart must replay the WAL: room again, as an operator would.
    if (disk_faults_) std::remove(Filler().c_str());
    if (!failure_.empty()) throw Failure{failure_};
    // With the server down: RAM rebuilt from the data dir equals RocksDB.
    WorkerPool pool(1);
    MemoryStore::Options options;
    options.data_dir = dir_.Sub("data");
    options.shards = 4;
    options.pool = &pool;
    auto store = MemoryStore::Open(options);
    if (!store.ok()) throw Failure{"reopen: " + store.status().ToString()};
    absl::Status same = (*store)->VerifyAgainstStorage();
    if (!same.ok()) throw Failure{same.ToString()};
  }

  void Append(int thread, int cycle, std::atomic<bool>& stop) {
    client::MemoryClient::Options options;
    options.deadline = std::chrono::seconds(5);
    auto client = client::MemoryClient::Connect(server_.address(), options);
    std::mt19937 rng(static_cast<uint32_t>(cycle * 1000 + thread));
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> rows(1, 48);
    while (!stop) {
      bool any = false;
      for (size_t i = thread; i < records_.size() && !stop; i += threads_) {
        Record& r = records_[i];
        if (r.indeterminate) continue;  // its state is unknown until restart
        any = true;
        Batch b;
        b.first = r.acked_end;
        b.rows = rows(rng);
        std::vector<float> k(b.rows * kHeads * kKeyDim),
            v(b.rows * kHeads * kValueDim);
        for (float& x : k) x = normal(rng);
        for (float& x : v) x = normal(rng);
        // The record holds the values as the server stores them.
        b.keys = UnpackFloats(PackFloats(k, r.dtype), r.dtype);
        b.values = UnpackFloats(PackFloats(v, r.dtype), r.dtype);
        auto result = client->Append(r.id, 0, b.first, k, v, b.rows, kHeads);
        if (result.ok()) {
          if (result->next_position() != b.first + b.rows ||
              result->stored() != static_cast<uint64_t>(b.rows)) {
            Fail(absl::StrCat(r.id, ": acknowledged append of ", b.rows,
                              " rows at ", b.first, " answered next ",
                              result->next_position(), ", stored ",
                              result->stored()));
            return;
          }
          r.Accept(b);
          r.acked_rows += b.rows;
        } else if (disk_faults_ &&
                   result.status().code() ==
                       absl::StatusCode::kResourceExhausted &&
                   absl::StartsWith(result.status().message(), "disk: ")) {
          ++disk_refusals_;  // refused before anything was written
        } else if (Indeterminate(result.status().code())) {
          r.indeterminate = std::move(b);
          ++r.indeterminate_batches;
        } else {
          ++rejected_;
          Fail(absl::StrCat(r.id, ": unexpected rejection ",
                            result.status().ToString()));
          return;
        }
      }
      if (!any) return;
    }
  }

  void Verify(client::MemoryClient& client, Record& r) {
    auto info = client.GetStream(r.id);
    if (!info.ok()) throw Failure{r.id + ": " + info.status().ToString()};
    const int64_t next = info->layers(0).next_position();
    if (next == r.acked_end) {
      r.indeterminate.reset();  // it never landed
    } else if (r.indeterminate &&
               next == r.indeterminate->first + r.indeterminate->rows) {
      r.Accept(*r.indeterminate);  // it landed whole
      r.indeterminate.reset();
      ++r.present_after_crash;
    } else {
      throw Failure{
          absl::StrCat(r.id, ": next position ", next,
                       " after restart; acknowledged up to ", r.acked_end,
                       next < r.acked_end ? " (acknowledged rows lost)"
                                          : " (rows invented or torn)")};
    }
    if (next == 0) return;
    // Every retained row, byte-identical: k = entries returns them all.
    const int64_t entries = std::min(next, kCapacity);
    std::vector<float> query(kHeads * kKeyDim, 0.0f);
    query[0] = 1.0f;
    auto all = client.Search(r.id, 0, query, 1, kHeads,
                             static_cast<uint32_t>(entries), true, true);
    if (!all.ok()) throw Failure{r.id + ": search: " + all.status().ToString()};
    for (int h = 0; h < kHeads; ++h) {
      std::map<int64_t, int> seen;
      for (int64_t j = 0; j < entries; ++j) {
        const size_t at = static_cast<size_t>(h * entries + j);
        const int64_t p = all->positions[at];
        if (p < next - entries || p >= next || seen[p]++ > 0) {
          throw Failure{absl::StrCat(r.id, ": position ", p,
                                     " returned, retained are [",
                                     next - entries, ", ", next, ")")};
        }
        for (int d = 0; d < kKeyDim; ++d) {
          if (all->keys[at * kKeyDim + d] != r.keys.at(p)[h * kKeyDim + d]) {
            throw Failure{absl::StrCat(r.id, ": key of position ", p, " head ",
                                       h, " differs")};
          }
        }
        for (int d = 0; d < kValueDim; ++d) {
          if (all->values[at * kValueDim + d] !=
              r.values.at(p)[h * kValueDim + d]) {
            throw Failure{absl::StrCat(r.id, ": value of position ", p,
                                       " head ", h, " differs")};
          }
        }
      }
    }
    // Exact search equals the oracle rebuilt from the record.
    OracleMemory oracle{kHeads, kKeyDim, r.keys};
    std::normal_distribution<float> normal;
    std::vector<float> q(kHeads * kKeyDim);
    for (float& x : q) x = normal(rng_);
    auto top = client.Search(r.id, 0, q, 1, kHeads, 32);
    if (!top.ok()) throw Failure{r.id + ": search: " + top.status().ToString()};
    for (int h = 0; h < kHeads; ++h) {
      const std::string diff = CompareWithOracle(
          oracle, q.data(), h, 32, top->scores.data() + h * 32,
          top->positions.data() + h * 32, 1e-3);
      if (!diff.empty())
        throw Failure{r.id + ": search differs from the oracle: " + diff};
    }
  }

  std::string Filler() const { return mounted_ + "/filler"; }

  // Fills the data dir's disk up to 2 MiB free: less than the server's
  // reserve, so it refuses writes, but room for writes already checked.
  void FillDisk() {
    std::ofstream out(Filler(), std::ios::binary | std::ios::app);
    const std::string chunk(1 << 16, 'f');
    for (;;) {
      struct statvfs v;
      if (statvfs(mounted_.c_str(), &v) != 0) return;
      const uint64_t free = uint64_t{v.f_bavail} * v.f_frsize;
      if (free <= (uint64_t{2} << 20) + chunk.size()) return;
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      out.flush();
      if (!out) return;
    }
  }

  void Fail(const std::string& what) {
    static Mutex mu;
    MutexLock lock(&mu);
    if (failure_.empty()) failure_ = what;
  }

  const int threads_;
  const bool disk_faults_;
  std::string mounted_;  // the tmpfs under --disk-faults
  std::mt19937 rng_;
  TempDir dir_;
  ServerProcess server_;
  std::vector<Record> records_;
  std::atomic<int> rejected_{0};
  std::atomic<int> disk_refusals_{0};
  std::string failure_;
};

int Main(int argc, char** argv) {
  int cycles = 20, streams = 24, threads = 4;
  uint64_t seed = 1;
  bool disk_faults = false, help = false;
  FlagSet flags;
  flags
      .Int("cycles", &cycles, "N",
           "kill cycles: start, verify, load, SIGKILL at a random moment")
      .AtLeast(0);
  flags.Int("streams", &streams, "N", "streams the load appends to").AtLeast(1);
  flags.Int("threads", &threads, "N", "appending threads").Range(1, 1024);
  flags.Int("seed", &seed, "S", "seed of the kill moments and the checks");
  flags.Bool("disk-faults", &disk_faults,
             "the data dir is a 64 MiB tmpfs (root only) that another writer "
             "fills while the load runs");
  flags.Bool("help", &help, "print this text and exit");
  if (std::optional<int> status = flags.ParseForMain(
          "crash_oracle", "usage: crash_oracle [flags]", argc, argv)) {
    return *status;
  }
  try {
    Oracle oracle(streams, threads, seed, disk_faults);
    for (int c = 0; c < cycles; ++c) {
      oracle.Cycle(c);
      if (c > 0) oracle.Report(c);
    }
    oracle.Finish();
  } catch (const Skipped& s) {
    std::printf("crash oracle SKIPPED: %s\n", s.why.c_str());
    return kSkippedExitCode;
  } catch (const Failure& f) {
    std::fprintf(stderr, "crash oracle FAILED: %s\n", f.what.c_str());
    std::printf("0 passed, 1 failed\n");
    return 1;
  }
  std::printf("crash oracle: %d kill cycles, every acknowledged row present\n",
              cycles);
  return 0;
}

}  // namespace
}  // namespace knnmem::testing

int main(int argc, char** argv) { return knnmem::testing::Main(argc, argv); }
