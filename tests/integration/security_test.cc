// Auth and TLS against a real server: bearer tokens (read-write and
// read-only), TLS, mutual TLS with a client certificate from the wrong CA,
// and the refusal to serve a non-loopback address without auth.
// Certificates are made at test time with openssl.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "absl/strings/match.h"
#include "base/subprocess.h"
#include "tests/support/cli_runner.h"
#include "tests/support/every_rpc.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

constexpr char kRw[] = "rw-token-0123456789abcdef";
constexpr char kRo[] = "ro-token-0123456789abcdef";

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Makes ca{1,2}.pem, server.{pem,key} (signed by ca1, for 127.0.0.1) and
// client{1,2}.{pem,key} (signed by ca1 and ca2) in `dir`.
void MakeCertificates(const TempDir& dir) {
  // The script is constant; the directory goes in as its argument, never
  // into the script's text.
  const std::string script =
      "set -e; cd \"$1\"\n"
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext\n"
      "for ca in ca1 ca2; do\n"
      "  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca "
      "-keyout $ca.key -out $ca.pem 2>/dev/null\n"
      "done\n"
      "sign() { openssl req -newkey rsa:2048 -nodes -subj /CN=$1 -keyout "
      "$1.key "
      "-out $1.csr 2>/dev/null; openssl x509 -req -in $1.csr -CA $2.pem -CAkey "
      "$2.key "
      "-CAcreateserial -days 2 $3 -out $1.pem 2>/dev/null; }\n"
      "sign server ca1 '-extfile san.ext'\n"
      "sign client1 ca1 ''\n"
      "sign client2 ca2 ''\n";
  std::ofstream(dir.Sub("make.sh")) << script;
  absl::StatusOr<CommandResult> made =
      RunCommand({"bash", dir.Sub("make.sh"), dir.path()},
                 /*merge_stderr=*/true);
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_EQ(made->exit_code, 0) << made->output;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeCertificates(dir_);
    std::ofstream(dir_.Sub("tokens")) << "# test tokens\n"
                                      << kRw << " rw\n"
                                      << kRo << " ro\n";
  }

  std::unique_ptr<ServerProcess> Start(std::vector<std::string> args) {
    auto server =
        std::make_unique<ServerProcess>(dir_.Sub("data"), std::move(args));
    EXPECT_TRUE(server->Start()) << server->error();
    return server;
  }

  std::unique_ptr<client::MemoryClient> Client(const ServerProcess& server,
                                               const std::string& token,
                                               const std::string& ca = "",
                                               const std::string& cert = "") {
    client::MemoryClient::Options o;
    o.deadline = std::chrono::seconds(10);
    o.auth_token = token;
    if (!ca.empty()) o.tls_root_certs = Read(dir_.Sub(ca + ".pem"));
    if (!cert.empty()) {
      o.tls_cert_chain = Read(dir_.Sub(cert + ".pem"));
      o.tls_private_key = Read(dir_.Sub(cert + ".key"));
    }
    return client::MemoryClient::Connect(server.address(), o);
  }

  TempDir dir_;
};

