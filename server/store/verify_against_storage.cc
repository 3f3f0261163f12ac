#include "server/store/verify_against_storage.h"

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace knnmem {

absl::Status VerifyAgainstStorage(
    const StreamRegistry& registry, const Storage& storage,
    const std::function<absl::Status(const std::shared_ptr<Stream>&)>&
        make_resident) {
  const std::vector<std::shared_ptr<Stream>> streams = registry.All();
  size_t records = 0;
  RETURN_IF_ERROR(storage.LoadStreams([&](StreamRecord) {
    ++records;
    return absl::OkStatus();
  }));
  if (records != streams.size()) {
    return absl::DataLossError(absl::StrCat("verify: ", streams.size(),
                                            " streams in RAM, ", records,
                                            " records in storage"));
  }
  for (const auto& stream : streams) {
    const StreamSpec& spec = stream->spec();
    RETURN_IF_ERROR(make_resident(stream));  // compares what it loads
    std::vector<LayerSnapshot> layers;
    uint64_t incarnation;
    {
      ReaderMutexLock lock(&stream->lifecycle_mutex());
      incarnation = stream->incarnation();
      for (uint32_t l = 0; l < spec.layers; ++l) {
        layers.push_back(stream->layer(l).Snapshot());
      }
    }
    const size_t es = ElementSize(spec.storage_dtype);
    const size_t key_bytes = spec.key_dim * es,
                 value_bytes = spec.value_dim * es;
    std::vector<int64_t> expected(spec.layers);
    for (uint32_t l = 0; l < spec.layers; ++l)
      expected[l] = layers[l].first_position;
    RETURN_IF_ERROR(storage.ScanStream(
        incarnation,
        [&](uint32_t layer, int64_t position,
            absl::string_view row) -> absl::Status {
          const std::string where =
              absl::StrCat("verify: stream '", stream->id(), "' layer ", layer,
                           " position ", position);
          if (layer >= spec.layers || position != expected[layer] ||
              position >= layers[layer].next_position) {
            return absl::DataLossError(absl::StrCat(
                where, ": in storage but not in RAM at that place"));
          }
          ++expected[layer];
          const Block& b = layers[layer].BlockOf(position);
          const size_t r = static_cast<size_t>(position - b.first_position());
          for (uint32_t h = 0; h < spec.heads; ++h) {
            if (std::memcmp(row.data() + h * key_bytes,
                            b.keys(h) + r * key_bytes, key_bytes) != 0 ||
                std::memcmp(
                    row.data() + spec.heads * key_bytes + h * value_bytes,
                    b.values(h) + r * value_bytes, value_bytes) != 0) {
              return absl::DataLossError(absl::StrCat(
                  where, " head ", h, ": RAM and storage bytes differ"));
            }
          }
          return absl::OkStatus();
        }));
    for (uint32_t l = 0; l < spec.layers; ++l) {
      if (expected[l] != layers[l].next_position) {
        return absl::DataLossError(absl::StrCat(
            "verify: stream '", stream->id(), "' layer ", l,
            ": RAM holds up to position ", layers[l].next_position - 1,
            ", storage up to ", expected[l] - 1));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace knnmem
