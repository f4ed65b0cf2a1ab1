#include "device-plugin/backends/dcmi_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <regex>

#include "common/log/log.h"
#include "device-plugin/backends/host_topology.h"
#include "device-plugin/backends/link_domains.h"

namespace tideslice::deviceplugin {
namespace {

constexpr int kMaxCards = 64;
constexpr int kMaxDevicesPerCard = 16;
constexpr unsigned int kMaxFaultCodes = 128;  // dcmi_get_device_errorcode_v2 returns at most 128

std::string Text(const unsigned char* s, size_t n) {
  size_t len = 0;
  while (len < n && s[len]) ++len;
  return std::string(reinterpret_cast<const char*>(s), len);
}

std::string Hex(unsigned int v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

std::string HealthWord(unsigned int h) {
  switch (h) {
    case 0: return "normal";
    case 1: return "minor alarm";
    case 2: return "major alarm";
    case 3: return "critical alarm";
    case dcmi::kHealthAbsent: return "device absent";
    default: return "health " + std::to_string(h);
  }
}

}  // namespace

namespace dcmi {

ChipIdentity Identify(const std::string& chip_name, unsigned int board_id, unsigned int aicore) {
  ChipIdentity id;
  id.chip_name = chip_name;
  id.board_id = board_id;
  id.aicore = aicore;
  // Atlas A3 (910C) is told apart by board ID; DCMI v2 calls its chip plain "Ascend910".
  static const std::set<unsigned int> a3_boards = {0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0x81, 0x83, 0xD1, 0xD3};
  static const std::regex is_910b("^(910B[0-9]|A2G[0-9])");
  static const std::regex is_310p("^(310P[0-9]?|I2[0-9]?)");
  if (a3_boards.count(board_id)) id.family = ChipFamily::k910C;
  else if (std::regex_search(chip_name, is_910b)) id.family = ChipFamily::k910B;
  else if (std::regex_search(chip_name, is_310p)) id.family = ChipFamily::k310P;
  else if (chip_name.rfind("910", 0) == 0) id.family = ChipFamily::k910A1;
  return id;
}

namespace {
enum class Bin { kUnknown, k0, k1, k2, k2_1 };
Bin BinOf(const ChipIdentity& chip) {
  static const std::set<unsigned int> bin0 = {0x13, 0x30, 0x31, 0x39, 0x3A, 0x43, 0x50, 0x51};
  static const std::set<unsigned int> bin1 = {0x10, 0x12, 0x32, 0x3B, 0x42, 0x53};
  static const std::set<unsigned int> bin2 = {0x11, 0x28, 0x29, 0x33, 0x34, 0x37, 0x3C, 0x3D, 0x40, 0x41, 0x52, 0x54};
  static const std::set<unsigned int> bin2_1 = {0x38, 0x3E};
  if (bin0.count(chip.board_id)) return Bin::k0;
  if (bin1.count(chip.board_id)) return Bin::k1;
  if (bin2.count(chip.board_id)) return Bin::k2;
  if (bin2_1.count(chip.board_id)) return Bin::k2_1;
  // Board unknown: the marketing name says the bin ("A2G" is the same chip in "CH" builds).
  std::string n = chip.chip_name;
  if (n.rfind("A2G", 0) == 0) n = "910B" + n.substr(3);
  if (n == "910B1" || n == "910B2" || n == "910B2C") return Bin::k0;
  if (n == "910B3") return Bin::k1;
  if (n == "910B4") return Bin::k2;
  if (n == "910B4-1") return Bin::k2_1;
  return Bin::kUnknown;
}
}  // namespace

std::vector<std::string> VnpuTemplates(const ChipIdentity& chip) {
  switch (chip.family) {
    case ChipFamily::k310P:
      return {"vir01", "vir02", "vir02_1c", "vir04", "vir04_3c", "vir04_3c_ndvpp", "vir04_4c_dvpp"};
    case ChipFamily::k910A1:
      return {"vir02", "vir04", "vir08", "vir16"};
    case ChipFamily::k910B:
      switch (BinOf(chip)) {
        case Bin::k0: return {"vir06_1c_16g", "vir12_3c_32g"};
        case Bin::k1: return {"vir05_1c_16g", "vir10_3c_32g"};
        case Bin::k2: return {"vir05_1c_8g", "vir10_3c_16g", "vir10_3c_16g_nm", "vir10_4c_16g_m"};
        case Bin::k2_1: return {"vir05_1c_16g", "vir10_3c_32g"};
        case Bin::kUnknown: return {};
      }
      return {};
    case ChipFamily::k910C:
      // Per die: training dies have 24 AI Cores, inference dies 20.
      if (chip.aicore == 24) return {"vir06_1c_16g", "vir12_3c_32g"};
      if (chip.aicore == 20) return {"vir05_1c_16g", "vir10_3c_32g"};
      return {};
    case ChipFamily::kUnknown:
      return {};
  }
  return {};
}

std::string LegacyVnpuTemplate(const ChipIdentity& chip, const std::string& name) {
  if (chip.family != ChipFamily::k910B || BinOf(chip) != Bin::k2_1) return "";
  if (name == "vir05_1c_16g") return "vir05_1c_8g";
  if (name == "vir10_3c_32g") return "vir10_3c_16g";
  return "";
}

}  // namespace dcmi

StatusOr<DcmiApi> LoadDcmi(const std::string& library) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return Status::Unavailable("no Ascend driver found: cannot load " + library + " (" + (why ? why : "unknown") +
                               "); install the Ascend driver (DCMI) or pick another --backend");
  }
  DcmiApi api;
  api.library = handle;
  Status st;
  auto sym = [&](const char* name, auto& slot, bool required) {
    void* p = dlsym(handle, name);
    if (!p && required && st.ok()) st = Status::Unavailable(library + " lacks " + name + "; the driver is too old");
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(p);
  };
  sym("dcmi_init", api.init, true);
  sym("dcmi_get_card_list", api.get_card_list, false);
  if (!api.get_card_list) sym("dcmi_get_card_num_list", api.get_card_list, true);  // V1, same prototype
  sym("dcmi_get_device_num_in_card", api.get_device_num_in_card, true);
  sym("dcmi_get_device_logic_id", api.get_device_logic_id, true);
  sym("dcmi_get_device_chip_info", api.get_device_chip_info, true);
  sym("dcmi_get_device_health", api.get_device_health, true);
  sym("dcmi_get_device_hbm_info", api.get_device_hbm_info, false);
  sym("dcmi_get_device_temperature", api.get_device_temperature, false);
  sym("dcmi_get_device_power_info", api.get_device_power_info, false);
  sym("dcmi_create_vdevice", api.create_vdevice, false);
  sym("dcmi_set_destroy_vdevice", api.set_destroy_vdevice, false);
  sym("dcmi_get_device_errorcode_v2", api.get_device_errorcode_v2, false);
  sym("dcmi_get_device_board_info", api.get_device_board_info, false);
  sym("dcmi_get_device_pcie_info_v2", api.get_device_pcie_info_v2, false);
  sym("dcmi_get_topo_info_by_device_id", api.get_topo_info_by_device_id, false);
  sym("dcmi_get_device_phyid_from_logicid", api.get_device_phyid_from_logicid, false);
  sym("dcmi_get_driver_version", api.get_driver_version, false);
  if (!st.ok()) {
    dlclose(handle);
    return st;
  }
  return api;
}

