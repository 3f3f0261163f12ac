// Tenants against a real server: a tenant's token reaches only its own
// streams on every RPC and sees only them listed, without learning whether
// another tenant's stream exists; quotas refuse creates past them; the token
// file reloads on SIGHUP (a bad one keeps the old set); denied calls are
// logged by token name, never the token, and counted per tenant.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/subprocess.h"
#include "base/temp_dir.h"
#include "client/decode_step.h"
#include "client/sharded_client.h"
#include "tests/support/cli_runner.h"
#include "tests/support/every_rpc.h"
#include "tests/support/http_get.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

constexpr char kAcme[] = "acme-writer-token-0123456789";
constexpr char kAcmeReader[] = "acme-reader-token-0123456789";
constexpr char kGlobex[] = "globex-writer-token-0123456789";
constexpr char kAdmin[] = "admin-token-0123456789abcdef";
constexpr char kInitech[] = "initech-token-0123456789abcdef";

const absl::Duration kLogWait = absl::Seconds(30);

class TenantTest : public ::testing::Test {
 protected:
  void WriteTokens(const std::string& extra) {
    std::ofstream(dir_.Sub("tokens"))
        << "# tenants\n"
        << kAcme << " rw tenant=acme name=acme-writer\n"
        << kAcmeReader << " ro tenant=acme name=acme-reader\n"
        << kAdmin << " rw name=ops\n"
        << extra;
  }
  std::unique_ptr<ServerProcess> Start() {
    auto server = std::make_unique<ServerProcess>(
        dir_.Sub("data"),
        std::vector<std::string>{"--auth-token-file", dir_.Sub("tokens")});
    server->MergeStderr();
    EXPECT_TRUE(server->Start()) << server->error();
    return server;
  }
  static std::unique_ptr<client::MemoryClient> Client(
      const ServerProcess& server, const std::string& token) {
    client::MemoryClient::Options o;
    o.deadline = std::chrono::seconds(10);
    o.auth_token = token;
    return client::MemoryClient::Connect(server.address(), o);
  }
  static std::set<std::string> Listed(client::MemoryClient& client) {
    absl::StatusOr<std::vector<v1::StreamInfo>> streams = client.ListStreams();
    EXPECT_TRUE(streams.ok()) << streams.status();
    std::set<std::string> ids;
    if (streams.ok()) {
      for (const v1::StreamInfo& s : *streams) ids.insert(s.stream_id());
    }
    return ids;
  }
  static double Metric(const ServerProcess& server, const std::string& series) {
    return Sample(HttpGet(server.metrics_address(), "/metrics").body, series);
  }

  TempDir dir_;
};

