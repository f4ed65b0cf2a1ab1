#include "tests/dra/claim_fuzz.h"

#include <string_view>

#include "device-plugin/dra/checkpoint.h"
#include "device-plugin/dra/claim.h"

namespace tideslice::fuzz {

void Fuzz_dra_claim(const uint8_t* data, size_t size) {
  static const dra::NodeInventory inventory = [] {
    deviceplugin::DeviceInfo a;
    a.uuid = "GPU-a";
    a.index = 0;
    a.vendor = "nvidia";
    a.model = "A100-40G";
    a.memory_mib = 40960;
    a.mig_enabled = true;
    deviceplugin::DeviceInfo b;
    b.uuid = "GPU-b";
    b.index = 1;
    b.vendor = "nvidia";
    b.model = "H100-80G";
    b.memory_mib = 81920;
    return *dra::BuildNodeInventory({a, b}, catalog::Catalog::Builtin(), dra::SliceLayout::kPartitionable);
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto claim = dra::ParseAllocatedClaim(text, "tideslice.io", {"team", "c1", "0f1c-uid"});
  if (!claim.ok()) {
    if (claim.status().ToString().empty()) __builtin_trap();  // every refusal says why
    return;
  }
  for (const auto& d : claim->devices) {
    if (d.base_request.empty() || d.base_request.find('/') != std::string::npos) __builtin_trap();
    if (d.memory_mib && *d.memory_mib < 0) __builtin_trap();
    if (d.cores_percent && (*d.cores_percent < 0 || *d.cores_percent > 100)) __builtin_trap();
  }
  auto plan = dra::PlanClaim(*claim, inventory, "node-a");
  if (plan.ok())
    for (const auto& r : *plan)
      if (r.devices.size() != r.slices.size() || r.results.size() != r.slices.size()) __builtin_trap();
}

void Fuzz_dra_checkpoint(const uint8_t* data, size_t size) {
  auto cp = dra::ParseCheckpoint(std::string(reinterpret_cast<const char*>(data), size));
  if (!cp.ok()) {
    if (cp.status().ToString().empty()) __builtin_trap();
    return;
  }
  for (const auto& [uid, c] : *cp)
    if (c.uid != uid || c.cdi_file.find('/') != std::string::npos) __builtin_trap();
}

}  // namespace tideslice::fuzz

#ifdef TIDESLICE_DRA_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tideslice::fuzz::Fuzz_dra_claim(data, size);
  return 0;
}
#endif
