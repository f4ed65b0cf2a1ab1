#include "device-plugin/backends/dcmi_backend.h"

#include <dlfcn.h>

#include <cstring>

namespace tideslice::deviceplugin {
namespace {

constexpr int kMaxCards = 64;

std::string Text(const unsigned char* s, size_t n) {
  size_t len = 0;
  while (len < n && s[len]) ++len;
  return std::string(reinterpret_cast<const char*>(s), len);
}

}  // namespace

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
  sym("dcmi_get_card_list", api.get_card_list, true);
  sym("dcmi_get_device_num_in_card", api.get_device_num_in_card, true);
  sym("dcmi_get_device_logic_id", api.get_device_logic_id, true);
  sym("dcmi_get_device_chip_info", api.get_device_chip_info, true);
  sym("dcmi_get_device_health", api.get_device_health, true);
  sym("dcmi_get_device_hbm_info", api.get_device_hbm_info, false);
  sym("dcmi_get_device_temperature", api.get_device_temperature, false);
  sym("dcmi_get_device_power_info", api.get_device_power_info, false);
  sym("dcmi_create_vdevice", api.create_vdevice, false);
  sym("dcmi_set_destroy_vdevice", api.set_destroy_vdevice, false);
  if (!st.ok()) {
    dlclose(handle);
    return st;
  }
  return api;
}

StatusOr<std::unique_ptr<DcmiBackend>> DcmiBackend::Create(DcmiApi api, const catalog::Catalog& catalog) {
  if (!api.init || !api.get_card_list || !api.get_device_num_in_card || !api.get_device_logic_id ||
      !api.get_device_chip_info || !api.get_device_health)
    return Status::InvalidArgument("dcmi", "function table is incomplete");
  int rc = api.init();
  if (rc != 0) return Status::Unavailable("dcmi_init failed with code " + std::to_string(rc) + " (is the Ascend driver loaded?)");
  return std::unique_ptr<DcmiBackend>(new DcmiBackend(api, catalog));
}

DcmiBackend::~DcmiBackend() {
  if (api_.library) dlclose(api_.library);
}

StatusOr<std::vector<DeviceInfo>> DcmiBackend::Discover() {
  std::lock_guard<std::mutex> lock(mu_);
  int card_num = 0;
  int cards[kMaxCards] = {};
  int rc = api_.get_card_list(&card_num, cards, kMaxCards);
  if (rc != 0) return Status::Unavailable("dcmi_get_card_list failed with code " + std::to_string(rc));
  if (card_num < 0 || card_num > kMaxCards) return Status::Internal("DCMI reports " + std::to_string(card_num) + " cards");
  std::vector<DeviceInfo> out;
  for (int c = 0; c < card_num; ++c) {
    int devices = 0;
    rc = api_.get_device_num_in_card(cards[c], &devices);
    if (rc != 0 || devices < 0 || devices > 16)
      return Status::Unavailable("dcmi_get_device_num_in_card(" + std::to_string(cards[c]) + ") failed with code " +
                                 std::to_string(rc));
    for (int d = 0; d < devices; ++d) {
      int logic = -1;
      rc = api_.get_device_logic_id(&logic, cards[c], d);
      if (rc != 0 || logic < 0)
        return Status::Unavailable("dcmi_get_device_logic_id(" + std::to_string(cards[c]) + ", " + std::to_string(d) +
                                   ") failed with code " + std::to_string(rc));
      dcmi::ChipInfo chip{};
      DeviceInfo info;
      info.index = logic;
      info.vendor = "huawei";
      std::string chip_name;
      if (api_.get_device_chip_info(cards[c], d, &chip) == 0) chip_name = Text(chip.chip_name, sizeof chip.chip_name);
      const auto* model = catalog_.Find(chip_name);
      info.model = model ? model->name : (chip_name.empty() ? "unknown" : "Ascend" + chip_name);
      info.uuid = info.model + "-" + std::to_string(logic);  // node-unique and stable: logic IDs do not move
      unsigned int health = 0;
      rc = api_.get_device_health(cards[c], d, &health);
      info.healthy = rc == 0 && health < dcmi::kHealthMajorAlarm;
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
      out.push_back(std::move(info));
    }
  }
  return out;
}

Status DcmiBackend::Locate(int logic_id, int* card_id, int* device_id) {
  int card_num = 0;
  int cards[kMaxCards] = {};
  if (api_.get_card_list(&card_num, cards, kMaxCards) != 0 || card_num < 0 || card_num > kMaxCards)
    return Status::Unavailable("dcmi_get_card_list failed");
  for (int c = 0; c < card_num; ++c) {
    int devices = 0;
    if (api_.get_device_num_in_card(cards[c], &devices) != 0) continue;
    for (int d = 0; d < devices && d < 16; ++d) {
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
  if (template_name.empty() || template_name.size() >= 32)
    return Status::InvalidArgument("template", "must be a vNPU template name such as vir05_1c_16g");
  int card = 0, device = 0;
  TS_RETURN_IF_ERROR(Locate(logic_id, &card, &device));
  dcmi::CreateVdevOut out{};
  // vdev_id 0xFFFFFFFF (-1 as int): let the driver choose the vNPU ID.
  int rc = api_.create_vdevice(card, device, -1, template_name.c_str(), &out);
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
