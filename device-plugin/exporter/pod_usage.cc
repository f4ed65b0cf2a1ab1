#include "device-plugin/exporter/pod_usage.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace tideslice::deviceplugin {

std::optional<std::string> PodUidFromCgroup(std::string_view text) {
  size_t at = 0;
  while ((at = text.find("pod", at)) != std::string_view::npos) {
    at += 3;
    std::string uid;
    size_t i = at;
    while (i < text.size() && uid.size() < 36 &&
           (std::isxdigit(static_cast<unsigned char>(text[i])) || text[i] == '-' || text[i] == '_'))
      uid += text[i++] == '_' ? '-' : text[i - 1];
    // 8-4-4-4-12 hex digits: a pod UID, not some other word containing "pod".
    if (uid.size() == 36 && uid[8] == '-' && uid[13] == '-' && uid[18] == '-' && uid[23] == '-') {
      bool hex = true;
      for (size_t k = 0; k < uid.size(); ++k)
        if (k != 8 && k != 13 && k != 18 && k != 23 && !std::isxdigit(static_cast<unsigned char>(uid[k]))) hex = false;
      if (hex) return uid;
    }
  }
  return std::nullopt;
}

std::map<std::pair<std::string, std::string>, int64_t> UsageByPod(
    const std::vector<ProcessUsage>& processes,
    const std::function<std::optional<std::string>(uint32_t pid)>& read_cgroup) {
  std::map<std::pair<std::string, std::string>, int64_t> out;
  std::map<uint32_t, std::optional<std::string>> pod_of;  // a process on several cards: read once
  for (const auto& p : processes) {
    auto it = pod_of.find(p.pid);
    if (it == pod_of.end()) {
      auto text = read_cgroup(p.pid);
      it = pod_of.emplace(p.pid, text ? PodUidFromCgroup(*text) : std::nullopt).first;
    }
    if (it->second) out[{*it->second, p.card_uuid}] += p.memory_bytes;
  }
  return out;
}

std::optional<std::string> ReadProcCgroup(uint32_t pid, const std::string& proc_root) {
  std::ifstream in(proc_root + "/" + std::to_string(pid) + "/cgroup");
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace tideslice::deviceplugin
