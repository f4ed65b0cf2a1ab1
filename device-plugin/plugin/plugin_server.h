// The kubelet side of the node agent: one gRPC server on one unix socket per advertised
// extended resource, speaking the kubelet device plugin API v1beta1 (shared/KUBE-WIRE.md §1).
//
// Device IDs are "<card uuid>::<replica>": stable across restarts, and they say which card and
// which of its replicas the kubelet handed out. Every card is advertised `replicas_per_card`
// times so that several pods' slices can share it; which slice a container really gets is
// decided by the scheduler and handed over by the AllocationHandler.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "common/status.h"
#include "device-plugin/plugin/device_state.h"
#include "deviceplugin/v1beta1/api.grpc.pb.h"

namespace tideslice::deviceplugin {

inline constexpr const char* kDevicePluginVersion = "v1beta1";
inline constexpr const char* kHealthy = "Healthy";
inline constexpr const char* kUnhealthy = "Unhealthy";

struct PluginOptions {
  std::string resource_name = "tideslice.io/vnpu";
  std::string socket_dir = "/var/lib/kubelet/device-plugins";
  std::string socket_name = "tideslice-vnpu.sock";
  int replicas_per_card = 10;
};

// Turns the device IDs the kubelet gave one container into what the container gets. The
// production handler matches them against the scheduler's PodAssignment; tests pass fakes.
class AllocationHandler {
 public:
  virtual ~AllocationHandler() = default;
  virtual StatusOr<v1beta1::ContainerAllocateResponse> AllocateContainer(const std::vector<std::string>& device_ids,
                                                                        const std::vector<DeviceInfo>& cards) = 0;
  // Cards (uuids) the scheduler chose for the next container asking for `count` devices, when
  // that is knowable; GetPreferredAllocation steers the kubelet to them. Empty = no opinion.
  virtual std::vector<std::string> PreferredCards(int count) {
    (void)count;
    return {};
  }
};

// "GPU-0::3" -> ("GPU-0", 3); false for malformed IDs.
bool ParseDeviceId(const std::string& id, std::string* uuid, int* replica);
std::string MakeDeviceId(const std::string& uuid, int replica);

// The full ListAndWatch device list for a card list.
std::vector<v1beta1::Device> AdvertisedDevices(const std::vector<DeviceInfo>& cards, int replicas_per_card);

class PluginServer {
 public:
  PluginServer(PluginOptions options, DeviceState* state, AllocationHandler* handler);
  ~PluginServer();

  // Serves on socket_dir/socket_name (a stale socket file is removed first). Must succeed
  // before Register: the kubelet dials back during Register.
  Status Start();
  // Registers with the kubelet at `kubelet_socket` (absolute path).
  Status Register(const std::string& kubelet_socket, std::chrono::milliseconds timeout);
  // Makes a Register call in progress on another thread return at once (for shutdown).
  void CancelRegister();
  void Stop();
  std::string socket_path() const;

 private:
  class Service;
  PluginOptions options_;
  DeviceState* state_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex register_mu_;
  grpc::ClientContext* register_ctx_ = nullptr;  // the Register call in flight, if any
  bool register_cancelled_ = false;
};

grpc::Status ToGrpc(const Status& status);

}  // namespace tideslice::deviceplugin
