// The node agent's main loop, without main(): polls the backend for health, keeps the kubelet
// servers up, and re-registers after a kubelet restart. Owns no Kubernetes code; the
// AllocationHandler and the inventory publisher plug in from outside.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/catalog/catalog.h"
#include "common/log/log.h"
#include "device-plugin/backends/device_backend.h"
#include "device-plugin/plugin/kubelet_watcher.h"
#include "device-plugin/plugin/mig_mode.h"
#include "device-plugin/plugin/plugin_server.h"

namespace tideslice::deviceplugin {

struct AgentOptions {
  PluginOptions plugin;
  std::string kubelet_socket_name = "kubelet.sock";
  std::chrono::milliseconds health_poll{5000};
  std::chrono::milliseconds register_timeout{10000};
  std::chrono::milliseconds retry_backoff{1000};
  // Called on the agent's thread after every successful discovery (metrics, inventory).
  std::function<void(const std::vector<DeviceInfo>&)> on_devices;
  // MIG mode of this node group's NVIDIA cards (--mig-mode). Applied only to empty cards: no
  // processes, no partitions, and nothing allocated according to `card_in_use`. `catalog`
  // tells which models have MIG; without it MIG mode is left alone.
  MigModePolicy mig_mode = MigModePolicy::kLeave;
  const catalog::Catalog* catalog = nullptr;
  // What is allocated on a card beyond what the driver shows (pods that have not started a
  // process yet); empty string = nothing. Called on the agent's thread.
  std::function<std::string(const DeviceInfo&)> card_in_use;
};

class Agent {
 public:
  Agent(AgentOptions options, DeviceBackend* backend, AllocationHandler* handler);
  ~Agent();
  // Discovers cards, serves, registers (retrying until the kubelet answers or Stop), then keeps
  // polling health. Returns once serving and the first registration attempt has been made.
  Status Start();
  void Stop();
  // Re-discover now (tests and health events call this instead of waiting for the poll).
  void RefreshNow();
  int registrations() const { return registrations_.load(); }
  DeviceState& state() { return state_; }
  // Per card uuid, what the MIG mode setting last did: "applied", "pending-reset", "busy",
  // "refused", "unhealthy", "not-mig" (only cards the setting concerns are listed).
  std::map<std::string, std::string> MigModeStates() const;

 private:
  void Run();
  Status ServeAndRegister();
  // After a discovery: log health changes once each, apply the MIG mode setting. Returns true
  // when a MIG change took effect (the cards must be read again).
  bool AfterDiscover(const std::vector<DeviceInfo>& cards);
  void LogHealth(const std::vector<DeviceInfo>& cards);
  bool ApplyMigMode(const std::vector<DeviceInfo>& cards);
  log::ChangeLog health_log_;
  log::ChangeLog mig_log_;
  mutable std::mutex mig_mu_;
  std::map<std::string, std::string> mig_states_;
  AgentOptions options_;
  DeviceBackend* backend_;
  AllocationHandler* handler_;
  DeviceState state_;
  std::mutex server_mu_;  // guards swapping server_ against Stop() cancelling its Register
  std::unique_ptr<PluginServer> server_;
  std::unique_ptr<KubeletWatcher> watcher_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool restart_requested_ = true;
  bool refresh_requested_ = false;
  std::chrono::steady_clock::time_point next_register_{};
  std::atomic<int> registrations_{0};
};

}  // namespace tideslice::deviceplugin
