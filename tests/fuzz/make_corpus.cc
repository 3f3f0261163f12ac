// Writes request_fuzzer's seed corpus: valid and slightly broken requests of
// every knnmem.v1.Memory RPC, one file each, laid out as fuzz_common.h says
// (RPC byte, spec byte, flags byte, serialized request).
//
//   make_corpus OUT_DIR
//
// The output is deterministic; tests/fuzz/corpus/ holds what it wrote. The
// regress-* inputs are the reproducers of the bugs the fuzzer found (fixed:
// the server now refuses values beyond the storage dtype's range, and the
// scale and age_tau that overflowed Attend's logits).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/flags.h"
#include "google/protobuf/message_lite.h"
#include "knnmem/v1/memory.pb.h"
#include "proto/tensor_codec.h"
#include "server/service/request_validation.h"
#include "server/spec/stream_spec.h"
#include "tests/fuzz/fuzz_common.h"

namespace knnmem {
namespace fuzz {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
// Appends stay below this many bytes, so that the fuzzer's inputs stay
// small enough to mutate quickly.
constexpr size_t kMaxAppendBytes = 32 << 10;

class CorpusWriter {
 public:
  explicit CorpusWriter(std::string dir) : dir_(std::move(dir)) {}

  void Write(const std::string& name, Rpc rpc, size_t spec, uint8_t flags,
             const google::protobuf::MessageLite& request) {
    if (!names_.insert(name).second) {
      std::fprintf(stderr, "make_corpus: duplicate name %s\n", name.c_str());
      failed_ = true;
      return;
    }
    std::string bytes;
    bytes.push_back(static_cast<char>(rpc));
    bytes.push_back(static_cast<char>(spec));
    bytes.push_back(static_cast<char>(flags));
    bytes += request.SerializeAsString();
    std::ofstream out(dir_ + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_corpus: cannot write %s/%s\n", dir_.c_str(),
                   name.c_str());
      failed_ = true;
    }
    ++files_;
    bytes_ += bytes.size();
  }

  bool failed() const { return failed_; }
  size_t files() const { return files_; }
  size_t bytes() const { return bytes_; }

 private:
  std::string dir_;
  std::set<std::string> names_;
  bool failed_ = false;
  size_t files_ = 0;
  size_t bytes_ = 0;
};

// Deterministic values in [-1, 1) (a 64-bit LCG).
class Values {
 public:
  explicit Values(uint64_t seed) : state_(seed * 2654435761u + 1) {}
  std::vector<float> Next(size_t count) {
    std::vector<float> out(count);
    for (float& f : out) {
      state_ = state_ * 6364136223846793005u + 1442695040888963407u;
      f = static_cast<float>(state_ >> 40) / 8388608.0f - 1.0f;
    }
    return out;
  }

