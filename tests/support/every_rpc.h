// EveryRpc: one call of each RPC of the Memory service on one stream, for
// tests of who may make which call (tokens, tenants).
#ifndef KNNMEM_TESTS_SUPPORT_EVERY_RPC_H_
#define KNNMEM_TESTS_SUPPORT_EVERY_RPC_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "client/memory_client.h"

namespace knnmem::testing {

using RpcCall = std::function<absl::Status(client::MemoryClient&)>;

// Each RPC (DecodeStep twice: without and with rows to append; Append
// twice: unary and over AppendStream) on `stream_id`, a stream of one
// layer, one head and dims 4 and 4, named; each returns the call's status
// (a DecodeStep's, its one step's). ListStreams takes no id.
std::vector<std::pair<std::string, RpcCall>> EveryRpc(
    const std::string& stream_id);
// True for the names of EveryRpc's calls that write.
bool IsWriteRpc(const std::string& name);

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_EVERY_RPC_H_
