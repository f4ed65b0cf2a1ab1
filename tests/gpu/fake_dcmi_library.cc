// libdcmi.so stand-in for tideslice-inventory-dump in ctest: the fake DCMI machine of
// tests/device-plugin/fake_dcmi_machine.h, exported under DCMI's symbol names. Configured by
// $TIDESLICE_FAKE_DCMI_LAYOUT (a file name in deploy/examples), $TIDESLICE_FAKE_DCMI_CHIP (the
// chip name DCMI reports, e.g. 910B3), $TIDESLICE_FAKE_DCMI_BOARD (board ID, e.g. 0x32),
// $TIDESLICE_FAKE_DCMI_CHIPS_PER_CARD (default 1) and $TIDESLICE_FAKE_SYSFS (where the sysfs
// tree goes; the dump reads it with --sysfs-root).
#include <cstdlib>
#include <string>

#include "tests/device-plugin/fake_dcmi_machine.h"

namespace fake = tideslice::testsupport::fakedcmi;
namespace dcmi = tideslice::deviceplugin::dcmi;

extern "C" {
int dcmi_init() {
  const char* layout = std::getenv("TIDESLICE_FAKE_DCMI_LAYOUT");
  const char* chip = std::getenv("TIDESLICE_FAKE_DCMI_CHIP");
  const char* sysfs = std::getenv("TIDESLICE_FAKE_SYSFS");
  const char* board = std::getenv("TIDESLICE_FAKE_DCMI_BOARD");
  const char* per_card = std::getenv("TIDESLICE_FAKE_DCMI_CHIPS_PER_CARD");
  if (!layout || !chip || !sysfs) return -8005;
  try {
    fake::LoadLayout(layout, sysfs, per_card ? std::stoi(per_card) : 1, chip,
                     board ? static_cast<unsigned int>(std::stoul(board, nullptr, 0)) : 0xFFFFFFFF);
  } catch (...) {
    return -8005;
  }
  return 0;
}
int dcmi_get_card_list(int* n, int* list, int len) { return fake::CardList(n, list, len); }
int dcmi_get_device_num_in_card(int card, int* n) { return fake::NumInCard(card, n); }
int dcmi_get_device_logic_id(int* logic, int card, int dev) { return fake::LogicId(logic, card, dev); }
int dcmi_get_device_chip_info(int card, int dev, dcmi::ChipInfo* info) { return fake::ChipInfoFn(card, dev, info); }
int dcmi_get_device_health(int card, int dev, unsigned int* h) { return fake::Health(card, dev, h); }
int dcmi_get_device_hbm_info(int card, int dev, dcmi::HbmInfo* hbm) { return fake::Hbm(card, dev, hbm); }
int dcmi_get_device_errorcode_v2(int card, int dev, int* count, unsigned int* list, unsigned int len) {
  return fake::Codes(card, dev, count, list, len);
}
int dcmi_get_device_board_info(int card, int dev, dcmi::BoardInfo* b) { return fake::Board(card, dev, b); }
int dcmi_get_device_pcie_info_v2(int card, int dev, dcmi::PcieInfoAll* p) { return fake::Pcie(card, dev, p); }
int dcmi_get_topo_info_by_device_id(int c1, int d1, int c2, int d2, int* type) { return fake::Topo(c1, d1, c2, d2, type); }
int dcmi_get_device_phyid_from_logicid(unsigned int logic, unsigned int* phy) { return fake::PhyId(logic, phy); }
int dcmi_get_driver_version(char* v, unsigned int len) { return fake::Driver(v, len); }
}