 private:
  uint64_t state_;
};

const char* Short(DType d) {
  switch (d) {
    case DType::kFloat32:
      return "f32";
    case DType::kFloat16:
      return "f16";
    case DType::kBFloat16:
      return "bf16";
  }
  return "?";
}

constexpr DType kDTypes[] = {DType::kFloat32, DType::kFloat16,
                             DType::kBFloat16};

std::string IdOf(size_t spec) { return absl::StrCat("fuzz-s", spec); }

v1::Tensor Rows(Values& v, int64_t rows, uint32_t heads, uint32_t dim,
                DType dtype) {
  const std::vector<float> f = v.Next(static_cast<size_t>(rows) * heads * dim);
  const int64_t shape[] = {rows, int64_t{heads}, int64_t{dim}};
  return MakeTensor(f, shape, dtype);
}

v1::AppendRequest Append(Values& v, size_t spec_index, int64_t rows,
                         DType dtype) {
  const StreamSpec& spec = kSpecs[spec_index];
  v1::AppendRequest req;
  req.set_stream_id(IdOf(spec_index));
  req.set_layer(spec.layers - 1);
  req.set_first_position(0);
  *req.mutable_keys() = Rows(v, rows, spec.heads, spec.key_dim, dtype);
  *req.mutable_values() = Rows(v, rows, spec.heads, spec.value_dim, dtype);
  return req;
}

template <typename Request>
Request Queries(Values& v, size_t spec_index, int64_t n, uint32_t k,
                DType dtype) {
  const StreamSpec& spec = kSpecs[spec_index];
  Request req;
  req.set_stream_id(IdOf(spec_index));
  req.set_layer(0);
  req.set_k(k);
  *req.mutable_queries() = Rows(v, n, spec.heads, spec.key_dim, dtype);
  return req;
}

// Overwrites element `i` of a float32 tensor.
void SetF32(v1::Tensor* t, size_t i, float f) {
  const std::string packed = PackFloats({f}, DType::kFloat32);
  t->mutable_data()->replace(i * 4, 4, packed);
}

void WriteCreateStreams(CorpusWriter& w) {
  for (size_t i = 0; i < kSpecCount; ++i) {
    v1::CreateStreamRequest req;
    req.set_stream_id(IdOf(i));
    SpecToProto(kSpecs[i], req.mutable_spec());
    w.Write(absl::StrCat("create-s", i, "-", Short(kSpecs[i].storage_dtype)),
            Rpc::kCreateStream, i, 0, req);
  }
  auto base = [] {
    v1::CreateStreamRequest req;
    req.set_stream_id("doc-1");
    SpecToProto(kSpecs[3], req.mutable_spec());
    return req;
  };
  struct Case {
    const char* name;
    void (*edit)(v1::CreateStreamRequest&);
  };
  const Case cases[] = {
      {"create-unspecified-dtype-index",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_storage_dtype(v1::DTYPE_UNSPECIFIED);
         r.mutable_spec()->set_index(v1::INDEX_KIND_UNSPECIFIED);
       }},
      {"create-largest",
       [](v1::CreateStreamRequest& r) {
         v1::StreamSpec* s = r.mutable_spec();
         s->set_layers(kMaxLayers);
         s->set_heads(kMaxHeads);
         s->set_key_dim(kMaxDim);
         s->set_value_dim(kMaxDim);
         s->set_capacity(kMaxCapacity);
         s->set_ttl_seconds(86400);
       }},
      {"create-capacity-1-dims-odd",
       [](v1::CreateStreamRequest& r) {
         v1::StreamSpec* s = r.mutable_spec();
         s->set_heads(7);
         s->set_key_dim(13);
         s->set_value_dim(3);
         s->set_capacity(1);
         s->set_storage_dtype(v1::FLOAT16);
       }},
      {"create-capacity-65-bf16",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_capacity(65);
         r.mutable_spec()->set_storage_dtype(v1::BFLOAT16);
       }},
      {"create-bad-layers-0",
       [](v1::CreateStreamRequest& r) { r.mutable_spec()->set_layers(0); }},
      {"create-bad-heads-257",
       [](v1::CreateStreamRequest& r) { r.mutable_spec()->set_heads(257); }},
      {"create-bad-key-dim-0",
       [](v1::CreateStreamRequest& r) { r.mutable_spec()->set_key_dim(0); }},
      {"create-bad-value-dim-4097",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_value_dim(4097);
       }},
      {"create-bad-capacity-0",
       [](v1::CreateStreamRequest& r) { r.mutable_spec()->set_capacity(0); }},
      {"create-bad-capacity-2p32-plus-1",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_capacity(kMaxCapacity + 1);
       }},
      {"create-bad-index-2",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_index(static_cast<v1::IndexKind>(2));
       }},
      {"create-bad-dtype-int64",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_storage_dtype(v1::INT64);
       }},
      {"create-bad-dtype-99",
       [](v1::CreateStreamRequest& r) {
         r.mutable_spec()->set_storage_dtype(static_cast<v1::DType>(99));
       }},
      {"create-bad-no-spec",
       [](v1::CreateStreamRequest& r) { r.clear_spec(); }},
      {"create-bad-id-empty",
       [](v1::CreateStreamRequest& r) { r.clear_stream_id(); }},
      {"create-bad-id-space",
       [](v1::CreateStreamRequest& r) { r.set_stream_id("doc 1"); }},
      {"create-bad-id-129-chars",
       [](v1::CreateStreamRequest& r) {
         r.set_stream_id(std::string(129, 'a'));
       }},
      {"create-id-128-chars-all-symbols",
       [](v1::CreateStreamRequest& r) {
         std::string id = "AZaz09._:/-";
         while (id.size() < 128) id += "x";
         r.set_stream_id(id);
       }},
  };
  for (const Case& c : cases) {
    v1::CreateStreamRequest req = base();
    c.edit(req);
    w.Write(c.name, Rpc::kCreateStream, 3, 0, req);
  }
}

