// The kubelet protos must be wire-identical to upstream: package, method paths, field numbers
// and types as listed in shared/KUBE-WIRE.md §1.2 and §2.2. These tests read the compiled
// descriptors, so a renumbered or retyped field fails here, not in a kubelet.
#include <string>
#include <tuple>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "deviceplugin/v1beta1/api.pb.h"
#include "podresources/v1/api.pb.h"

namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;

struct Field {
  std::string message;
  std::string name;
  int number;
  FieldDescriptor::Type type;
  bool repeated;
};

void ExpectField(const Field& f) {
  const auto* msg = DescriptorPool::generated_pool()->FindMessageTypeByName(f.message);
  ASSERT_NE(msg, nullptr) << f.message;
  const auto* field = msg->FindFieldByName(f.name);
  ASSERT_NE(field, nullptr) << f.message << "." << f.name;
  EXPECT_EQ(field->number(), f.number) << f.message << "." << f.name;
  EXPECT_EQ(field->type(), f.type) << f.message << "." << f.name;
  EXPECT_EQ(field->is_repeated(), f.repeated) << f.message << "." << f.name;
}

constexpr auto kString = FieldDescriptor::TYPE_STRING;
constexpr auto kBool = FieldDescriptor::TYPE_BOOL;
constexpr auto kMsg = FieldDescriptor::TYPE_MESSAGE;
constexpr auto kInt64 = FieldDescriptor::TYPE_INT64;
constexpr auto kInt32 = FieldDescriptor::TYPE_INT32;
constexpr auto kUint64 = FieldDescriptor::TYPE_UINT64;

TEST(DevicePluginWire, FieldNumbersAndTypes) {
  const std::vector<Field> fields = {
      {"v1beta1.DevicePluginOptions", "pre_start_required", 1, kBool, false},
      {"v1beta1.DevicePluginOptions", "get_preferred_allocation_available", 2, kBool, false},
      {"v1beta1.RegisterRequest", "version", 1, kString, false},
      {"v1beta1.RegisterRequest", "endpoint", 2, kString, false},
      {"v1beta1.RegisterRequest", "resource_name", 3, kString, false},
      {"v1beta1.RegisterRequest", "options", 4, kMsg, false},
      {"v1beta1.ListAndWatchResponse", "devices", 1, kMsg, true},
      {"v1beta1.TopologyInfo", "nodes", 1, kMsg, true},
      {"v1beta1.NUMANode", "ID", 1, kInt64, false},
      {"v1beta1.Device", "ID", 1, kString, false},
      {"v1beta1.Device", "health", 2, kString, false},
      {"v1beta1.Device", "topology", 3, kMsg, false},
      {"v1beta1.PreStartContainerRequest", "devices_ids", 1, kString, true},
      {"v1beta1.PreferredAllocationRequest", "container_requests", 1, kMsg, true},
      {"v1beta1.ContainerPreferredAllocationRequest", "available_deviceIDs", 1, kString, true},
      {"v1beta1.ContainerPreferredAllocationRequest", "must_include_deviceIDs", 2, kString, true},
      {"v1beta1.ContainerPreferredAllocationRequest", "allocation_size", 3, kInt32, false},
      {"v1beta1.PreferredAllocationResponse", "container_responses", 1, kMsg, true},
      {"v1beta1.ContainerPreferredAllocationResponse", "deviceIDs", 1, kString, true},
      {"v1beta1.AllocateRequest", "container_requests", 1, kMsg, true},
      {"v1beta1.ContainerAllocateRequest", "devices_ids", 1, kString, true},
      {"v1beta1.CDIDevice", "name", 1, kString, false},
      {"v1beta1.AllocateResponse", "container_responses", 1, kMsg, true},
      {"v1beta1.ContainerAllocateResponse", "envs", 1, kMsg, true},
      {"v1beta1.ContainerAllocateResponse", "mounts", 2, kMsg, true},
      {"v1beta1.ContainerAllocateResponse", "devices", 3, kMsg, true},
      {"v1beta1.ContainerAllocateResponse", "annotations", 4, kMsg, true},
      {"v1beta1.ContainerAllocateResponse", "cdi_devices", 5, kMsg, true},
      {"v1beta1.Mount", "container_path", 1, kString, false},
      {"v1beta1.Mount", "host_path", 2, kString, false},
      {"v1beta1.Mount", "read_only", 3, kBool, false},
      {"v1beta1.DeviceSpec", "container_path", 1, kString, false},
      {"v1beta1.DeviceSpec", "host_path", 2, kString, false},
      {"v1beta1.DeviceSpec", "permissions", 3, kString, false},
  };
  for (const auto& f : fields) ExpectField(f);
  const auto* resp = DescriptorPool::generated_pool()->FindMessageTypeByName("v1beta1.ContainerAllocateResponse");
  EXPECT_TRUE(resp->FindFieldByName("envs")->is_map());
  EXPECT_TRUE(resp->FindFieldByName("annotations")->is_map());
}

