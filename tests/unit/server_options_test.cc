#include "server/service/server_options.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"

namespace knnmem {
namespace {

TEST(ServerOptionsTest, DefaultsAreTheEmbeddedOnes) {
  auto o = ParseServerOptions({});
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->listen, "127.0.0.1:50051");
  EXPECT_EQ(o->data_dir, "./data");
}

TEST(ServerOptionsTest, ParsesBothFlagForms) {
  auto o = ParseServerOptions({"--listen=0.0.0.0:1", "--insecure", "--data-dir",
                               "/x", "--shards=4", "--workers", "3",
                               "--max-message-bytes=1048576",
                               "--metrics-address", "0.0.0.0:0"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->listen, "0.0.0.0:1");
  EXPECT_EQ(o->data_dir, "/x");
  EXPECT_EQ(o->shards, 4);
  EXPECT_EQ(o->workers, 3);
  EXPECT_EQ(o->metrics_address, "0.0.0.0:0");
  EXPECT_TRUE(o->insecure);
  EXPECT_EQ(o->max_message_bytes, 1048576u);
  EXPECT_EQ(o->metrics_address, "0.0.0.0:0");
  EXPECT_TRUE(o->insecure);
}

TEST(ServerOptionsTest, MemoryBudgetTakesByteUnits) {
  auto o = ParseServerOptions({"--memory-budget=16GiB"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->memory_budget_bytes, uint64_t{16} << 30);
  EXPECT_EQ(*ParseBytes("512MiB"), uint64_t{512} << 20);
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("3KiB"), 3072u);
  EXPECT_EQ(ParseServerOptions({})->memory_budget_bytes, 0u);
  for (const char* bad :
       {"--memory-budget=lots", "--memory-budget=GiB", "--memory-budget=-1GiB",
        "--memory-budget=99999999999TiB"}) {
    auto r = ParseServerOptions({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(r.status().message(), "--memory-budget"))
        << r.status();
  }
}

TEST(ServerOptionsTest, NonLoopbackListenNeedsInsecure) {
  auto o = ParseServerOptions({"--listen=0.0.0.0:50051"});
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(o.status().message(),
                               "--listen: 0.0.0.0:50051 is not a loopback"))
      << o.status();
  EXPECT_TRUE(IsLoopback("127.0.0.1:0"));
  EXPECT_TRUE(IsLoopback("localhost:1"));
  EXPECT_TRUE(IsLoopback("[::1]:5"));
  EXPECT_FALSE(IsLoopback("[::]:5"));
  EXPECT_FALSE(IsLoopback("10.0.0.1:5"));
}

TEST(ServerOptionsTest, BadValuesNameTheFlag) {
  EXPECT_EQ(ParseServerOptions({"--shards=0"}).status().message(),
            "--shards: '0' is not an integer in [1, 4096]");
  EXPECT_EQ(ParseServerOptions({"--bogus=1"}).status().message(),
            "unknown flag --bogus");
  EXPECT_EQ(ParseServerOptions({"--listen", "nohost"}).status().message(),
            "--listen: 'nohost' is not HOST:PORT");
  EXPECT_EQ(ParseServerOptions({"--workers"}).status().message(),
            "--workers: missing value");
}

TEST(ServerOptionsTest, DiskReserveTakesByteUnits) {
  EXPECT_EQ(ParseServerOptions({})->disk_reserve_bytes, uint64_t{128} << 20);
  auto o = ParseServerOptions({"--disk-reserve", "1GiB"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->disk_reserve_bytes, uint64_t{1} << 30);
  EXPECT_EQ(ParseServerOptions({"--disk-reserve=0"})->disk_reserve_bytes, 0u);
  auto bad = ParseServerOptions({"--disk-reserve=much"});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "--disk-reserve"))
      << bad.status();
}

TEST(ServerOptionsTest, TransportMemoryHoldsOneLargestRequest) {
  auto o = ParseServerOptions(
      {"--transport-memory", "512MiB", "--max-connection-age-seconds", "0"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->transport_memory_bytes, uint64_t{512} << 20);
  EXPECT_EQ(o->max_connection_age_seconds, 0u);
  EXPECT_EQ(o->max_connection_idle_seconds, 900u);      // the default
  o = ParseServerOptions({"--transport-memory", "0"});  // no limit
  ASSERT_TRUE(o.ok()) << o.status();
  o = ParseServerOptions(
      {"--transport-memory", "64MiB", "--max-message-bytes", "134217728"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(o.status().message().find("--transport-memory"), std::string::npos)
      << o.status();
  EXPECT_NE(o.status().message().find("--max-message-bytes"), std::string::npos)
      << o.status();
  o = ParseServerOptions({"--max-connection-idle-seconds", "soon"});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("--max-connection-idle-seconds"),
            std::string::npos)
      << o.status();
}

// Every flag ServerFlags registers is documented in --help and accepted
// with a value of its kind; the table below must name each (a new flag
// fails here until it has one).
TEST(ServerOptionsTest, HelpDocumentsEveryFlag) {
  const std::string help = ServerHelp();
  // Each flag with a value it accepts, and the flags it needs beside it.
  const std::map<std::string, std::vector<std::string>> accepted = {
      {"--listen", {"127.0.0.1:1"}},
      {"--data-dir", {"d"}},
      {"--shards", {"4"}},
      {"--workers", {"2"}},
      {"--max-message-bytes", {"4096"}},
      {"--max-inflight-requests", {"8"}},
      {"--max-inflight-bytes", {"1024"}},
      {"--transport-memory", {"1GiB"}},
      {"--max-connection-idle-seconds", {"60"}},
      {"--max-connection-age-seconds", {"600"}},
      {"--max-connection-age-grace-seconds", {"60"}},
      {"--metrics-address", {"none"}},
      {"--auth-token-file", {"t"}},
      {"--tls-cert", {"c", "--tls-key", "k"}},
      {"--tls-key", {"k", "--tls-cert", "c"}},
      {"--tls-client-ca", {"ca", "--tls-cert", "c", "--tls-key", "k"}},
      {"--memory-budget", {"1GiB"}},
      {"--disk-reserve", {"1GiB"}},
      {"--wal-recovery", {"absolute-consistency"}},
      {"--descriptor-reserve", {"16"}},
      {"--tier-int8-codes", {}},
      {"--exact-int8-codes", {}},
      {"--stream-ttl-seconds", {"5"}},
      {"--drain-seconds", {"1"}},
      {"--grace-seconds", {"1"}},
      {"--insecure", {}},
      {"--help", {}}};
  ServerOptions defaults;
  const std::vector<FlagSet::Registered> registered =
      ServerFlags(&defaults).registered();
  for (const FlagSet::Registered& flag : registered) {
    const std::string name = "--" + flag.name;
    EXPECT_NE(help.find("\n  " + name), std::string::npos) << name;
    const auto it = accepted.find(name);
    ASSERT_NE(it, accepted.end()) << name << ": give it a value here";
    std::vector<std::string> args = {name};
    args.insert(args.end(), it->second.begin(), it->second.end());
    const auto parsed = ParseServerOptions(args);
    EXPECT_TRUE(parsed.ok()) << name << ": " << parsed.status();
  }
  EXPECT_EQ(registered.size(), accepted.size());  // none that is gone
}

}  // namespace
}  // namespace knnmem
