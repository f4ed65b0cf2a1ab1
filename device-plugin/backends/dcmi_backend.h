// Huawei Ascend backend: libdcmi.so (DCMI, as declared in Huawei's dcmi_interface_api.h) loaded
// with dlopen at run time, behind a table of function pointers so tests use fakes. Chips are
// addressed as (card_id, device_id) pairs; the logic ID is what /dev/davinci<N> and
// ASCEND_VISIBLE_DEVICES use. Also creates and destroys vNPUs from templates (dynamic vNPU),
// knows which templates each chip can create, groups chips into HCCS link domains, and reads
// health alarms and fault codes. Facts and their sources: docs/hardware.md.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/catalog/catalog.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

namespace dcmi {
struct ChipInfo {  // struct dcmi_chip_info (100 bytes)
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
struct BoardInfo {  // struct dcmi_board_info (16 bytes)
  unsigned int board_id, pcb_id, bom_id, slot_id;
};
struct PcieInfoAll {  // struct dcmi_pcie_info_all (64 bytes; field order differs from v1)
  unsigned int venderid, subvenderid, deviceid, subdeviceid;
  int domain;
  unsigned int bdf_busid, bdf_deviceid, bdf_funcid;
  unsigned char reserve[32];
};
struct CreateVdevRes {  // struct dcmi_create_vdev_res_stru (104 bytes)
  unsigned int vdev_id;  // 0xFFFFFFFF: the driver chooses
  unsigned int vfg_id;   // 0xFFFFFFFF: the driver chooses
  char template_name[32];
  unsigned char reserved[64];
};
struct CreateVdevOut {  // struct dcmi_create_vdev_out (52 bytes)
  unsigned int vdev_id, pcie_bus, pcie_device, pcie_func, vfg_id;
  unsigned char reserved[32];
};
static_assert(sizeof(ChipInfo) == 100 && sizeof(HbmInfo) == 32 && sizeof(BoardInfo) == 16 &&
                  sizeof(PcieInfoAll) == 64 && sizeof(CreateVdevRes) == 104 && sizeof(CreateVdevOut) == 52,
              "DCMI struct layouts (docs/hardware.md)");
// dcmi_get_device_health: 0 normal, 1 minor alarm, 2 major alarm, 3 critical alarm, 0xFFFFFFFF
// device absent. Major and critical make a card unhealthy, as Huawei's own device plugin treats them.
inline constexpr unsigned int kHealthMajorAlarm = 2;
inline constexpr unsigned int kHealthAbsent = 0xFFFFFFFF;
inline constexpr int kErrInvalidParameter = -8001;
inline constexpr int kErrNotSupport = -8255;
// dcmi_get_topo_info_by_device_id values (driver header >= 8.5.0).
inline constexpr int kTopoSelf = 0, kTopoSys = 1, kTopoHccs = 3, kTopoSio = 6, kTopoHccsSwitch = 7, kTopoButt = 9;
// Fault code "card dropped off the bus" (MindCluster's CardDropFaultCode): unhealthy at any alarm level.
inline constexpr unsigned int kFaultCardDrop = 0x40F84E00;

// The chip families whose vNPU templates and HCCS wiring differ.
enum class ChipFamily { kUnknown, k310P, k910A1, k910B, k910C };
struct ChipIdentity {
  ChipFamily family = ChipFamily::kUnknown;
  std::string chip_name;    // as DCMI reports it: "910B3", "310P3", "910ProB", "Ascend910"
  unsigned int board_id = 0xFFFFFFFF;  // 0xFFFFFFFF: unknown
  unsigned int aicore = 0;
};
ChipIdentity Identify(const std::string& chip_name, unsigned int board_id, unsigned int aicore);
// The vNPU templates libdcmi accepts on this chip (empty: no vNPU). 910B boards of one marketing
// model take different names (the bins), so the board ID decides where it is known.
std::vector<std::string> VnpuTemplates(const ChipIdentity& chip);
// Older drivers' name for a template on 910B4-1 boards (they took the 910B4 names and created
// the 910B4-1 sizes: HAMi#1497); empty when there is none.
std::string LegacyVnpuTemplate(const ChipIdentity& chip, const std::string& name);
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
  int (*create_vdevice)(int card_id, int device_id, dcmi::CreateVdevRes* vdev,
                        dcmi::CreateVdevOut* out) = nullptr;                            // optional
  int (*set_destroy_vdevice)(int card_id, int device_id, unsigned int vdev_id) = nullptr;  // optional
  // Optional: fault codes, board, PCI address, topology, physical IDs, driver version.
  int (*get_device_errorcode_v2)(int card_id, int device_id, int* error_count, unsigned int* error_code_list,
                                 unsigned int list_len) = nullptr;
  int (*get_device_board_info)(int card_id, int device_id, dcmi::BoardInfo*) = nullptr;
  int (*get_device_pcie_info_v2)(int card_id, int device_id, dcmi::PcieInfoAll*) = nullptr;
  int (*get_topo_info_by_device_id)(int card_id1, int device_id1, int card_id2, int device_id2,
                                    int* topo_type) = nullptr;
  int (*get_device_phyid_from_logicid)(unsigned int logic_id, unsigned int* phy_id) = nullptr;
  int (*get_driver_version)(char* version, unsigned int len) = nullptr;
  void* library = nullptr;
};

// dlopen + dlsym; a machine without the Ascend driver gets a clear "not found" message.
StatusOr<DcmiApi> LoadDcmi(const std::string& library = "libdcmi.so");

struct DcmiOptions {
  std::string sysfs_root = "/sys";                  // where NUMA node and CPU affinity are read
  std::set<unsigned int> extra_critical_fault_codes;  // unhealthy at any alarm level, with kFaultCardDrop
};

class DcmiBackend : public DeviceBackend {
 public:
  static StatusOr<std::unique_ptr<DcmiBackend>> Create(DcmiApi api, const catalog::Catalog& catalog);
  static StatusOr<std::unique_ptr<DcmiBackend>> Create(DcmiApi api, const catalog::Catalog& catalog, DcmiOptions options);
  ~DcmiBackend() override;
  std::string Name() const override { return "dcmi"; }
  StatusOr<std::vector<DeviceInfo>> Discover() override;
  // Dynamic vNPU: creates a vNPU from `template_name` on the chip with this logic ID and returns
  // its vNPU ID (what ASCEND_VISIBLE_DEVICES and /dev/davinci<ID> use). A template the chip
  // cannot create is refused before the driver is asked, naming the ones it can.
  StatusOr<unsigned int> CreateVnpu(int logic_id, const std::string& template_name);
  Status DestroyVnpu(int logic_id, unsigned int vnpu_id);
  // DeviceBackend partitions are vNPUs; the card's index is its logic ID.
  StatusOr<std::string> CreatePartition(const DeviceInfo& card, const std::string& profile, int start_slot) override;
  Status DestroyPartition(const DeviceInfo& card, const std::string& partition_id) override;

  // Fault codes read in the last Discover, by uuid (for the inventory dump and for people).
  std::map<std::string, std::vector<unsigned int>> LastFaultCodes() const;

 private:
  DcmiBackend(DcmiApi api, const catalog::Catalog& catalog, DcmiOptions options)
      : api_(api), catalog_(catalog), options_(std::move(options)) {}
  struct Chip {
    int card = 0, device = 0, logic = 0;
    unsigned int phy = 0;
    dcmi::ChipIdentity id;
  };
  Status Locate(int logic_id, int* card_id, int* device_id);
  dcmi::ChipIdentity IdentifyChip(int card_id, int device_id);
  std::vector<std::string> LinkDomainNames(const std::vector<Chip>& chips);
  DcmiApi api_;
  const catalog::Catalog& catalog_;
  DcmiOptions options_;
  mutable std::mutex mu_;  // the DCMI library is not documented as thread-safe
  std::string topology_key_;  // the chips the cached domains were computed for
  std::vector<std::string> topology_;
  std::map<std::string, DeviceInfo> known_;
  std::map<std::string, std::vector<unsigned int>> fault_codes_;
};

}  // namespace tideslice::deviceplugin