TEST(DevicePluginWire, ServicesAndMethodPaths) {
  const auto* pool = DescriptorPool::generated_pool();
  const auto* reg = pool->FindServiceByName("v1beta1.Registration");
  ASSERT_NE(reg, nullptr);
  ASSERT_EQ(reg->method_count(), 1);
  EXPECT_EQ("/" + reg->full_name() + "/" + reg->method(0)->name(), "/v1beta1.Registration/Register");
  const auto* dp = pool->FindServiceByName("v1beta1.DevicePlugin");
  ASSERT_NE(dp, nullptr);
  std::vector<std::tuple<std::string, std::string, std::string, bool>> expected = {
      {"GetDevicePluginOptions", "v1beta1.Empty", "v1beta1.DevicePluginOptions", false},
      {"ListAndWatch", "v1beta1.Empty", "v1beta1.ListAndWatchResponse", true},
      {"GetPreferredAllocation", "v1beta1.PreferredAllocationRequest", "v1beta1.PreferredAllocationResponse", false},
      {"Allocate", "v1beta1.AllocateRequest", "v1beta1.AllocateResponse", false},
      {"PreStartContainer", "v1beta1.PreStartContainerRequest", "v1beta1.PreStartContainerResponse", false},
  };
  ASSERT_EQ(dp->method_count(), static_cast<int>(expected.size()));
  for (int i = 0; i < dp->method_count(); ++i) {
    const auto* m = dp->method(i);
    EXPECT_EQ(m->name(), std::get<0>(expected[i]));
    EXPECT_EQ(m->input_type()->full_name(), std::get<1>(expected[i]));
    EXPECT_EQ(m->output_type()->full_name(), std::get<2>(expected[i]));
    EXPECT_EQ(m->server_streaming(), std::get<3>(expected[i]));
    EXPECT_FALSE(m->client_streaming());
    EXPECT_EQ("/" + dp->full_name() + "/" + m->name(), "/v1beta1.DevicePlugin/" + std::get<0>(expected[i]));
  }
}

TEST(DevicePluginWire, EncodedBytesMatchTheProtobufWireFormat) {
  v1beta1::RegisterRequest r;
  r.set_version("v1beta1");
  r.set_endpoint("ts.sock");
  r.set_resource_name("tideslice.io/vnpu");
  r.mutable_options()->set_get_preferred_allocation_available(true);
  std::string bytes;
  ASSERT_TRUE(r.SerializeToString(&bytes));
  // field 1 (LEN) "v1beta1", field 2 "ts.sock", field 3 "tideslice.io/vnpu", field 4 {field 2 varint 1}
  std::string expected = std::string("\x0a\x07v1beta1", 9) + std::string("\x12\x07ts.sock", 9) +
                         std::string("\x1a\x11tideslice.io/vnpu", 19) + std::string("\x22\x02\x10\x01", 4);
  EXPECT_EQ(bytes, expected);
}

