// knnmem: command-line client of a knnmem server.
//
// Exit status: 0 on success; 1 when the server answers with an error (its
// gRPC code and message go to stderr); 2 for a usage error.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "client/memory_client.h"
#include "client/random_rows.h"
#include "client/sharded_client.h"

namespace knnmem::client {
namespace {

constexpr char kUsage[] =
    R"(Usage: knnmem [--server HOST:PORT] [--deadline-ms N] [--json] COMMAND ...

Commands:
  create STREAM --layers N --heads N --key-dim N --value-dim N --capacity N
                [--dtype float32|float16|bfloat16] [--ttl-seconds N]
                [--index exact|approximate [--nlist N] [--nprobe N]
                 [--exact-tail N]]
  append STREAM [--layer L] [--first-position P]
                (--random N [--seed S] | --keys FILE --values FILE)
                [--batch ROWS] [--wire-dtype float32|float16|bfloat16] [--sync]
         FILEs are raw little-endian float32, [tokens, heads, dim] row-major.
         Without --first-position, appends at the layer's next position.
         --random draws keys from seed S and values from seed S+1 (see
         client/random_rows.h for the generator).
  search STREAM [--layer L] (--random N [--seed S] | --queries FILE) [--k K]
                [--with-keys] [--with-values] [--exact]
         --exact scans an APPROXIMATE stream exhaustively.
  decode STREAM... [--layer L] [--k K] [--seed S] [--append]
         One generation step of every STREAM in one call (per server): each
         asks one random query per head (seed S + its index); with --append,
         each first appends one random row at its layer's next position.
         Prints each stream's status, next position and lse per head; exits
         1 when any stream failed.
  info STREAM
  list
  reset STREAM
  delete STREAM
  where STREAM...  the server each stream lives on
  health           every server must be SERVING

--server defaults to 127.0.0.1:50051. --servers routes each stream by
rendezvous hashing of its id over a list of [NAME=]HOST:PORT entries, which
may hold one range: --servers 'knnmem-{0..2}.knnmem:50051'.
--json prints JSON instead of tables.

Security: --token-file FILE (or $KNNMEM_TOKEN) sends a bearer token;
--tls-ca FILE turns on TLS and trusts that CA; --tls-cert FILE --tls-key FILE
present a client certificate (mutual TLS).
)";

struct UsageError {
  std::string message;
};

class Args {
 public:
  Args(int argc, char** argv) {
    static const std::set<std::string> kBool = {
        "json", "sync", "with-keys", "with-values", "exact", "help", "append"};
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
        std::string name = a.substr(2), value = "true";
        const size_t eq = name.find('=');
        if (eq != std::string::npos) {
          value = name.substr(eq + 1);
          name = name.substr(0, eq);
        } else if (!kBool.count(name)) {
          if (i + 1 >= argc)
            throw UsageError{absl::StrCat("--", name, ": missing value")};
          value = argv[++i];
        }
        flags_[name] = value;
      } else {
        positional_.push_back(a);
      }
    }
  }

  bool Has(const std::string& name) const { return flags_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback) {
    used_.insert(name);
    auto it = flags_.find(name);
    return it == flags_.end() ? fallback : it->second;
  }
  bool Bool(const std::string& name) {
    used_.insert(name);
    return flags_.count(name) > 0 && flags_[name] != "false";
  }
  int64_t Int(const std::string& name, int64_t fallback, int64_t lo,
              int64_t hi) {
    used_.insert(name);
    auto it = flags_.find(name);
    if (it == flags_.end()) return fallback;
    int64_t v;
    if (!absl::SimpleAtoi(it->second, &v) || v < lo || v > hi) {
      throw UsageError{absl::StrCat("--", name, ": '", it->second,
                                    "' is not an integer in [", lo, ", ", hi,
                                    "]")};
    }
    return v;
  }
  int64_t Required(const std::string& name, int64_t lo, int64_t hi) {
    if (!Has(name)) throw UsageError{absl::StrCat("--", name, " is required")};
    return Int(name, 0, lo, hi);
  }
  const std::vector<std::string>& positional() const { return positional_; }
  // Fails on flags that the command did not read.
  void CheckAllUsed() const {
    for (const auto& [name, value] : flags_) {
      if (!used_.count(name))
        throw UsageError{absl::StrCat("unknown flag --", name)};
    }
  }

 private:
  std::map<std::string, std::string> flags_;
  std::set<std::string> used_;
  std::vector<std::string> positional_;
};

