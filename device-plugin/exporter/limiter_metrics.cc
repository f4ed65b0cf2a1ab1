#include "device-plugin/exporter/limiter_metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include <google/protobuf/util/json_util.h>

#include "common/log/log.h"
#include "device-plugin/limiter/region_layout.h"
#include "device-plugin/plugin/limiter_paths.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::deviceplugin {

namespace fs = std::filesystem;
using limiter::CardBook;
using limiter::ProcessSlot;
using limiter::Region;

namespace {

constexpr size_t kMaxConfigBytes = 64 * 1024;
constexpr uint64_t kMaxCounter = uint64_t(1) << 53;  // exact in a double

// A file under a directory a container can write to: no links followed, no FIFO opened (which
// would block), only a regular file.
int OpenRegular(const std::string& path, struct stat* st, std::string* why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *why = path + ": " + std::strerror(errno);
    return -1;
  }
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    *why = path + " is not a regular file";
    ::close(fd);
    return -1;
  }
  return fd;
}

bool ReadAt(int fd, void* buf, size_t size, off_t offset) {
  char* p = static_cast<char*>(buf);
  for (size_t done = 0; done < size;) {
    ssize_t n = ::pread(fd, p + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

uint64_t Load64(const std::vector<unsigned char>& buf, size_t offset) {
  uint64_t v = 0;
  std::memcpy(&v, buf.data() + offset, sizeof v);
  return v;
}

uint64_t SaturatingAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

size_t CardBookOffset(uint32_t card, size_t field) { return offsetof(Region, cards) + card * sizeof(CardBook) + field; }
size_t SlotBytesOffset(uint32_t slot, uint32_t card) {
  return offsetof(Region, slots) + slot * sizeof(ProcessSlot) + offsetof(ProcessSlot, bytes) + card * sizeof(uint64_t);
}

// Is someone holding the OFD lock on slot `s`'s first byte? nullopt: the kernel cannot tell.
std::optional<bool> SlotOwnerAlive(int fd, uint32_t slot) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = limiter::SlotLockOffset(slot);
  fl.l_len = 1;
  fl.l_pid = 0;
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return std::nullopt;
  return fl.l_type != F_UNLCK;
}

// Fills the measured values of `r`'s cards from its region, or says why not.
void MeasureRegion(const std::string& path, LimiterContainerReading& r) {
  struct stat st {};
  std::string why;
  int fd = OpenRegular(path, &st, &why);
  if (fd < 0) {
    r.problem = why;
    return;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (static_cast<uint64_t>(st.st_size) != sizeof(Region)) {
    r.problem = path + " has " + std::to_string(st.st_size) + " bytes, not " + std::to_string(sizeof(Region));
    return;
  }
  std::vector<unsigned char> buf(sizeof(Region));
  if (!ReadAt(fd, buf.data(), buf.size(), 0)) {
    r.problem = path + " could not be read whole (truncated while reading?)";
    return;
  }
  limiter::RegionHeader header;
  std::memcpy(&header, buf.data(), sizeof header);
  if (!limiter::RegionHeaderValid(header)) {
    r.problem = path + " has no valid region header (magic, version or layout differ)";
    return;
  }
  r.region_created_unix_s = header.created_unix_s;
  // Slots with bytes on a soft card, and whether their owners live.
  std::vector<bool> alive(limiter::kRegionMaxSlots, false);
  bool tested = true;
  for (uint32_t s = 0; s < limiter::kRegionMaxSlots && tested; ++s) {
    bool any = false;
    for (const auto& c : r.cards) any = any || Load64(buf, SlotBytesOffset(s, c.region_card)) != 0;
    if (!any) continue;
    auto live = SlotOwnerAlive(fd, s);
    if (!live) tested = false;
    else alive[s] = *live;
  }
  r.liveness_tested = tested;
  for (auto& c : r.cards) {
    uint64_t used = 0;
    if (tested) {
      for (uint32_t s = 0; s < limiter::kRegionMaxSlots; ++s)
        if (alive[s]) used = SaturatingAdd(used, Load64(buf, SlotBytesOffset(s, c.region_card)));
    } else {
      used = Load64(buf, CardBookOffset(c.region_card, offsetof(CardBook, used_bytes)));
    }
    c.used_bytes = std::min(used, kLimiterAbsurdBytes);
    c.refused = std::min(Load64(buf, CardBookOffset(c.region_card, offsetof(CardBook, refused))), kMaxCounter);
    c.measured = true;
  }
}

}  // namespace

StatusOr<LimiterContainerReading> ReadLimiterContainer(const std::string& container_dir) {
  const fs::path dir(container_dir);
  const std::string uid = dir.parent_path().filename().string();
  const std::string container = dir.filename().string();
  const std::string config_path = container_dir + "/config.json";
  struct stat st {};
  std::string why;
  int fd = OpenRegular(config_path, &st, &why);
  if (fd < 0) return Status::NotFound(why);
  std::string text;
  bool read = st.st_size >= 0 && static_cast<size_t>(st.st_size) <= kMaxConfigBytes;
  if (read) {
    text.resize(static_cast<size_t>(st.st_size));
    read = ReadAt(fd, text.data(), text.size(), 0);
  }
  ::close(fd);
  if (!read) return Status::InvalidArgument("config", config_path + " is larger than 64 KiB or unreadable");
  v1::LimiterConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(text, &config, options);
  if (!parsed.ok()) return Status::InvalidArgument("config", config_path + ": " + std::string(parsed.message()));
  if (config.version() != 1)
    return Status::InvalidArgument("config", config_path + " has version " + std::to_string(config.version()));
  if (config.pod_uid() != uid || config.container() != container)
    return Status::InvalidArgument("config", config_path + " names " + config.pod_uid() + "/" + config.container() +
                                                 ", not the directory's " + uid + "/" + container);
  if (config.cards_size() > static_cast<int>(limiter::kRegionMaxCards))
    return Status::InvalidArgument("config", config_path + " lists more cards than the region has books");
  LimiterContainerReading r;
  r.pod_uid = uid;
  r.pod_namespace = config.pod_namespace();
  r.pod = config.pod_name();
  r.container = container;
  r.vendor = config.vendor();
  std::set<uint32_t> books;
  for (const auto& c : config.cards()) {
    if (c.region_card() >= limiter::kRegionMaxCards || !books.insert(c.region_card()).second)
      return Status::InvalidArgument("config", config_path + ": card " + c.uuid() + " has region_card " +
                                                   std::to_string(c.region_card()));
    if (c.memory_limit_bytes() == 0) continue;  // whole card or hard partition: not limited
    LimiterCardReading card;
    card.card = c.uuid();
    card.region_card = c.region_card();
    card.limit_bytes = std::min<uint64_t>(c.memory_limit_bytes(), kLimiterAbsurdBytes);
    r.cards.push_back(std::move(card));
  }
  MeasureRegion(container_dir + "/region/" + limiter::kRegionFileName, r);
  return r;
}

std::vector<LimiterContainerReading> ReadLimiterContainers(const std::string& limiter_dir,
                                                           std::vector<std::string>* problems) {
  std::vector<LimiterContainerReading> out;
  const LimiterLayout layout{limiter_dir};
  auto real_dirs = [](const std::string& path) {
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (IsLimiterPathSegment(name) && it->is_directory(ec) && !it->is_symlink(ec)) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  for (const auto& uid : real_dirs(layout.ContainersDir())) {
    for (const auto& container : real_dirs(layout.PodDir(uid))) {
      auto r = ReadLimiterContainer(layout.ContainerDir(uid, container));
      if (r.ok()) out.push_back(std::move(*r));
      else if (problems) problems->push_back(r.status().ToString());
    }
  }
  return out;
}

LimiterMetrics::LimiterMetrics(std::shared_ptr<prometheus::Registry> registry, std::string node_name)
    : node_(std::move(node_name)),
      used_(prometheus::BuildGauge()
                .Name("tideslice_container_memory_used_bytes")
                .Help("Card memory the container's live processes hold on a soft-slice card, as TideSlice's "
                      "in-container limiter accounts it, in bytes.")
                .Register(*registry)),
      limit_(prometheus::BuildGauge()
                 .Name("tideslice_container_memory_limit_bytes")
                 .Help("The memory limit the in-container limiter enforces for the container on a soft-slice card, in "
                       "bytes.")
                 .Register(*registry)),
      refused_(prometheus::BuildCounter()
                   .Name("tideslice_container_memory_refused_allocations_total")
                   .Help("Allocations the in-container limiter answered with out-of-memory because they would "
                         "exceed the container's limit on the card.")
                   .Register(*registry)),
      card_used_(prometheus::BuildGauge()
                     .Name("tideslice_card_soft_slice_memory_used_bytes")
                     .Help("Sum over the card's soft slices of the memory their containers hold, as the in-container "
                           "limiters account it, in bytes.")
                     .Register(*registry)),
      card_limit_(prometheus::BuildGauge()
                      .Name("tideslice_card_soft_slice_memory_limit_bytes")
                      .Help("Sum over the card's soft slices of their memory limits, in bytes.")
                      .Register(*registry)) {}

void LimiterMetrics::SetGauges(prometheus::Family<prometheus::Gauge>& family,
                               std::map<Labels, prometheus::Gauge*>& live, const std::map<Labels, double>& want) {
  for (auto it = live.begin(); it != live.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    family.Remove(it->second);
    it = live.erase(it);
  }
  for (const auto& [labels, value] : want) {
    auto& g = live[labels];
    if (!g) g = &family.Add(labels);
    g->Set(value);
  }
}

void LimiterMetrics::Update(const std::vector<LimiterContainerReading>& containers,
                            const std::vector<DeviceInfo>& cards, const std::vector<std::string>& unreadable) {
  std::map<Labels, double> used, limit, card_used, card_limit;
  std::map<Labels, uint64_t> refused;
  std::map<Labels, uint64_t> created;  // two directories with one label set: the newest wins
  std::map<std::string, std::string> problems;
  for (const auto& why : unreadable) problems[why] = why;
  for (const auto& r : containers) {
    if (!r.problem.empty()) problems[r.pod_uid + "/" + r.container] = r.problem;
    for (const auto& c : r.cards) {
      // Labelled as the agent's other card metrics are: card = the card's index on the node,
      // uuid = its UUID; and its memory as the bound.
      std::string index = c.card, uuid = c.card;
      uint64_t bound = kLimiterAbsurdBytes;
      for (const auto& d : cards) {
        bool same = r.vendor == "huawei" ? (d.vendor == "huawei" && std::to_string(d.index) == c.card) : d.uuid == c.card;
        if (!same) continue;
        index = std::to_string(d.index);
        uuid = d.uuid;
        if (d.memory_mib > 0) bound = static_cast<uint64_t>(d.memory_mib) << 20;
        break;
      }
      Labels labels = {{"node", node_}, {"namespace", r.pod_namespace}, {"pod", r.pod}, {"container", r.container},
                       {"card", index}, {"uuid", uuid}};
      auto seen = created.find(labels);
      if (seen != created.end() && seen->second > r.region_created_unix_s) continue;
      created[labels] = r.region_created_unix_s;
      limit[labels] = static_cast<double>(c.limit_bytes);
      if (c.measured) {
        used[labels] = static_cast<double>(std::min(c.used_bytes, bound));
        refused[labels] = c.refused;
      } else {
        used.erase(labels);
        refused.erase(labels);
      }
    }
  }
  // Per card: limits of every soft slice; use of those measured (a card none of whose regions
  // could be read has no used series rather than a zero).
  for (const auto& [labels, value] : limit)
    card_limit[{{"node", node_}, {"card", labels.at("card")}, {"uuid", labels.at("uuid")}}] += value;
  for (const auto& [labels, value] : used)
    card_used[{{"node", node_}, {"card", labels.at("card")}, {"uuid", labels.at("uuid")}}] += value;
  SetGauges(used_, used_series_, used);
  SetGauges(limit_, limit_series_, limit);
  SetGauges(card_used_, card_used_series_, card_used);
  SetGauges(card_limit_, card_limit_series_, card_limit);
  // Counters follow the region's count: increments as they come; a count that went back (a new
  // region for the same labels, or a rewritten one) restarts the series, which Prometheus reads
  // as a counter reset.
  for (auto it = refused_series_.begin(); it != refused_series_.end();) {
    if (refused.count(it->first)) {
      ++it;
      continue;
    }
    refused_.Remove(it->second.counter);
    it = refused_series_.erase(it);
  }
  for (const auto& [labels, value] : refused) {
    auto& s = refused_series_[labels];
    if (s.counter && value < s.last) {
      refused_.Remove(s.counter);
      s = CounterSeries{};
    }
    if (!s.counter) s.counter = &refused_.Add(labels);
    if (value > s.last) s.counter->Increment(static_cast<double>(value - s.last));
    s.last = value;
  }
  // Reasons a region is not measured: once per container and change.
  for (const auto& [key, why] : problems) {
    auto& last = problems_[key];
    if (last != why)
      log::Warn("limiter.region_unreadable", "not measuring a container's limiter region: " + why, {{"container", key}});
    last = why;
  }
  std::erase_if(problems_, [&](const auto& kv) { return !problems.count(kv.first); });
}

}  // namespace tideslice::deviceplugin
