// A keep-alive HTTP/1.1 client on 127.0.0.1 (as kube-scheduler's Go client keeps connections),
// shared by the HTTP benchmarks.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace tideslice::bench {

class KeepAliveClient {
 public:
  explicit KeepAliveClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~KeepAliveClient() { close(fd_); }
  bool ok() const { return ok_; }
  // Returns the HTTP status; the body lands in `body`.
  int Post(const std::string& path, const std::string& payload, std::string* body) {
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(payload.size()) + "\r\n\r\n" + payload;
    if (write(fd_, req.data(), req.size()) != static_cast<ssize_t>(req.size())) return 0;
    std::string buf;
    char chunk[65536];
    size_t header_end = std::string::npos;
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) return 0;
      buf.append(chunk, static_cast<size_t>(n));
    }
    auto cl = buf.find("Content-Length: ");
    if (cl == std::string::npos) cl = buf.find("content-length: ");
    size_t length = cl == std::string::npos ? 0 : std::stoul(buf.substr(cl + 16));
    while (buf.size() < header_end + 4 + length) {
      ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) return 0;
      buf.append(chunk, static_cast<size_t>(n));
    }
    *body = buf.substr(header_end + 4, length);
    return std::stoi(buf.substr(9, 3));
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

}  // namespace tideslice::bench
