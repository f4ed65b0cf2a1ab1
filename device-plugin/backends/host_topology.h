// Where a PCI device sits on the host, read from Linux sysfs: its NUMA node and the CPUs near it.
// The root is a parameter so that tests point it at a temporary directory laid out like /sys.
// Everything read is validated: a file that is missing or malformed means "unknown", never a guess.
#pragma once

#include <string>
#include <vector>

namespace tideslice::deviceplugin {

// "00000000:17:00.0" (NVML's busId: 8-digit upper-case domain), "0000:17:00.0", "17:00.0" ->
// "0000:17:00.0", the form sysfs uses under /sys/bus/pci/devices. Empty when `bus_id` is not a
// PCI address or its domain does not fit sysfs' 4 digits.
std::string CanonicalPciAddress(const std::string& bus_id);
// Same address from numbers (DCMI's dcmi_pcie_info_all, NVML's nvmlPciInfo_t).
std::string PciAddress(unsigned int domain, unsigned int bus, unsigned int device, unsigned int function);

// A Linux cpulist ("0-23,48-71", "3", "") checked and normalised (no spaces, trailing newline
// dropped). Returns false for anything else; ranges must ascend and stay below 65536.
bool ParseCpuList(const std::string& text, std::string* normalised, std::vector<int>* cpus = nullptr);

class HostTopology {
 public:
  explicit HostTopology(std::string sysfs_root = "/sys") : root_(std::move(sysfs_root)) {}
  // <root>/bus/pci/devices/<address>/numa_node: the host NUMA node of the device; -1 when the
  // kernel does not know (the file says -1, common in VMs) or the file is missing/malformed.
  int NumaNode(const std::string& pci_address) const;
  // <root>/bus/pci/devices/<address>/local_cpulist, else the cpulist of its NUMA node
  // (<root>/devices/system/node/node<N>/cpulist); empty when neither can be read.
  std::string CpuAffinity(const std::string& pci_address) const;
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace tideslice::deviceplugin
