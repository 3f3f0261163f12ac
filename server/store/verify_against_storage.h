// VerifyAgainstStorage: checks that the streams in RAM are what RocksDB
// holds, for tests and offline checks (the crash oracle), not the request
// path: it reads the whole database.
#ifndef KNNMEM_SERVER_STORE_VERIFY_AGAINST_STORAGE_H_
#define KNNMEM_SERVER_STORE_VERIFY_AGAINST_STORAGE_H_

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "server/storage/storage.h"
#include "server/store/stream.h"
#include "server/store/stream_registry.h"

namespace knnmem {

// Checks that `storage` holds a record for each stream of `registry` and no
// other, and that every (stream, layer, head) in RAM equals what `storage`
// holds: the same positions, and byte-identical keys and values.
// `make_resident` loads a stream that is not in RAM (MemoryStore's
// EnsureResident), so what a load reads is compared too. DATA_LOSS naming
// the first difference; a storage error as it is.
absl::Status VerifyAgainstStorage(
    const StreamRegistry& registry, const Storage& storage,
    const std::function<absl::Status(const std::shared_ptr<Stream>&)>&
        make_resident);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_VERIFY_AGAINST_STORAGE_H_
