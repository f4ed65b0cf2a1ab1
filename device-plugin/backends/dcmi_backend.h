// Huawei Ascend backend: libdcmi.so (DCMI v2 API, as declared in Huawei's dcmi_interface_api.h)
// loaded with dlopen at run time, behind a table of function pointers so tests use fakes.
// Cards are addressed as (card_id, device_id) pairs; the logic ID is what /dev/davinci<N> and
// ASCEND_VISIBLE_DEVICES use. Also creates and destroys vNPUs from templates (dynamic vNPU).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

namespace dcmi {
struct ChipInfo {  // struct dcmi_chip_info
  unsigned char chip_type[32];
  unsigned char chip_name[32];
  unsigned char chip_ver[32];
  unsigned int aicore_cnt;
};
struct HbmInfo {  // struct dcmi_hbm_info; sizes in MB
  unsigned long long memory_size;
  unsigned int freq;
  unsigned long long memory_usage;
  int temp;
  unsigned int bandwith_util_rate;
};
struct CreateVdevOut {  // struct dcmi_create_vdev_out
  unsigned int vdev_id, pcie_bus, pcie_device, pcie_func, vfg_id;
  unsigned char reserved[32];
};
// dcmi_get_device_health: 0 normal, 1 minor alarm, 2 major alarm, 3 critical alarm. Major and
// critical make a card unhealthy, as Huawei's own device plugin treats them.
inline constexpr unsigned int kHealthMajorAlarm = 2;
}  // namespace dcmi

struct DcmiApi {
  int (*init)() = nullptr;
  int (*get_card_list)(int* card_num, int* card_list, int list_len) = nullptr;
  int (*get_device_num_in_card)(int card_id, int* device_num) = nullptr;
  int (*get_device_logic_id)(int* logic_id, int card_id, int device_id) = nullptr;
  int (*get_device_chip_info)(int card_id, int device_id, dcmi::ChipInfo*) = nullptr;
  int (*get_device_health)(int card_id, int device_id, unsigned int* health) = nullptr;
  int (*get_device_hbm_info)(int card_id, int device_id, dcmi::HbmInfo*) = nullptr;      // optional
  int (*get_device_temperature)(int card_id, int device_id, int* celsius) = nullptr;    // optional
  int (*get_device_power_info)(int card_id, int device_id, int* deciwatts) = nullptr;   // optional
  int (*create_vdevice)(int card_id, int device_id, int vdev_id, const char* template_name,
                        dcmi::CreateVdevOut* out) = nullptr;                           // optional
  int (*set_destroy_vdevice)(int card_id, int device_id, unsigned int vdev_id) = nullptr;  // optional
  void* library = nullptr;
};

// dlopen + dlsym; a machine without the Ascend driver gets a clear "not found" message.
StatusOr<DcmiApi> LoadDcmi(const std::string& library = "libdcmi.so");

class DcmiBackend : public DeviceBackend {
 public:
  static StatusOr<std::unique_ptr<DcmiBackend>> Create(DcmiApi api, const catalog::Catalog& catalog);
  ~DcmiBackend() override;
  std::string Name() const override { return "dcmi"; }
  StatusOr<std::vector<DeviceInfo>> Discover() override;
  // Dynamic vNPU: creates a vNPU from `template_name` on the card with this logic ID and returns
  // its vNPU ID (what ASCEND_VISIBLE_DEVICES and /dev/davinci<ID> use).
  StatusOr<unsigned int> CreateVnpu(int logic_id, const std::string& template_name);
  Status DestroyVnpu(int logic_id, unsigned int vnpu_id);
  // DeviceBackend partitions are vNPUs; the card's index is its logic ID.
  StatusOr<std::string> CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) override;
  Status DestroyPartition(const DeviceInfo& card, const std::string& partition_id) override;

 private:
  DcmiBackend(DcmiApi api, const catalog::Catalog& catalog) : api_(api), catalog_(catalog) {}
  Status Locate(int logic_id, int* card_id, int* device_id);
  DcmiApi api_;
  const catalog::Catalog& catalog_;
  std::mutex mu_;  // the DCMI library is not documented as thread-safe
};

}  // namespace tideslice::deviceplugin
