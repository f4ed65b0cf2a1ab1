#include "device-plugin/dra/cdi_spec.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <random>

namespace tideslice::dra {
namespace {

using nlohmann::json;

bool IsCdiNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':';
}
bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

bool IsCdiDeviceName(const std::string& s) {
  if (s.empty() || s.size() > 253 || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s)
    if (!IsCdiNameChar(c)) return false;
  return true;
}

Status Errno(const std::string& what) { return Status::Internal(what + ": " + std::strerror(errno)); }

}  // namespace

std::string CdiKind(const std::string& driver) { return "k8s." + driver + "/card"; }
std::string CdiDeviceName(const std::string& claim_uid, const std::string& request) {
  return claim_uid + "-" + request;
}
std::string CdiDeviceId(const std::string& driver, const std::string& claim_uid, const std::string& request) {
  return CdiKind(driver) + "=" + CdiDeviceName(claim_uid, request);
}
std::string CdiSpecFileName(const std::string& driver, const std::string& claim_uid) {
  return "k8s." + driver + "-card_" + claim_uid + ".json";
}

StatusOr<json> BuildCdiSpec(const std::string& driver, const std::string& claim_uid,
                            const std::vector<CdiRequestEdits>& requests) {
  if (requests.empty()) return Status::InvalidArgument("requests", "a CDI spec needs at least one device");
  json devices = json::array();
  for (const auto& r : requests) {
    const std::string name = CdiDeviceName(claim_uid, r.base_request);
    if (!IsCdiDeviceName(name))
      return Status::InvalidArgument("claim", "\"" + name + "\" is not a valid CDI device name");
    json edits = json::object();
    json env = json::array();
    // Sorted by name (a protobuf map has no order): the same claim always gives the same file.
    std::map<std::string, std::string> sorted(r.edits.envs().begin(), r.edits.envs().end());
    for (const auto& [k, v] : sorted) env.push_back(k + "=" + v);
    if (!env.empty()) edits["env"] = env;
    json nodes = json::array();
    for (const auto& d : r.edits.devices()) {
      if (d.container_path().empty() || d.container_path().front() != '/' || d.host_path().empty() ||
          d.host_path().front() != '/')
        return Status::InvalidArgument("devices", "device paths must be absolute");
      json n = {{"path", d.container_path()}, {"hostPath", d.host_path()}};
      if (!d.permissions().empty()) {
        // CDI takes the cgroup letters r, w, m.
        std::string perms;
        for (char c : d.permissions())
          if ((c == 'r' || c == 'w' || c == 'm') && perms.find(c) == std::string::npos) perms += c;
        if (!perms.empty()) n["permissions"] = perms;
      }
      nodes.push_back(n);
    }
    if (!nodes.empty()) edits["deviceNodes"] = nodes;
    json mounts = json::array();
    for (const auto& m : r.edits.mounts()) {
      if (m.container_path().empty() || m.container_path().front() != '/' || m.host_path().empty() ||
          m.host_path().front() != '/')
        return Status::InvalidArgument("mounts", "mount paths must be absolute");
      mounts.push_back({{"hostPath", m.host_path()},
                        {"containerPath", m.container_path()},
                        {"options", json::array({m.read_only() ? "ro" : "rw", "nosuid", "nodev", "bind"})}});
    }
    if (!mounts.empty()) edits["mounts"] = mounts;
    devices.push_back({{"name", name}, {"containerEdits", edits}});
  }
  return json{{"cdiVersion", kCdiVersion}, {"kind", CdiKind(driver)}, {"devices", devices}};
}

Status WriteCdiSpec(const std::string& dir, const std::string& file, const json& spec) {
  if (file.empty() || file.find('/') != std::string::npos) return Status::InvalidArgument("file", "bad CDI file name");
  const std::string text = spec.dump(2) + "\n";
  std::random_device rd;
  const std::string tmp = dir + "/.spec." + std::to_string(rd()) + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating " + tmp);
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = Errno("writing " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("syncing " + tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  const std::string path = dir + "/" + file;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("renaming " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return s;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Status RemoveCdiSpec(const std::string& dir, const std::string& file) {
  if (file.empty() || file.find('/') != std::string::npos) return Status::InvalidArgument("file", "bad CDI file name");
  const std::string path = dir + "/" + file;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Errno("removing " + path);
  return Status::Ok();
}

}  // namespace tideslice::dra
