// knnmem: command-line client of a knnmem server.
//
// Exit status: 0 on success; 1 when the server answers with an error (its
// gRPC code and message go to stderr); 2 for a usage error.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/flags.h"
#include "base/json.h"
#include "client/memory_client.h"
#include "client/random_rows.h"
#include "client/sharded_client.h"

namespace knnmem::client {
namespace {

struct UsageError {
  std::string message;
};

// The flags every command takes, before or after its name.
struct GlobalFlags {
  std::string server;  // empty: 127.0.0.1:50051 (unless --servers)
  std::string servers;
  int64_t deadline_ms = 60000;
  bool json = false;
  std::string token_file, tls_ca, tls_cert, tls_key;
  bool help = false;
};

void AddGlobalFlags(FlagSet& f, GlobalFlags* g) {
  f.String("server", &g->server, "HOST:PORT", "the server")
      .DefaultText("127.0.0.1:50051");
  f.String("servers", &g->servers, "LIST",
           "route each stream by rendezvous hashing of its id over a list of "
           "[NAME=]HOST:PORT entries, which may hold one range: --servers "
           "'knnmem-{0..2}.knnmem:50051' (exclusive with --server)");
  f.Int("deadline-ms", &g->deadline_ms, "N", "deadline of each call")
      .Range(1, int64_t{1} << 31);
  f.Bool("json", &g->json, "print JSON instead of tables");
  f.String("token-file", &g->token_file, "FILE",
           "send the bearer token FILE holds (without it: $KNNMEM_TOKEN, if "
           "set)");
  f.String("tls-ca", &g->tls_ca, "FILE", "turn on TLS and trust this CA");
  f.String("tls-cert", &g->tls_cert, "FILE",
           "present this client certificate (mutual TLS; with --tls-key and "
           "--tls-ca)");
  f.String("tls-key", &g->tls_key, "FILE", "the private key of --tls-cert");
  f.Bool("help", &g->help, "print this text and exit");
}

// The flags of the commands, each registered by the commands that take it.
struct CommandFlags {
  // create
  int64_t layers = 0, heads = 0, key_dim = 0, value_dim = 0, capacity = 0;
  DType dtype = DType::kFloat32;
  uint32_t ttl_seconds = 0;
  std::string index = "exact";
  uint32_t nlist = 0, nprobe = 0;
  uint64_t exact_tail = 0;
  // append, search, decode
  uint32_t layer = 0;
  int64_t first_position = 0;
  int64_t random = 0;
  uint64_t seed = 0;
  std::string keys, values, queries;
  int64_t batch = 512;
  DType wire_dtype = DType::kFloat32;
  bool sync = false;
  uint32_t k = 32;
  bool with_keys = false, with_values = false, exact = false, append = false;
};

// The choices of --dtype and --wire-dtype.
std::vector<std::pair<std::string, DType>> DTypeNames() {
  std::vector<std::pair<std::string, DType>> names;
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    names.emplace_back(DTypeName(d), d);
  }
  return names;
}

void AddLayerFlag(FlagSet& f, CommandFlags* c) {
  f.Int("layer", &c->layer, "L", "the layer").Range(0, 1 << 20);
}

void AddKFlag(FlagSet& f, CommandFlags* c) {
  f.Int("k", &c->k, "K", "neighbours per query and head").Range(1, 1 << 20);
}

void AddSeedFlag(FlagSet& f, CommandFlags* c) {
  f.Int("seed", &c->seed, "S", "seed of the random rows");
}

// --random N (at most `max`) and --seed S.
void AddRandomFlags(FlagSet& f, CommandFlags* c, int64_t max,
                    absl::string_view help) {
  f.Int("random", &c->random, "N", help).Range(1, max).DefaultText("");
  AddSeedFlag(f, c);
}

void AddCreateFlags(FlagSet& f, CommandFlags* c) {
  // The shape: required, 1 to 2^20 each.
  for (const auto& [name, dest, help] :
       {std::tuple{"layers", &c->layers, "layers"},
        {"heads", &c->heads, "heads per layer"},
        {"key-dim", &c->key_dim, "dimension of a key"},
        {"value-dim", &c->value_dim, "dimension of a value"}}) {
    f.Int(name, dest, "N", help).Range(1, 1 << 20).Required();
  }
  f.Int("capacity", &c->capacity, "N",
        "entries kept per layer and head; appends past it evict the oldest")
      .Range(1, int64_t{1} << 62)
      .Required();
  f.Enum("dtype", &c->dtype, DTypeNames(),
         "how the server stores keys and values");
  f.Int("ttl-seconds", &c->ttl_seconds, "N",
        "delete the stream after N seconds idle (0: the server's "
        "--stream-ttl-seconds)")
      .Range(0, 1 << 30);
  f.Choice("index", &c->index, {"exact", "approximate"},
           "approximate: an IVF tier (FAISS) over all but the newest "
           "entries");
  // The server checks the ranges and names the field.
  f.Int("nlist", &c->nlist, "N",
        "IVF lists per head of an approximate stream (0: the server's "
        "default)")
      .Range(0, 1 << 30);
  f.Int("nprobe", &c->nprobe, "N",
        "lists an approximate search probes (0: the server's default)")
      .Range(0, 1 << 30);
  f.Int("exact-tail", &c->exact_tail, "N",
        "newest entries an approximate search scans exactly (0: the "
        "server's default)")
      .Range(0, int64_t{1} << 62);
}

void AddAppendFlags(FlagSet& f, CommandFlags* c) {
  AddLayerFlag(f, c);
  f.Int("first-position", &c->first_position, "P",
        "the position of the first row")
      .Range(0, int64_t{1} << 62)
      .DefaultText("the layer's next position");
  AddRandomFlags(f, c, int64_t{1} << 30,
                 "append N random rows: keys from seed S, values from seed "
                 "S+1 (client/random_rows.h has the generator)");
  f.String("keys", &c->keys, "FILE", "the keys to append (with --values)");
  f.String("values", &c->values, "FILE", "the values to append (with --keys)");
  f.Int("batch", &c->batch, "ROWS", "rows per Append call").Range(1, 1 << 20);
  f.Enum("wire-dtype", &c->wire_dtype, DTypeNames(),
         "the dtype keys and values travel in");
  f.Bool("sync", &c->sync, "the server syncs its WAL before it answers");
}

void AddSearchFlags(FlagSet& f, CommandFlags* c) {
  AddLayerFlag(f, c);
  AddRandomFlags(f, c, 1 << 24, "search with N random queries from seed S");
  f.String("queries", &c->queries, "FILE", "the queries to search with");
  AddKFlag(f, c);
  f.Bool("with-keys", &c->with_keys, "return the neighbours' keys too");
  f.Bool("with-values", &c->with_values, "return the neighbours' values too");
  f.Bool("exact", &c->exact, "scan an APPROXIMATE stream exhaustively");
}

void AddDecodeFlags(FlagSet& f, CommandFlags* c) {
  AddLayerFlag(f, c);
  AddKFlag(f, c);
  AddSeedFlag(f, c);
  f.Bool("append", &c->append,
         "each stream first appends one random row at its layer's next "
         "position");
}

struct Command {
  const char* name;
  const char* synopsis;  // the command and its operands
  const char* about;     // "" or lines of at most 78 columns
  void (*add_flags)(FlagSet&, CommandFlags*);  // null: no flags of its own
};

const Command kCommands[] = {
    {"create", "create STREAM", "", AddCreateFlags},
    {"append", "append STREAM (--random N | --keys FILE --values FILE)",
     "FILEs are raw little-endian float32, [tokens, heads, dim] row-major.\n",
     AddAppendFlags},
    {"search", "search STREAM (--random N | --queries FILE)",
     "FILE is raw little-endian float32, [queries, heads, key_dim] "
     "row-major.\n",
     AddSearchFlags},
    {"decode", "decode STREAM...",
     "One generation step of every STREAM in one call (per server): each asks\n"
     "one random query per head (seed S + its index); with --append, each\n"
     "first appends one random row at its layer's next position. Prints each\n"
     "stream's status, next position and lse per head; exits 1 when any\n"
     "stream failed.\n",
     AddDecodeFlags},
    {"info", "info STREAM", "", nullptr},
    {"list", "list", "", nullptr},
    {"reset", "reset STREAM", "", nullptr},
    {"delete", "delete STREAM", "", nullptr},
    {"where", "where STREAM...", "The server each stream lives on.\n", nullptr},
    {"health", "health", "Every server must be SERVING.\n", nullptr},
};

const Command* FindCommand(absl::string_view name) {
  for (const Command& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

// A command's part of --help: its synopsis, what it does and its flags.
std::string CommandUsage(const Command& command) {
  std::string out = absl::StrCat(command.synopsis, "\n");
  if (*command.about != '\0') {
    for (absl::string_view line :
         absl::StrSplit(command.about, '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  if (command.add_flags != nullptr) {
    CommandFlags defaults;
    FlagSet flags;
    command.add_flags(flags, &defaults);
    out += flags.Help();
  }
  return out;
}

std::string GlobalUsage() {
  GlobalFlags defaults;
  FlagSet flags;
  AddGlobalFlags(flags, &defaults);
  return absl::StrCat(
      "Flags of every command, before or after it:\n", flags.Help(),
      "\nExit status: 0 on success; 1 when a server answers with an error "
      "(its gRPC\ncode and message go to stderr); 2 for a usage error.\n");
}

std::string Usage() {
  std::string out =
      "Usage: knnmem [flags] COMMAND [OPERANDS] [flags]\n\nCommands:\n\n";
  for (const Command& c : kCommands) {
    absl::StrAppend(&out, CommandUsage(c), "\n");
  }
  return out + GlobalUsage();
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

// One line of JSON on stdout.
void PrintJson(const Json& value) { std::puts(DumpJson(value).c_str()); }

// The CLI's floats keep the 9 significant digits that read back to the same
// float.
Json Floats(const std::vector<float>& v) {
  Json out = Json::array();
  for (float f : v) out.push_back(RoundToSignificantDigits(f, 9));
  return out;
}

Json SpecJson(const v1::StreamSpec& s) {
  return {{"layers", s.layers()},
          {"heads", s.heads()},
          {"key_dim", s.key_dim()},
          {"value_dim", s.value_dim()},
          {"capacity", s.capacity()},
          {"index", v1::IndexKind_Name(s.index())},
          {"storage_dtype", v1::DType_Name(s.storage_dtype())},
          {"ttl_seconds", s.ttl_seconds()},
          {"nlist", s.nlist()},
          {"nprobe", s.nprobe()},
          {"exact_tail", s.exact_tail()}};
}

Json InfoJson(const v1::StreamInfo& info) {
  Json layers = Json::array();
  for (const auto& l : info.layers()) {
    layers.push_back({{"layer", l.layer()},
                      {"first_position", l.first_position()},
                      {"next_position", l.next_position()},
                      {"entries", l.entries()},
                      {"indexed_entries", l.indexed_entries()}});
  }
  return {{"stream_id", info.stream_id()},
          {"spec", SpecJson(info.spec())},
          {"layers", layers},
          {"bytes_in_ram", info.bytes_in_ram()},
          {"bytes_on_disk", info.bytes_on_disk()},
          {"resident", info.resident()}};
}

void PrintInfoTable(const v1::StreamInfo& info) {
  const v1::StreamSpec& s = info.spec();
  absl::PrintF("stream        %s\n", info.stream_id());
  absl::PrintF(
      "spec          layers=%d heads=%d key_dim=%d value_dim=%d "
      "capacity=%d dtype=%s index=%s ttl_seconds=%d\n",
      s.layers(), s.heads(), s.key_dim(), s.value_dim(), s.capacity(),
      v1::DType_Name(s.storage_dtype()), v1::IndexKind_Name(s.index()),
      s.ttl_seconds());
  absl::PrintF("bytes in RAM  %d%s\n", info.bytes_in_ram(),
               info.resident() ? "" : " (not resident: loads on next use)");
  absl::PrintF("bytes on disk %d\n", info.bytes_on_disk());
  absl::PrintF("%-6s %16s %16s %12s %12s\n", "layer", "first_position",
               "next_position", "entries", "indexed");
  for (const auto& l : info.layers()) {
    absl::PrintF("%-6d %16d %16d %12d %12d\n", l.layer(), l.first_position(),
                 l.next_position(), l.entries(), l.indexed_entries());
  }
}

// One command line, parsed.
struct Args {
  GlobalFlags global;
  CommandFlags flags;
  // The global flags and the command's: Given(), and the operands in
  // positional().
  FlagSet set;
};

const std::string& StreamArg(const Args& args) {
  if (args.set.positional().empty()) throw UsageError{"missing STREAM"};
  return args.set.positional()[0];
}

int Create(ShardedClient& client, const Args& args, bool json) {
  const std::string& id = StreamArg(args);
  const CommandFlags& c = args.flags;
  v1::StreamSpec spec;
  spec.set_layers(static_cast<uint32_t>(c.layers));
  spec.set_heads(static_cast<uint32_t>(c.heads));
  spec.set_key_dim(static_cast<uint32_t>(c.key_dim));
  spec.set_value_dim(static_cast<uint32_t>(c.value_dim));
  spec.set_capacity(static_cast<uint64_t>(c.capacity));
  spec.set_storage_dtype(DTypeToProto(c.dtype));
  spec.set_ttl_seconds(c.ttl_seconds);
  spec.set_index(c.index == "exact" ? v1::EXACT : v1::APPROXIMATE);
  spec.set_nlist(c.nlist);
  spec.set_nprobe(c.nprobe);
  spec.set_exact_tail(c.exact_tail);
  absl::StatusOr<v1::CreateStreamResponse> r = client.CreateStream(id, spec);
  if (!r.ok()) return Fail(r.status());
  if (json) {
    PrintJson({{"created", r->created()}, {"stream", InfoJson(r->stream())}});
  } else {
    std::printf("%s stream %s\n",
                r->created() ? "created" : "exists:", id.c_str());
  }
  return 0;
}

int Append(MemoryClient& client, const Args& args, bool json) {
  const std::string& id = StreamArg(args);
  const uint32_t layer = args.flags.layer;
  const int64_t batch = args.flags.batch;
  const DType wire = args.flags.wire_dtype;
  const bool sync = args.flags.sync;
  const bool random = args.set.Given("random");
  const int64_t rows_random = args.flags.random;
  const uint64_t seed = args.flags.seed;
  const std::string& keys_file = args.flags.keys;
  const std::string& values_file = args.flags.values;
  const bool has_first = args.set.Given("first-position");
  int64_t position = args.flags.first_position;
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
    PrintJson({{"rows", rows},
               {"stored", stored},
               {"first_position", position},
               {"next_position", next}});
  } else {
    absl::PrintF(
        "appended %d rows at positions [%d, %d), %d newly stored; next "
        "position %d\n",
        rows, position, position + rows, stored, next);
  }
  return 0;
}

int Decode(ShardedClient& client, const Args& args, bool json) {
  const std::vector<std::string>& ids = args.set.positional();
  if (ids.empty()) throw UsageError{"missing STREAM"};
  const uint32_t layer = args.flags.layer;
  StepParams params;
  params.k = args.flags.k;
  const uint64_t seed = args.flags.seed;
  const bool append = args.flags.append;
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
  Json json_out = Json::array();
  if (!json) {
    absl::PrintF("%-32s %-20s %14s  %s\n", "stream", "status", "next_position",
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
      json_out.push_back({{"stream_id", ids[i]},
                          {"code", code},
                          {"message", std::string(o.status.message())},
                          {"next_position", o.next_position},
                          {"lse", Floats(o.attention.lse)},
                          {"output", Floats(o.attention.output)}});
      continue;
    }
    std::string lse;
    for (float x : o.attention.lse) {
      absl::StrAppend(&lse, lse.empty() ? "" : " ", absl::StrFormat("%.4f", x));
    }
    absl::PrintF("%-32s %-20s %14s  %s\n", ids[i], code,
                 o.status.ok() ? absl::StrCat(o.next_position) : "-", lse);
  }
  if (json) PrintJson(json_out);
  return failed == 0 ? 0 : 1;
}

int Search(MemoryClient& client, const Args& args, bool json) {
  const std::string& id = StreamArg(args);
  const uint32_t layer = args.flags.layer;
  const uint32_t k = args.flags.k;
  const bool random = args.set.Given("random");
  const int64_t n_random = args.flags.random;
  const uint64_t seed = args.flags.seed;
  const std::string& queries_file = args.flags.queries;
  const bool with_keys = args.flags.with_keys;
  const bool with_values = args.flags.with_values;
  const bool exact = args.flags.exact;
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
    Json out = {{"stream_id", id},
                {"layer", layer},
                {"shape", {r->queries, r->heads, r->k}},
                {"positions", r->positions},
                {"scores", Floats(r->scores)}};
    if (!r->keys.empty()) out["keys"] = Floats(r->keys);
    if (!r->values.empty()) out["values"] = Floats(r->values);
    PrintJson(out);
    return 0;
  }
  absl::PrintF("%6s %5s %5s %12s %14s\n", "query", "head", "rank", "position",
               "score");
  for (int64_t q = 0; q < r->queries; ++q) {
    for (int64_t h = 0; h < r->heads; ++h) {
      for (int64_t j = 0; j < r->k; ++j) {
        const size_t i = static_cast<size_t>((q * r->heads + h) * r->k + j);
        if (r->positions[i] < 0) {
          absl::PrintF("%6d %5d %5d %12s %14s\n", q, h, j, "-", "-");
          continue;
        }
        absl::PrintF("%6d %5d %5d %12d %14.6f", q, h, j, r->positions[i],
                     r->scores[i]);
        if (with_values) absl::PrintF("  value[0..]=%.4f", r->values[i * dv]);
        absl::PrintF("\n");
      }
    }
  }
  return 0;
}

// Parses the command line into `args`: the global flags up to the
// command's name, then the global and the command's flags and operands.
// Returns the command, or null when there is none (or --help came before
// it).
const Command* ParseArgs(const std::vector<std::string>& argv, Args& args) {
  FlagSet global;
  AddGlobalFlags(global, &args.global);
  absl::StatusOr<size_t> at = global.ParseUntilCommand(argv);
  if (!at.ok()) throw UsageError{std::string(at.status().message())};
  if (*at == argv.size() || args.global.help) return nullptr;
  const Command* command = FindCommand(argv[*at]);
  if (command == nullptr) {
    throw UsageError{absl::StrCat("unknown command '", argv[*at], "'")};
  }
  AddGlobalFlags(args.set, &args.global);
  if (command->add_flags != nullptr) command->add_flags(args.set, &args.flags);
  args.set.AcceptPositional();
  absl::Status parsed =
      args.set.Parse(absl::MakeConstSpan(argv).subspan(*at + 1));
  if (!parsed.ok()) throw UsageError{std::string(parsed.message())};
  return command;
}

int Run(int argc, char** argv) {
  Args args;
  const Command* command = ParseArgs(CommandLineArgs(argc, argv), args);
  if (command == nullptr || args.global.help) {
    const bool help = args.global.help;
    const std::string usage =
        command == nullptr
            ? Usage()
            : absl::StrCat(CommandUsage(*command), "\n", GlobalUsage());
    std::fputs(usage.c_str(), help ? stdout : stderr);
    return help ? 0 : 2;
  }
  const std::string& server = args.global.server;
  const std::string& servers_flag = args.global.servers;
  if (!server.empty() && !servers_flag.empty()) {
    throw UsageError{"give --server or --servers, not both"};
  }
  absl::StatusOr<std::vector<ServerAddress>> servers =
      ParseServerList(!servers_flag.empty() ? servers_flag
                      : !server.empty()     ? server
                                            : "127.0.0.1:50051");
  if (!servers.ok()) throw UsageError{std::string(servers.status().message())};
  const bool json = args.global.json;
  MemoryClient::Options options;
  options.deadline = std::chrono::milliseconds(args.global.deadline_ms);
  // A token from --token-file, else $KNNMEM_TOKEN (kept out of argv, where
  // other users could read it).
  const std::string& token_file = args.global.token_file;
  if (!token_file.empty()) {
    options.auth_token =
        std::string(absl::StripAsciiWhitespace(ReadTextFile(token_file)));
  } else if (const char* env = std::getenv("KNNMEM_TOKEN")) {
    options.auth_token = env;
  }
  const std::string& tls_ca = args.global.tls_ca;
  const std::string& tls_cert = args.global.tls_cert;
  const std::string& tls_key = args.global.tls_key;
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
  const std::string cmd = command->name;
  if (cmd == "create") return Create(sharded, args, json);
  if (cmd == "append") return Append(sharded.For(StreamArg(args)), args, json);
  if (cmd == "search") return Search(sharded.For(StreamArg(args)), args, json);
  if (cmd == "health") {
    // Every server must be serving.
    for (size_t i = 0; i < sharded.servers().size(); ++i) {
      absl::Status s = sharded.At(i).Health();
      if (!s.ok()) {
        return Fail(absl::Status(
            s.code(),
            absl::StrCat(sharded.servers()[i].address, ": ", s.message())));
      }
    }
    if (json) {
      PrintJson({{"status", "SERVING"}});
    } else {
      std::printf("SERVING\n");
    }
    return 0;
  }
  if (cmd == "decode") return Decode(sharded, args, json);
  if (cmd == "where") {
    StreamArg(args);
    // One line (or JSON object) per stream, in the order given.
    for (const std::string& id : args.set.positional()) {
      const ServerAddress& at = sharded.ServerOf(id);
      if (json) {
        PrintJson(
            {{"stream_id", id}, {"server", at.name}, {"address", at.address}});
      } else {
        std::printf("%s %s\n", at.name.c_str(), at.address.c_str());
      }
    }
    return 0;
  }
  if (cmd == "list") {
    absl::StatusOr<std::vector<v1::StreamInfo>> all = sharded.ListStreams();
    if (!all.ok()) return Fail(all.status());
    if (json) {
      Json out = Json::array();
      for (const v1::StreamInfo& info : *all) out.push_back(InfoJson(info));
      PrintJson(out);
    } else {
      absl::PrintF("%-40s %6s %6s %8s %8s %10s %12s\n", "stream", "layers",
                   "heads", "key_dim", "dtype", "capacity", "entries[0]");
      for (const auto& i : *all) {
        absl::PrintF("%-40s %6d %6d %8d %8s %10d %12d\n", i.stream_id(),
                     i.spec().layers(), i.spec().heads(), i.spec().key_dim(),
                     v1::DType_Name(i.spec().storage_dtype()),
                     i.spec().capacity(),
                     i.layers_size() ? i.layers(0).entries() : 0);
      }
    }
    return 0;
  }
  if (cmd == "info" || cmd == "reset" || cmd == "delete") {
    const std::string& id = StreamArg(args);
    if (cmd == "info") {
      absl::StatusOr<v1::StreamInfo> info = sharded.For(id).GetStream(id);
      if (!info.ok()) return Fail(info.status());
      if (json) {
        PrintJson(InfoJson(*info));
      } else {
        PrintInfoTable(*info);
      }
      return 0;
    }
    absl::Status s = cmd == "reset" ? sharded.For(id).ResetStream(id)
                                    : sharded.DeleteStream(id);
    if (!s.ok()) return Fail(s);
    if (json) {
      PrintJson({{cmd == "reset" ? "reset" : "deleted", id}});
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
