#include "device-plugin/plugin/kubelet_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tideslice::deviceplugin {

KubeletWatcher::KubeletWatcher(std::string dir, std::vector<std::string> our_sockets, std::function<void()> on_restart)
    : dir_(std::move(dir)), our_sockets_(std::move(our_sockets)), on_restart_(std::move(on_restart)) {}

KubeletWatcher::~KubeletWatcher() { Stop(); }

Status KubeletWatcher::Start() {
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) return Status::Unavailable(std::string("inotify_init1: ") + std::strerror(errno));
  if (inotify_add_watch(inotify_fd_, dir_.c_str(), IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0) {
    Status st = Status::Unavailable("cannot watch " + dir_ + ": " + std::strerror(errno));
    close(inotify_fd_);
    inotify_fd_ = -1;
    return st;
  }
  if (pipe2(wake_fd_, O_CLOEXEC) != 0) return Status::Unavailable(std::string("pipe2: ") + std::strerror(errno));
  running_ = true;
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void KubeletWatcher::Stop() {
  if (running_.exchange(false)) {
    char b = 1;
    (void)!write(wake_fd_[1], &b, 1);
    thread_.join();
  }
  for (int* fd : {&inotify_fd_, &wake_fd_[0], &wake_fd_[1]}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

void KubeletWatcher::Loop() {
  alignas(struct inotify_event) char buf[4096];
  while (running_) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    bool restart = false;
    ssize_t n;
    while ((n = read(inotify_fd_, buf, sizeof buf)) > 0) {
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        std::string name = ev->len ? ev->name : "";
        bool created = ev->mask & (IN_CREATE | IN_MOVED_TO);
        bool deleted = ev->mask & (IN_DELETE | IN_MOVED_FROM);
        if (created && name == "kubelet.sock") restart = true;
        if (deleted && std::find(our_sockets_.begin(), our_sockets_.end(), name) != our_sockets_.end()) restart = true;
        p += sizeof(struct inotify_event) + ev->len;
      }
    }
    if (restart && running_) on_restart_();
  }
}

}  // namespace tideslice::deviceplugin