StatusOr<std::unique_ptr<DcmiBackend>> DcmiBackend::Create(DcmiApi api, const catalog::Catalog& catalog) {
  return Create(api, catalog, DcmiOptions{});
}

StatusOr<std::unique_ptr<DcmiBackend>> DcmiBackend::Create(DcmiApi api, const catalog::Catalog& catalog,
                                                           DcmiOptions options) {
  if (!api.init || !api.get_card_list || !api.get_device_num_in_card || !api.get_device_logic_id ||
      !api.get_device_chip_info || !api.get_device_health)
    return Status::InvalidArgument("dcmi", "function table is incomplete");
  int rc = api.init();
  if (rc != 0) return Status::Unavailable("dcmi_init failed with code " + std::to_string(rc) + " (is the Ascend driver loaded?)");
  return std::unique_ptr<DcmiBackend>(new DcmiBackend(api, catalog, std::move(options)));
}

DcmiBackend::~DcmiBackend() {
  if (api_.library) dlclose(api_.library);
}

dcmi::ChipIdentity DcmiBackend::IdentifyChip(int card_id, int device_id) {
  dcmi::ChipInfo chip{};
  std::string name;
  unsigned int aicore = 0;
  if (api_.get_device_chip_info(card_id, device_id, &chip) == 0) {
    name = Text(chip.chip_name, sizeof chip.chip_name);
    aicore = chip.aicore_cnt;
  }
  dcmi::BoardInfo board{};
  unsigned int board_id = 0xFFFFFFFF;
  if (api_.get_device_board_info && api_.get_device_board_info(card_id, device_id, &board) == 0)
    board_id = board.board_id;
  return dcmi::Identify(name, board_id, aicore);
}

