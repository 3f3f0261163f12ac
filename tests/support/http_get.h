// HttpGet: a minimal HTTP/1.0 GET for tests (metrics scrapes, Prometheus's
// API) against HOST:PORT on this machine.
#ifndef KNNMEM_TESTS_SUPPORT_HTTP_GET_H_
#define KNNMEM_TESTS_SUPPORT_HTTP_GET_H_

#include <string>

namespace knnmem::testing {

struct HttpResponse {
  int status = 0;  // 0 when the connection failed
  std::string body;
};

// GETs `path` (with its query string, already URL-encoded) from `address`.
HttpResponse HttpGet(const std::string& address, const std::string& path);

// The value of the series `name{labels}` (labels exactly as exposed, or
// empty) in a Prometheus text scrape, or -1 when it is absent.
double Sample(const std::string& text, const std::string& series);

// Scrapes `metrics_address` until `series` is at least `value` (true), or
// gives up after 10,000 scrapes (false): for state no RPC reports, like a
// call admitted and running.
bool AwaitSampleAtLeast(const std::string& metrics_address,
                        const std::string& series, double value);

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_HTTP_GET_H_