template <typename Request>
void WriteIdOnly(CorpusWriter& w, const char* prefix, Rpc rpc, uint8_t flags) {
  struct Id {
    const char* name;
    std::string id;
  };
  const Id ids[] = {
      {"valid", "fuzz-s1"},
      {"id-128-chars", std::string(128, 'z')},
      {"bad-id-empty", ""},
      {"bad-id-129-chars", std::string(129, 'z')},
      {"bad-id-utf8", "doc-\xc3\xa9"},
      {"bad-id-nul", std::string("doc\0x", 5)},
  };
  for (const Id& id : ids) {
    Request req;
    req.set_stream_id(id.id);
    w.Write(absl::StrCat(prefix, "-", id.name), rpc, 1, flags, req);
  }
}

void WriteListStreams(CorpusWriter& w) {
  struct Case {
    const char* name;
    uint32_t page_size;
    const char* token;
  };
  const Case cases[] = {
      {"list-default", 0, ""},
      {"list-page-2", 2, ""},
      {"list-after-fuzz-s2", 3, "fuzz-s2"},
      {"list-page-10000", 10000, ""},
      {"list-bad-page-10001", 10001, ""},
  };
  for (const Case& c : cases) {
    v1::ListStreamsRequest req;
    req.set_page_size(c.page_size);
    req.set_page_token(c.token);
    w.Write(c.name, Rpc::kListStreams, 0, 0, req);
  }
}

