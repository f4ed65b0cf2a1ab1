// Plain data describing accelerator models. Header-only and dependency-free so that the
// placement core can use it without pulling in the JSON loader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tideslice::catalog {

enum class Partitioning {
  kNone,        // whole cards and soft slices only
  kMig,         // NVIDIA Multi-Instance GPU: profiles with placement slots
  kAscendVnpu,  // Huawei Ascend vNPU templates: AI Core / AI CPU / memory budgets
};

const char* PartitioningName(Partitioning p);

struct PartitionProfile {
  std::string name;            // "3g.40gb", "vir05_1c_16g"
  int64_t memory_mib = 0;
  // MIG: compute slices (of mig_compute_slices); Ascend: AI Cores.
  int compute = 0;
  int aicpu = 0;               // Ascend only
  // MIG placement: occupies slot_size memory slices starting at one of start_slots.
  int slot_size = 0;
  std::vector<int> start_slots;
  int max_instances = 0;
};

// A profile's name as a piece of a DNS label ("3g.20gb" -> "3g20gb", "vir05_1c_16g" ->
// "vir05-1c-16g"): how the DRA driver names a partition device, and how the scheduler reads a
// claim's allocated device back to its profile. One rule, so the two cannot drift.
inline std::string ProfileLabel(const std::string& profile_name) {
  std::string out;
  for (char c : profile_name) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) out += c;
    else if (c >= 'A' && c <= 'Z') out += static_cast<char>(c - 'A' + 'a');
    else if (c == '_' || c == '-') out += '-';
  }
  return out;
}

struct AcceleratorModel {
  std::string name;
  std::string vendor;          // "nvidia", "huawei", ...
  std::vector<std::string> aliases;
  int64_t memory_mib = 0;
  int compute_units = 0;
  int aicpu_units = 0;
  double fp16_tflops = 0;
  std::string interconnect;
  Partitioning partitioning = Partitioning::kNone;
  int mig_memory_slices = 0;   // 8 on A100/H100
  int mig_compute_slices = 0;  // 7 on A100/H100
  std::vector<PartitionProfile> profiles;
  std::vector<std::string> sources;

  const PartitionProfile* FindProfile(const std::string& profile_name) const {
    for (const auto& p : profiles)
      if (p.name == profile_name) return &p;
    return nullptr;
  }
};

}  // namespace tideslice::catalog