StatusOr<std::vector<DeviceInfo>> DcmiBackend::Discover() {
  std::lock_guard<std::mutex> lock(mu_);
  int card_num = 0;
  int cards[kMaxCards] = {};
  int rc = api_.get_card_list(&card_num, cards, kMaxCards);
  if (rc != 0) return Status::Unavailable("dcmi_get_card_list failed with code " + std::to_string(rc));
  if (card_num < 0 || card_num > kMaxCards) return Status::Internal("DCMI reports " + std::to_string(card_num) + " cards");
  std::string driver_version;
  if (api_.get_driver_version) {
    char v[96] = {};
    if (api_.get_driver_version(v, sizeof v - 1) == 0) driver_version = v;
  }
  const HostTopology host(options_.sysfs_root);
  std::vector<DeviceInfo> out;
  std::vector<Chip> chips;
  std::map<std::string, std::vector<unsigned int>> faults;
  for (int c = 0; c < card_num; ++c) {
    int devices = 0;
    rc = api_.get_device_num_in_card(cards[c], &devices);
    if (rc != 0 || devices < 0 || devices > kMaxDevicesPerCard)
      return Status::Unavailable("dcmi_get_device_num_in_card(" + std::to_string(cards[c]) + ") failed with code " +
                                 std::to_string(rc));
    for (int d = 0; d < devices; ++d) {
      int logic = -1;
      rc = api_.get_device_logic_id(&logic, cards[c], d);
      if (rc != 0 || logic < 0)
        return Status::Unavailable("dcmi_get_device_logic_id(" + std::to_string(cards[c]) + ", " + std::to_string(d) +
                                   ") failed with code " + std::to_string(rc));
      Chip chip;
      chip.card = cards[c];
      chip.device = d;
      chip.logic = logic;
      chip.phy = static_cast<unsigned int>(logic);
      unsigned int phy = 0;
      if (api_.get_device_phyid_from_logicid &&
          api_.get_device_phyid_from_logicid(static_cast<unsigned int>(logic), &phy) == 0)
        chip.phy = phy;
      chip.id = IdentifyChip(cards[c], d);
      DeviceInfo info;
      info.index = logic;
      info.vendor = "huawei";
      info.driver_version = driver_version;
      info.compute_units = static_cast<int>(chip.id.aicore);
      const std::string& chip_name = chip.id.chip_name;
      const auto* model = chip.id.family == dcmi::ChipFamily::k910C ? nullptr : catalog_.Find(chip_name);
      // A3 dies report the bare chip name "Ascend910", which catalogs alias to the older 910A.
      if (chip.id.family == dcmi::ChipFamily::k910C) info.model = "Ascend910C";
      else info.model = model ? model->name : (chip_name.empty() ? "unknown" : "Ascend" + chip_name);
      info.uuid = info.model + "-" + std::to_string(logic);  // node-unique and stable: logic IDs do not move
      info.partition_profiles = dcmi::VnpuTemplates(chip.id);
      unsigned int health = 0;
      rc = api_.get_device_health(cards[c], d, &health);
      std::vector<unsigned int> codes;
      if (api_.get_device_errorcode_v2) {
        int count = 0;
        unsigned int list[kMaxFaultCodes] = {};
        if (api_.get_device_errorcode_v2(cards[c], d, &count, list, kMaxFaultCodes) == 0 && count > 0)
          codes.assign(list, list + std::min<unsigned int>(static_cast<unsigned int>(count), kMaxFaultCodes));
      }
      std::string code_text;
      bool critical_code = false;
      for (unsigned int code : codes) {
        code_text += (code_text.empty() ? "" : " ") + Hex(code);
        if (code == dcmi::kFaultCardDrop || options_.extra_critical_fault_codes.count(code)) critical_code = true;
      }
      if (rc != 0) {
        info.healthy = false;
        info.health_reason = "dcmi_get_device_health failed with code " + std::to_string(rc);
      } else if (health >= dcmi::kHealthMajorAlarm || critical_code) {
        info.healthy = false;
        info.health_reason = HealthWord(health) + (code_text.empty() ? "" : " (fault codes " + code_text + ")");
      }
      if (!codes.empty()) faults[info.uuid] = codes;
      dcmi::HbmInfo hbm{};
      if (api_.get_device_hbm_info && api_.get_device_hbm_info(cards[c], d, &hbm) == 0 && hbm.memory_size > 0) {
        info.memory_mib = static_cast<int64_t>(hbm.memory_size);
        info.memory_used_mib = static_cast<int64_t>(hbm.memory_usage);
      } else {
        info.memory_mib = model ? model->memory_mib : 1;
      }
      int temp = 0, power = 0;
      if (api_.get_device_temperature && api_.get_device_temperature(cards[c], d, &temp) == 0 && temp >= 0)
        info.temperature_celsius = temp;
      if (api_.get_device_power_info && api_.get_device_power_info(cards[c], d, &power) == 0 && power >= 0)
        info.power_watts = power / 10.0;
      dcmi::PcieInfoAll pcie{};
      if (api_.get_device_pcie_info_v2 && api_.get_device_pcie_info_v2(cards[c], d, &pcie) == 0 && pcie.domain >= 0) {
        info.pci_bus_id = PciAddress(static_cast<unsigned int>(pcie.domain), pcie.bdf_busid, pcie.bdf_deviceid,
                                     pcie.bdf_funcid);
        info.numa_node = host.NumaNode(info.pci_bus_id);
        info.cpu_affinity = host.CpuAffinity(info.pci_bus_id);
      }
      out.push_back(std::move(info));
      chips.push_back(chip);
    }
  }
  std::vector<std::string> domains = LinkDomainNames(chips);
  for (size_t i = 0; i < out.size(); ++i) out[i].link_domain = domains[i];
  fault_codes_ = std::move(faults);
  // A chip seen before and missing now is reported unhealthy rather than silently dropped.
  std::set<std::string> present;
  for (const auto& d : out) present.insert(d.uuid);
  for (const auto& [uuid, last] : known_) {
    if (present.count(uuid)) continue;
    DeviceInfo gone = last;
    gone.healthy = false;
    gone.health_reason = "DCMI no longer lists this chip";
    gone.memory_used_mib = -1;
    gone.temperature_celsius = gone.power_watts = gone.utilization_ratio = -1;
    out.push_back(std::move(gone));
  }
  for (const auto& d : out)
    if (present.count(d.uuid)) known_[d.uuid] = d;
  return out;
}

