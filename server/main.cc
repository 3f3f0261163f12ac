// knnmem-server: serves MemoryStore over gRPC until SIGTERM or SIGINT;
// SIGHUP reloads the token file.
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/search/exact_search.h"
#include "server/service/server.h"
#include "server/service/server_options.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "knnmem-server: %s\n", message.c_str());
  return 1;
}

// Raises the soft limit on open descriptors to the hard one: RocksDB's
// files and every client connection share it, and systemd's default soft
// limit (1024) ran out at about a thousand idle connections. Logs both.
void RaiseDescriptorLimit() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t soft = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = soft;
  }
  std::printf(
      "knnmem-server: open descriptors: soft limit %llu (was %llu), hard "
      "limit %llu\n",
      static_cast<unsigned long long>(limit.rlim_cur),
      static_cast<unsigned long long>(soft),
      static_cast<unsigned long long>(limit.rlim_max));
}

// The stop and reload signals reach main through this pipe. Threads that
// libraries start before main (OpenBLAS's pool) do not have them blocked:
// with the default action, a SIGTERM the kernel gave one of them killed the
// process instead of draining it (seen under load). With this handler,
// whichever thread takes the signal hands it to main.
int signal_pipe[2] = {-1, -1};

extern "C" void OnSignal(int signal) {
  const unsigned char number = static_cast<unsigned char>(signal);
  const int saved = errno;
  (void)!write(signal_pipe[1], &number, 1);
  errno = saved;
}

void HandleSignals(const sigset_t& signals) {
  if (pipe2(signal_pipe, O_CLOEXEC) != 0) {
    std::perror("knnmem-server: pipe2");
    std::exit(1);
  }
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int signal : {SIGTERM, SIGINT, SIGHUP}) {
    if (sigismember(&signals, signal)) sigaction(signal, &action, nullptr);
  }
}

// The next signal handed over by OnSignal. Waits in poll with a timeout,
// not in a bare read: ThreadSanitizer runs a signal's handler only when
// the interrupted call returns, and with SA_RESTART a read that the signal
// interrupted restarts without returning, so the handler never wrote the
// pipe and the server never stopped (two of make test-tsan's faults tests
// hung on it). Waking once a second lets a deferred handler run.
int NextSignal() {
  unsigned char number = 0;
  pollfd pending = {signal_pipe[0], POLLIN, 0};
  while (true) {
    if (poll(&pending, 1, /*timeout ms=*/1000) <= 0) continue;
    const ssize_t n = read(signal_pipe[0], &number, 1);
    if (n == 1) return number;
    if (n < 0 && errno == EINTR) continue;
    return SIGTERM;  // cannot happen: stop as if asked
  }
}

}  // namespace

int main(int argc, char** argv) {
  // absl's deadlock detector (on in Debian's build) keeps a graph of every
  // mutex ever locked: with thousands of streams it costs a tenth of the
  // CPU. The tests run with it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block the stop signals before the server's threads start, so that they
  // inherit the mask (no EINTR in their calls); main unblocks them once
  // serving and reads them from the pipe OnSignal writes.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);  // reloads the token file
  HandleSignals(stop_signals);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<knnmem::ServerOptions> options =
      knnmem::ParseServerOptions(knnmem::CommandLineArgs(argc, argv));
  if (!options.ok()) {
    std::fprintf(stderr, "knnmem-server: %s (see --help)\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(knnmem::ServerHelp().c_str(), stdout);
    return 0;
  }
  knnmem::PinBlasToOneThread();
  RaiseDescriptorLimit();
  if (options->memory_budget_bytes > 0) {
    // glibc gives each busy thread its own arena, and memory freed in one
    // (an unloaded stream) is not reused by another: with a budget, RSS
    // would run well past it. One arena per core keeps it close
    // (W-streams: 1.22x -> 1.08x the budget above the idle server).
    mallopt(M_ARENA_MAX, static_cast<int>(std::max(
                             2u, std::thread::hardware_concurrency())));
  }
  absl::StatusOr<std::unique_ptr<knnmem::Server>> server =
      knnmem::Server::Start(*options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  std::printf("knnmem-server: %s\n", (*server)->Describe().c_str());
  std::fflush(stdout);

  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  int signal = 0;
  while ((signal = NextSignal()) == SIGHUP) {
    // A bad file keeps the old tokens: say why, keep serving.
    if (absl::Status s = (*server)->ReloadTokens(); !s.ok()) {
      std::fprintf(stderr, "knnmem-server: SIGHUP: not reloaded: %s\n",
                   std::string(s.message()).c_str());
    }
  }
  std::printf(
      "knnmem-server: signal %d: draining for %u s, then up to %u s for "
      "in-flight calls\n",
      signal, options->drain_seconds, options->grace_seconds);
  std::fflush(stdout);
  (*server)->Shutdown(absl::Seconds(options->drain_seconds),
                      absl::Seconds(options->grace_seconds));
  std::printf("knnmem-server: stopped\n");
  std::fflush(stdout);
  // Every call has ended and the store is closed. Destroying the Server
  // would wait for idle clients to acknowledge the GOAWAY, which an idle
  // gRPC client does only on its 5 s backup poll: exit without it.
  std::_Exit(0);
}