TEST_F(TenantTest, ATenantReachesOnlyItsOwnStreamsOnEveryRpc) {
  WriteTokens(absl::StrCat(kGlobex, " rw tenant=globex name=globex-writer\n"));
  auto server = Start();
  auto acme = Client(*server, kAcme);
  auto globex = Client(*server, kGlobex);
  auto admin = Client(*server, kAdmin);
  const v1::StreamSpec spec = ServerFixture::MakeSpec(1, 1, 4, 4, 10);
  ASSERT_TRUE(globex->CreateStream("globex/secret", spec).ok());
  ASSERT_TRUE(admin->CreateStream("plain", spec).ok());

  // Another tenant's stream, one that does not exist, and one in no
  // namespace all answer the same PERMISSION_DENIED (but for the id):
  // nothing tells the caller which exist.
  double denied = 0;
  for (std::string id : {"globex/secret", "globex/none", "plain"}) {
    for (const auto& [name, call] : EveryRpc(id)) {
      if (name == "ListStreams") continue;
      SCOPED_TRACE(name + " " + id);
      const absl::Status s = call(*acme);
      ++denied;
      EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
      const std::string message = absl::StrReplaceAll(s.message(), {{id, "X"}});
      const std::string field = absl::StartsWith(name, "DecodeStep")
                                    ? "steps[0].stream_id: "
                                    : "stream_id: ";
      EXPECT_EQ(message,
                absl::StrCat(field,
                             "'X' is outside tenant 'acme': token "
                             "'acme-writer' reaches only ids that start "
                             "with 'acme/'"));
    }
  }
  // Its own streams answer every RPC; the admin reaches every stream.
  for (const auto& [name, call] : EveryRpc("acme/doc")) {
    EXPECT_TRUE(call(*acme).ok()) << name << ": " << call(*acme);
  }
  for (const auto& [name, call] : EveryRpc("globex/by-admin")) {
    EXPECT_TRUE(call(*admin).ok()) << name << ": " << call(*admin);
  }
  // The other tenant's stream is untouched.
  absl::StatusOr<v1::StreamInfo> secret = globex->GetStream("globex/secret");
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(secret->layers(0).entries(), 0u);

  // Listing: each tenant its own, the admin everything.
  ASSERT_TRUE(acme->CreateStream("acme/a", spec).ok());
  ASSERT_TRUE(acme->CreateStream("acme/b", spec).ok());
  EXPECT_EQ(Listed(*acme), (std::set<std::string>{"acme/a", "acme/b"}));
  EXPECT_EQ(Listed(*Client(*server, kAcmeReader)),
            (std::set<std::string>{"acme/a", "acme/b"}));
  EXPECT_EQ(Listed(*globex), (std::set<std::string>{"globex/secret"}));
  EXPECT_EQ(Listed(*admin), (std::set<std::string>{"acme/a", "acme/b",
                                                   "globex/secret", "plain"}));

  // A DecodeStep over its own and another's stream fails only the other.
  const std::vector<float> query(4, 1.0f);
  std::vector<client::Step> steps(2);
  steps[0].stream_id = "acme/a";
  steps[1].stream_id = "globex/secret";
  for (client::Step& step : steps) {
    step.heads = 1;
    step.key_dim = step.value_dim = 4;
    step.queries = query;
  }
  absl::StatusOr<std::vector<client::StepResult>> out =
      acme->DecodeStep(steps, client::StepParams());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE((*out)[0].status.ok()) << (*out)[0].status;
  EXPECT_EQ((*out)[1].status.code(), absl::StatusCode::kPermissionDenied);
  ++denied;

  EXPECT_EQ(Metric(*server,
                   "knnmem_denied_calls_total{reason=\"permission\","
                   "tenant=\"acme\"}"),
            denied);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_usage{resource=\"streams\",tenant=\"acme\"}"),
            2);
  // (EveryRpc ends with a delete: acme/doc and globex/by-admin are gone.)
  EXPECT_EQ(
      Metric(*server,
             "knnmem_tenant_usage{resource=\"streams\",tenant=\"globex\"}"),
      1);
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(TenantTest, QuotasRefuseCreatesAndTheFileReloadsOnSighup) {
  WriteTokens(absl::StrCat(kGlobex, " rw tenant=globex name=globex-writer\n",
                           "quota acme streams=2 ram=1MiB\n"));
  auto server = Start();
  auto acme = Client(*server, kAcme);
  auto admin = Client(*server, kAdmin);
  // 2 layers x 100 entries x 3 heads x (8 + 4) float32 = 28,800 bytes.
  const v1::StreamSpec spec = ServerFixture::MakeSpec(2, 3, 8, 4, 100);
  const double ram_each = 2 * 100 * 3 * (8 + 4) * 4;
  ASSERT_TRUE(acme->CreateStream("acme/a", spec).ok());
  ASSERT_TRUE(admin->CreateStream("acme/b", spec).ok());  // also charged
  for (client::MemoryClient* client : {acme.get(), admin.get()}) {
    const absl::Status third = client->CreateStream("acme/c", spec).status();
    EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted) << third;
    EXPECT_TRUE(absl::StartsWith(
        third.message(),
        "quota streams of tenant 'acme': 2; its streams hold 2 and this "
        "stream needs 1 more"))
        << third;
  }
  const v1::StreamSpec big = ServerFixture::MakeSpec(1, 1, 64, 64, 8192);
  ASSERT_TRUE(admin->DeleteStream("acme/b").ok());
  const absl::Status ram = acme->CreateStream("acme/big", big).status();
  EXPECT_TRUE(absl::StartsWith(ram.message(),
                               "quota ram_bytes of tenant "
                               "'acme': 1048576"))
      << ram;
  ASSERT_TRUE(admin->CreateStream("initech/x", spec).ok());  // no quota

  // The metrics show configured tenants only.
  EXPECT_EQ(Metric(*server,
                   "knnmem_denied_calls_total{reason=\"quota\","
                   "tenant=\"acme\"}"),
            2);
  EXPECT_EQ(Metric(*server,
                   "knnmem_denied_calls_total{reason=\"quota\","
                   "tenant=\"\"}"),
            1);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_usage{resource=\"streams\",tenant=\"acme\"}"),
            1);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_usage{resource=\"ram_bytes\","
                   "tenant=\"acme\"}"),
            ram_each);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_quota{resource=\"streams\","
                   "tenant=\"acme\"}"),
            2);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_quota{resource=\"ram_bytes\","
                   "tenant=\"acme\"}"),
            1 << 20);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_quota{resource=\"disk_bytes\","
                   "tenant=\"acme\"}"),
            -1);  // not set
  EXPECT_EQ(
      Metric(*server,
             "knnmem_tenant_usage{resource=\"streams\",tenant=\"globex\"}"),
      0);
  EXPECT_EQ(
      Metric(*server,
             "knnmem_tenant_usage{resource=\"streams\",tenant=\"initech\"}"),
      -1);

  // With tenants configured, the server exports every metric the
  // dashboard and the alert rules use, the tenant families included.
  absl::StatusOr<CommandResult> check = RunCommand(
      {"/usr/bin/python3",
       std::string(KNNMEM_SOURCE_DIR) + "/tests/deploy/deploy_check.py",
       "metrics", KNNMEM_SOURCE_DIR,
       "http://" + server->metrics_address() + "/metrics"},
      /*merge_stderr=*/true);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 0) << check->output;
  EXPECT_EQ(check->output.find("not asked of a server without tenants"),
            std::string::npos)
      << check->output;

  // Denied calls are logged by the token's name, never the token.
  const absl::Status foreign = acme->GetStream("initech/x").status();
  EXPECT_EQ(foreign.code(), absl::StatusCode::kPermissionDenied);
  std::string line;
  ASSERT_TRUE(server->AwaitOutput(
      "denied GetStream from token 'acme-writer' of tenant 'acme' "
      "(permission)",
      kLogWait, &line));
  EXPECT_EQ(line.find(kAcme), std::string::npos) << line;
  EXPECT_EQ(Client(*server, kInitech)->ListStreams().status().code(),
            absl::StatusCode::kUnauthenticated);
  ASSERT_TRUE(server->AwaitOutput(
      "denied ListStreams from an unknown token (unauthenticated)", kLogWait,
      &line));
  EXPECT_EQ(line.find(kInitech), std::string::npos) << line;

  // SIGHUP: a new quota, a new tenant, globex's token gone; no restart.
  WriteTokens(absl::StrCat(kInitech, " rw tenant=initech name=initech\n",
                           "quota acme streams=3\n"));
  server->Signal(SIGHUP);
  ASSERT_TRUE(server->AwaitOutput("reloaded", kLogWait, &line));
  EXPECT_NE(line.find("4 token(s), 2 tenant(s)"), std::string::npos) << line;
  EXPECT_TRUE(acme->CreateStream("acme/c", spec).ok());
  EXPECT_TRUE(acme->CreateStream("acme/big", big).ok());  // no ram quota now
  EXPECT_EQ(Listed(*Client(*server, kInitech)),
            (std::set<std::string>{"initech/x"}));
  EXPECT_EQ(Client(*server, kGlobex)->ListStreams().status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      Metric(*server,
             "knnmem_tenant_usage{resource=\"streams\",tenant=\"initech\"}"),
      1);
  EXPECT_EQ(
      Metric(*server,
             "knnmem_tenant_usage{resource=\"streams\",tenant=\"globex\"}"),
      -1);
  EXPECT_EQ(Metric(*server,
                   "knnmem_tenant_quota{resource=\"streams\",tenant=\"acme\"}"),
            3);
  EXPECT_EQ(
      Metric(*server,
             "knnmem_tenant_quota{resource=\"ram_bytes\",tenant=\"acme\"}"),
      -1);
  EXPECT_EQ(
      Metric(*server,
             "knnmem_denied_calls_total{reason=\"quota\",tenant=\"initech\"}"),
      0);

  // A file that does not parse keeps the set in force, and says why.
  std::ofstream(dir_.Sub("tokens")) << kAdmin << " rw\nnot a token line\n";
  server->Signal(SIGHUP);
  ASSERT_TRUE(server->AwaitOutput("SIGHUP: not reloaded", kLogWait, &line));
  EXPECT_NE(line.find(dir_.Sub("tokens") + ":2:"), std::string::npos) << line;
  EXPECT_EQ(line.find(kAdmin), std::string::npos) << line;
  EXPECT_TRUE(Client(*server, kInitech)->ListStreams().ok());
  EXPECT_EQ(acme->CreateStream("acme/d", spec).status().code(),
            absl::StatusCode::kResourceExhausted);  // streams=3 holds
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(TenantTest, TheShardedClientAndTheCliCarryATenantsToken) {
  WriteTokens("");
  auto one = Start();
  auto two = std::make_unique<ServerProcess>(
      dir_.Sub("data2"),
      std::vector<std::string>{"--auth-token-file", dir_.Sub("tokens")});
  ASSERT_TRUE(two->Start()) << two->error();
  client::MemoryClient::Options o;
  o.deadline = std::chrono::seconds(10);
  o.auth_token = kAcme;
  client::ShardedClient acme({{"a", one->address()}, {"b", two->address()}}, o);
  o.auth_token = kAdmin;
  client::ShardedClient admin({{"a", one->address()}, {"b", two->address()}},
                              o);
  const v1::StreamSpec spec = ServerFixture::MakeSpec(1, 1, 4, 4, 10);
  std::set<std::string> mine;
  for (int i = 0; i < 6; ++i) {
    const std::string id = absl::StrCat("acme/doc-", i);
    ASSERT_TRUE(acme.CreateStream(id, spec).ok()) << id;
    ASSERT_TRUE(admin.CreateStream(absl::StrCat("globex/doc-", i), spec).ok());
    mine.insert(id);
  }
  absl::StatusOr<std::vector<v1::StreamInfo>> listed = acme.ListStreams();
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::set<std::string> ids;
  for (const v1::StreamInfo& s : *listed) ids.insert(s.stream_id());
  EXPECT_EQ(ids, mine);
  // Locating another tenant's stream says why, not "on no server".
  EXPECT_EQ(acme.Locate("globex/doc-0").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(acme.Locate("acme/doc-0").status().code(), absl::StatusCode::kOk);

  // The CLI: the same token from a file.
  std::ofstream(dir_.Sub("acme.token")) << kAcme << "\n";
  const std::string cli =
      absl::StrCat("--server ", one->address(), " --token-file ",
                   dir_.Sub("acme.token"), " ");
  const CliOutput list = RunCli(cli + "list");
  EXPECT_EQ(list.status, 0);
  EXPECT_EQ(list.out.find("globex/"), std::string::npos) << list.out;
  const CliOutput foreign = RunCli(cli + "delete globex/doc-0", true);
  EXPECT_EQ(foreign.status, 1);
  EXPECT_NE(foreign.out.find("PERMISSION_DENIED"), std::string::npos)
      << foreign.out;
  EXPECT_EQ(one->Stop(), 0);
  EXPECT_EQ(two->Stop(), 0);
}

}  // namespace
}  // namespace knnmem::testing
