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
#include "device-plugin/limiter/card_coordination.h"
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
    // A compute share: the card's coordination slot (the agent's own choice, within the roster).
    const bool coordinated = !c.coordination_dir().empty() && c.coordination_slot() < limiter::kRosterMaxEntries;
    if (c.memory_limit_bytes() == 0 && !coordinated) continue;  // whole card or hard partition: not limited
    LimiterCardReading card;
    card.card = c.uuid();
    card.region_card = c.region_card();
    card.limit_bytes = std::min<uint64_t>(c.memory_limit_bytes(), kLimiterAbsurdBytes);
    card.coordinated = coordinated;
    card.coordination_slot = coordinated ? c.coordination_slot() : 0;
    card.share_permille = std::min<uint32_t>(c.compute_permille(), 1000);
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
                      .Register(*registry)),
      share_(prometheus::BuildGauge()
                 .Name("tideslice_container_compute_share_ratio")
                 .Help("Share of the card's time the container's work kept it busy between the agent's last two "
                       "polls (0..1), as the in-container limiter measures it; compare with "
                       "tideslice_container_compute_allocated_ratio.")
                 .Register(*registry)),
      throttled_(prometheus::BuildCounter()
                     .Name("tideslice_container_compute_throttled_seconds_total")
                     .Help("Time the container's launches on the card waited for its compute share's budget, in "
                           "seconds.")
                     .Register(*registry)),
      yields_(prometheus::BuildCounter()
                  .Name("tideslice_container_compute_yields_total")
                  .Help("Times the container's limiter yielded the card to an inference container sharing it.")
                  .Register(*registry)),
      yielded_(prometheus::BuildCounter()
                   .Name("tideslice_container_compute_yielded_seconds_total")
                   .Help("Time the container's launches waited while yielding the card to inference containers, in "
                         "seconds.")
                   .Register(*registry)),
      granted_(prometheus::BuildGauge()
                   .Name("tideslice_card_compute_granted_ratio")
                   .Help("Sum of the compute shares granted to the containers on the card (its roster), in cards "
                         "(0..n); compare with tideslice_card_utilization_ratio, measured.")
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
      if (c.limit_bytes == 0) continue;  // a compute share only: no memory series
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
  FollowCounters(refused_, refused_series_, refused, 1.0);
  LogProblems(problems, problems_, "limiter.region_unreadable", "not measuring a container's limiter region: ",
              "container");
}

void LimiterMetrics::FollowCounters(prometheus::Family<prometheus::Counter>& family,
                                    std::map<Labels, CounterSeries>& live, const std::map<Labels, uint64_t>& want,
                                    double divisor) {
  for (auto it = live.begin(); it != live.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    family.Remove(it->second.counter);
    it = live.erase(it);
  }
  for (const auto& [labels, value] : want) {
    auto& s = live[labels];
    if (s.counter && value < s.last) {
      family.Remove(s.counter);
      s = CounterSeries{};
    }
    if (!s.counter) s.counter = &family.Add(labels);
    if (value > s.last) s.counter->Increment(static_cast<double>(value - s.last) / divisor);
    s.last = value;
  }
}

// Reasons something is not measured: once per key and change.
void LimiterMetrics::LogProblems(const std::map<std::string, std::string>& problems,
                                 std::map<std::string, std::string>& logged, const char* event, const std::string& what,
                                 const char* field) {
  for (const auto& [key, why] : problems) {
    auto& last = logged[key];
    if (last != why) log::Warn(event, what + why, {{field, key}});
    last = why;
  }
  std::erase_if(logged, [&](const auto& kv) { return !problems.count(kv.first); });
}