std::vector<std::string> DcmiBackend::LinkDomainNames(const std::vector<Chip>& chips) {
  std::string key;
  for (const auto& c : chips)
    key += std::to_string(c.card) + "/" + std::to_string(c.device) + "/" + std::to_string(c.logic) + "/" +
           std::to_string(c.phy) + "/" + c.id.chip_name + "/" + std::to_string(c.id.board_id) + ";";
  if (key == topology_key_ && topology_.size() == chips.size()) return topology_;  // wiring does not change at run time
  const int n = static_cast<int>(chips.size());
  LinkDomains domains(n);
  auto family = [&](int i) { return chips[static_cast<size_t>(i)].id.family; };
  // 910B and 910C: ask the driver pair by pair (dcmi_get_topo_info_by_device_id is implemented
  // for those two only); the per-model rules below stand in where it cannot answer.
  std::vector<bool> answered(static_cast<size_t>(n), false);
  if (api_.get_topo_info_by_device_id) {
    for (int i = 0; i < n; ++i) {
      if (family(i) != dcmi::ChipFamily::k910B && family(i) != dcmi::ChipFamily::k910C) continue;
      for (int j = i + 1; j < n; ++j) {
        if (family(j) != family(i)) continue;
        const Chip& a = chips[static_cast<size_t>(i)];
        const Chip& b = chips[static_cast<size_t>(j)];
        int type = dcmi::kTopoButt;
        if (api_.get_topo_info_by_device_id(a.card, a.device, b.card, b.device, &type) != 0) continue;
        // BUTT (or a value past it) is "unknown": the driver's pair query failed behind a 0 return.
        if (type <= dcmi::kTopoSelf || type >= dcmi::kTopoButt) continue;
        answered[static_cast<size_t>(i)] = answered[static_cast<size_t>(j)] = true;
        if (type == dcmi::kTopoHccs || type == dcmi::kTopoSio || type == dcmi::kTopoHccsSwitch) domains.Link(i, j);
      }
    }
  }
  for (int i = 0; i < n; ++i) {
    if (answered[static_cast<size_t>(i)]) continue;
    const Chip& a = chips[static_cast<size_t>(i)];
    for (int j = i + 1; j < n; ++j) {
      if (answered[static_cast<size_t>(j)] || family(j) != family(i)) continue;
      const Chip& b = chips[static_cast<size_t>(j)];
      bool linked = false;
      switch (family(i)) {
        case dcmi::ChipFamily::k910A1:  // Atlas 800 9000/9010: two full-mesh groups, phy 0-3 and 4-7
          linked = a.phy / 4 == b.phy / 4;
          break;
        case dcmi::ChipFamily::k910B:  // 800T/800I A2: one HCCS domain of 8; Box16: two rings of 8
          linked = a.phy / 8 == b.phy / 8;
          break;
        case dcmi::ChipFamily::k910C:  // A3: dies by SIO, modules by HCCS: the node is one domain
          linked = true;
          break;
        case dcmi::ChipFamily::k310P:  // PCIe between cards; the two chips of an Atlas 300I Duo share HCCS
          linked = a.card == b.card;
          break;
        case dcmi::ChipFamily::kUnknown:
          break;
      }
      if (linked) domains.Link(i, j);
    }
  }
  std::vector<int> keys;
  for (const auto& c : chips) keys.push_back(c.logic);
  topology_ = domains.Names("hccs-", keys, "npu-");
  topology_key_ = key;
  return topology_;
}

