#include "model/config.h"

#include <functional>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace knnmem::model {
namespace {

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// Every field as text, and how to read it back.
struct Field {
  std::function<std::string(const ModelConfig&)> get;
  std::function<bool(absl::string_view, ModelConfig&)> set;
};

Field IntField(int ModelConfig::*member) {
  return {[member](const ModelConfig& c) { return absl::StrCat(c.*member); },
          [member](absl::string_view v, ModelConfig& c) {
            return absl::SimpleAtoi(v, &(c.*member));
          }};
}

Field BoolField(bool ModelConfig::*member) {
  return {[member](const ModelConfig& c) {
            return std::string(c.*member ? "true" : "false");
          },
          [member](absl::string_view v, ModelConfig& c) {
            if (v != "true" && v != "false") return false;
            c.*member = v == "true";
            return true;
          }};
}

Field FloatField(float ModelConfig::*member) {
  return {[member](const ModelConfig& c) { return absl::StrCat(c.*member); },
          [member](absl::string_view v, ModelConfig& c) {
            return absl::SimpleAtof(v, &(c.*member));
          }};
}

const std::map<std::string, Field>& Fields() {
  static const auto* fields = new std::map<std::string, Field>{
      {"layers", IntField(&ModelConfig::layers)},
      {"d_model", IntField(&ModelConfig::d_model)},
      {"heads", IntField(&ModelConfig::heads)},
      {"ffn", IntField(&ModelConfig::ffn)},
      {"segment", IntField(&ModelConfig::segment)},
      {"knn_layer", IntField(&ModelConfig::knn_layer)},
      {"top_k", IntField(&ModelConfig::top_k)},
      {"gate_init", FloatField(&ModelConfig::gate_init)},
      {"scale_init", FloatField(&ModelConfig::scale_init)},
      {"age_tau", FloatField(&ModelConfig::age_tau)},
      {"mix",
       {[](const ModelConfig& c) {
          return std::string(c.mix == MemoryMix::kGate ? "gate" : "joint");
        },
        [](absl::string_view v, ModelConfig& c) {
          if (v != "gate" && v != "joint") return false;
          c.mix = v == "gate" ? MemoryMix::kGate : MemoryMix::kJoint;
          return true;
        }}},
      {"age_penalty", BoolField(&ModelConfig::age_penalty)},
      {"edge_bias", BoolField(&ModelConfig::edge_bias)},
      {"memory_scale", BoolField(&ModelConfig::memory_scale)},
  };
  return *fields;
}

}  // namespace

absl::Status ValidateConfig(const ModelConfig& c) {
  if (c.layers < 1 || c.layers > 64) return Bad("layers", "1 to 64");
  if (c.heads < 1 || c.d_model % c.heads != 0) {
    return Bad("heads", "at least 1, and must divide d_model");
  }
  if (c.d_model < c.heads || c.d_model > 4096) return Bad("d_model", "<= 4096");
  if (c.ffn < 1) return Bad("ffn", "at least 1");
  if (c.segment < 2) return Bad("segment", "at least 2 bytes");
  if (c.knn_layer < -1 || c.knn_layer >= c.layers) {
    return Bad("knn_layer", "-1 (2/3 depth) or a layer index");
  }
  if (c.top_k < 1 || c.top_k > 1024) return Bad("top_k", "1 to 1024");
  if (!(c.scale_init > 0)) return Bad("scale_init", "must be positive");
  if (!(c.age_tau > 0)) return Bad("age_tau", "must be positive");
  return absl::OkStatus();
}

std::string FormatConfig(const ModelConfig& config) {
  std::string out;
  for (const auto& [name, field] : Fields()) {
    absl::StrAppend(&out, name, "=", field.get(config), "\n");
  }
  return out;
}

absl::StatusOr<ModelConfig> ParseConfig(const std::string& text) {
  ModelConfig config;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::vector<absl::string_view> kv = absl::StrSplit(line, '=');
    auto it =
        kv.size() == 2 ? Fields().find(std::string(kv[0])) : Fields().end();
    if (it == Fields().end() || !it->second.set(kv[1], config)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config line ", line_number, ": cannot read '", line, "'"));
    }
  }
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  return config;
}

}  // namespace knnmem::model
