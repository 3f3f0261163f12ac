// Report: the results of one run, the ratios derived from them, the machine
// they were measured on, and the two outputs (a table for people, a JSON
// array for tools).
//
// Contract: one Result per (workload, system, dtype, variant). A field that
// does not apply is NaN (doubles) or negative (integers) and is left out of
// the JSON and shown as "-" in the table. ComputeRatios() adds the ratios to
// the knnmem results from the peers' results of the same workload; a ratio
// whose inputs are missing is left out. WriteJson writes one object per
// Result, each carrying the machine and the run settings.
#ifndef KNNMEM_BENCH_REPORT_H_
#define KNNMEM_BENCH_REPORT_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace knnmem::bench {

constexpr double kNotApplicable = std::numeric_limits<double>::quiet_NaN();

struct Machine {
  std::string cpu;  // "model name" of /proc/cpuinfo
  int cores = 0;    // online logical CPUs
  std::optional<std::string> openblas_coretype;  // env OPENBLAS_CORETYPE
  std::optional<std::string> openblas_l2_size;   // env OPENBLAS_L2_SIZE
  // How idle OpenMP threads wait: decides faiss-flat "default".
  std::optional<std::string> omp_wait_policy;  // env OMP_WAIT_POLICY
  std::optional<std::string> gomp_spincount;   // env GOMP_SPINCOUNT
  int omp_threads = 0;   // FAISS's OpenMP threads in this process
  int blas_threads = 0;  // OpenBLAS threads in this process (sgemm, FAISS)
  std::string server;    // where knnmem ran: the child's ready line or --server
  // The child's command line; empty for --server/--servers.
  std::string server_command;
  // The instruction set of the server's score scan ("avx512", "avx2",
  // "portable"); empty when not known (--server/--servers).
  std::string scan_isa;
  // The servers (ServerLabel) and, per stream the run created, the index of
  // the server it went to.
  std::vector<std::string> servers;
  std::vector<std::pair<std::string, size_t>> placement;
  // /proc/loadavg's 1-minute load when the run started and when it ended:
  // other work on the machine skews every number.
  double load_at_start = -1;
  double load_at_end = -1;
};

// Reads /proc/cpuinfo, /proc/loadavg and the environment; thread counts and
// the server fields are filled by the caller.
Machine DetectMachine();
// /proc/loadavg's 1-minute load; -1 if unreadable.
double LoadAverage();

struct RunSettings {
  bool quick = false;
  int reps = 0;  // measured runs per op after one warm-up
  uint32_t seed = 0;
};

struct Result {
  std::string workload;  // W-append, W-search-8K, ...
  std::string system;    // knnmem, faiss-flat, faiss-hnsw, sgemm, rocksdb
  std::string dtype;     // storage dtype; "" when it does not apply
  std::string variant;   // what was timed when a system has several rows
  int64_t entries = -1;  // memory per head when measured
  int runs = 0;          // timed samples behind the statistics
  double median_seconds = kNotApplicable;
  double p99_seconds = kNotApplicable;
  double vectors_per_second = kNotApplicable;
  double recall_at_k = kNotApplicable;
  int64_t bytes = -1;  // payload bytes of one op (see the note)
  std::string note;
  std::vector<std::pair<std::string, double>> ratios;  // name, value
};

class Report {
 public:
  void Add(Result result);
  // The matching result or nullptr; `dtype`/`variant` must match exactly.
  const Result* Find(const std::string& workload, const std::string& system,
                     const std::string& dtype = "",
                     const std::string& variant = "") const;
  void ComputeRatios();

  // The table printed to stdout, machine header included.
  std::string Table(const Machine& machine, const RunSettings& run) const;
  absl::Status WriteJson(const std::string& path, const Machine& machine,
                         const RunSettings& run) const;

  const std::vector<Result>& results() const { return results_; }

 private:
  // Results in workload order (W-append, W-search-8K, W-search-64K,
  // W-attend-64K, W-mixed), then in the order they were added.
  std::vector<Result> Sorted() const;
  std::vector<Result> results_;
};

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_REPORT_H_