std::map<std::string, std::vector<unsigned int>> DcmiBackend::LastFaultCodes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fault_codes_;
}

Status DcmiBackend::Locate(int logic_id, int* card_id, int* device_id) {
  int card_num = 0;
  int cards[kMaxCards] = {};
  if (api_.get_card_list(&card_num, cards, kMaxCards) != 0 || card_num < 0 || card_num > kMaxCards)
    return Status::Unavailable("dcmi_get_card_list failed");
  for (int c = 0; c < card_num; ++c) {
    int devices = 0;
    if (api_.get_device_num_in_card(cards[c], &devices) != 0) continue;
    for (int d = 0; d < devices && d < kMaxDevicesPerCard; ++d) {
      int logic = -1;
      if (api_.get_device_logic_id(&logic, cards[c], d) == 0 && logic == logic_id) {
        *card_id = cards[c];
        *device_id = d;
        return Status::Ok();
      }
    }
  }
  return Status::NotFound("no Ascend device with logic ID " + std::to_string(logic_id));
}

StatusOr<unsigned int> DcmiBackend::CreateVnpu(int logic_id, const std::string& template_name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!api_.create_vdevice) return Status::FailedPrecondition("this driver's DCMI has no dcmi_create_vdevice (no dynamic vNPU)");
  if (template_name.empty() || template_name.size() >= sizeof(dcmi::CreateVdevRes::template_name))
    return Status::InvalidArgument("template", "must be a vNPU template name such as vir05_1c_16g");
  int card = 0, device = 0;
  TS_RETURN_IF_ERROR(Locate(logic_id, &card, &device));
  const dcmi::ChipIdentity chip = IdentifyChip(card, device);
  const std::vector<std::string> can = dcmi::VnpuTemplates(chip);
  if (std::find(can.begin(), can.end(), template_name) == can.end()) {
    std::string list;
    for (const auto& t : can) list += (list.empty() ? "" : ", ") + t;
    char board[16] = "unknown";
    if (chip.board_id != 0xFFFFFFFF) std::snprintf(board, sizeof board, "0x%02X", chip.board_id);
    return Status::InvalidArgument("template", "Ascend device " + std::to_string(logic_id) + " (chip " +
                                                   (chip.chip_name.empty() ? "unknown" : chip.chip_name) + ", board " +
                                                   board + ") cannot create vNPU template " + template_name +
                                                   (list.empty() ? "; it creates no vNPUs" : "; it can create " + list));
  }
  auto create = [&](const std::string& name, dcmi::CreateVdevOut* out) {
    dcmi::CreateVdevRes res{};
    res.vdev_id = 0xFFFFFFFF;  // let the driver choose the vNPU ID and group
    res.vfg_id = 0xFFFFFFFF;
    std::memcpy(res.template_name, name.c_str(), name.size());
    return api_.create_vdevice(card, device, &res, out);
  };
  dcmi::CreateVdevOut out{};
  int rc = create(template_name, &out);
  if (rc == dcmi::kErrInvalidParameter) {
    // 910B4-1 on drivers before the fix knows these sizes only by the 910B4 names.
    std::string legacy = dcmi::LegacyVnpuTemplate(chip, template_name);
    if (!legacy.empty()) {
      log::Info("dcmi.vnpu_legacy_name", "the driver does not know the template; using the older driver's name for "
                                         "the same size", {{"template", template_name}, {"legacy", legacy}});
      out = {};
      rc = create(legacy, &out);
    }
  }
  if (rc != 0)
    return Status(StatusCode::kResourceExhausted,
                  "creating vNPU " + template_name + " on Ascend device " + std::to_string(logic_id) +
                      " failed with DCMI code " + std::to_string(rc) +
                      " (not enough free AI Cores or memory, or vNPU mode is off)");
  return out.vdev_id;
}

