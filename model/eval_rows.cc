#include "model/eval_rows.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "base/subprocess.h"

namespace knnmem::model {
namespace {

// Eval's rows keep the 6 significant digits they have always been written
// with (the table shows 4).
double Number(double value) { return RoundToSignificantDigits(value, 6); }

// `s` as a gnuplot single-quoted string, inside which gnuplot substitutes
// nothing (no `command` in backquotes, no @macro) and a quote is doubled:
// a checkpoint's name or a path stays data, never part of the program (a
// name "a'; system('...'); '" ran that command when it was pasted in).
std::string GnuplotString(absl::string_view s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "''"}}), "'");
}

// One row of WriteJson's file into *r.
absl::Status ReadRow(const Json& row, EvalRow* r) {
  RETURN_IF_ERROR(ReadMember(row, "checkpoint", &r->checkpoint));
  RETURN_IF_ERROR(ReadMember(row, "label", &r->label));
  RETURN_IF_ERROR(ReadMember(row, "memory", &r->memory));
  RETURN_IF_ERROR(ReadMember(row, "bits_per_byte", &r->bits_per_byte));
  RETURN_IF_ERROR(ReadMember(row, "bytes", &r->bytes));
  // Members that rows of older files lack keep their defaults.
  constexpr Presence kOptional = Presence::kOptional;
  RETURN_IF_ERROR(ReadMember(row, "memory_share", &r->memory_share, kOptional));
  RETURN_IF_ERROR(
      ReadMember(row, "age_penalty_off", &r->age_penalty_off, kOptional));
  RETURN_IF_ERROR(ReadMember(row, "approximate", &r->approximate, kOptional));
  RETURN_IF_ERROR(
      ReadMember(row, "far_bits_per_byte", &r->far_bits_per_byte, kOptional));
  RETURN_IF_ERROR(ReadMember(row, "far_bytes", &r->far_bytes, kOptional));
  return ReadMember(row, "rest_bits_per_byte", &r->rest_bits_per_byte,
                    kOptional);
}

}  // namespace

absl::Status WriteJson(const std::string& path,
                       const std::vector<EvalRow>& rows) {
  Json items = Json::array();
  for (const EvalRow& r : rows) {
    items.push_back({{"checkpoint", r.checkpoint},
                     {"label", r.label},
                     {"memory", r.memory},
                     {"bits_per_byte", Number(r.bits_per_byte)},
                     {"bytes", r.bytes},
                     {"memory_share", Number(r.memory_share)},
                     {"age_penalty_off", r.age_penalty_off},
                     {"approximate", r.approximate},
                     {"far_bits_per_byte", Number(r.far_bits_per_byte)},
                     {"far_bytes", r.far_bytes},
                     {"rest_bits_per_byte", Number(r.rest_bits_per_byte)}});
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << DumpJsonRows(Json{{"rows", std::move(items)}}) << "\n";
  if (!out.flush())
    return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EvalRow>> ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("--rows: cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  const absl::StatusOr<Json> document = ParseJson(text.str());
  const auto no_rows = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--rows: ", path, " holds no rows of eval --json (", why, ")"));
  };
  if (!document.ok()) return no_rows(document.status().message());
  if (!document->is_object() || !document->contains("rows") ||
      !(*document)["rows"].is_array() || (*document)["rows"].empty()) {
    return no_rows("no \"rows\" array");
  }
  std::vector<EvalRow> rows;
  for (const Json& row : (*document)["rows"]) {
    EvalRow r;
    const absl::Status read = ReadRow(row, &r);
    if (!read.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rows: ", path, " row ", rows.size() + 1, ": ", read.message()));
    }
    rows.push_back(std::move(r));
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
    series.push_back(absl::StrCat(GnuplotString(files.back()),
                                  " with linespoints title ",
                                  GnuplotString(checkpoints[i])));
  }
  const std::string script = absl::StrCat(
      "set terminal png size 720,450; set output ", GnuplotString(path),
      "; set logscale x 2; set xlabel 'memory per head (0 drawn at 256)'; "
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
