#include "tests/support/raw_http2.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace knnmem::testing {
namespace {

enum FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
};
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4;
constexpr uint16_t kSettingsInitialWindowSize = 0x4;
constexpr size_t kFrameHeader = 9, kMaxFrame = 16384;

uint32_t Read32(const char* p) {
  return (uint32_t{static_cast<uint8_t>(p[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(p[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(p[2])} << 8) |
         uint32_t{static_cast<uint8_t>(p[3])};
}

// An HPACK "literal header field without indexing, new name" with both
// strings raw (no Huffman); names and values here are under 127 bytes.
void AppendField(std::string* block, std::string_view name,
                 std::string_view value) {
  block->push_back('\0');
  block->push_back(static_cast<char>(name.size()));
  block->append(name);
  block->push_back(static_cast<char>(value.size()));
  block->append(value);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RawHttp2Client>> RawHttp2Client::Connect(
    int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect: ", strerror(e)));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::unique_ptr<RawHttp2Client> client(new RawHttp2Client(fd));
  client->out_ = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  client->Queue(kSettings, 0, 0, "");
  return client;
}

RawHttp2Client::~RawHttp2Client() { close(fd_); }

void RawHttp2Client::Queue(uint8_t type, uint8_t flags, uint32_t stream,
                           std::string_view payload) {
  const size_t n = payload.size();
  const char header[kFrameHeader] = {static_cast<char>(n >> 16),
                                     static_cast<char>(n >> 8),
                                     static_cast<char>(n),
                                     static_cast<char>(type),
                                     static_cast<char>(flags),
                                     static_cast<char>(stream >> 24),
                                     static_cast<char>(stream >> 16),
                                     static_cast<char>(stream >> 8),
                                     static_cast<char>(stream)};
  out_.append(header, kFrameHeader);
  out_.append(payload);
}

uint32_t RawHttp2Client::StartCall(std::string_view path) {
  const uint32_t id = next_stream_;
  next_stream_ += 2;
  std::string block;
  AppendField(&block, ":method", "POST");
  AppendField(&block, ":scheme", "http");
  AppendField(&block, ":path", path);
  AppendField(&block, ":authority", "localhost");
  AppendField(&block, "content-type", "application/grpc");
  AppendField(&block, "te", "trailers");
  Queue(kHeaders, kEndHeaders, id, block);
  streams_[id].window = initial_stream_window_;
  return id;
}

std::string RawHttp2Client::MessagePrefix(uint32_t length) {
  return std::string{'\0', static_cast<char>(length >> 24),
                     static_cast<char>(length >> 16),
                     static_cast<char>(length >> 8), static_cast<char>(length)};
}

size_t RawHttp2Client::Send(uint32_t stream, std::string_view bytes,
                            absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  size_t sent = 0;
  while (sent < bytes.size() && !closed_) {
    StreamState& s = streams_[stream];
    if (s.ended) break;
    const int64_t allowed =
        std::min<int64_t>({connection_window_, s.window, int64_t{kMaxFrame},
                           static_cast<int64_t>(bytes.size() - sent)});
    // Keep at most a few frames queued, so a server that stops reading
    // stops this loop too.
    if (allowed > 0 && out_.size() < 4 * kMaxFrame) {
      Queue(kData, 0, stream, bytes.substr(sent, allowed));
      connection_window_ -= allowed;
      s.window -= allowed;
      sent += allowed;
      continue;
    }
    if (absl::Now() >= deadline || !Poll(deadline)) break;
  }
  // Flush what is queued, as far as the server reads it in time.
  while (!out_.empty() && !closed_ && absl::Now() < deadline &&
         Poll(deadline)) {
  }
  return sent;
}

void RawHttp2Client::Pump(uint32_t stream, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!closed_ && !streams_[stream].ended && absl::Now() < deadline &&
         Poll(deadline)) {
  }
}

RawHttp2Client::StreamState RawHttp2Client::state(uint32_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? StreamState{} : it->second;
}

bool RawHttp2Client::Poll(absl::Time deadline) {
  if (closed_) return false;
  pollfd p{fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
  const int64_t ms =
      std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
  if (poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30))) <= 0) {
    return true;  // timed out: the caller checks its deadline
  }
  if (p.revents & POLLOUT) {
    // A server that closed the connection: an error, not SIGPIPE.
    const ssize_t n = send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      closed_ = true;
    }
  }
  if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
    char buffer[1 << 16];
    const ssize_t n = read(fd_, buffer, sizeof(buffer));
    if (n > 0) {
      in_.append(buffer, static_cast<size_t>(n));
      ReadFrames();
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      closed_ = true;
    }
  }
  return !closed_;
}

void RawHttp2Client::ReadFrames() {
  while (in_.size() >= kFrameHeader) {
    const size_t n = (size_t{static_cast<uint8_t>(in_[0])} << 16) |
                     (size_t{static_cast<uint8_t>(in_[1])} << 8) |
                     size_t{static_cast<uint8_t>(in_[2])};
    if (in_.size() < kFrameHeader + n) return;
    const uint32_t stream = Read32(in_.data() + 5) & 0x7fffffffu;
    OnFrame(static_cast<uint8_t>(in_[3]), static_cast<uint8_t>(in_[4]), stream,
            std::string_view(in_).substr(kFrameHeader, n));
    in_.erase(0, kFrameHeader + n);
  }
}

void RawHttp2Client::OnFrame(uint8_t type, uint8_t flags, uint32_t stream,
                             std::string_view payload) {
  switch (type) {
    case kSettings:
      if (flags & kAck) return;
      for (size_t i = 0; i + 6 <= payload.size(); i += 6) {
        const uint16_t id =
            static_cast<uint16_t>((static_cast<uint8_t>(payload[i]) << 8) |
                                  static_cast<uint8_t>(payload[i + 1]));
        if (id != kSettingsInitialWindowSize) continue;
        const int64_t value = Read32(payload.data() + i + 2);
        for (auto& [sid, s] : streams_)
          s.window += value - initial_stream_window_;
        initial_stream_window_ = value;
      }
      Queue(kSettings, kAck, 0, "");
      return;
    case kPing:
      if (!(flags & kAck)) Queue(kPing, kAck, 0, payload);
      return;
    case kWindowUpdate: {
      if (payload.size() < 4) return;
      const int64_t increment = Read32(payload.data()) & 0x7fffffffu;
      if (stream == 0) {
        connection_window_ += increment;
      } else {
        streams_[stream].window += increment;
      }
      return;
    }
    case kRstStream:
      streams_[stream].ended = true;
      streams_[stream].reset = true;
      streams_[stream].reset_code =
          payload.size() >= 4 ? Read32(payload.data()) : 0;
      return;
    case kHeaders:
    case kData:
      if (flags & kEndStream) streams_[stream].ended = true;
      return;
    case kGoaway:
      goaway_ = true;
      return;
    default:
      return;
  }
}

}  // namespace knnmem::testing
