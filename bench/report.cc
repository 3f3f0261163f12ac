#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/json.h"

namespace knnmem::bench {
namespace {

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The bench's numbers keep 9 significant digits in its JSON.
double Number(double v) { return RoundToSignificantDigits(v, 9); }

Json Optional(const std::optional<std::string>& v) {
  return v.has_value() ? Json(*v) : Json(nullptr);
}

// An empty string as null.
Json NullIfEmpty(const std::string& s) {
  return s.empty() ? Json(nullptr) : Json(s);
}

// "1.234e-03"-style cells are hard to compare by eye; seconds get 4
// significant digits, rates 3, and "-" marks what does not apply.
std::string Cell(double v, const char* format) {
  return std::isnan(v) ? "-" : absl::StrFormat(format, v);
}

std::string RateCell(double v) {
  if (std::isnan(v)) return "-";
  if (v >= 1e6) return absl::StrFormat("%.3gM", v / 1e6);
  if (v >= 1e3) return absl::StrFormat("%.3gK", v / 1e3);
  return absl::StrFormat("%.3g", v);
}

std::string BytesCell(int64_t b) {
  if (b < 0) return "-";
  if (b >= (int64_t{1} << 20)) {
    return absl::StrFormat("%.2fMiB", static_cast<double>(b) / (1 << 20));
  }
  if (b >= 1024) return absl::StrFormat("%.1fKiB", b / 1024.0);
  return absl::StrCat(b, "B");
}

// "streams (ids PREFIX.SUFFIX) by server:" and one line per server; one line
// when there is only one server.
std::string StreamPlacement(const Machine& m) {
  if (m.placement.empty() || m.servers.empty()) return "";
  // The longest common prefix ending in '.'.
  std::string prefix = m.placement[0].first;
  for (const auto& [id, server] : m.placement) {
    size_t n = 0;
    while (n < prefix.size() && n < id.size() && prefix[n] == id[n]) ++n;
    prefix.resize(n);
  }
  const size_t dot = prefix.rfind('.');
  prefix = dot == std::string::npos ? "" : prefix.substr(0, dot + 1);
  std::vector<std::vector<std::string>> by_server(m.servers.size());
  for (const auto& [id, server] : m.placement) {
    if (server < by_server.size()) {
      by_server[server].push_back(id.substr(prefix.size()));
    }
  }
  std::ostringstream out;
  const std::string ids =
      prefix.empty() ? "" : absl::StrCat(" (ids ", prefix, "SUFFIX)");
  if (m.servers.size() == 1) {
    out << "streams" << ids << ": " << absl::StrJoin(by_server[0], " ")
        << ", all on " << m.servers[0] << "\n";
    return out.str();
  }
  out << "streams" << ids
      << " by server (placed by knnmem::client::ShardedClient):\n";
  for (size_t i = 0; i < m.servers.size(); ++i) {
    out << "  " << m.servers[i] << ": "
        << (by_server[i].empty() ? "(none)" : absl::StrJoin(by_server[i], " "))
        << "\n";
  }
  return out.str();
}

}  // namespace

Machine DetectMachine() {
  Machine m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  int processors = 0;
  while (std::getline(cpuinfo, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = Trim(line.substr(0, colon));
    if (key == "processor") ++processors;
    if (key == "model name" && m.cpu.empty()) {
      m.cpu = Trim(line.substr(colon + 1));
    }
  }
  if (m.cpu.empty()) m.cpu = "unknown";
  m.cores = processors > 0
                ? processors
                : static_cast<int>(std::thread::hardware_concurrency());
  m.load_at_start = LoadAverage();
  m.openblas_coretype = Env("OPENBLAS_CORETYPE");
  m.openblas_l2_size = Env("OPENBLAS_L2_SIZE");
  m.omp_wait_policy = Env("OMP_WAIT_POLICY");
  m.gomp_spincount = Env("GOMP_SPINCOUNT");
  return m;
}

double LoadAverage() {
  std::ifstream loadavg("/proc/loadavg");
  double load = -1;
  if (!(loadavg >> load)) return -1;
  return load;
}

void Report::Add(Result result) { results_.push_back(std::move(result)); }

const Result* Report::Find(const std::string& workload,
                           const std::string& system, const std::string& dtype,
                           const std::string& variant) const {
  for (const Result& r : results_) {
    if (r.workload == workload && r.system == system && r.dtype == dtype &&
        r.variant == variant) {
      return &r;
    }
  }
  return nullptr;
}

std::vector<Result> Report::Sorted() const {
  static const char* const kOrder[] = {
      "W-append", "W-search-8K", "W-search-64K", "W-attend-64K",
      "W-mixed",  "W-streams",   "W-large"};
  auto rank = [](const std::string& w) {
    for (size_t i = 0; i < std::size(kOrder); ++i) {
      if (w == kOrder[i]) return i;
    }
    return std::size(kOrder);
  };
  std::vector<Result> sorted = results_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [&](const Result& a, const Result& b) {
                     return rank(a.workload) < rank(b.workload);
                   });
  return sorted;
}

void Report::ComputeRatios() {
  auto ratio = [](Result& r, const std::string& name, double num, double den) {
    if (std::isnan(num) || std::isnan(den) || den <= 0) return;
    r.ratios.emplace_back(name, num / den);
  };
  for (Result& r : results_) {
    // W-streams, W-large and W-decode rows carry their own ratios.
    if (r.system != "knnmem" || r.workload == "W-streams" ||
        r.workload == "W-large" || r.workload == "W-decode") {
      continue;
    }
    r.ratios.clear();
    if (r.workload.rfind("W-search", 0) == 0) {
      if (const Result* s = Find(r.workload, "sgemm", "float32")) {
        ratio(r, "knnmem_over_sgemm_time", r.median_seconds, s->median_seconds);
      }
      for (const char* variant : {"default", "omp1"}) {
        if (const Result* f =
                Find(r.workload, "faiss-flat", "float32", variant)) {
          ratio(r, absl::StrCat("faiss_flat_", variant, "_over_knnmem_time"),
                f->median_seconds, r.median_seconds);
        }
      }
      if (const Result* h = Find(r.workload, "faiss-hnsw", "float32")) {
        ratio(r, "faiss_hnsw_over_knnmem_time", h->median_seconds,
              r.median_seconds);
      }
    } else if (r.workload == "W-append") {
      if (const Result* d = Find(r.workload, "rocksdb", "float32")) {
        ratio(r, "knnmem_over_rocksdb_throughput", r.vectors_per_second,
              d->vectors_per_second);
      }
      if (const Result* h = Find(r.workload, "faiss-hnsw", "float32")) {
        ratio(r, "knnmem_over_hnsw_add_throughput", r.vectors_per_second,
              h->vectors_per_second);
      }
    } else if (r.workload == "W-attend-64K" && r.variant == "attend") {
      if (const Result* s = Find(r.workload, "sgemm", "float32")) {
        ratio(r, "knnmem_over_sgemm_time", r.median_seconds, s->median_seconds);
      }
      if (const Result* s =
              Find(r.workload, "knnmem", r.dtype, "search+keys+values")) {
        ratio(r, "attend_over_search_bytes", static_cast<double>(r.bytes),
              s->bytes > 0 ? static_cast<double>(s->bytes) : kNotApplicable);
        ratio(r, "attend_over_search_time", r.median_seconds,
              s->median_seconds);
      }
    } else if (r.workload == "W-mixed" && r.variant == "attend+append") {
      if (const Result* a =
              Find(r.workload, "knnmem", r.dtype, "attend-only")) {
        ratio(r, "p99_mixed_over_alone", r.p99_seconds, a->p99_seconds);
        ratio(r, "p50_mixed_over_alone", r.median_seconds, a->median_seconds);
      }
    }
  }
}

std::string Report::Table(const Machine& m, const RunSettings& run) const {
  std::ostringstream out;
  out << absl::StrFormat(
      "machine: %s, %d cores, load average %.2f at start, %.2f at end; "
      "OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
      m.cpu, m.cores, m.load_at_start, m.load_at_end,
      m.openblas_coretype.value_or("(unset)"),
      m.openblas_l2_size.value_or("(unset)"));
  out << absl::StrFormat(
      "peers in-process: %d OpenMP threads (FAISS; faiss-flat omp1: 1), %d "
      "OpenBLAS threads (sgemm and FAISS's GEMM); OMP_WAIT_POLICY=%s "
      "GOMP_SPINCOUNT=%s\n",
      m.omp_threads, m.blas_threads, m.omp_wait_policy.value_or("(unset)"),
      m.gomp_spincount.value_or("(unset)"));
  out << "server: " << m.server << "\n";
  if (!m.server_command.empty()) {
    out << "server command: " << m.server_command << "\n";
  }
  out << "server scoring: "
      << (m.scan_isa.empty()
              ? "not known (the server does not report it; known only for "
                "the server this benchmark starts)"
              : absl::StrCat(m.scan_isa,
                             " (the server code's ScanScoresIsa() run in "
                             "this process, on the same CPU)"))
      << "\n";
  out << StreamPlacement(m);
  out << absl::StrFormat(
      "runs: %d timed per op after 1 warm-up%s; data: std::mt19937 seed %u, "
      "N(0,1), keys and queries L2-normalised; 8 heads x 128 x 128, k=32, "
      "512 rows/queries per call\n\n",
      run.reps, run.quick ? " (--quick)" : "", run.seed);
  const std::string header = absl::StrFormat(
      "%-13s %-10s %-8s %-20s %7s %5s %11s %11s %9s %9s %10s  %s\n", "workload",
      "system", "dtype", "variant", "entries", "runs", "median_s", "p99_s",
      "vectors/s", "recall@32", "bytes", "ratios");
  out << header << std::string(header.size() + 20, '-') << "\n";
  const std::vector<Result> sorted = Sorted();
  for (const Result& r : sorted) {
    std::vector<std::string> ratios;
    for (const auto& [name, value] : r.ratios) {
      ratios.push_back(absl::StrFormat("%s=%.3g", name, value));
    }
    out << absl::StrFormat(
        "%-13s %-10s %-8s %-20s %7s %5d %11s %11s %9s %9s %10s  %s\n",
        r.workload, r.system, r.dtype.empty() ? "-" : r.dtype,
        r.variant.empty() ? "-" : r.variant,
        r.entries < 0 ? "-" : absl::StrCat(r.entries), r.runs,
        Cell(r.median_seconds, "%.5f"), Cell(r.p99_seconds, "%.5f"),
        RateCell(r.vectors_per_second), Cell(r.recall_at_k, "%.4f"),
        BytesCell(r.bytes), absl::StrJoin(ratios, " "));
  }
  out << "\nnotes:\n";
  for (const Result& r : sorted) {
    if (r.note.empty()) continue;
    out << absl::StrFormat("  %s %s%s%s: %s\n", r.workload, r.system,
                           r.dtype.empty() ? "" : " " + r.dtype,
                           r.variant.empty() ? "" : " " + r.variant, r.note);
  }
  return out.str();
}

absl::Status Report::WriteJson(const std::string& path, const Machine& m,
                               const RunSettings& run) const {
  Json placement = Json::object();
  for (const auto& [id, server] : m.placement) {
    placement[id] = server < m.servers.size() ? m.servers[server] : "";
  }
  const Json machine = {{"cpu", m.cpu},
                        {"cores", m.cores},
                        {"openblas_coretype", Optional(m.openblas_coretype)},
                        {"openblas_l2_size", Optional(m.openblas_l2_size)},
                        {"omp_wait_policy", Optional(m.omp_wait_policy)},
                        {"gomp_spincount", Optional(m.gomp_spincount)},
                        {"omp_threads", m.omp_threads},
                        {"blas_threads", m.blas_threads},
                        {"load_at_start", Number(m.load_at_start)},
                        {"load_at_end", Number(m.load_at_end)},
                        {"server", m.server},
                        {"server_command", NullIfEmpty(m.server_command)},
                        {"scan_isa", NullIfEmpty(m.scan_isa)},
                        {"servers", m.servers},
                        {"placement", placement}};
  const Json settings = {
      {"quick", run.quick}, {"reps", run.reps}, {"seed", run.seed}};
  Json rows = Json::array();
  for (const Result& r : Sorted()) {
    Json row = {{"workload", r.workload}, {"system", r.system}};
    if (!r.dtype.empty()) row["dtype"] = r.dtype;
    if (!r.variant.empty()) row["variant"] = r.variant;
    if (r.entries >= 0) row["entries"] = r.entries;
    row["runs"] = r.runs;
    const std::pair<const char*, double> numbers[] = {
        {"median_seconds", r.median_seconds},
        {"p99_seconds", r.p99_seconds},
        {"vectors_per_second", r.vectors_per_second},
        {"recall_at_k", r.recall_at_k}};
    for (const auto& [name, value] : numbers) {
      if (!std::isnan(value)) row[name] = Number(value);
    }
    if (!std::isnan(r.recall_at_k)) row["k"] = 32;
    if (r.bytes >= 0) row["bytes"] = r.bytes;
    for (const auto& [name, value] : r.ratios) row[name] = Number(value);
    if (!r.note.empty()) row["note"] = r.note;
    row["machine"] = machine;
    row["run"] = settings;
    rows.push_back(std::move(row));
  }
  const std::string out = DumpJsonRows(rows) + "\n";
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) {
    return absl::UnavailableError(
        absl::StrCat("--json: cannot open '", path, "' for writing"));
  }
  file << out;
  file.close();
  if (!file) {
    return absl::UnavailableError(
        absl::StrCat("--json: cannot write '", path, "'"));
  }
  return absl::OkStatus();
}

}  // namespace knnmem::bench
