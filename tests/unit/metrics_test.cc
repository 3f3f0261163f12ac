#include "server/service/metrics.h"

#include <gtest/gtest.h>

namespace knnmem {
namespace {

TEST(MetricsTest, ScrapeSamplesGaugesAndCountsRequestsByMethodAndCode) {
  int samples = 0;
  Metrics m([&samples] {
    ++samples;
    ServerSample s;
    s.streams = 3;
    s.rocksdb_write_stall_micros = 2500000;
    s.storage_background_errors = 2;
    s.storage_writes_stopped = true;
    return s;
  });
  m.RecordRequest(Rpc::kSearch, absl::StatusCode::kOk, 0.002);
  m.RecordRequest(Rpc::kSearch, absl::StatusCode::kInvalidArgument, 0.0001);
  m.AddAppendedVectors(42);
  const std::string text = m.Scrape();
  EXPECT_EQ(samples, 1);
  EXPECT_NE(text.find("knnmem_requests_total{code=\"OK\",method=\"Search\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("knnmem_requests_total{code=\"INVALID_ARGUMENT\",method="
                      "\"Search\"} 1"),
            std::string::npos);
  EXPECT_NE(
      text.find("knnmem_request_duration_seconds_count{method=\"Search\"} 2"),
      std::string::npos);
  EXPECT_NE(text.find("knnmem_streams 3"), std::string::npos);
  EXPECT_NE(text.find("knnmem_appended_vectors_total 42"), std::string::npos);
  EXPECT_NE(text.find("knnmem_rocksdb_write_stall_seconds_total 2.5"),
            std::string::npos);
  EXPECT_NE(text.find("knnmem_storage_background_errors_total 2"),
            std::string::npos);
  EXPECT_NE(text.find("knnmem_storage_writes_stopped 1"), std::string::npos);
  // The stall counter only grows by the delta on the next scrape.
  EXPECT_NE(m.Scrape().find("knnmem_rocksdb_write_stall_seconds_total 2.5"),
            std::string::npos);
}

TEST(MetricsTest, ServeOnPortZeroPicksAPortAndABadAddressIsNamed) {
  Metrics m([] { return ServerSample(); });
  absl::StatusOr<int> port = m.Serve("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_GT(*port, 0);
  Metrics other([] { return ServerSample(); });
  absl::StatusOr<int> clash = other.Serve("127.0.0.1:" + std::to_string(*port));
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(clash.status().message().find("--metrics-address"),
            std::string::npos);
}

}  // namespace
}  // namespace knnmem
