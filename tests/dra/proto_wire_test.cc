// The DRA kubelet protos must be wire-identical to upstream: package, method paths, field
// numbers and types as restated in docs/dra.md ("Wire facts"). These tests read the compiled
// descriptors and encoded bytes, so a renumbered, retyped or re-packaged field fails here, not in
// a kubelet (which would answer UNIMPLEMENTED or misread a field).
#include <string>
#include <tuple>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "dra/v1/api.pb.h"
#include "dra/v1beta1/api.pb.h"
#include "drahealth/v1alpha1/api.pb.h"
#include "pluginregistration/v1/api.pb.h"

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

// Every field of the message is one of `fields` (nothing extra that a kubelet would not send).
void ExpectFieldCount(const std::string& message, int count) {
  const auto* msg = DescriptorPool::generated_pool()->FindMessageTypeByName(message);
  ASSERT_NE(msg, nullptr) << message;
  EXPECT_EQ(msg->field_count(), count) << message;
}

constexpr auto kString = FieldDescriptor::TYPE_STRING;
constexpr auto kBool = FieldDescriptor::TYPE_BOOL;
constexpr auto kMsg = FieldDescriptor::TYPE_MESSAGE;
constexpr auto kInt64 = FieldDescriptor::TYPE_INT64;
constexpr auto kEnum = FieldDescriptor::TYPE_ENUM;

std::vector<std::string> MethodPaths(const std::string& service) {
  const auto* svc = DescriptorPool::generated_pool()->FindServiceByName(service);
  std::vector<std::string> paths;
  if (!svc) return paths;
  for (int i = 0; i < svc->method_count(); ++i) paths.push_back("/" + svc->full_name() + "/" + svc->method(i)->name());
  return paths;
}

TEST(PluginRegistrationWire, PackageMethodsAndFields) {
  ASSERT_NE(pluginregistration::PluginInfo::descriptor(), nullptr);
  EXPECT_EQ(MethodPaths("pluginregistration.Registration"),
            (std::vector<std::string>{"/pluginregistration.Registration/GetInfo",
                                      "/pluginregistration.Registration/NotifyRegistrationStatus"}));
  const auto* svc = DescriptorPool::generated_pool()->FindServiceByName("pluginregistration.Registration");
  ASSERT_NE(svc, nullptr);
  EXPECT_EQ(svc->method(0)->input_type()->full_name(), "pluginregistration.InfoRequest");
  EXPECT_EQ(svc->method(0)->output_type()->full_name(), "pluginregistration.PluginInfo");
  EXPECT_EQ(svc->method(1)->input_type()->full_name(), "pluginregistration.RegistrationStatus");
  EXPECT_EQ(svc->method(1)->output_type()->full_name(), "pluginregistration.RegistrationStatusResponse");
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(svc->method(i)->server_streaming());
    EXPECT_FALSE(svc->method(i)->client_streaming());
  }
  for (const auto& f : std::vector<Field>{
           {"pluginregistration.PluginInfo", "type", 1, kString, false},
           {"pluginregistration.PluginInfo", "name", 2, kString, false},
           {"pluginregistration.PluginInfo", "endpoint", 3, kString, false},
           {"pluginregistration.PluginInfo", "supported_versions", 4, kString, true},
           {"pluginregistration.RegistrationStatus", "plugin_registered", 1, kBool, false},
           {"pluginregistration.RegistrationStatus", "error", 2, kString, false},
       })
    ExpectField(f);
  ExpectFieldCount("pluginregistration.InfoRequest", 0);
  ExpectFieldCount("pluginregistration.PluginInfo", 4);
  ExpectFieldCount("pluginregistration.RegistrationStatus", 2);
  ExpectFieldCount("pluginregistration.RegistrationStatusResponse", 0);
}