namespace {

// The slot's entry: a regular file of exactly sizeof(CardEntry) bytes with a valid header.
void MeasureEntry(const std::string& path, CardSlotReading& slot) {
  struct stat st {};
  std::string why;
  int fd = OpenRegular(path, &st, &why);
  if (fd < 0) {
    slot.problem = why;
    return;
  }
  std::vector<unsigned char> buf(sizeof(limiter::CardEntry));
  bool read = static_cast<uint64_t>(st.st_size) == buf.size() && ReadAt(fd, buf.data(), buf.size(), 0);
  ::close(fd);
  if (static_cast<uint64_t>(st.st_size) != buf.size()) {
    slot.problem = path + " has " + std::to_string(st.st_size) + " bytes, not " + std::to_string(buf.size());
    return;
  }
  if (!read) {
    slot.problem = path + " could not be read whole (truncated while reading?)";
    return;
  }
  // The header's plain fields, copied out (the counters are atomics, read as bytes below).
  limiter::CardEntry head{};
  std::memcpy(head.magic, buf.data() + offsetof(limiter::CardEntry, magic), sizeof head.magic);
  std::memcpy(&head.version, buf.data() + offsetof(limiter::CardEntry, version), sizeof head.version);
  std::memcpy(&head.entry_bytes, buf.data() + offsetof(limiter::CardEntry, entry_bytes), sizeof head.entry_bytes);
  const bool valid = limiter::CardEntryValid(head);
  if (!valid) {
    slot.problem = path + " has no valid entry header (magic, version or size differ)";
    return;
  }
  slot.busy_ns = std::min(Load64(buf, offsetof(limiter::CardEntry, busy_ns)), kLimiterAbsurdNs);
  slot.throttled_ns = std::min(Load64(buf, offsetof(limiter::CardEntry, throttled_ns)), kLimiterAbsurdNs);
  slot.yields = std::min(Load64(buf, offsetof(limiter::CardEntry, yields)), kMaxCounter);
  slot.yielded_ns = std::min(Load64(buf, offsetof(limiter::CardEntry, yielded_ns)), kLimiterAbsurdNs);
  slot.measured = true;
}

}  // namespace

CardCoordinationReading ReadCardCoordination(const std::string& card_dir) {
  CardCoordinationReading r;
  r.card_uuid = fs::path(card_dir).filename().string();
  const std::string path = card_dir + "/" + limiter::kRosterFileName;
  struct stat st {};
  std::string why;
  int fd = OpenRegular(path, &st, &why);
  if (fd < 0) {
    r.problem = why;
    return r;
  }
  std::vector<unsigned char> buf(sizeof(limiter::Roster));
  bool read = static_cast<uint64_t>(st.st_size) == buf.size() && ReadAt(fd, buf.data(), buf.size(), 0);
  ::close(fd);
  if (static_cast<uint64_t>(st.st_size) != buf.size()) {
    r.problem = path + " has " + std::to_string(st.st_size) + " bytes, not " + std::to_string(buf.size());
    return r;
  }
  if (!read) {
    r.problem = path + " could not be read whole";
    return r;
  }
  limiter::RosterHeader header;
  std::memcpy(&header, buf.data(), sizeof header);
  if (!limiter::RosterHeaderValid(header)) {
    r.problem = path + " has no valid roster header (magic, version or layout differ)";
    return r;
  }
  r.generation = header.generation;
  for (uint32_t i = 0; i < limiter::kRosterMaxEntries; ++i) {
    limiter::RosterSlot slot;
    std::memcpy(&slot, buf.data() + offsetof(limiter::Roster, slots) + i * sizeof(limiter::RosterSlot), sizeof slot);
    if (slot.state != 1) continue;
    CardSlotReading s;
    s.slot = i;
    const size_t len = strnlen(slot.pod_uid, sizeof slot.pod_uid);
    std::string uid(slot.pod_uid, len);
    if (len < sizeof slot.pod_uid && IsLimiterPathSegment(uid)) s.pod_uid = std::move(uid);
    s.workload_class = slot.workload_class <= limiter::kClassTraining ? slot.workload_class : 0;
    s.share_permille = std::min<uint32_t>(slot.share_permille, 1000);
    s.work_conserving = slot.work_conserving != 0;
    MeasureEntry(card_dir + "/" + limiter::kEntryFilePrefix + std::to_string(i), s);
    r.slots.push_back(std::move(s));
  }
  return r;
}

