#include "device-plugin/plugin/pod_resources.h"

#include <grpcpp/grpcpp.h>

#include "podresources/v1/api.grpc.pb.h"

namespace tideslice::deviceplugin {

StatusOr<std::vector<ContainerDevices>> PodResourcesClient::List(const std::string& resource_name,
                                                                 std::chrono::milliseconds timeout) {
  auto stub = ::v1::PodResourcesLister::NewStub(
      grpc::CreateChannel("unix://" + socket_path_, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ::v1::ListPodResourcesResponse resp;
  grpc::Status st = stub->List(&ctx, ::v1::ListPodResourcesRequest(), &resp);
  if (!st.ok())
    return Status::Unavailable("PodResources List at " + socket_path_ + " failed: " + st.error_message() +
                               " (is --pod-resources-socket right, and is the directory mounted?)");
  std::vector<ContainerDevices> out;
  for (const auto& pod : resp.pod_resources()) {
    for (const auto& c : pod.containers()) {
      ContainerDevices cd;
      cd.pod_key = pod.namespace_() + "/" + pod.name();
      cd.container = c.name();
      for (const auto& d : c.devices())
        if (d.resource_name() == resource_name) cd.device_ids.insert(cd.device_ids.end(), d.device_ids().begin(), d.device_ids().end());
      if (!cd.device_ids.empty()) out.push_back(std::move(cd));
    }
  }
  return out;
}

std::vector<std::string> PodsGone(const std::set<std::string>& acknowledged_pods,
                                  const std::vector<ContainerDevices>& live) {
  std::set<std::string> alive;
  for (const auto& c : live) alive.insert(c.pod_key);
  std::vector<std::string> gone;
  for (const auto& p : acknowledged_pods)
    if (!alive.count(p)) gone.push_back(p);
  return gone;
}

}  // namespace tideslice::deviceplugin