void WriteAppends(CorpusWriter& w, Values& v) {
  for (size_t i = 0; i < kSpecCount; ++i) {
    const StreamSpec& spec = kSpecs[i];
    for (DType dtype : kDTypes) {
      const size_t row_bytes = size_t{spec.heads} *
                               (spec.key_dim + spec.value_dim) *
                               ElementSize(dtype);
      std::vector<int64_t> counts = {1, 3};
      // The big batch only in the storage dtype, and at most
      // kMaxAppendBytes.
      if (dtype == spec.storage_dtype) {
        counts.push_back(static_cast<int64_t>(
            std::min<size_t>(64, kMaxAppendBytes / row_bytes)));
      }
      for (int64_t rows : counts) {
        w.Write(
            absl::StrCat("append-s", i, "-", Short(dtype), "-", rows, "rows"),
            Rpc::kAppend, i, kFlagFollow, Append(v, i, rows, dtype));
      }
    }
  }
  // First position as sent (no kFlagFollow): a replay from 0, a gap.
  w.Write("append-s1-f16-2rows-at-0", Rpc::kAppend, 1, 0,
          Append(v, 1, 2, DType::kFloat16));
  {
    v1::AppendRequest req = Append(v, 1, 2, DType::kFloat32);
    req.set_first_position(1000000);
    req.set_sync(true);
    w.Write("append-s1-f32-gap", Rpc::kAppend, 1, 0, req);
  }
  {
    // Follow with replays: next_position - 5 with 7 rows.
    v1::AppendRequest req = Append(v, 2, 7, DType::kBFloat16);
    req.set_first_position(5);
    w.Write("append-s2-bf16-7rows-replay-5", Rpc::kAppend, 2, kFlagFollow, req);
  }
  {
    // Larger than the capacity of spec 0 (1) and of spec 1 (100).
    w.Write("append-s0-f32-5rows-over-capacity", Rpc::kAppend, 0, kFlagFollow,
            Append(v, 0, 5, DType::kFloat32));
    w.Write("append-s1-f16-101rows-over-capacity", Rpc::kAppend, 1, kFlagFollow,
            Append(v, 1, 101, DType::kFloat16));
  }
  {
    // Staged and dropped, as when the storage write fails.
    w.Write("append-s4-f32-5rows-discarded", Rpc::kAppend, 4,
            kFlagFollow | kFlagDiscardStaged, Append(v, 4, 5, DType::kFloat32));
  }
  {
    // Extreme but finite values: float32 maxima stored as float16 overflow.
    v1::AppendRequest req = Append(v, 1, 2, DType::kFloat32);
    SetF32(req.mutable_keys(), 0, 3.0e38f);
    SetF32(req.mutable_keys(), 1, -3.0e38f);
    SetF32(req.mutable_values(), 0, 1e-40f);  // subnormal
    w.Write("append-s1-f32-huge-values", Rpc::kAppend, 1, kFlagFollow, req);
  }

  struct Case {
    const char* name;
    void (*edit)(v1::AppendRequest&);
  };
  const Case cases[] = {
      {"append-bad-nan-key",
       [](v1::AppendRequest& r) { SetF32(r.mutable_keys(), 1, kNaN); }},
      {"append-bad-inf-value",
       [](v1::AppendRequest& r) { SetF32(r.mutable_values(), 2, -kInf); }},
      {"append-bad-dtype-mismatch",
       [](v1::AppendRequest& r) {
         const std::vector<float> f =
             UnpackFloats(r.values().data(), DType::kFloat32);
         r.mutable_values()->set_dtype(v1::FLOAT16);
         r.mutable_values()->set_data(PackFloats(f, DType::kFloat16));
       }},
      {"append-bad-dtype-int64",
       [](v1::AppendRequest& r) {
         r.mutable_keys()->set_dtype(v1::INT64);
         r.mutable_values()->set_dtype(v1::INT64);
       }},
      {"append-bad-rank-2",
       [](v1::AppendRequest& r) {
         r.mutable_keys()->mutable_shape()->RemoveLast();
       }},
      {"append-bad-heads",
       [](v1::AppendRequest& r) { r.mutable_keys()->set_shape(1, 3); }},
      {"append-bad-value-dim",
       [](v1::AppendRequest& r) { r.mutable_values()->set_shape(2, 2); }},
      {"append-bad-rows-differ",
       [](v1::AppendRequest& r) { r.mutable_values()->set_shape(0, 2); }},
      {"append-bad-short-data",
       [](v1::AppendRequest& r) {
         r.mutable_keys()->mutable_data()->pop_back();
       }},
      {"append-bad-negative-dim",
       [](v1::AppendRequest& r) { r.mutable_keys()->set_shape(0, -3); }},
      {"append-bad-huge-dim",
       [](v1::AppendRequest& r) {
         r.mutable_keys()->set_shape(0, int64_t{1} << 40);
       }},
      {"append-bad-empty-keys",
       [](v1::AppendRequest& r) { r.mutable_keys()->clear_data(); }},
      {"append-bad-no-keys", [](v1::AppendRequest& r) { r.clear_keys(); }},
      {"append-bad-no-values", [](v1::AppendRequest& r) { r.clear_values(); }},
      {"append-bad-layer", [](v1::AppendRequest& r) { r.set_layer(2); }},
      {"append-bad-negative-position",
       [](v1::AppendRequest& r) { r.set_first_position(-1); }},
      {"append-bad-position-2p62",
       [](v1::AppendRequest& r) { r.set_first_position(int64_t{1} << 62); }},
      {"append-bad-position-past-2p62",
       [](v1::AppendRequest& r) {
         r.set_first_position((int64_t{1} << 62) - 1);
       }},
      {"append-bad-id", [](v1::AppendRequest& r) { r.set_stream_id("a b"); }},
  };
  // Spec 1 (2 layers, 2 heads, key_dim 3, value_dim 5), 3 float32 rows.
  for (const Case& c : cases) {
    v1::AppendRequest req = Append(v, 1, 3, DType::kFloat32);
    req.set_layer(0);
    c.edit(req);
    w.Write(c.name, Rpc::kAppend, 1, 0, req);
  }
}

