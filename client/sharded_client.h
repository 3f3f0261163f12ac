// ShardedClient: one stream, one server. Routes each stream by rendezvous
// (highest-random-weight) hashing of its id over a list of servers, so that
// adding or removing a server moves only the streams that must move, and
// keeps a stream on the server that created it for as long as this client
// lives. A server that is down makes only its own streams UNAVAILABLE.
#ifndef KNNMEM_CLIENT_SHARDED_CLIENT_H_
#define KNNMEM_CLIENT_SHARDED_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/sync.h"
#include "client/memory_client.h"

namespace knnmem::client {

// A server of the list. Streams are placed by `name`, which is the address
// unless the list names it ("shard-0=10.1.2.3:50051"), so that a shard can
// move to a new address without moving its streams.
struct ServerAddress {
  std::string name;
  std::string address;  // HOST:PORT
  bool operator==(const ServerAddress& o) const {
    return name == o.name && address == o.address;
  }
};

// Parses a server list: comma-separated [NAME=]HOST:PORT entries, each of
// which may hold one range pattern "{A..B}" (as in a Kubernetes
// StatefulSet: "knnmem-{0..2}.knnmem:50051"). INVALID_ARGUMENT naming
// "--servers" for an empty list, an entry without a port, a bad range, or a
// duplicate name or address.
absl::StatusOr<std::vector<ServerAddress>> ParseServerList(
    const std::string& spec);

// The rendezvous weight of server `name` for `stream_id`: a stable 64-bit
// hash (the same in every process and build).
uint64_t RendezvousWeight(const std::string& stream_id,
                          const std::string& name);

class ShardedClient {
 public:
  // `servers` must be non-empty and duplicate-free (see ParseServerList).
  ShardedClient(std::vector<ServerAddress> servers,
                const MemoryClient::Options& options);

  const std::vector<ServerAddress>& servers() const { return servers_; }
  // Index into servers() of the server that holds (or will hold) the stream:
  // its pin if this client created or located it, else the rendezvous winner.
  size_t ServerIndexOf(const std::string& stream_id) const;
  const ServerAddress& ServerOf(const std::string& stream_id) const {
    return servers_[ServerIndexOf(stream_id)];
  }
  // The client of the stream's server.
  MemoryClient& For(const std::string& stream_id) {
    return *clients_[ServerIndexOf(stream_id)];
  }
  MemoryClient& At(size_t index) { return *clients_[index]; }

  // Creates the stream on its rendezvous server and pins it there.
  absl::StatusOr<v1::CreateStreamResponse> CreateStream(
      const std::string& stream_id, const v1::StreamSpec& spec);
  // Asks every server for the stream (after the server list changed, say)
  // and pins it where found. NOT_FOUND if no reachable server has it;
  // UNAUTHENTICATED or PERMISSION_DENIED as soon as a server refuses the
  // token or its tenant (every server has the same tokens).
  absl::StatusOr<size_t> Locate(const std::string& stream_id);
  // Every stream on every server; UNAVAILABLE if any server is unreachable.
  absl::StatusOr<std::vector<v1::StreamInfo>> ListStreams();
  // Deletes the stream where it lives and forgets its pin.
  absl::Status DeleteStream(const std::string& stream_id);
  // One decode step of streams on any servers (decode_step.h): one
  // DecodeStep call per server, all in flight at once; the results in the
  // order of `steps`. A server that fails the whole call (down, say) fails
  // only its own steps, with its address in the message. Messages name
  // steps by their index in `steps`.
  absl::StatusOr<std::vector<StepResult>> DecodeStep(
      absl::Span<const Step> steps, const StepParams& params);

 private:
  size_t RendezvousIndex(const std::string& stream_id) const;

  const std::vector<ServerAddress> servers_;
  std::vector<std::unique_ptr<MemoryClient>> clients_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, size_t> pins_ ABSL_GUARDED_BY(mu_);
};

}  // namespace knnmem::client

#endif  // KNNMEM_CLIENT_SHARDED_CLIENT_H_
