#include "client/sharded_client.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/stable_hash.h"

namespace knnmem::client {
namespace {

absl::Status Bad(absl::string_view entry, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--servers: '", entry, "' ", why));
}

}  // namespace

absl::StatusOr<std::vector<ServerAddress>> ParseServerList(
    const std::string& spec) {
  std::vector<ServerAddress> out;
  for (absl::string_view entry :
       absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    entry = absl::StripAsciiWhitespace(entry);
    const size_t open = entry.find('{');
    std::vector<std::string> expanded;
    if (open == absl::string_view::npos) {
      expanded.emplace_back(entry);
    } else {
      const size_t close = entry.find('}', open);
      const size_t dots = entry.find("..", open);
      int lo = 0, hi = 0;
      if (close == absl::string_view::npos || dots == absl::string_view::npos ||
          dots > close ||
          !absl::SimpleAtoi(entry.substr(open + 1, dots - open - 1), &lo) ||
          !absl::SimpleAtoi(entry.substr(dots + 2, close - dots - 2), &hi) ||
          lo < 0 || hi < lo || hi - lo > 1000) {
        return Bad(entry, "has a range that is not {A..B} with 0 <= A <= B");
      }
      for (int i = lo; i <= hi; ++i) {
        expanded.push_back(
            absl::StrCat(entry.substr(0, open), i, entry.substr(close + 1)));
      }
    }
    for (const std::string& server : expanded) {
      ServerAddress a;
      const size_t eq = server.find('=');
      a.address = eq == std::string::npos ? server : server.substr(eq + 1);
      a.name = eq == std::string::npos ? server : server.substr(0, eq);
      const size_t colon = a.address.rfind(':');
      int port = 0;
      if (a.name.empty() || colon == std::string::npos || colon == 0 ||
          !absl::SimpleAtoi(a.address.substr(colon + 1), &port) || port <= 0 ||
          port > 65535) {
        return Bad(server, "is not [NAME=]HOST:PORT");
      }
      out.push_back(std::move(a));
    }
  }
  if (out.empty())
    return absl::InvalidArgumentError("--servers: the list is empty");
  std::set<std::string> names, addresses;
  for (const ServerAddress& s : out) {
    if (!names.insert(s.name).second) return Bad(s.name, "appears twice");
    if (!addresses.insert(s.address).second)
      return Bad(s.address, "appears twice");
  }
  return out;
}

uint64_t RendezvousWeight(const std::string& stream_id,
                          const std::string& name) {
  return MixedHash64(absl::StrCat(name, "\n", stream_id));
}

ShardedClient::ShardedClient(std::vector<ServerAddress> servers,
                             const MemoryClient::Options& options)
    : servers_(std::move(servers)) {
  for (const ServerAddress& s : servers_) {
    clients_.push_back(MemoryClient::Connect(s.address, options));
  }
}

size_t ShardedClient::RendezvousIndex(const std::string& stream_id) const {
  size_t best = 0;
  uint64_t best_weight = 0;
  for (size_t i = 0; i < servers_.size(); ++i) {
    const uint64_t w = RendezvousWeight(stream_id, servers_[i].name);
    if (i == 0 || w > best_weight) {
      best = i;
      best_weight = w;
    }
  }
  return best;
}

size_t ShardedClient::ServerIndexOf(const std::string& stream_id) const {
  {
    MutexLock lock(&mu_);
    auto it = pins_.find(stream_id);
    if (it != pins_.end()) return it->second;
  }
  return RendezvousIndex(stream_id);
}

absl::StatusOr<v1::CreateStreamResponse> ShardedClient::CreateStream(
    const std::string& stream_id, const v1::StreamSpec& spec) {
  const size_t index = ServerIndexOf(stream_id);
  absl::StatusOr<v1::CreateStreamResponse> r =
      clients_[index]->CreateStream(stream_id, spec);
  if (r.ok()) {
    MutexLock lock(&mu_);
    pins_[stream_id] = index;
  }
  return r;
}

absl::StatusOr<size_t> ShardedClient::Locate(const std::string& stream_id) {
  for (size_t i = 0; i < clients_.size(); ++i) {
    const absl::Status found = clients_[i]->GetStream(stream_id).status();
    if (found.code() == absl::StatusCode::kUnauthenticated ||
        found.code() == absl::StatusCode::kPermissionDenied) {
      return found;
    }
    if (found.ok()) {
      MutexLock lock(&mu_);
      pins_[stream_id] = i;
      return i;
    }
  }
  return absl::NotFoundError(absl::StrCat("stream_id: stream '", stream_id,
                                          "' is on no reachable server"));
}

absl::StatusOr<std::vector<v1::StreamInfo>> ShardedClient::ListStreams() {
  std::vector<v1::StreamInfo> all;
  for (size_t i = 0; i < clients_.size(); ++i) {
    absl::StatusOr<std::vector<v1::StreamInfo>> some =
        clients_[i]->ListStreams();
    if (!some.ok()) {
      return absl::Status(
          some.status().code(),
          absl::StrCat(servers_[i].address, ": ", some.status().message()));
    }
    for (auto& s : *some) all.push_back(std::move(s));
  }
  return all;
}

absl::Status ShardedClient::DeleteStream(const std::string& stream_id) {
  absl::Status s = For(stream_id).DeleteStream(stream_id);
  if (s.ok()) {
    MutexLock lock(&mu_);
    pins_.erase(stream_id);
  }
  return s;
}

absl::StatusOr<std::vector<StepResult>> ShardedClient::DecodeStep(
    absl::Span<const Step> steps, const StepParams& params) {
  // Per server: its steps' indices into `steps`, its request and answer.
  struct ServerCall {
    std::vector<size_t> steps;
    v1::DecodeStepRequest request;
    v1::DecodeStepResponse response;
    absl::Status status;
  };
  std::vector<ServerCall> calls(clients_.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    calls[ServerIndexOf(steps[i].stream_id)].steps.push_back(i);
  }
  for (ServerCall& call : calls) {
    if (call.steps.empty()) continue;
    std::vector<Step> mine;
    mine.reserve(call.steps.size());
    for (size_t i : call.steps) mine.push_back(steps[i]);
    absl::StatusOr<v1::DecodeStepRequest> request =
        MakeDecodeStepRequest(mine, params);
    if (!request.ok()) return request.status();
    call.request = *std::move(request);
  }
  // One call per server, all in flight at once.
  Mutex mu;
  size_t pending = 0;
  for (const ServerCall& call : calls) pending += call.steps.empty() ? 0 : 1;
  for (size_t s = 0; s < calls.size(); ++s) {
    ServerCall& call = calls[s];
    if (call.steps.empty()) continue;
    clients_[s]->StartDecodeStep(call.request, &call.response,
                                 [&mu, &pending, &call](absl::Status status) {
                                   MutexLock lock(&mu);
                                   call.status = std::move(status);
                                   --pending;
                                 });
  }
  {
    MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](size_t* p) { return *p == 0; }, &pending));
  }
  std::vector<StepResult> out(steps.size());
  for (size_t s = 0; s < calls.size(); ++s) {
    ServerCall& call = calls[s];
    absl::Status status = call.status;
    if (status.ok() &&
        call.response.results_size() != static_cast<int>(call.steps.size())) {
      status = absl::DataLossError(
          absl::StrCat("results: ", call.response.results_size(), " for ",
                       call.steps.size(), " steps"));
    }
    for (size_t j = 0; j < call.steps.size(); ++j) {
      StepResult& o = out[call.steps[j]];
      if (!status.ok()) {
        // The server failed the whole call: each of its steps says so.
        o.status = absl::Status(
            status.code(),
            absl::StrCat(servers_[s].address, ": ", status.message()));
        continue;
      }
      o = DecodeStepResult(call.response.results(static_cast<int>(j)));
      // The message names the step by its index in the server's call:
      // name the caller's instead.
      const std::string theirs = absl::StrCat("steps[", j, "]");
      if (!o.status.ok() && absl::StartsWith(o.status.message(), theirs)) {
        o.status = absl::Status(
            o.status.code(),
            absl::StrCat("steps[", call.steps[j], "]",
                         o.status.message().substr(theirs.size())));
      }
    }
  }
  return out;
}

}  // namespace knnmem::client
