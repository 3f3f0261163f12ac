#include "server/storage/rocksdb_options.h"

#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/statistics.h>

namespace knnmem {

rocksdb::Options StorageOptions(size_t write_buffer_bytes, int memtables) {
  rocksdb::Options options;
  options.create_if_missing = true;
  // Vectors do not compress; spend no CPU on trying.
  options.compression = rocksdb::kNoCompression;
  options.IncreaseParallelism(2);
  // Compactions yield the CPU to searches and appends (nice 19): on two
  // cores a compaction running beside an Attend lengthened its tail. Flushes
  // keep normal priority, as a starved flush stops writes.
  options.env
      ->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW,
                                   rocksdb::CpuPriority::kLow)
      .PermitUncheckedError();
  options.max_background_jobs = 2;
  options.write_buffer_size = write_buffer_bytes;
  options.max_write_buffer_number = memtables;
  // Tickers only (stall time); no histograms on the write path.
  options.statistics = rocksdb::CreateDBStatistics();
  options.statistics->set_stats_level(
      rocksdb::StatsLevel::kExceptHistogramOrTimers);
  return options;
}

}  // namespace knnmem
