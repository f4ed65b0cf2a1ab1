#include "device-plugin/dra/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace tideslice::dra {
namespace {

using nlohmann::json;
constexpr int kVersion = 1;

Status Bad(const std::string& msg) { return Status::InvalidArgument("checkpoint", msg); }

StatusOr<std::vector<std::string>> Strings(const json& obj, const char* key) {
  std::vector<std::string> out;
  if (!obj.contains(key)) return out;
  if (!obj[key].is_array()) return Bad(std::string(key) + " must be a list");
  for (const auto& v : obj[key]) {
    if (!v.is_string()) return Bad(std::string(key) + " must hold strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

StatusOr<std::string> Str(const json& obj, const char* key) {
  if (!obj.contains(key)) return std::string();
  if (!obj[key].is_string()) return Bad(std::string(key) + " must be a string");
  return obj[key].get<std::string>();
}

}  // namespace

StatusOr<Checkpoint> ParseCheckpoint(const std::string& text) {
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object()) return Bad("is not a JSON object");
  if (root.value("version", 0) != kVersion) return Bad("has an unknown version (want 1)");
  if (!root.contains("claims") || !root["claims"].is_object()) return Bad("has no claims object");
  Checkpoint out;
  for (const auto& [uid, c] : root["claims"].items()) {
    if (!c.is_object()) return Bad("claim " + uid + " is not an object");
    PreparedClaim p;
    p.uid = uid;
    auto ns = Str(c, "namespace"), name = Str(c, "name"), cdi = Str(c, "cdiFile");
    for (const auto* s : {&ns, &name, &cdi})
      if (!s->ok()) return s->status();
    p.ns = *ns;
    p.name = *name;
    p.cdi_file = *cdi;
    if (p.cdi_file.find('/') != std::string::npos) return Bad("claim " + uid + ": cdiFile must be a file name");
    auto lim = Strings(c, "limiterRequests");
    if (!lim.ok()) return lim.status();
    p.limiter_requests = *lim;
    if (c.contains("devices")) {
      if (!c["devices"].is_array()) return Bad("devices must be a list");
      for (const auto& d : c["devices"]) {
        if (!d.is_object()) return Bad("a device must be an object");
        PreparedDevice pd;
        auto rn = Strings(d, "requestNames"), ids = Strings(d, "cdiIds");
        auto pool = Str(d, "pool"), dev = Str(d, "device"), share = Str(d, "shareId");
        if (!rn.ok()) return rn.status();
        if (!ids.ok()) return ids.status();
        for (const auto* s : {&pool, &dev, &share})
          if (!s->ok()) return s->status();
        pd = {*rn, *pool, *dev, *share, *ids};
        p.devices.push_back(std::move(pd));
      }
    }
    if (c.contains("partitions")) {
      if (!c["partitions"].is_array()) return Bad("partitions must be a list");
      for (const auto& d : c["partitions"]) {
        if (!d.is_object()) return Bad("a partition must be an object");
        auto card = Str(d, "card"), id = Str(d, "id");
        if (!card.ok()) return card.status();
        if (!id.ok()) return id.status();
        p.partitions.push_back({*card, *id});
      }
    }
    out[uid] = std::move(p);
  }
  return out;
}

StatusOr<Checkpoint> LoadCheckpoint(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return Checkpoint{};
    return Status::Internal("reading " + path + ": " + std::strerror(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseCheckpoint(ss.str());
  if (!parsed.ok())
    return parsed.status().WithContext(path + " (move it away only after undoing what it lists by hand)");
  return parsed;
}

Status SaveCheckpoint(const std::string& path, const Checkpoint& checkpoint) {
  json claims = json::object();
  for (const auto& [uid, c] : checkpoint) {
    json devices = json::array();
    for (const auto& d : c.devices)
      devices.push_back({{"requestNames", d.request_names}, {"pool", d.pool}, {"device", d.device},
                         {"shareId", d.share_id}, {"cdiIds", d.cdi_ids}});
    json parts = json::array();
    for (const auto& p : c.partitions) parts.push_back({{"card", p.card_uuid}, {"id", p.partition_id}});
    claims[uid] = {{"namespace", c.ns}, {"name", c.name}, {"devices", devices}, {"partitions", parts},
                   {"limiterRequests", c.limiter_requests}, {"cdiFile", c.cdi_file}};
  }
  const std::string text = json{{"version", kVersion}, {"claims", claims}}.dump(1) + "\n";
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Internal("writing " + tmp + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return Status::Internal("writing " + tmp + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return Status::Internal("syncing " + tmp + ": " + std::strerror(errno));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::Internal("renaming " + tmp + ": " + std::strerror(errno));
  const std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

}  // namespace tideslice::dra