TEST(PluginRegistrationWire, EncodedBytes) {
  pluginregistration::PluginInfo info;
  info.set_type("DRAPlugin");
  info.set_name("d");
  info.set_endpoint("/s");
  info.add_supported_versions("v1.DRAPlugin");
  std::string bytes;
  ASSERT_TRUE(info.SerializeToString(&bytes));
  std::string expected = std::string("\x0a\x09" "DRAPlugin", 11) + std::string("\x12\x01" "d", 3) +
                         std::string("\x1a\x02/s", 4) + std::string("\x22\x0cv1.DRAPlugin", 14);
  EXPECT_EQ(bytes, expected);
}

class DraServiceWire : public ::testing::TestWithParam<std::string> {};

TEST_P(DraServiceWire, MethodPathsAndFields) {
  ASSERT_NE(k8s::io::kubelet::pkg::apis::dra::v1::Claim::descriptor(), nullptr);
  ASSERT_NE(k8s::io::kubelet::pkg::apis::dra::v1beta1::Claim::descriptor(), nullptr);
  const std::string pkg = "k8s.io.kubelet.pkg.apis.dra." + GetParam();
  EXPECT_EQ(MethodPaths(pkg + ".DRAPlugin"),
            (std::vector<std::string>{"/" + pkg + ".DRAPlugin/NodePrepareResources",
                                      "/" + pkg + ".DRAPlugin/NodeUnprepareResources"}));
  const auto* svc = DescriptorPool::generated_pool()->FindServiceByName(pkg + ".DRAPlugin");
  ASSERT_NE(svc, nullptr);
  const std::vector<std::pair<std::string, std::string>> io = {
      {pkg + ".NodePrepareResourcesRequest", pkg + ".NodePrepareResourcesResponse"},
      {pkg + ".NodeUnprepareResourcesRequest", pkg + ".NodeUnprepareResourcesResponse"}};
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(svc->method(i)->input_type()->full_name(), io[i].first);
    EXPECT_EQ(svc->method(i)->output_type()->full_name(), io[i].second);
    EXPECT_FALSE(svc->method(i)->server_streaming());
    EXPECT_FALSE(svc->method(i)->client_streaming());
  }
  for (const auto& f : std::vector<Field>{
           {pkg + ".Claim", "namespace", 1, kString, false},
           {pkg + ".Claim", "uid", 2, kString, false},
           {pkg + ".Claim", "name", 3, kString, false},
           {pkg + ".NodePrepareResourcesRequest", "claims", 1, kMsg, true},
           {pkg + ".NodePrepareResourcesResponse", "claims", 1, kMsg, true},
           {pkg + ".NodePrepareResourceResponse", "devices", 1, kMsg, true},
           {pkg + ".NodePrepareResourceResponse", "error", 2, kString, false},
           {pkg + ".Device", "request_names", 1, kString, true},
           {pkg + ".Device", "pool_name", 2, kString, false},
           {pkg + ".Device", "device_name", 3, kString, false},
           {pkg + ".Device", "cdi_device_ids", 4, kString, true},
           {pkg + ".NodeUnprepareResourcesRequest", "claims", 1, kMsg, true},
           {pkg + ".NodeUnprepareResourcesResponse", "claims", 1, kMsg, true},
           {pkg + ".NodeUnprepareResourceResponse", "error", 1, kString, false},
       })
    ExpectField(f);
  const auto* pool = DescriptorPool::generated_pool();
  for (const char* m : {".NodePrepareResourcesResponse", ".NodeUnprepareResourcesResponse"}) {
    const auto* field = pool->FindMessageTypeByName(pkg + m)->FindFieldByName("claims");
    ASSERT_TRUE(field->is_map()) << m;
    EXPECT_EQ(field->message_type()->FindFieldByNumber(1)->type(), kString);
    EXPECT_EQ(field->message_type()->FindFieldByNumber(2)->type(), kMsg);
  }
  ExpectFieldCount(pkg + ".Claim", 3);
  ExpectFieldCount(pkg + ".NodePrepareResourceResponse", 2);
  ExpectFieldCount(pkg + ".NodeUnprepareResourceResponse", 1);
  // share_id (5) exists in v1 only, as proto3 optional (explicit presence).
  const auto* device = pool->FindMessageTypeByName(pkg + ".Device");
  if (GetParam() == "v1") {
    ExpectFieldCount(pkg + ".Device", 5);
    ExpectField({pkg + ".Device", "share_id", 5, kString, false});
    EXPECT_TRUE(device->FindFieldByName("share_id")->has_presence());
  } else {
    ExpectFieldCount(pkg + ".Device", 4);
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, DraServiceWire, ::testing::Values("v1", "v1beta1"));

