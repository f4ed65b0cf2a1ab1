// Notices a kubelet restart: the new kubelet deletes the plugin sockets in the device-plugin
// directory and re-creates kubelet.sock (KUBE-WIRE.md §1.4 item 8). Uses inotify on the
// directory, so the agent reacts within milliseconds instead of polling.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace tideslice::deviceplugin {

class KubeletWatcher {
 public:
  // `on_restart` runs on the watcher's thread when kubelet.sock is created or one of
  // `our_sockets` (file names) is deleted.
  KubeletWatcher(std::string dir, std::vector<std::string> our_sockets, std::function<void()> on_restart);
  ~KubeletWatcher();
  Status Start();
  void Stop();

 private:
  void Loop();
  std::string dir_;
  std::vector<std::string> our_sockets_;
  std::function<void()> on_restart_;
  int inotify_fd_ = -1;
  int wake_fd_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> running_{false};
};

}  // namespace tideslice::deviceplugin