void WriteSearches(CorpusWriter& w, Values& v) {
  for (size_t i = 0; i < kSpecCount; ++i) {
    const StreamSpec& spec = kSpecs[i];
    {
      auto req = Queries<v1::SearchRequest>(v, i, 1, 1, DType::kFloat32);
      req.set_layer(spec.layers - 1);
      w.Write(absl::StrCat("search-s", i, "-f32-1q-k1"), Rpc::kSearch, i, 0,
              req);
    }
    {
      auto req = Queries<v1::SearchRequest>(v, i, 4, 32, spec.storage_dtype);
      req.set_layer(spec.layers - 1);
      req.set_return_keys(true);
      req.set_return_values(true);
      w.Write(absl::StrCat("search-s", i, "-", Short(spec.storage_dtype),
                           "-4q-k32-keys-values"),
              Rpc::kSearch, i, 0, req);
    }
    {
      auto req = Queries<v1::SearchRequest>(v, i, 2, 32, DType::kFloat16);
      req.set_return_values(true);
      w.Write(absl::StrCat("search-s", i, "-f16-2q-k32-values"), Rpc::kSearch,
              i, 0, req);
    }
  }
  {
    // Large scores: finite queries whose products with stored keys may
    // overflow float32.
    auto req = Queries<v1::SearchRequest>(v, 1, 1, 32, DType::kFloat32);
    for (int d = 0; d < 6; ++d) SetF32(req.mutable_queries(), d, 3.0e38f);
    w.Write("search-s1-f32-huge-queries", Rpc::kSearch, 1, 0, req);
  }
  {
    auto req = Queries<v1::SearchRequest>(v, 2, 1, kMaxK, DType::kBFloat16);
    w.Write("search-s2-bf16-k2048", Rpc::kSearch, 2, 0, req);
  }
  struct Case {
    const char* name;
    void (*edit)(v1::SearchRequest&);
  };
  const Case cases[] = {
      {"search-bad-k-0", [](v1::SearchRequest& r) { r.set_k(0); }},
      {"search-bad-k-2049", [](v1::SearchRequest& r) { r.set_k(kMaxK + 1); }},
      {"search-bad-nan-query",
       [](v1::SearchRequest& r) { SetF32(r.mutable_queries(), 0, kNaN); }},
      {"search-bad-inf-query",
       [](v1::SearchRequest& r) { SetF32(r.mutable_queries(), 5, kInf); }},
      {"search-bad-empty-queries",
       [](v1::SearchRequest& r) { r.mutable_queries()->clear_data(); }},
      {"search-bad-no-queries",
       [](v1::SearchRequest& r) { r.clear_queries(); }},
      {"search-bad-no-shape",
       [](v1::SearchRequest& r) { r.mutable_queries()->clear_shape(); }},
      {"search-bad-key-dim",
       [](v1::SearchRequest& r) { r.mutable_queries()->set_shape(2, 4); }},
      {"search-bad-dtype-unspecified",
       [](v1::SearchRequest& r) {
         r.mutable_queries()->set_dtype(v1::DTYPE_UNSPECIFIED);
       }},
      {"search-bad-layer", [](v1::SearchRequest& r) { r.set_layer(7); }},
      {"search-bad-id", [](v1::SearchRequest& r) { r.clear_stream_id(); }},
  };
  for (const Case& c : cases) {
    auto req = Queries<v1::SearchRequest>(v, 1, 2, 32, DType::kFloat32);
    c.edit(req);
    w.Write(c.name, Rpc::kSearch, 1, 0, req);
  }
}