TEST(PodResourcesWire, FieldNumbersAndTypes) {
  // Touch a generated type so the linker keeps the file that registers the descriptors.
  ASSERT_NE(v1::ListPodResourcesRequest::descriptor(), nullptr);
  const std::vector<Field> fields = {
      {"v1.AllocatableResourcesResponse", "devices", 1, kMsg, true},
      {"v1.AllocatableResourcesResponse", "cpu_ids", 2, kInt64, true},
      {"v1.AllocatableResourcesResponse", "memory", 3, kMsg, true},
      {"v1.ListPodResourcesResponse", "pod_resources", 1, kMsg, true},
      {"v1.PodResources", "name", 1, kString, false},
      {"v1.PodResources", "namespace", 2, kString, false},
      {"v1.PodResources", "containers", 3, kMsg, true},
      {"v1.PodResources", "cpu_ids", 4, kInt64, true},
      {"v1.PodResources", "memory", 5, kMsg, true},
      {"v1.ContainerResources", "name", 1, kString, false},
      {"v1.ContainerResources", "devices", 2, kMsg, true},
      {"v1.ContainerResources", "cpu_ids", 3, kInt64, true},
      {"v1.ContainerResources", "memory", 4, kMsg, true},
      {"v1.ContainerResources", "dynamic_resources", 5, kMsg, true},
      {"v1.ContainerMemory", "memory_type", 1, kString, false},
      {"v1.ContainerMemory", "size", 2, kUint64, false},
      {"v1.ContainerMemory", "topology", 3, kMsg, false},
      {"v1.ContainerDevices", "resource_name", 1, kString, false},
      {"v1.ContainerDevices", "device_ids", 2, kString, true},
      {"v1.ContainerDevices", "topology", 3, kMsg, false},
      {"v1.NUMANode", "ID", 1, kInt64, false},
      {"v1.DynamicResource", "claim_name", 2, kString, false},
      {"v1.DynamicResource", "claim_namespace", 3, kString, false},
      {"v1.DynamicResource", "claim_resources", 4, kMsg, true},
      {"v1.ClaimResource", "cdi_devices", 1, kMsg, true},
      {"v1.ClaimResource", "driver_name", 2, kString, false},
      {"v1.ClaimResource", "pool_name", 3, kString, false},
      {"v1.ClaimResource", "device_name", 4, kString, false},
      {"v1.ClaimResource", "share_id", 5, kString, false},
      {"v1.GetPodResourcesRequest", "pod_name", 1, kString, false},
      {"v1.GetPodResourcesRequest", "pod_namespace", 2, kString, false},
      {"v1.GetPodResourcesResponse", "pod_resources", 1, kMsg, false},
  };
  for (const auto& f : fields) ExpectField(f);
  const auto* claim = DescriptorPool::generated_pool()->FindMessageTypeByName("v1.ClaimResource");
  ASSERT_NE(claim, nullptr);
  EXPECT_TRUE(claim->FindFieldByName("share_id")->has_presence());  // proto3 optional
  const auto* dyn = DescriptorPool::generated_pool()->FindMessageTypeByName("v1.DynamicResource");
  ASSERT_NE(dyn, nullptr);
  EXPECT_EQ(dyn->FindFieldByNumber(1), nullptr);  // class_name was removed upstream
}

TEST(PodResourcesWire, MethodPaths) {
  ASSERT_NE(v1::GetPodResourcesRequest::descriptor(), nullptr);
  const auto* svc = DescriptorPool::generated_pool()->FindServiceByName("v1.PodResourcesLister");
  ASSERT_NE(svc, nullptr);
  std::vector<std::string> paths;
  for (int i = 0; i < svc->method_count(); ++i) paths.push_back("/" + svc->full_name() + "/" + svc->method(i)->name());
  EXPECT_EQ(paths, (std::vector<std::string>{"/v1.PodResourcesLister/List", "/v1.PodResourcesLister/GetAllocatableResources",
                                             "/v1.PodResourcesLister/Get"}));
}

}  // namespace
