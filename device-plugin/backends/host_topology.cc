#include "device-plugin/backends/host_topology.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace tideslice::deviceplugin {
namespace {

// sysfs attributes are one short line; more than this is not a sysfs attribute.
constexpr size_t kMaxAttribute = 4096;

bool ReadSmallFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string text(kMaxAttribute + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxAttribute) return false;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  *out = text;
  return true;
}

bool IsHex(const std::string& s, size_t min_len, size_t max_len) {
  if (s.size() < min_len || s.size() > max_len) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

std::string PciAddress(unsigned int domain, unsigned int bus, unsigned int device, unsigned int function) {
  if (domain > 0xffff || bus > 0xff || device > 0x1f || function > 7) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, bus, device, function);
  return buf;
}

std::string CanonicalPciAddress(const std::string& bus_id) {
  // [domain:]bus:device.function, hex.
  std::vector<std::string> parts;
  std::string cur;
  for (char c : bus_id) {
    if (c == ':') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  if (parts.size() == 2) parts.insert(parts.begin(), "0");
  if (parts.size() != 3) return "";
  const std::string& domain = parts[0];
  const std::string& bus = parts[1];
  auto dot = parts[2].find('.');
  if (dot == std::string::npos) return "";
  std::string device = parts[2].substr(0, dot), function = parts[2].substr(dot + 1);
  if (!IsHex(domain, 1, 8) || !IsHex(bus, 1, 2) || !IsHex(device, 1, 2) || !IsHex(function, 1, 1)) return "";
  unsigned long d = std::stoul(domain, nullptr, 16);
  return PciAddress(d > 0xffff ? 0x10000u : static_cast<unsigned int>(d),
                    static_cast<unsigned int>(std::stoul(bus, nullptr, 16)),
                    static_cast<unsigned int>(std::stoul(device, nullptr, 16)),
                    static_cast<unsigned int>(std::stoul(function, nullptr, 16)));
}

bool ParseCpuList(const std::string& text, std::string* normalised, std::vector<int>* cpus) {
  std::string t;
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\t') t += c;
  std::vector<int> all;
  int last = -1;
  size_t i = 0;
  auto number = [&](int* out) {
    size_t start = i;
    long v = 0;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
      v = v * 10 + (t[i] - '0');
      if (v >= 65536) return false;
      ++i;
    }
    *out = static_cast<int>(v);
    return i > start;
  };
  while (i < t.size()) {
    int a = 0, b = 0;
    if (!number(&a)) return false;
    b = a;
    if (i < t.size() && t[i] == '-') {
      ++i;
      if (!number(&b) || b < a) return false;
    }
    if (a <= last) return false;
    if (cpus)
      for (int c = a; c <= b; ++c) all.push_back(c);
    last = b;
    if (i < t.size()) {
      if (t[i] != ',' || i + 1 == t.size()) return false;
      ++i;
    }
  }
  if (normalised) *normalised = t;
  if (cpus) *cpus = std::move(all);
  return true;
}

int HostTopology::NumaNode(const std::string& pci_address) const {
  if (pci_address.empty() || pci_address.find('/') != std::string::npos) return -1;
  std::string text;
  if (!ReadSmallFile(root_ + "/bus/pci/devices/" + pci_address + "/numa_node", &text)) return -1;
  if (text.empty() || text.size() > 5) return -1;
  size_t i = text[0] == '-' ? 1 : 0;
  if (i == text.size()) return -1;
  for (size_t k = i; k < text.size(); ++k)
    if (!std::isdigit(static_cast<unsigned char>(text[k]))) return -1;
  int v = std::stoi(text);
  return v >= 0 && v < 1024 ? v : -1;
}

std::string HostTopology::CpuAffinity(const std::string& pci_address) const {
  if (pci_address.empty() || pci_address.find('/') != std::string::npos) return "";
  std::string text, out;
  if (ReadSmallFile(root_ + "/bus/pci/devices/" + pci_address + "/local_cpulist", &text) && !text.empty() &&
      ParseCpuList(text, &out))
    return out;
  int node = NumaNode(pci_address);
  if (node >= 0 && ReadSmallFile(root_ + "/devices/system/node/node" + std::to_string(node) + "/cpulist", &text) &&
      !text.empty() && ParseCpuList(text, &out))
    return out;
  return "";
}

}  // namespace tideslice::deviceplugin