void WriteAttends(CorpusWriter& w, Values& v) {
  for (size_t i = 0; i < kSpecCount; ++i) {
    const StreamSpec& spec = kSpecs[i];
    {
      auto req = Queries<v1::AttendRequest>(v, i, 1, 1, DType::kFloat32);
      w.Write(absl::StrCat("attend-s", i, "-f32-1q-k1"), Rpc::kAttend, i, 0,
              req);
    }
    {
      auto req = Queries<v1::AttendRequest>(v, i, 3, 32, spec.storage_dtype);
      req.set_layer(spec.layers - 1);
      req.add_scale(0.5f);
      w.Write(absl::StrCat("attend-s", i, "-", Short(spec.storage_dtype),
                           "-3q-k32-scale"),
              Rpc::kAttend, i, 0, req);
    }
    {
      auto req = Queries<v1::AttendRequest>(v, i, 2, 32, DType::kFloat16);
      for (uint32_t h = 0; h < spec.heads; ++h) {
        req.add_scale(0.1f * static_cast<float>(h + 1));
      }
      req.add_age_alpha(0.25f);
      req.set_age_tau(16.0f);
      w.Write(absl::StrCat("attend-s", i, "-f16-2q-k32-age"), Rpc::kAttend, i,
              0, req);
    }
    {
      auto req = Queries<v1::AttendRequest>(v, i, 1, 32, DType::kBFloat16);
      for (uint32_t h = 0; h < spec.heads; ++h) {
        req.add_age_alpha(h % 2 == 0 ? 1.0f : -0.5f);
      }
      req.set_age_tau(0.5f);
      w.Write(absl::StrCat("attend-s", i, "-bf16-1q-k32-age-per-head"),
              Rpc::kAttend, i, 0, req);
    }
  }
  struct Case {
    const char* name;
    void (*edit)(v1::AttendRequest&);
  };
  const Case cases[] = {
      {"attend-bad-scale-0", [](v1::AttendRequest& r) { r.add_scale(0); }},
      {"attend-bad-scale-negative",
       [](v1::AttendRequest& r) { r.add_scale(-1); }},
      {"attend-bad-scale-nan", [](v1::AttendRequest& r) { r.add_scale(kNaN); }},
      {"attend-bad-scale-count-3",
       [](v1::AttendRequest& r) {
         for (int i = 0; i < 3; ++i) r.add_scale(1);
       }},
      {"attend-bad-age-alpha-inf",
       [](v1::AttendRequest& r) {
         r.add_age_alpha(kInf);
         r.set_age_tau(1);
       }},
      {"attend-bad-age-tau-missing",
       [](v1::AttendRequest& r) { r.add_age_alpha(1); }},
      {"attend-bad-age-tau-negative",
       [](v1::AttendRequest& r) {
         r.add_age_alpha(1);
         r.set_age_tau(-2);
       }},
      {"attend-bad-age-tau-inf",
       [](v1::AttendRequest& r) {
         r.add_age_alpha(1);
         r.set_age_tau(kInf);
       }},
      {"attend-age-tau-without-alpha",
       [](v1::AttendRequest& r) { r.set_age_tau(-5); }},
      {"attend-bad-k-0", [](v1::AttendRequest& r) { r.set_k(0); }},
      {"attend-bad-nan-query",
       [](v1::AttendRequest& r) { SetF32(r.mutable_queries(), 0, kNaN); }},
      {"attend-bad-no-queries",
       [](v1::AttendRequest& r) { r.clear_queries(); }},
      {"attend-bad-layer", [](v1::AttendRequest& r) { r.set_layer(2); }},
  };
  for (const Case& c : cases) {
    auto req = Queries<v1::AttendRequest>(v, 1, 2, 32, DType::kFloat32);
    c.edit(req);
    w.Write(c.name, Rpc::kAttend, 1, 0, req);
  }
}

// One float32 tensor [rows, heads, dim] of `values`.
v1::Tensor F32(std::vector<float> values, int64_t rows, uint32_t heads,
               uint32_t dim) {
  const int64_t shape[] = {rows, int64_t{heads}, int64_t{dim}};
  return MakeTensor(values, shape, DType::kFloat32);
}

