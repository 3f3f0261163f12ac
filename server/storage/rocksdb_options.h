// The RocksDB options of the server's storage, shared with knnmem-bench's
// bare-RocksDB peer so that the peer writes under the same settings.
#ifndef KNNMEM_SERVER_STORAGE_ROCKSDB_OPTIONS_H_
#define KNNMEM_SERVER_STORAGE_ROCKSDB_OPTIONS_H_

#include <cstddef>

namespace rocksdb {
struct Options;  // callers of StorageOptions include <rocksdb/options.h>
}  // namespace rocksdb

namespace knnmem {

// Memtables RocksDB may hold at once: one being written, the others flushing
// or waiting to. With two, a flush slowed by a busy machine stopped Appends
// (AppendStream's throughput over --quick runs ranged 0.33-0.61 of the bare
// write; 0.59-0.79 with three). A server with a memory budget keeps two: its
// budget counts them, and a small budget wants its RAM for the streams.
inline constexpr int kMemtables = 3;
inline constexpr int kBudgetedMemtables = 2;

// Options for a database of vector rows: no compression (vectors do not
// compress), two background jobs, `memtables` memtables of
// `write_buffer_bytes`, tickers without histograms.
rocksdb::Options StorageOptions(size_t write_buffer_bytes, int memtables);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORAGE_ROCKSDB_OPTIONS_H_