TEST(DraServiceWire, EncodedBytesOfAPreparedClaim) {
  namespace dra = k8s::io::kubelet::pkg::apis::dra::v1;
  dra::NodePrepareResourcesResponse resp;
  auto& entry = (*resp.mutable_claims())["u"];
  auto* d = entry.add_devices();
  d->add_request_names("r");
  d->set_pool_name("p");
  d->set_device_name("d");
  d->add_cdi_device_ids("c");
  d->set_share_id("s");
  std::string bytes;
  ASSERT_TRUE(resp.SerializeToString(&bytes));
  // Device: 0a 01 'r' 12 01 'p' 1a 01 'd' 22 01 'c' 2a 01 's' (15 bytes)
  const std::string device("\x0a\x01r\x12\x01p\x1a\x01" "d\x22\x01" "c\x2a\x01s", 15);
  // NodePrepareResourceResponse: field 1 = device
  const std::string value = std::string("\x0a\x0f", 2) + device;
  // map entry: key (1) "u", value (2) message
  const std::string map_entry = std::string("\x0a\x01u\x12\x11", 5) + value;
  EXPECT_EQ(bytes, std::string("\x0a\x16", 2) + map_entry);

  // The same bytes read as v1beta1 (no field 5) keep everything else.
  k8s::io::kubelet::pkg::apis::dra::v1beta1::NodePrepareResourcesResponse old;
  ASSERT_TRUE(old.ParseFromString(bytes));
  ASSERT_EQ(old.claims().count("u"), 1u);
  EXPECT_EQ(old.claims().at("u").devices(0).cdi_device_ids(0), "c");
}

TEST(DraHealthWire, PackageMethodAndFields) {
  ASSERT_NE(v1alpha1::DeviceHealth::descriptor(), nullptr);
  EXPECT_EQ(MethodPaths("v1alpha1.DRAResourceHealth"),
            (std::vector<std::string>{"/v1alpha1.DRAResourceHealth/NodeWatchResources"}));
  const auto* svc = DescriptorPool::generated_pool()->FindServiceByName("v1alpha1.DRAResourceHealth");
  ASSERT_NE(svc, nullptr);
  EXPECT_TRUE(svc->method(0)->server_streaming());
  EXPECT_FALSE(svc->method(0)->client_streaming());
  for (const auto& f : std::vector<Field>{
           {"v1alpha1.NodeWatchResourcesResponse", "devices", 1, kMsg, true},
           {"v1alpha1.DeviceIdentifier", "pool_name", 1, kString, false},
           {"v1alpha1.DeviceIdentifier", "device_name", 2, kString, false},
           {"v1alpha1.DeviceHealth", "device", 1, kMsg, false},
           {"v1alpha1.DeviceHealth", "health", 2, kEnum, false},
           {"v1alpha1.DeviceHealth", "last_updated_time", 3, kInt64, false},
           {"v1alpha1.DeviceHealth", "health_check_timeout_seconds", 4, kInt64, false},
           {"v1alpha1.DeviceHealth", "message", 5, kString, false},
       })
    ExpectField(f);
  const auto* e = DescriptorPool::generated_pool()->FindEnumTypeByName("v1alpha1.HealthStatus");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->FindValueByName("UNKNOWN")->number(), 0);
  EXPECT_EQ(e->FindValueByName("HEALTHY")->number(), 1);
  EXPECT_EQ(e->FindValueByName("UNHEALTHY")->number(), 2);
}

}  // namespace