// Reproducers of the known bugs; each is as small as the bug allows.
void WriteDecodeSteps(CorpusWriter& w, Values& v) {
  for (size_t i = 0; i < kSpecCount; ++i) {
    const StreamSpec& spec = kSpecs[i];
    {
      // Three steps: ask only, append one token then ask, append only.
      v1::DecodeStepRequest req;
      req.set_k(32);
      for (int s = 0; s < 3; ++s) {
        v1::StreamStep* step = req.add_steps();
        step->set_stream_id(absl::StrCat(IdOf(i), "-", s));
        step->set_layer(spec.layers - 1);
        if (s < 2) {
          *step->mutable_queries() =
              Rows(v, 1, spec.heads, spec.key_dim, DType::kFloat32);
        }
        if (s > 0) {
          step->set_first_position(s);
          *step->mutable_keys() =
              Rows(v, 1, spec.heads, spec.key_dim, spec.storage_dtype);
          *step->mutable_values() =
              Rows(v, 1, spec.heads, spec.value_dim, spec.storage_dtype);
        }
      }
      w.Write(absl::StrCat("decode-s", i, "-3-steps"), Rpc::kDecodeStep, i, 0,
              req);
    }
    {
      v1::DecodeStepRequest req;
      req.set_k(8);
      for (uint32_t h = 0; h < spec.heads; ++h) {
        req.add_scale(0.1f * static_cast<float>(h + 1));
      }
      req.add_age_alpha(0.5f);
      req.set_age_tau(8.0f);
      v1::StreamStep* step = req.add_steps();
      step->set_stream_id(IdOf(i));
      *step->mutable_queries() =
          Rows(v, 2, spec.heads, spec.key_dim, DType::kFloat16);
      w.Write(absl::StrCat("decode-s", i, "-scale-age"), Rpc::kDecodeStep, i, 0,
              req);
    }
  }
  {
    v1::DecodeStepRequest req;
    req.set_k(4);
    w.Write("decode-bad-no-steps", Rpc::kDecodeStep, 1, 0, req);
    req.add_steps()->set_stream_id("fuzz-s1");
    w.Write("decode-bad-empty-step", Rpc::kDecodeStep, 1, 0, req);
    req.set_k(0);
    w.Write("decode-bad-k-0", Rpc::kDecodeStep, 1, 0, req);
  }
}

