// A real Prometheus server (Debian's) scrapes a real knnmem-server under a
// short load; its HTTP API must report the request counter and the latency
// histogram that match the work the test did. Also: every metric name the
// dashboard and alert rules use is exported (tests/deploy/check-deploy.sh).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "base/json.h"
#include "base/subprocess.h"
#include "tests/support/http_get.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Debian's prometheus as a child process, scraping `target` every second.
class PrometheusProcess {
 public:
  PrometheusProcess(const TempDir& dir, const std::string& target) {
    const std::string config = dir.Sub("prometheus.yml");
    std::ofstream(config) << "global:\n  scrape_interval: 1s\n"
                          << "scrape_configs:\n  - job_name: knnmem\n"
                          << "    static_configs:\n      - targets: ['"
                          << target << "']\n";
    address_ = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
    std::vector<std::string> args = {
        "/usr/bin/prometheus", "--config.file=" + config,
        "--storage.tsdb.path=" + dir.Sub("tsdb"),
        "--web.listen-address=" + address_, "--log.level=warn"};
    SubprocessOptions options;
    options.output_file = dir.Sub("prometheus.log");
    options.death_signal = SIGKILL;
    absl::StatusOr<std::unique_ptr<Subprocess>> started =
        Subprocess::Start(std::move(args), options);
    EXPECT_TRUE(started.ok()) << started.status();
    if (started.ok()) process_ = *std::move(started);
  }
  ~PrometheusProcess() {
    if (process_ == nullptr) return;
    process_->Signal(SIGTERM);
    process_->Wait();
  }
  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<Subprocess> process_;
  std::string address_;
};

// The scalar value of the first series of an instant query, or -1.
double Query(const std::string& prometheus, const std::string& promql) {
  std::string encoded;
  for (unsigned char c : promql) {
    if (std::isalnum(c) || c == '_' || c == '.') {
      encoded += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      encoded += buf;
    }
  }
  const HttpResponse r = HttpGet(prometheus, "/api/v1/query?query=" + encoded);
  if (r.status != 200) return -1;
  // {"status":"success","data":{"result":[{"metric":{..},"value":[T,"V"]}]}}
  // with an empty result until the first scrape.
  absl::StatusOr<Json> answer = ParseJson(r.body);
  if (!answer.ok() || !answer->contains("data")) return -1;
  const Json& result = answer->at("data").value("result", Json::array());
  if (!result.is_array() || result.empty()) return -1;
  return std::stod(result.at(0).at("value").at(1).get<std::string>());
}

// Waits for Prometheus to scrape: polls the query every 100 ms until it
// returns `want`, for at most 60 s. (Scrapes are timer-driven in another
// process; there is no event to block on.)
double QueryUntil(const std::string& prometheus, const std::string& promql,
                  double want) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  double got = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    got = Query(prometheus, promql);
    if (got == want) return got;
    poll(nullptr, 0, 100);
  }
  return got;
}

class PrometheusTest : public ServerFixture {};

TEST_F(PrometheusTest, ScrapedRequestCounterAndLatencyHistogramMatchTheLoad) {
  ASSERT_TRUE(client_->CreateStream("p", MakeSpec(1, 2, 32, 32, 10000)).ok());
  int64_t next = 0;
  for (int i = 0; i < 23; ++i) {
    next = AppendRandom("p", 0, next, 64, 2, 32, 32, DType::kFloat32, nullptr)
               ->next_position();
  }
  std::vector<float> q(8 * 2 * 32, 0.5f);
  for (int i = 0; i < 17; ++i)
    ASSERT_TRUE(client_->Search("p", 0, q, 8, 2, 4).ok());
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(client_->GetStream("missing").ok());

  PrometheusProcess prometheus(dir_, server_->metrics_address());
  const std::string& p = prometheus.address();
  EXPECT_EQ(
      QueryUntil(p, "knnmem_requests_total{method=\"Append\",code=\"OK\"}", 23),
      23);
  EXPECT_EQ(Query(p, "knnmem_requests_total{method=\"Search\",code=\"OK\"}"),
            17);
  EXPECT_EQ(
      Query(p,
            "knnmem_requests_total{method=\"GetStream\",code=\"NOT_FOUND\"}"),
      4);
  EXPECT_EQ(
      Query(p, "knnmem_request_duration_seconds_count{method=\"Search\"}"), 17);
  EXPECT_EQ(Query(p,
                  "knnmem_request_duration_seconds_bucket{method=\"Search\",le="
                  "\"+Inf\"}"),
            17);
  EXPECT_GT(Query(p, "knnmem_request_duration_seconds_sum{method=\"Append\"}"),
            0);
  const double p99 =
      Query(p,
            "histogram_quantile(0.99, "
            "knnmem_request_duration_seconds_bucket{method=\"Search\"})");
  EXPECT_GT(p99, 0);
  EXPECT_LT(p99, 30);
  EXPECT_EQ(Query(p, "knnmem_appended_vectors_total"), 23 * 64 * 2);
  EXPECT_EQ(Query(p, "up{job=\"knnmem\"}"), 1);
}

TEST_F(PrometheusTest, DashboardAndAlertsUseOnlyMetricsTheServerExports) {
  absl::StatusOr<CommandResult> check = RunCommand(
      {std::string(KNNMEM_SOURCE_DIR) + "/tests/deploy/check-deploy.sh",
       "http://" + server_->metrics_address() + "/metrics"},
      /*merge_stderr=*/true);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 0) << check->output;
}

}  // namespace
}  // namespace knnmem::testing