std::vector<CardCoordinationReading> ReadCardsCoordination(const std::string& limiter_dir) {
  std::vector<CardCoordinationReading> out;
  const LimiterLayout layout{limiter_dir};
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(layout.CardsDir(), ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (IsLimiterPathSegment(name) && it->is_directory(ec) && !it->is_symlink(ec)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) out.push_back(ReadCardCoordination(layout.CardDir(name)));
  return out;
}

void LimiterMetrics::UpdateCompute(const std::vector<LimiterContainerReading>& containers,
                                   const std::vector<CardCoordinationReading>& coordination,
                                   const std::vector<DeviceInfo>& cards, std::chrono::steady_clock::time_point now) {
  std::map<std::string, const CardCoordinationReading*> by_card;
  std::map<std::string, std::string> problems;
  for (const auto& c : coordination) {
    by_card[c.card_uuid] = &c;
    if (!c.problem.empty()) problems[c.card_uuid] = c.problem;
    for (const auto& s : c.slots)
      if (!s.problem.empty()) problems[c.card_uuid + "/" + limiter::kEntryFilePrefix + std::to_string(s.slot)] = s.problem;
  }
  auto device_of = [&](const std::string& uuid) -> const DeviceInfo* {
    for (const auto& d : cards)
      if (d.uuid == uuid) return &d;
    return nullptr;
  };
  std::map<Labels, double> share, granted;
  std::map<Labels, uint64_t> throttled, yields, yielded, busy;
  std::map<Labels, uint64_t> created;  // two directories with one label set: the newest wins
  for (const auto& r : containers) {
    for (const auto& c : r.cards) {
      if (!c.coordinated) continue;
      // The card on the node: the config names it as the container sees it (Ascend: its
      // physical id), the card directory by its UUID.
      const DeviceInfo* device = nullptr;
      for (const auto& d : cards) {
        bool same = r.vendor == "huawei" ? (d.vendor == "huawei" && std::to_string(d.index) == c.card) : d.uuid == c.card;
        if (same) {
          device = &d;
          break;
        }
      }
      const std::string uuid = device ? device->uuid : (r.vendor == "huawei" ? "" : c.card);
      auto card = by_card.find(uuid);
      if (uuid.empty() || card == by_card.end()) continue;
      const CardSlotReading* slot = nullptr;
      for (const auto& s : card->second->slots)
        if (s.slot == c.coordination_slot) slot = &s;
      // The roster must give this slot to the container's pod: a config and a roster that
      // disagree (a slot freed and taken again) measure nobody.
      if (!slot || slot->pod_uid != r.pod_uid || !slot->measured) continue;
      Labels labels = {{"node", node_}, {"namespace", r.pod_namespace}, {"pod", r.pod}, {"container", r.container},
                       {"card", device ? std::to_string(device->index) : uuid}, {"uuid", uuid}};
      auto seen = created.find(labels);
      if (seen != created.end() && seen->second > r.region_created_unix_s) continue;
      created[labels] = r.region_created_unix_s;
      busy[labels] = slot->busy_ns;
      throttled[labels] = slot->throttled_ns;
      yields[labels] = slot->yields;
      yielded[labels] = slot->yielded_ns;
    }
  }
  // Achieved share: busy time gained over wall time since the last sample.
  std::erase_if(busy_, [&](const auto& kv) { return !busy.count(kv.first); });
  for (const auto& [labels, value] : busy) {
    auto it = busy_.find(labels);
    if (it == busy_.end()) {
      busy_[labels] = BusySample{value, now, false, 0};
      continue;
    }
    BusySample& b = it->second;
    if (value < b.busy_ns) {  // a new entry, or a rewritten one: start over
      b = BusySample{value, now, false, 0};
      continue;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - b.at).count();
    if (elapsed >= 1'000'000'000) {
      b.ratio = std::clamp(static_cast<double>(value - b.busy_ns) / static_cast<double>(elapsed), 0.0, 1.0);
      b.has_ratio = true;
      b.busy_ns = value;
      b.at = now;
    }
    if (b.has_ratio) share[labels] = b.ratio;
  }
  // Granted per card: the roster's shares (the agent's own record of what it handed out).
  for (const auto& c : coordination) {
    if (!c.problem.empty()) continue;
    const DeviceInfo* device = device_of(c.card_uuid);
    double sum = 0;
    for (const auto& s : c.slots) sum += s.share_permille / 1000.0;
    granted[{{"node", node_}, {"card", device ? std::to_string(device->index) : c.card_uuid}, {"uuid", c.card_uuid}}] =
        sum;
  }
  SetGauges(share_, share_series_, share);
  SetGauges(granted_, granted_series_, granted);
  FollowCounters(throttled_, throttled_series_, throttled, 1e9);
  FollowCounters(yields_, yields_series_, yields, 1.0);
  FollowCounters(yielded_, yielded_series_, yielded, 1e9);
  LogProblems(problems, compute_problems_, "limiter.coordination_unreadable",
              "not measuring a compute share's card files: ", "card");
}

}  // namespace tideslice::deviceplugin
