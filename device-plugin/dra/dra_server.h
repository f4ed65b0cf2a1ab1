// The DRA driver's two gRPC servers on Unix sockets, in the order the kubelet expects them:
//   1. the DRA service socket (<plugin dir>/dra.sock): k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin and
//      .v1beta1.DRAPlugin (same handlers), and v1alpha1.DRAResourceHealth (the optional health
//      stream: every card device's health, re-sent on change and at least every 10 s);
//   2. then the registration socket (<registry dir>/<driver>-reg.sock):
//      pluginregistration.Registration, answering GetInfo with type "DRAPlugin", the driver name,
//      the DRA socket's path and ["v1.DRAPlugin", "v1beta1.DRAPlugin", "v1alpha1.DRAResourceHealth"].
// A stale socket file is removed before listening; both are removed at Stop (which is how a
// plugin deregisters).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "device-plugin/dra/driver.h"

namespace tideslice::dra {

struct ServerOptions {
  std::string plugin_dir;      // /var/lib/kubelet/plugins/<driver>
  std::string registry_dir;    // /var/lib/kubelet/plugins_registry
  int health_resend_seconds = 10;
};

struct RegistrationState {
  std::atomic<int> notifications{0};
  std::atomic<bool> registered{false};
  std::string last_error;  // guarded by the server's mutex
};

class DraServer {
 public:
  DraServer(DraDriver& driver, ServerOptions options);
  ~DraServer();
  Status Start();
  void Stop();
  // Wakes the health streams (after RefreshCards changed something).
  void NotifyHealthChanged();

  std::string dra_socket() const { return options_.plugin_dir + "/dra.sock"; }
  std::string registration_socket() const;
  bool registered() const { return state_.registered.load(); }
  int registration_notifications() const { return state_.notifications.load(); }
  std::string last_registration_error() const;

 private:
  class RegistrationService;
  class PluginV1;
  class PluginV1beta1;
  class HealthService;

  DraDriver& driver_;
  ServerOptions options_;
  RegistrationState state_;
  mutable std::mutex mu_;
  std::condition_variable health_cv_;
  uint64_t health_epoch_ = 0;
  bool stopping_ = false;
  std::unique_ptr<RegistrationService> registration_;
  std::unique_ptr<PluginV1> v1_;
  std::unique_ptr<PluginV1beta1> v1beta1_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> dra_server_;
  std::unique_ptr<grpc::Server> reg_server_;
};

}  // namespace tideslice::dra