void WriteRegressions(CorpusWriter& w) {
  // Finite float32 rows that overflow the storage dtype: spec 1 stores
  // float16 (max 65504), spec 2 bfloat16 (FLT_MAX rounds up to Inf).
  {
    const StreamSpec& spec = kSpecs[1];
    std::vector<float> keys(spec.heads * spec.key_dim, 0.0f);
    keys[0] = 1e5f;
    v1::AppendRequest req;
    req.set_stream_id("a");
    *req.mutable_keys() = F32(keys, 1, spec.heads, spec.key_dim);
    *req.mutable_values() =
        F32(std::vector<float>(spec.heads * spec.value_dim, 0.0f), 1,
            spec.heads, spec.value_dim);
    w.Write("regress-append-f16-overflow", Rpc::kAppend, 1, 0, req);
  }
  {
    const StreamSpec& spec = kSpecs[2];
    std::vector<float> keys(spec.heads * spec.key_dim, 0.0f);
    keys[0] = std::numeric_limits<float>::max();
    v1::AppendRequest req;
    req.set_stream_id("a");
    *req.mutable_keys() = F32(keys, 1, spec.heads, spec.key_dim);
    *req.mutable_values() =
        F32(std::vector<float>(spec.heads * spec.value_dim, 0.0f), 1,
            spec.heads, spec.value_dim);
    w.Write("regress-append-bf16-overflow", Rpc::kAppend, 2, 0, req);
  }
  // Attend with non-finite logits, over spec 5 (float32, 1 head, key_dim 8,
  // value_dim 64) after regress-attend-1-append has stored two rows whose
  // keys are (1e30, 0, ..., 0): `request_fuzzer regress-attend-1-append
  // regress-attend-<case>` replays one in order.
  const StreamSpec& spec = kSpecs[5];
  {
    std::vector<float> keys(2 * spec.key_dim, 0.0f);
    keys[0] = keys[spec.key_dim] = 1e30f;
    std::vector<float> values(2 * spec.value_dim, 1.0f);
    std::fill(values.begin() + spec.value_dim, values.end(), 2.0f);
    v1::AppendRequest req;
    req.set_stream_id("a");
    *req.mutable_keys() = F32(keys, 2, spec.heads, spec.key_dim);
    *req.mutable_values() = F32(values, 2, spec.heads, spec.value_dim);
    w.Write("regress-attend-1-append", Rpc::kAppend, 5, 0, req);
  }
  auto attend = [&](float q0) {
    std::vector<float> q(spec.key_dim, 0.0f);
    q[0] = q0;
    v1::AttendRequest req;
    req.set_stream_id("a");
    req.set_k(2);
    *req.mutable_queries() = F32(q, 1, spec.heads, spec.key_dim);
    return req;
  };
  // Scores 1e60 overflow to +Inf: exp(Inf - Inf).
  w.Write("regress-attend-2-inf-score", Rpc::kAttend, 5, 0, attend(1e30f));
  // Scores -1e60 overflow to -Inf: every logit -Inf, exp(-Inf + Inf).
  w.Write("regress-attend-3-neg-inf-score", Rpc::kAttend, 5, 0, attend(-1e30f));
  {
    // Scores 1e10, scale 1e30: logits overflow.
    v1::AttendRequest req = attend(1e-20f);
    req.add_scale(1e30f);
    w.Write("regress-attend-4-scale-overflow", Rpc::kAttend, 5, 0, req);
  }
  {
    // Scores 1; age_tau 1e-45 makes log1p(age / age_tau) = Inf for the
    // older entry, and age_alpha -1 turns the penalty into +Inf.
    v1::AttendRequest req = attend(1e-30f);
    req.add_age_alpha(-1.0f);
    req.set_age_tau(1e-45f);
    w.Write("regress-attend-5-tiny-age-tau", Rpc::kAttend, 5, 0, req);
  }
}

}  // namespace
}  // namespace fuzz
}  // namespace knnmem

int main(int argc, char** argv) {
  using namespace knnmem::fuzz;
  bool help = false;
  knnmem::FlagSet flags;
  flags.Bool("help", &help, "print this text and exit");
  flags.AcceptPositional();
  if (std::optional<int> status = flags.ParseForMain(
          "make_corpus", "usage: make_corpus OUT_DIR", argc, argv)) {
    return *status;
  }
  if (flags.positional().size() != 1) {
    std::fprintf(stderr, "make_corpus: give one OUT_DIR (see --help)\n");
    return 2;
  }
  const std::string& out_dir = flags.positional()[0];
  CorpusWriter w(out_dir);
  Values v(1);
  WriteCreateStreams(w);
  WriteIdOnly<knnmem::v1::GetStreamRequest>(w, "get", Rpc::kGetStream, 0);
  WriteListStreams(w);
  WriteIdOnly<knnmem::v1::ResetStreamRequest>(w, "reset", Rpc::kResetStream, 0);
  WriteIdOnly<knnmem::v1::DeleteStreamRequest>(w, "delete", Rpc::kDeleteStream,
                                               0);
  {
    // Really drops the entries of spec 0 (capacity 1): cheap to refill.
    knnmem::v1::ResetStreamRequest req;
    req.set_stream_id("fuzz-s0");
    w.Write("reset-s0-drop", Rpc::kResetStream, 0, kFlagDropEntries, req);
  }
  WriteAppends(w, v);
  WriteSearches(w, v);
  WriteAttends(w, v);
  WriteDecodeSteps(w, v);
  WriteRegressions(w);
  if (w.failed()) return 1;
  std::printf("make_corpus: %zu files, %zu bytes in %s\n", w.files(), w.bytes(),
              out_dir.c_str());
  return 0;
}
