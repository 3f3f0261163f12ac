// Server: one running knnmem server and everything it wires together: the
// worker pool, the store opened on the data dir, metrics and their HTTP
// endpoint, tokens and TLS, the gRPC server on its port, and the
// maintenance thread (idle streams, recovery from storage errors, health).
// main() keeps what belongs to a process (signals, allocator settings, exit
// codes); tests can start and stop one in process.
#ifndef KNNMEM_SERVER_SERVICE_SERVER_H_
#define KNNMEM_SERVER_SERVICE_SERVER_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "base/worker_pool.h"
#include "server/service/memory_service.h"
#include "server/service/metrics.h"
#include "server/service/server_options.h"
#include "server/service/token_file.h"
#include "server/store/memory_store.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace knnmem {

class Server {
 public:
  // How long Shutdown waits, once no call is running, for gRPC to close
  // the connections before it returns anyway.
  static constexpr absl::Duration kLinger = absl::Milliseconds(250);
  // After the grace, calls still running are told to stop (UNAVAILABLE);
  // gRPC cancels what is left this much later.
  static constexpr absl::Duration kAbortTime = absl::Seconds(1);

  // Opens the store on options.data_dir, starts the metrics endpoint (unless
  // "none") and serves on options.listen. Errors: the store's (a data dir it
  // cannot open or of an old layout), NOT_FOUND / INVALID_ARGUMENT naming
  // the flag of an unreadable token or TLS file, UNAVAILABLE naming the
  // address when the metrics endpoint or the gRPC port cannot be bound (in
  // use by another process: a second server on one address refuses).
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      const ServerOptions& options);
  // Shutdown(zero, zero) unless it ran; then waits for gRPC to let go of
  // idle connections (up to the client's poll, seconds): a process that is
  // exiting can skip it.
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The gRPC port (the actual one when options.listen asked for port 0).
  int port() const { return port_; }
  // HOST:PORT of the metrics endpoint, or "off".
  const std::string& metrics_address() const { return metrics_address_; }
  // "serving on HOST:PORT (metrics on ..., data dir ..., N streams
  // recovered in M ms, W workers, S shards)": what main prints when ready.
  std::string Describe() const;

  // Stops serving, in order: health reports NOT_SERVING for `drain` while
  // calls are still served; then new calls are refused (UNAVAILABLE) and
  // the calls in flight get until `grace` to finish, after which they are
  // ended with UNAVAILABLE as soon as each can stop (gRPC cancels any left
  // kAbortTime later); once none is running, the reaper and the worker pool
  // stop and the store closes, with everything acknowledged durable. Returns
  // then, without waiting for idle client connections to acknowledge the
  // server's GOAWAY. Runs once; later calls return at once.
  void Shutdown(absl::Duration drain, absl::Duration grace);

  // Reads --auth-token-file again (main calls it on SIGHUP) and says so on
  // stdout: its tokens, tenants and quotas hold from the next call on. A
  // file that no longer parses leaves the old set in force and returns the
  // error naming the file and line; FAILED_PRECONDITION without the flag.
  absl::Status ReloadTokens();

 private:
  explicit Server(const ServerOptions& options);
  absl::Status Open();
  ServerSample Sample() const;
  // The maintenance thread: idle streams, freed memory, storage recovery
  // and health; each once a second.
  void Maintain();
  void TrimFreedMemory();
  void ResumeWrites();
  // Sets health (unless draining, whose NOT_SERVING stays) and says so.
  void SetServing(bool serving, const char* why);

  // Destroyed in reverse: the gRPC server before the service, the service
  // before the metrics it records in, the metrics (whose scrapes sample the
  // store and the pool) before the store and the pool.
  const ServerOptions options_;
  WorkerPool pool_;
  // Guards store_ (and service_ while it is set) for the metrics sampler,
  // which runs on scrapes.
  mutable Mutex store_mu_;
  std::unique_ptr<MemoryStore> store_ ABSL_GUARDED_BY(store_mu_);
  MemoryStore* core_ = nullptr;  // store_ while open, for the serving path
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<TokenFile> tokens_;  // set before serving, then constant
  std::unique_ptr<MemoryService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  std::string metrics_address_ = "off";
  double recover_ms_ = 0;
  size_t streams_recovered_ = 0;
  absl::Notification stopping_;
  std::atomic<bool> draining_{false};  // health is Shutdown's from then on
  std::thread maintenance_;
  // Used by the maintenance thread only.
  int64_t ram_high_ = 0;  // the streams' RAM at its highest since a trim
  int64_t last_ram_ = 0;  // and at the last tick
  bool serving_ = true;
  std::string last_resume_error_;
  std::thread grpc_shutdown_;  // gRPC's own, which waits for idle clients
  absl::Notification grpc_stopped_;
  bool shut_down_ = false;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_SERVER_H_