Status DcmiBackend::DestroyVnpu(int logic_id, unsigned int vnpu_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!api_.set_destroy_vdevice) return Status::FailedPrecondition("this driver's DCMI has no dcmi_set_destroy_vdevice");
  int card = 0, device = 0;
  TS_RETURN_IF_ERROR(Locate(logic_id, &card, &device));
  int rc = api_.set_destroy_vdevice(card, device, vnpu_id);
  if (rc != 0)
    return Status::Unavailable("destroying vNPU " + std::to_string(vnpu_id) + " on Ascend device " +
                               std::to_string(logic_id) + " failed with DCMI code " + std::to_string(rc));
  return Status::Ok();
}

StatusOr<std::string> DcmiBackend::CreatePartition(const DeviceInfo& card, const std::string& profile, int) {
  auto id = CreateVnpu(card.index, profile);
  if (!id.ok()) return id.status();
  return std::to_string(*id);
}

Status DcmiBackend::DestroyPartition(const DeviceInfo& card, const std::string& partition_id) {
  unsigned long id = 0;
  try {
    size_t used = 0;
    id = std::stoul(partition_id, &used);
    if (used != partition_id.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    return Status::InvalidArgument("partition", "\"" + partition_id + "\" is not a vNPU ID");
  }
  return DestroyVnpu(card.index, static_cast<unsigned int>(id));
}

}  // namespace tideslice::deviceplugin
