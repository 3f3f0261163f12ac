#include "model/eval_rows.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/subprocess.h"

namespace knnmem::model {
namespace {

// The raw text of `"key": value` in one row of WriteJson's output (a
// string without its quotes); nullopt when absent.
std::optional<std::string> JsonField(absl::string_view line,
                                     absl::string_view key) {
  const std::string tag = absl::StrCat("\"", key, "\": ");
  size_t at = line.find(tag);
  if (at == absl::string_view::npos) return std::nullopt;
  at += tag.size();
  if (at < line.size() && line[at] == '"') {
    const size_t end = line.find('"', at + 1);
    if (end == absl::string_view::npos) return std::nullopt;
    return std::string(line.substr(at + 1, end - at - 1));
  }
  const size_t end = line.find_first_of(",}", at);
  if (end == absl::string_view::npos) return std::nullopt;
  return std::string(line.substr(at, end - at));
}

// A double as JSON: null for NaN.
std::string Number(double value) {
  return std::isnan(value) ? "null" : absl::StrCat(value);
}

}  // namespace

absl::Status WriteJson(const std::string& path,
                       const std::vector<EvalRow>& rows) {
  std::vector<std::string> items;
  for (const EvalRow& r : rows) {
    items.push_back(absl::StrCat(
        "  {\"checkpoint\": \"", r.checkpoint, "\", \"label\": \"", r.label,
        "\", \"memory\": ", r.memory, ", \"bits_per_byte\": ", r.bits_per_byte,
        ", \"bytes\": ", r.bytes,
        ", \"memory_share\": ", Number(r.memory_share),
        ", \"age_penalty_off\": ", r.age_penalty_off ? "true" : "false",
        ", \"approximate\": ", r.approximate ? "true" : "false",
        ", \"far_bits_per_byte\": ", Number(r.far_bits_per_byte),
        ", \"far_bytes\": ", r.far_bytes,
        ", \"rest_bits_per_byte\": ", Number(r.rest_bits_per_byte), "}"));
  }
  std::ofstream out(path);
  out << "{\"rows\": [\n" << absl::StrJoin(items, ",\n") << "\n]}\n";
  if (!out.flush())
    return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EvalRow>> ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat("--rows: cannot read ", path));
  std::vector<EvalRow> rows;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::optional<std::string> checkpoint = JsonField(line, "checkpoint");
    if (!checkpoint) continue;
    const std::optional<std::string> label = JsonField(line, "label"),
                                     memory = JsonField(line, "memory"),
                                     bits = JsonField(line, "bits_per_byte"),
                                     bytes = JsonField(line, "bytes");
    EvalRow r;
    r.checkpoint = *checkpoint;
    if (!label || !memory || !bits || !bytes ||
        !absl::SimpleAtoi(*memory, &r.memory) ||
        !absl::SimpleAtod(*bits, &r.bits_per_byte) ||
        !absl::SimpleAtoi(*bytes, &r.bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rows: ", path, " line ", number, ": not a row of eval --json"));
    }
    r.label = *label;
    for (const auto& [key, field] :
         {std::pair{"memory_share", &r.memory_share},
          std::pair{"far_bits_per_byte", &r.far_bits_per_byte},
          std::pair{"rest_bits_per_byte", &r.rest_bits_per_byte}}) {
      const std::optional<std::string> value = JsonField(line, key);
      if (value && *value != "null" && !absl::SimpleAtod(*value, field)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--rows: ", path, " line ", number, ": bad ", key));
      }
    }
    const std::optional<std::string> far = JsonField(line, "far_bytes");
    if (far && !absl::SimpleAtoi(*far, &r.far_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rows: ", path, " line ", number, ": bad far_bytes"));
    }
    r.age_penalty_off = JsonField(line, "age_penalty_off") == "true";
    r.approximate = JsonField(line, "approximate") == "true";
    rows.push_back(std::move(r));
  }
  if (rows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rows: ", path, " holds no rows of eval --json"));
  }
  return rows;
}

absl::Status WritePlot(const std::string& path,
                       const std::vector<std::string>& checkpoints,
                       const std::vector<EvalRow>& rows) {
  std::vector<std::string> files, series;
  for (size_t i = 0; i < checkpoints.size(); ++i) {
    files.push_back(absl::StrCat(path, ".", i, ".dat"));
    // Memory size -> (approximate, bits per byte): EXACT rows first.
    std::map<int64_t, std::pair<bool, double>> line;
    for (const EvalRow& r : rows) {
      if (r.checkpoint != checkpoints[i] || r.age_penalty_off) continue;
      auto [it, added] =
          line.try_emplace(r.memory, r.approximate, r.bits_per_byte);
      if (!added && it->second.first && !r.approximate) {
        it->second = {false, r.bits_per_byte};
      }
    }
    std::ofstream out(files.back());
    for (const auto& [memory, point] : line) {
      out << std::max<int64_t>(memory, 256) << " " << point.second << "\n";
    }
    series.push_back(absl::StrCat(
        "'", files.back(), "' with linespoints title '", checkpoints[i], "'"));
  }
  const std::string script = absl::StrCat(
      "set terminal png size 720,450; set output '", path,
      "'; set logscale x 2; set xlabel 'memory per head (0 drawn at 256)'; "
      "set ylabel 'validation bits per byte'; set grid; set key outside "
      "below; plot ",
      absl::StrJoin(series, ", "));
  absl::StatusOr<CommandResult> plotted =
      RunCommand({"gnuplot", "-e", script}, /*merge_stderr=*/true);
  const bool ok = plotted.ok() && plotted->exit_code == 0;
  for (const std::string& f : files) std::remove(f.c_str());
  if (!ok) {
    return absl::FailedPreconditionError(
        "--png: gnuplot failed (scripts/install-deps model installs it)");
  }
  return absl::OkStatus();
}

}  // namespace knnmem::model