DType ParseDType(const std::string& flag, const std::string& s) {
  if (s == "float32") return DType::kFloat32;
  if (s == "float16") return DType::kFloat16;
  if (s == "bfloat16") return DType::kBFloat16;
  throw UsageError{absl::StrCat("--", flag, ": '", s,
                                "' is not float32, float16 or bfloat16")};
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError{absl::StrCat("cannot read '", path, "'")};
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

std::vector<float> ReadFloatFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError{absl::StrCat("cannot read '", path, "'")};
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (bytes.size() % 4 != 0) {
    throw UsageError{absl::StrCat("'", path, "': ", bytes.size(),
                                  " bytes is not a whole number of float32")};
  }
  return UnpackFloats(bytes, DType::kFloat32);
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "knnmem: %s: %s\n",
               absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return 1;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string JsonFloat(float f) {
  if (!std::isfinite(f)) return "null";
  return absl::StrFormat("%.9g", f);
}

std::string SpecJson(const v1::StreamSpec& s) {
  return absl::StrFormat(
      "{\"layers\":%u,\"heads\":%u,\"key_dim\":%u,\"value_dim\":%u,"
      "\"capacity\":%u,\"index\":%s,\"storage_dtype\":%s,\"ttl_seconds\":%u,"
      "\"nlist\":%u,\"nprobe\":%u,\"exact_tail\":%u}",
      s.layers(), s.heads(), s.key_dim(), s.value_dim(), s.capacity(),
      JsonString(v1::IndexKind_Name(s.index())),
      JsonString(v1::DType_Name(s.storage_dtype())), s.ttl_seconds(), s.nlist(),
      s.nprobe(), s.exact_tail());
}

std::string InfoJson(const v1::StreamInfo& info) {
  std::string layers;
  for (const auto& l : info.layers()) {
    if (!layers.empty()) layers += ",";
    absl::StrAppendFormat(&layers,
                          "{\"layer\":%u,\"first_position\":%d,"
                          "\"next_position\":%d,\"entries\":%u,"
                          "\"indexed_entries\":%u}",
                          l.layer(), l.first_position(), l.next_position(),
                          l.entries(), l.indexed_entries());
  }
  return absl::StrFormat(
      "{\"stream_id\":%s,\"spec\":%s,\"layers\":[%s],\"bytes_in_ram\":%u,"
      "\"bytes_on_disk\":%u,\"resident\":%s}",
      JsonString(info.stream_id()), SpecJson(info.spec()), layers,
      info.bytes_in_ram(), info.bytes_on_disk(),
      info.resident() ? "true" : "false");
}

void PrintInfoTable(const v1::StreamInfo& info) {
  const v1::StreamSpec& s = info.spec();
  std::printf("stream        %s\n", info.stream_id().c_str());
  std::printf(
      "spec          layers=%u heads=%u key_dim=%u value_dim=%u "
      "capacity=%lu dtype=%s index=%s ttl_seconds=%u\n",
      s.layers(), s.heads(), s.key_dim(), s.value_dim(),
      static_cast<unsigned long>(s.capacity()),
      v1::DType_Name(s.storage_dtype()).c_str(),
      v1::IndexKind_Name(s.index()).c_str(), s.ttl_seconds());
  std::printf("bytes in RAM  %lu%s\n",
              static_cast<unsigned long>(info.bytes_in_ram()),
              info.resident() ? "" : " (not resident: loads on next use)");
  std::printf("bytes on disk %lu\n",
              static_cast<unsigned long>(info.bytes_on_disk()));
  std::printf("%-6s %16s %16s %12s %12s\n", "layer", "first_position",
              "next_position", "entries", "indexed");
  for (const auto& l : info.layers()) {
    std::printf("%-6u %16ld %16ld %12lu %12lu\n", l.layer(),
                static_cast<long>(l.first_position()),
                static_cast<long>(l.next_position()),
                static_cast<unsigned long>(l.entries()),
                static_cast<unsigned long>(l.indexed_entries()));
  }
}

const std::string& StreamArg(const Args& args) {
  if (args.positional().size() < 2) throw UsageError{"missing STREAM"};
  return args.positional()[1];
}

int Create(ShardedClient& client, Args& args, bool json) {
  const std::string& id = StreamArg(args);
  v1::StreamSpec spec;
  spec.set_layers(static_cast<uint32_t>(args.Required("layers", 1, 1 << 20)));
  spec.set_heads(static_cast<uint32_t>(args.Required("heads", 1, 1 << 20)));
  spec.set_key_dim(static_cast<uint32_t>(args.Required("key-dim", 1, 1 << 20)));
  spec.set_value_dim(
      static_cast<uint32_t>(args.Required("value-dim", 1, 1 << 20)));
  spec.set_capacity(
      static_cast<uint64_t>(args.Required("capacity", 1, int64_t{1} << 62)));
  spec.set_storage_dtype(
      DTypeToProto(ParseDType("dtype", args.Get("dtype", "float32"))));
  spec.set_ttl_seconds(
      static_cast<uint32_t>(args.Int("ttl-seconds", 0, 0, 1 << 30)));
  const std::string index = args.Get("index", "exact");
  if (index != "exact" && index != "approximate") {
    throw UsageError{
        absl::StrCat("--index: '", index, "' is not exact or approximate")};
  }
  spec.set_index(index == "exact" ? v1::EXACT : v1::APPROXIMATE);
  // The server checks the ranges and names the field.
  spec.set_nlist(static_cast<uint32_t>(args.Int("nlist", 0, 0, 1 << 30)));
  spec.set_nprobe(static_cast<uint32_t>(args.Int("nprobe", 0, 0, 1 << 30)));
  spec.set_exact_tail(
      static_cast<uint64_t>(args.Int("exact-tail", 0, 0, int64_t{1} << 62)));
  args.CheckAllUsed();
  absl::StatusOr<v1::CreateStreamResponse> r = client.CreateStream(id, spec);
  if (!r.ok()) return Fail(r.status());
  if (json) {
    std::printf("{\"created\":%s,\"stream\":%s}\n",
                r->created() ? "true" : "false", InfoJson(r->stream()).c_str());
  } else {
    std::printf("%s stream %s\n",
                r->created() ? "created" : "exists:", id.c_str());
  }
  return 0;
}

int Append(MemoryClient& client, Args& args, bool json) {
  const std::string& id = StreamArg(args);
  const uint32_t layer =
      static_cast<uint32_t>(args.Int("layer", 0, 0, 1 << 20));
  const int64_t batch = args.Int("batch", 512, 1, 1 << 20);
  const DType wire =
      ParseDType("wire-dtype", args.Get("wire-dtype", "float32"));
  const bool sync = args.Bool("sync");
  const bool random = args.Has("random");
  const int64_t rows_random = args.Int("random", 0, 1, int64_t{1} << 30);
  const uint64_t seed =
      static_cast<uint64_t>(args.Int("seed", 0, 0, INT64_MAX));
  const std::string keys_file = args.Get("keys", "");
  const std::string values_file = args.Get("values", "");
  const bool has_first = args.Has("first-position");
  int64_t position = args.Int("first-position", 0, 0, int64_t{1} << 62);
  args.CheckAllUsed();
  if (random == !keys_file.empty() ||
      keys_file.empty() != values_file.empty()) {
    throw UsageError{
        "append needs either --random N or both --keys and --values"};
  }
  absl::StatusOr<v1::StreamInfo> info = client.GetStream(id);
  if (!info.ok()) return Fail(info.status());
  const v1::StreamSpec& spec = info->spec();
  const int64_t heads = spec.heads(), dk = spec.key_dim(),
                dv = spec.value_dim();
  std::vector<float> keys, values;
  if (random) {
    keys = RandomUniform(seed, rows_random * heads * dk);
    values = RandomUniform(seed + 1, rows_random * heads * dv);
  } else {
    keys = ReadFloatFile(keys_file);
    values = ReadFloatFile(values_file);
  }
  const int64_t rows = static_cast<int64_t>(keys.size()) / (heads * dk);
  if (rows == 0 || static_cast<int64_t>(keys.size()) != rows * heads * dk ||
      static_cast<int64_t>(values.size()) != rows * heads * dv) {
    throw UsageError{
        absl::StrCat("keys/values files do not hold the same number of ",
                     "[heads=", heads, ", key_dim=", dk, "] and [heads=", heads,
                     ", value_dim=", dv, "] rows")};
  }
  if (!has_first) {
    if (layer >= static_cast<uint32_t>(info->layers_size())) {
      throw UsageError{absl::StrCat("--layer ", layer, " is out of range")};
    }
    position = info->layers(layer).next_position();
  }
  const bool progress = isatty(2) && rows > batch;
  uint64_t stored = 0;
  int64_t next = position;
  for (int64_t r = 0; r < rows; r += batch) {
    const int64_t n = std::min(batch, rows - r);
    absl::StatusOr<v1::AppendResponse> resp = client.Append(
        id, layer, position + r,
        absl::MakeConstSpan(keys).subspan(r * heads * dk, n * heads * dk),
        absl::MakeConstSpan(values).subspan(r * heads * dv, n * heads * dv), n,
        heads, wire, sync);
    if (!resp.ok()) return Fail(resp.status());
    stored += resp->stored();
    next = resp->next_position();
    if (progress)
      std::fprintf(stderr, "\rappended %ld/%ld rows", long(r + n), long(rows));
  }
  if (progress) std::fprintf(stderr, "\n");
  if (json) {
    std::printf(
        "{\"rows\":%ld,\"stored\":%lu,\"first_position\":%ld,\"next_position\":"
        "%ld}\n",
        long(rows), static_cast<unsigned long>(stored), long(position),
        long(next));
  } else {
    std::printf(
        "appended %ld rows at positions [%ld, %ld), %lu newly stored; next "
        "position %ld\n",
        long(rows), long(position), long(position + rows),
        static_cast<unsigned long>(stored), long(next));
  }
  return 0;
}

int Decode(ShardedClient& client, Args& args, bool json) {
  const std::vector<std::string> ids(args.positional().begin() + 1,
                                     args.positional().end());
  if (ids.empty()) throw UsageError{"missing STREAM"};
  const uint32_t layer =
      static_cast<uint32_t>(args.Int("layer", 0, 0, 1 << 20));
  StepParams params;
  params.k = static_cast<uint32_t>(args.Int("k", 32, 1, 1 << 20));
  const uint64_t seed =
      static_cast<uint64_t>(args.Int("seed", 0, 0, INT64_MAX));
  const bool append = args.Bool("append");
  args.CheckAllUsed();
  // Shapes (and next positions) first; a stream that is not found fails
  // alone, as it would in the call.
  std::vector<StepResult> out(ids.size());
  std::vector<std::vector<float>> queries(ids.size()), keys(ids.size()),
      values(ids.size());
  std::vector<Step> steps;
  std::vector<size_t> asked;  // steps[j] is ids[asked[j]]
  for (size_t i = 0; i < ids.size(); ++i) {
    absl::StatusOr<v1::StreamInfo> info = client.For(ids[i]).GetStream(ids[i]);
    if (!info.ok()) {
      out[i].status = info.status();
      continue;
    }
    Step step;
    step.stream_id = ids[i];
    step.layer = layer;
    step.heads = info->spec().heads();
    step.key_dim = info->spec().key_dim();
    step.value_dim = info->spec().value_dim();
    queries[i] = RandomUniform(seed + i, step.heads * step.key_dim);
    step.queries = queries[i];
    if (append && layer < static_cast<uint32_t>(info->layers_size())) {
      step.first_position = info->layers(layer).next_position();
      keys[i] = RandomUniform(seed + 1000003 + i, step.heads * step.key_dim);
      values[i] =
          RandomUniform(seed + 2000003 + i, step.heads * step.value_dim);
      step.keys = keys[i];
      step.values = values[i];
    }
    steps.push_back(step);
    asked.push_back(i);
  }
  if (!steps.empty()) {
    absl::StatusOr<std::vector<StepResult>> r =
        client.DecodeStep(steps, params);
    if (!r.ok()) return Fail(r.status());
    for (size_t j = 0; j < asked.size(); ++j) {
      out[asked[j]] = std::move((*r)[j]);
      // The client names the step by its index in its own list.
      absl::Status& st = out[asked[j]].status;
      const std::string theirs = absl::StrCat("steps[", j, "]");
      if (!st.ok() && absl::StartsWith(st.message(), theirs)) {
        st = absl::Status(
            st.code(),
            absl::StrCat(ids[asked[j]], st.message().substr(theirs.size())));
      }
    }
  }
  int failed = 0;
  std::string json_out = "[";
  if (!json) {
    std::printf("%-32s %-20s %14s  %s\n", "stream", "status", "next_position",
                "lse per head");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    const StepResult& o = out[i];
    const std::string code = absl::StatusCodeToString(o.status.code());
    if (!o.status.ok()) {
      ++failed;
      std::fprintf(stderr, "knnmem: %s: %s: %s\n", ids[i].c_str(), code.c_str(),
                   std::string(o.status.message()).c_str());
    }
    if (json) {
      absl::StrAppend(
          &json_out, i ? "," : "", "{\"stream_id\":", JsonString(ids[i]),
          ",\"code\":", JsonString(code),
          ",\"message\":", JsonString(std::string(o.status.message())),
          ",\"next_position\":", o.next_position, ",\"lse\":[");
      for (size_t h = 0; h < o.attention.lse.size(); ++h) {
        absl::StrAppend(&json_out, h ? "," : "", JsonFloat(o.attention.lse[h]));
      }
      json_out += "],\"output\":[";
      for (size_t d = 0; d < o.attention.output.size(); ++d) {
        absl::StrAppend(&json_out, d ? "," : "",
                        JsonFloat(o.attention.output[d]));
      }
      json_out += "]}";
      continue;
    }
    std::string lse;
    for (float x : o.attention.lse) {
      absl::StrAppend(&lse, lse.empty() ? "" : " ", absl::StrFormat("%.4f", x));
    }
    std::printf("%-32s %-20s %14s  %s\n", ids[i].c_str(), code.c_str(),
                o.status.ok() ? std::to_string(o.next_position).c_str() : "-",
                lse.c_str());
  }
  if (json) std::printf("%s]\n", json_out.c_str());
  return failed == 0 ? 0 : 1;
}

int Search(MemoryClient& client, Args& args, bool json) {
  const std::string& id = StreamArg(args);
  const uint32_t layer =
      static_cast<uint32_t>(args.Int("layer", 0, 0, 1 << 20));
  const uint32_t k = static_cast<uint32_t>(args.Int("k", 32, 1, 1 << 20));
  const bool random = args.Has("random");
  const int64_t n_random = args.Int("random", 0, 1, 1 << 24);
  const uint64_t seed =
      static_cast<uint64_t>(args.Int("seed", 0, 0, INT64_MAX));
  const std::string queries_file = args.Get("queries", "");
  const bool with_keys = args.Bool("with-keys");
  const bool with_values = args.Bool("with-values");
  const bool exact = args.Bool("exact");
  args.CheckAllUsed();
  if (random == !queries_file.empty()) {
    throw UsageError{"search needs either --random N or --queries FILE"};
  }
  absl::StatusOr<v1::StreamInfo> info = client.GetStream(id);
  if (!info.ok()) return Fail(info.status());
  const int64_t heads = info->spec().heads(), dk = info->spec().key_dim();
  std::vector<float> queries = random
                                   ? RandomUniform(seed, n_random * heads * dk)
                                   : ReadFloatFile(queries_file);
  const int64_t n = static_cast<int64_t>(queries.size()) / (heads * dk);
  if (n == 0 || static_cast<int64_t>(queries.size()) != n * heads * dk) {
    throw UsageError{absl::StrCat("queries do not hold whole [heads=", heads,
                                  ", key_dim=", dk, "] rows")};
  }
  absl::StatusOr<Neighbours> r = client.Search(id, layer, queries, n, heads, k,
                                               with_keys, with_values, exact);
  if (!r.ok()) return Fail(r.status());
  const int64_t dv = info->spec().value_dim();
  if (json) {
    std::string out = absl::StrFormat(
        "{\"stream_id\":%s,\"layer\":%u,\"shape\":[%d,%d,%d],\"positions\":[",
        JsonString(id), layer, r->queries, r->heads, r->k);
    for (size_t i = 0; i < r->positions.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", r->positions[i]);
    }
    out += "],\"scores\":[";
    for (size_t i = 0; i < r->scores.size(); ++i) {
      absl::StrAppend(&out, i ? "," : "", JsonFloat(r->scores[i]));
    }
    out += "]";
    for (const auto& [name, vec] :
         {std::pair<const char*, const std::vector<float>*>{"keys", &r->keys},
          {"values", &r->values}}) {
      if (vec->empty()) continue;
      absl::StrAppend(&out, ",\"", name, "\":[");
      for (size_t i = 0; i < vec->size(); ++i) {
        absl::StrAppend(&out, i ? "," : "", JsonFloat((*vec)[i]));
      }
      out += "]";
    }
    std::printf("%s}\n", out.c_str());
    return 0;
  }
  std::printf("%6s %5s %5s %12s %14s\n", "query", "head", "rank", "position",
              "score");
  for (int64_t q = 0; q < r->queries; ++q) {
    for (int64_t h = 0; h < r->heads; ++h) {
      for (int64_t j = 0; j < r->k; ++j) {
        const size_t i = static_cast<size_t>((q * r->heads + h) * r->k + j);
        if (r->positions[i] < 0) {
          std::printf("%6ld %5ld %5ld %12s %14s\n", long(q), long(h), long(j),
                      "-", "-");
          continue;
        }
        std::printf("%6ld %5ld %5ld %12ld %14.6f", long(q), long(h), long(j),
                    long(r->positions[i]), r->scores[i]);
        if (with_values) {
          std::printf("  value[0..]=%.4f", r->values[i * dv]);
        }
        std::printf("\n");
      }
    }
  }
  return 0;
}

int Run(int argc, char** argv) {
  Args args(argc, argv);
  if (args.Bool("help") || args.positional().empty()) {
    std::fputs(kUsage, args.positional().empty() && !args.Has("help") ? stderr
                                                                      : stdout);
    return args.Has("help") ? 0 : 2;
  }
  const std::string server = args.Get("server", "");
  const std::string servers_flag = args.Get("servers", "");
  if (!server.empty() && !servers_flag.empty()) {
    throw UsageError{"give --server or --servers, not both"};
  }
  absl::StatusOr<std::vector<ServerAddress>> servers =
      ParseServerList(!servers_flag.empty() ? servers_flag
                      : !server.empty()     ? server
                                            : "127.0.0.1:50051");
  if (!servers.ok()) throw UsageError{std::string(servers.status().message())};
  const int64_t deadline_ms =
      args.Int("deadline-ms", 60000, 1, int64_t{1} << 31);
  const bool json = args.Bool("json");
  MemoryClient::Options options;
  options.deadline = std::chrono::milliseconds(deadline_ms);
  // A token from --token-file, else $KNNMEM_TOKEN (kept out of argv, where
  // other users could read it).
  const std::string token_file = args.Get("token-file", "");
  if (!token_file.empty()) {
    options.auth_token =
        std::string(absl::StripAsciiWhitespace(ReadTextFile(token_file)));
  } else if (const char* env = std::getenv("KNNMEM_TOKEN")) {
    options.auth_token = env;
  }
  const std::string tls_ca = args.Get("tls-ca", "");
  const std::string tls_cert = args.Get("tls-cert", "");
  const std::string tls_key = args.Get("tls-key", "");
  if (tls_cert.empty() != tls_key.empty() ||
      (!tls_cert.empty() && tls_ca.empty())) {
    throw UsageError{"--tls-cert and --tls-key go together, and need --tls-ca"};
  }
  if (!tls_ca.empty()) options.tls_root_certs = ReadTextFile(tls_ca);
  if (!tls_cert.empty()) {
    options.tls_cert_chain = ReadTextFile(tls_cert);
    options.tls_private_key = ReadTextFile(tls_key);
  }
  ShardedClient sharded(*servers, options);
  const std::string& cmd = args.positional()[0];
  if (cmd == "create") return Create(sharded, args, json);
  if (cmd == "append") return Append(sharded.For(StreamArg(args)), args, json);
  if (cmd == "search") return Search(sharded.For(StreamArg(args)), args, json);
  if (cmd == "health") {
    args.CheckAllUsed();
    // Every server must be serving.
    for (size_t i = 0; i < sharded.servers().size(); ++i) {
      absl::Status s = sharded.At(i).Health();
      if (!s.ok()) {
        return Fail(absl::Status(
            s.code(),
            absl::StrCat(sharded.servers()[i].address, ": ", s.message())));
      }
    }
    std::printf(json ? "{\"status\":\"SERVING\"}\n" : "SERVING\n");
    return 0;
  }
  if (cmd == "decode") return Decode(sharded, args, json);
  if (cmd == "where") {
    StreamArg(args);
    args.CheckAllUsed();
    // One line (or JSON object) per stream, in the order given.
    for (size_t i = 1; i < args.positional().size(); ++i) {
      const std::string& id = args.positional()[i];
      const ServerAddress& at = sharded.ServerOf(id);
      if (json) {
        std::printf("{\"stream_id\":%s,\"server\":%s,\"address\":%s}\n",
                    JsonString(id).c_str(), JsonString(at.name).c_str(),
                    JsonString(at.address).c_str());
      } else {
        std::printf("%s %s\n", at.name.c_str(), at.address.c_str());
      }
    }
    return 0;
  }
  if (cmd == "list") {
    args.CheckAllUsed();
    absl::StatusOr<std::vector<v1::StreamInfo>> all = sharded.ListStreams();
    if (!all.ok()) return Fail(all.status());
    if (json) {
      std::string out = "[";
      for (size_t i = 0; i < all->size(); ++i) {
        absl::StrAppend(&out, i ? "," : "", InfoJson((*all)[i]));
      }
      std::printf("%s]\n", out.c_str());
    } else {
      std::printf("%-40s %6s %6s %8s %8s %10s %12s\n", "stream", "layers",
                  "heads", "key_dim", "dtype", "capacity", "entries[0]");
      for (const auto& i : *all) {
        std::printf(
            "%-40s %6u %6u %8u %8s %10lu %12lu\n", i.stream_id().c_str(),
            i.spec().layers(), i.spec().heads(), i.spec().key_dim(),
            v1::DType_Name(i.spec().storage_dtype()).c_str(),
            static_cast<unsigned long>(i.spec().capacity()),
            static_cast<unsigned long>(i.layers_size() ? i.layers(0).entries()
                                                       : 0));
      }
    }
    return 0;
  }
  if (cmd == "info" || cmd == "reset" || cmd == "delete") {
    const std::string& id = StreamArg(args);
    args.CheckAllUsed();
    if (cmd == "info") {
      absl::StatusOr<v1::StreamInfo> info = sharded.For(id).GetStream(id);
      if (!info.ok()) return Fail(info.status());
      if (json) {
        std::printf("%s\n", InfoJson(*info).c_str());
      } else {
        PrintInfoTable(*info);
      }
      return 0;
    }
    absl::Status s = cmd == "reset" ? sharded.For(id).ResetStream(id)
                                    : sharded.DeleteStream(id);
    if (!s.ok()) return Fail(s);
    if (json) {
      std::printf("{\"%s\":%s}\n", cmd == "reset" ? "reset" : "deleted",
                  JsonString(id).c_str());
    } else {
      std::printf("%s stream %s\n", cmd == "reset" ? "reset" : "deleted",
                  id.c_str());
    }
    return 0;
  }
  throw UsageError{absl::StrCat("unknown command '", cmd, "'")};
}

}  // namespace
}  // namespace knnmem::client

int main(int argc, char** argv) {
  try {
    return knnmem::client::Run(argc, argv);
  } catch (const knnmem::client::UsageError& e) {
    std::fprintf(stderr, "knnmem: %s\n(run knnmem --help for usage)\n",
                 e.message.c_str());
    return 2;
  }
}
