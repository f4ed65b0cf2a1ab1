// A fake libdcmi holding a whole Ascend machine: cards and chips with logic and physical IDs,
// chip names, board IDs, AI Cores, HBM, PCI addresses, health and fault codes, the driver's pair
// topology, and vNPU creation with the names a driver version accepts. Built from the layouts in
// deploy/examples, so the real DcmiBackend code path is what the tests and the inventory checks
// exercise. One machine per process (DCMI's C API has no user pointer).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "device-plugin/backends/dcmi_backend.h"

namespace tideslice::testsupport::fakedcmi {

namespace dcmi = deviceplugin::dcmi;

struct Chip {
  int card = 0, device = 0, logic = 0;
  unsigned int phy = 0;
  std::string name;
  unsigned int board = 0xFFFFFFFF, aicore = 20;
  unsigned long long hbm_mb = 65536;
  unsigned int health = 0;
  int health_rc = 0;
  std::vector<unsigned int> codes;
  int domain = 0;
  unsigned int bus = 0;
  bool present = true;
};
struct Machine {
  std::vector<Chip> chips;
  int topo_mode = 0;  // 0: answers from `hccs_group`; 1: not supported (-8255); 2: returns 0 with BUTT
  std::map<int, int> hccs_group;  // logic -> group, for the pair answers
  std::set<std::string> known_templates;  // what this driver version accepts; empty = any
  std::vector<std::string> created;
};
inline Machine& M() {
  static Machine machine;
  return machine;
}
// The tests and the fake functions below name the machine `m`.
inline Machine& m = M();

inline Chip MakeChip(int card, int device, int logic, unsigned int phy, const std::string& name,
              unsigned int board = 0xFFFFFFFF, unsigned int aicore = 20, unsigned long long hbm_mb = 65536) {
  Chip c;
  c.card = card;
  c.device = device;
  c.logic = logic;
  c.phy = phy;
  c.name = name;
  c.board = board;
  c.aicore = aicore;
  c.hbm_mb = hbm_mb;
  return c;
}

inline std::vector<Chip*> Present() {
  std::vector<Chip*> out;
  for (auto& c : m.chips)
    if (c.present) out.push_back(&c);
  return out;
}
inline Chip* Find(int card, int dev) {
  for (auto* c : Present())
    if (c->card == card && c->device == dev) return c;
  return nullptr;
}
inline int Init() { return 0; }
inline int CardList(int* n, int* list, int len) {
  std::vector<int> cards;
  for (auto* c : Present())
    if (std::find(cards.begin(), cards.end(), c->card) == cards.end()) cards.push_back(c->card);
  *n = static_cast<int>(cards.size());
  for (int i = 0; i < *n && i < len; ++i) list[i] = cards[static_cast<size_t>(i)];
  return 0;
}
inline int NumInCard(int card, int* n) {
  *n = 0;
  for (auto* c : Present()) *n += c->card == card;
  return 0;
}
inline int LogicId(int* logic, int card, int dev) {
  Chip* c = Find(card, dev);
  return c ? (*logic = c->logic, 0) : -8007;
}
inline int ChipInfoFn(int card, int dev, dcmi::ChipInfo* info) {
  Chip* c = Find(card, dev);
  if (!c) return -8007;
  std::memset(info, 0, sizeof *info);
  std::strcpy(reinterpret_cast<char*>(info->chip_type), "Ascend");
  std::strcpy(reinterpret_cast<char*>(info->chip_name), c->name.c_str());
  info->aicore_cnt = c->aicore;
  return 0;
}
inline int Health(int card, int dev, unsigned int* h) {
  Chip* c = Find(card, dev);
  if (!c) return -8007;
  *h = c->health;
  return c->health_rc;
}
inline int Hbm(int card, int dev, dcmi::HbmInfo* hbm) {
  *hbm = {};
  hbm->memory_size = Find(card, dev)->hbm_mb;
  return 0;
}
inline int Codes(int card, int dev, int* count, unsigned int* list, unsigned int len) {
  const auto& codes = Find(card, dev)->codes;
  *count = static_cast<int>(codes.size());
  for (size_t i = 0; i < codes.size() && i < len; ++i) list[i] = codes[i];
  return 0;
}
inline int Board(int card, int dev, dcmi::BoardInfo* b) {
  Chip* c = Find(card, dev);
  if (!c || c->board == 0xFFFFFFFF) return -8255;
  *b = {c->board, 0, 0, 0};
  return 0;
}
inline int Pcie(int card, int dev, dcmi::PcieInfoAll* p) {
  Chip* c = Find(card, dev);
  *p = {};
  p->venderid = 0x19e5;
  p->domain = c->domain;
  p->bdf_busid = c->bus;
  return 0;
}
inline int Topo(int c1, int d1, int c2, int d2, int* type) {
  if (m.topo_mode == 1) return -8255;
  if (m.topo_mode == 2) return *type = dcmi::kTopoButt, 0;
  Chip* a = Find(c1, d1);
  Chip* b = Find(c2, d2);
  *type = m.hccs_group[a->logic] == m.hccs_group[b->logic] ? dcmi::kTopoHccs : dcmi::kTopoSys;
  return 0;
}
inline int PhyId(unsigned int logic, unsigned int* phy) {
  for (auto* c : Present())
    if (static_cast<unsigned int>(c->logic) == logic) return *phy = c->phy, 0;
  return -8007;
}
inline int Driver(char* v, unsigned int len) { return std::strncpy(v, "24.1.rc2", len), 0; }
inline int Create(int card, int dev, dcmi::CreateVdevRes* res, dcmi::CreateVdevOut* out) {
  std::string name(res->template_name, strnlen(res->template_name, sizeof res->template_name));
  if (!m.known_templates.empty() && !m.known_templates.count(name)) return dcmi::kErrInvalidParameter;
  m.created.push_back(std::to_string(Find(card, dev)->logic) + ":" + name);
  out->vdev_id = 100 + static_cast<unsigned int>(m.created.size());
  return 0;
}

inline deviceplugin::DcmiApi Api() {
  deviceplugin::DcmiApi a;
  a.init = Init;
  a.get_card_list = CardList;
  a.get_device_num_in_card = NumInCard;
  a.get_device_logic_id = LogicId;
  a.get_device_chip_info = ChipInfoFn;
  a.get_device_health = Health;
  a.get_device_hbm_info = Hbm;
  a.create_vdevice = Create;
  a.get_device_errorcode_v2 = Codes;
  a.get_device_board_info = Board;
  a.get_device_pcie_info_v2 = Pcie;
  a.get_topo_info_by_device_id = Topo;
  a.get_device_phyid_from_logicid = PhyId;
  a.get_driver_version = Driver;
  return a;
}



// Loads an Ascend layout from deploy/examples: one chip per layout card, cards of the same
// "hccs" domain answering HCCS to each other; Duo layouts put two chips on each card.
inline void LoadLayout(const std::string& file, const std::string& sysfs, int chips_per_card, const std::string& chip_name,
                unsigned int board) {
  std::ifstream in(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/" + file);
  auto layout = nlohmann::json::parse(in);
  m = Machine{};
  int i = 0;
  for (const auto& c : layout["cards"]) {
    Chip chip;
    chip.card = i / chips_per_card;
    chip.device = i % chips_per_card;
    chip.logic = c["index"];
    chip.phy = static_cast<unsigned int>(chip.logic);
    chip.name = chip_name;
    chip.board = board;
    chip.aicore = c["computeUnits"];
    chip.hbm_mb = c["memoryMib"];
    unsigned int dom = 0, bus = 0, dev = 0, fn = 0;
    std::sscanf(c["pciBusId"].get<std::string>().c_str(), "%x:%x:%x.%x", &dom, &bus, &dev, &fn);
    chip.domain = static_cast<int>(dom);
    chip.bus = bus;
    const std::string dir = sysfs + "/bus/pci/devices/" + c["pciBusId"].get<std::string>();
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/numa_node") << c["numaNode"].get<int>() << "\n";
    std::ofstream(dir + "/local_cpulist") << c["cpuAffinity"].get<std::string>() << "\n";
    m.hccs_group[chip.logic] = std::stoi(c["linkDomain"].get<std::string>().substr(5));
    m.chips.push_back(chip);
    ++i;
  }
}


}  // namespace tideslice::testsupport::fakedcmi