TEST_F(SecurityTest, TokensGuardEveryRpcButHealthAndReadOnlyTokensCannotWrite) {
  auto server = Start({"--auth-token-file", dir_.Sub("tokens")});
  auto none = Client(*server, "");
  auto wrong = Client(*server, "not-a-token-0123456789");
  auto ro = Client(*server, kRo);
  auto rw = Client(*server, kRw);
  EXPECT_TRUE(none->Health().ok());  // health needs no token
  for (const auto& [name, call] : EveryRpc("t")) {
    SCOPED_TRACE(name);
    const absl::Status no_token = call(*none);
    EXPECT_EQ(no_token.code(), absl::StatusCode::kUnauthenticated) << no_token;
    EXPECT_TRUE(absl::StartsWith(no_token.message(), "authorization"))
        << no_token;
    EXPECT_EQ(call(*wrong).code(), absl::StatusCode::kUnauthenticated);
    const absl::Status read_only = call(*ro);
    if (IsWriteRpc(name)) {
      EXPECT_EQ(read_only.code(), absl::StatusCode::kPermissionDenied)
          << read_only;
    } else {
      EXPECT_NE(read_only.code(), absl::StatusCode::kUnauthenticated)
          << read_only;
      EXPECT_NE(read_only.code(), absl::StatusCode::kPermissionDenied)
          << read_only;
    }
    EXPECT_TRUE(call(*rw).ok()) << call(*rw);
  }
  // The CLI takes the token from a file or $KNNMEM_TOKEN.
  std::ofstream(dir_.Sub("rw.token")) << kRw << "\n";
  const std::string at = "--server " + server->address() + " ";
  EXPECT_EQ(
      RunCli(at + "--token-file " + dir_.Sub("rw.token") + " list").status, 0);
  setenv("KNNMEM_TOKEN", kRo, 1);
  EXPECT_EQ(RunCli(at + "list").status, 0);
  const CliOutput read_only = RunCli(at + "delete t", true);
  EXPECT_EQ(read_only.status, 1);
  EXPECT_NE(read_only.out.find("PERMISSION_DENIED"), std::string::npos)
      << read_only.out;
  unsetenv("KNNMEM_TOKEN");
  const CliOutput denied = RunCli(at + "list", true);
  EXPECT_EQ(denied.status, 1);
  EXPECT_NE(denied.out.find("UNAUTHENTICATED"), std::string::npos)
      << denied.out;
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(SecurityTest, MutualTlsAcceptsItsCaAndRefusesAnother) {
  auto server =
      Start({"--tls-cert", dir_.Sub("server.pem"), "--tls-key",
             dir_.Sub("server.key"), "--tls-client-ca", dir_.Sub("ca1.pem")});
  EXPECT_TRUE(Client(*server, "", "ca1", "client1")->Health().ok());
  EXPECT_TRUE(Client(*server, "", "ca1", "client1")->ListStreams().ok());
  // A client certificate from another CA, no certificate, or no TLS at all.
  EXPECT_EQ(Client(*server, "", "ca1", "client2")->Health().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Client(*server, "", "ca1")->Health().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Client(*server, "")->Health().code(),
            absl::StatusCode::kUnavailable);
  // A server certificate the client does not trust.
  EXPECT_EQ(Client(*server, "", "ca2", "client1")->Health().code(),
            absl::StatusCode::kUnavailable);
  const std::string tls = "--server " + server->address() + " --tls-ca " +
                          dir_.Sub("ca1.pem") + " --tls-cert " +
                          dir_.Sub("client1.pem") + " --tls-key " +
                          dir_.Sub("client1.key") + " ";
  EXPECT_EQ(RunCli(tls + "health").out, "SERVING\n");
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(SecurityTest, TlsWithTokensServesTheWholeApi) {
  auto server =
      Start({"--tls-cert", dir_.Sub("server.pem"), "--tls-key",
             dir_.Sub("server.key"), "--auth-token-file", dir_.Sub("tokens")});
  auto rw = Client(*server, kRw, "ca1");
  for (const auto& [name, call] : EveryRpc("t"))
    EXPECT_TRUE(call(*rw).ok()) << name;
  EXPECT_EQ(Client(*server, "", "ca1")->ListStreams().status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(server->Stop(), 0);
}

TEST_F(SecurityTest, NonLoopbackAddressWithoutAuthIsRefusedUnlessInsecure) {
  ServerProcess open_to_all(dir_.Sub("data"), {}, "0.0.0.0:0");
  EXPECT_FALSE(open_to_all.Start());
  EXPECT_NE(open_to_all.error().find("exited with status 2"), std::string::npos)
      << open_to_all.error();
  const CliOutput help = RunCli("--help");
  EXPECT_NE(help.out.find("--tls-ca"), std::string::npos);
}

}  // namespace
}  // namespace knnmem::testing
