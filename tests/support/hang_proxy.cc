#include "tests/support/hang_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tideslice::testsupport {
namespace {

int Listen(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0)
    throw std::runtime_error("hang proxy: cannot listen");
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

class Proxy : public HangProxy {
 public:
  explicit Proxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = Listen(&port_);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~Proxy() override {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    accept_thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      hanging_ = false;
    }
    cv_.notify_all();
    for (auto& t : pumps_) t.join();
  }
  std::string url() const override { return "http://127.0.0.1:" + std::to_string(port_); }
  void Hang() override {
    std::lock_guard<std::mutex> lock(mu_);
    hanging_ = true;
  }
  void Release() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hanging_ = false;
    }
    cv_.notify_all();
  }
  size_t held_bytes() const override { return held_.load(); }

 private:
  void AcceptLoop() {
    while (!stop_) {
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      int upstream = Connect(upstream_port_);
      if (upstream < 0) {
        ::close(client);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      pumps_.emplace_back([this, client, upstream] { Pump(client, upstream); });
    }
  }

  // One connection: client -> upstream held while hanging (and delivered on release, even when
  // the client has gone), upstream -> client always forwarded.
  void Pump(int client, int upstream) {
    std::vector<char> pending;
    bool client_open = true, upstream_open = true;
    char buf[65536];
    // A request delivered late for a client that has gone still gets processed: the upstream
    // side is kept open (write side shut) until it answers or a grace period passes.
    std::chrono::steady_clock::time_point linger_until{};
    while (!stop_ && upstream_open) {
      bool hang;
      {
        std::lock_guard<std::mutex> lock(mu_);
        hang = hanging_;
      }
      if (!hang && !pending.empty()) {
        if (!WriteAll(upstream, pending.data(), pending.size())) break;
        held_ -= pending.size();
        pending.clear();
      }
      pollfd fds[2] = {{client, static_cast<short>(client_open ? POLLIN : 0), 0}, {upstream, POLLIN, 0}};
      if (::poll(fds, 2, 20) < 0) break;
      if (client_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = ::recv(client, buf, sizeof buf, 0);
        if (n <= 0) {
          client_open = false;
        } else {
          std::lock_guard<std::mutex> lock(mu_);
          if (hanging_ || !pending.empty()) {
            pending.insert(pending.end(), buf, buf + n);
            held_ += static_cast<size_t>(n);
          } else if (!WriteAll(upstream, buf, static_cast<size_t>(n))) {
            break;
          }
        }
      }
      if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t n = ::recv(upstream, buf, sizeof buf, 0);
        if (n <= 0) upstream_open = false;
        else if (client_open && !WriteAll(client, buf, static_cast<size_t>(n))) client_open = false;
      }
      if (!client_open && pending.empty()) {
        if (linger_until == std::chrono::steady_clock::time_point{}) {
          ::shutdown(upstream, SHUT_WR);
          linger_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        } else if (std::chrono::steady_clock::now() >= linger_until) {
          break;
        }
      }
    }
    held_ -= pending.size();
    ::close(client);
    ::close(upstream);
  }

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> held_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool hanging_ = false;
  std::thread accept_thread_;
  std::vector<std::thread> pumps_;
};

}  // namespace

std::unique_ptr<HangProxy> HangProxy::Start(const std::string& upstream_url) {
  auto colon = upstream_url.rfind(':');
  int port = std::stoi(upstream_url.substr(colon + 1));
  return std::make_unique<Proxy>(port);
}

}  // namespace tideslice::testsupport
