// RawHttp2Client: a minimal HTTP/2 client over plain TCP that sends gRPC
// requests byte by byte as a misbehaving client would (a message declared
// large and sent slowly, or never finished), which no gRPC client can be made
// to do. It speaks just enough HTTP/2 for that: the preface, SETTINGS and
// their acknowledgements, PING acknowledgements, the server's flow-control
// windows (it never sends beyond them), and HEADERS with literal fields. It
// does not decode the server's headers: it reports how a stream ended
// (trailers, RST_STREAM, GOAWAY or the connection closing).
#ifndef KNNMEM_TESTS_SUPPORT_RAW_HTTP2_H_
#define KNNMEM_TESTS_SUPPORT_RAW_HTTP2_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace knnmem::testing {

class RawHttp2Client {
 public:
  // How a stream stands.
  struct StreamState {
    bool ended = false;  // the server ended it (trailers or RST_STREAM)
    bool reset = false;  // by RST_STREAM, with this code
    uint32_t reset_code = 0;
    int64_t window = 0;  // bytes the server lets us send on it now
  };

  // Connects to 127.0.0.1:`port` and sends the preface and SETTINGS.
  static absl::StatusOr<std::unique_ptr<RawHttp2Client>> Connect(int port);
  ~RawHttp2Client();

  RawHttp2Client(const RawHttp2Client&) = delete;
  RawHttp2Client& operator=(const RawHttp2Client&) = delete;

  // Opens a gRPC call to `path` ("/package.Service/Method") on a new stream:
  // HEADERS without END_STREAM. Returns the stream id.
  uint32_t StartCall(std::string_view path);
  // The 5-byte gRPC message prefix declaring a message of `length` bytes.
  static std::string MessagePrefix(uint32_t length);
  // Sends `bytes` as DATA on `stream` as fast as the server's windows allow,
  // until all are sent, the stream or connection ends, or `timeout` passes
  // with the windows closed. Returns the bytes sent.
  size_t Send(uint32_t stream, std::string_view bytes, absl::Duration timeout);
  // Reads and answers frames for `timeout` or until `stream` ends or the
  // connection closes, whichever comes first.
  void Pump(uint32_t stream, absl::Duration timeout);

  StreamState state(uint32_t stream) const;
  // The server sent GOAWAY, or closed the connection.
  bool goaway() const { return goaway_; }
  bool closed() const { return closed_; }

 private:
  explicit RawHttp2Client(int fd) : fd_(fd) {}
  void Queue(uint8_t type, uint8_t flags, uint32_t stream,
             std::string_view payload);
  // Writes what is queued and reads what arrives, up to `deadline`; returns
  // after the first progress of either. False once the connection closed.
  bool Poll(absl::Time deadline);
  void ReadFrames();
  void OnFrame(uint8_t type, uint8_t flags, uint32_t stream,
               std::string_view payload);

  int fd_;
  std::string out_, in_;
  int64_t connection_window_ = 65535;
  int64_t initial_stream_window_ = 65535;
  uint32_t next_stream_ = 1;
  std::map<uint32_t, StreamState> streams_;
  bool goaway_ = false;
  bool closed_ = false;
};

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_RAW_HTTP2_H_
