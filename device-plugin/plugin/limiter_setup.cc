#include "device-plugin/plugin/limiter_setup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "common/log/log.h"
#include "device-plugin/limiter/card_coordination.h"
#include "device-plugin/limiter/region_layout.h"

namespace tideslice::deviceplugin {

namespace fs = std::filesystem;

bool NeedsLimiter(const std::vector<AssignedSlice>& slices) {
  for (const auto& s : slices)
    if (IsSoftSlice(s)) return true;
  return false;
}

StatusOr<v1::LimiterConfig> BuildLimiterConfig(const LimiterPod& pod, const std::vector<AssignedSlice>& slices,
                                               uint64_t context_reserve_bytes) {
  if (slices.empty()) return Status::InvalidArgument("slices", "a limiter config needs at least one card");
  if (slices.size() > limiter::kRegionMaxCards)
    return Status::FailedPrecondition("container " + pod.container + " of pod " + pod.pod_namespace + "/" +
                                      pod.pod_name + " sees " + std::to_string(slices.size()) +
                                      " cards; the limiter's region keeps books for " +
                                      std::to_string(limiter::kRegionMaxCards) + " at most");
  const std::string vendor = slices.front().card.vendor;
  if (vendor != "nvidia" && vendor != "huawei")
    return Status::InvalidArgument("slices", "the limiter knows no vendor \"" + vendor + "\"");
  v1::LimiterConfig config;
  config.set_version(1);
  config.set_pod_namespace(pod.pod_namespace);
  config.set_pod_name(pod.pod_name);
  config.set_pod_uid(pod.pod_uid);
  config.set_container(pod.container);
  config.set_vendor(vendor);
  config.set_region_path(kLimiterRegionInContainer);
  config.set_context_reserve_bytes(context_reserve_bytes);
  config.set_workload_class(WorkloadClassCode(pod.workload_class) == limiter::kClassUnspecified ? ""
                                                                                                : pod.workload_class);
  config.set_work_conserving(pod.work_conserving);
  uint32_t ordinal = 0;
  for (const auto& s : VisibleOrder(slices)) {
    if (s.card.vendor != vendor)
      return Status::InvalidArgument("slices", "one container cannot mix " + vendor + " and " + s.card.vendor + " cards");
    auto* c = config.add_cards();
    c->set_uuid(vendor == "huawei" ? std::to_string(s.card.index) : s.card.uuid);
    c->set_visible_index(ordinal);
    c->set_region_card(ordinal);
    if (IsSoftSlice(s)) {
      c->set_memory_limit_bytes(s.memory_mib > 0 ? static_cast<uint64_t>(s.memory_mib) << 20 : 0);
      c->set_compute_permille(s.compute_permille > 0 ? static_cast<uint32_t>(s.compute_permille) : 0);
    }
    ++ordinal;
  }
  return config;
}

uint32_t WorkloadClassCode(const std::string& workload_class) {
  if (workload_class == "inference") return limiter::kClassInference;
  if (workload_class == "training") return limiter::kClassTraining;
  return limiter::kClassUnspecified;
}

std::vector<CardSeat> ComputeSeats(const std::vector<AssignedSlice>& slices) {
  std::vector<CardSeat> out;
  uint32_t ordinal = 0;
  for (const auto& s : VisibleOrder(slices)) {
    if (IsSoftSlice(s) && s.compute_permille > 0)
      out.push_back({s.card.uuid, ordinal, static_cast<uint32_t>(std::min(s.compute_permille, 1000)), 0});
    ++ordinal;
  }
  return out;
}

void SetCoordination(v1::LimiterConfig& config, const std::vector<CardSeat>& seats) {
  for (auto& card : *config.mutable_cards()) {
    card.clear_coordination_dir();
    card.clear_coordination_slot();
    for (const auto& seat : seats) {
      if (seat.region_card != card.region_card()) continue;
      card.set_coordination_dir(std::string(kLimiterCardsInContainer) + "/" + std::to_string(seat.region_card));
      card.set_coordination_slot(seat.slot);
    }
  }
}

std::string LimiterConfigJson(const v1::LimiterConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = false;
  options.always_print_primitive_fields = true;  // a reader need not know proto3's defaults
  options.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(config, &out, options);
  return out;
}

void AddLimiterToResponse(const LimiterLayout& layout, const std::string& pod_uid, const std::string& container,
                          const std::vector<CardSeat>& seats, v1beta1::ContainerAllocateResponse& response) {
  auto mount = [&](const std::string& host, const std::string& in_container, bool read_only) {
    auto* m = response.add_mounts();
    m->set_host_path(host);
    m->set_container_path(in_container);
    m->set_read_only(read_only);
  };
  mount(layout.LibraryPath(), kLimiterLibraryInContainer, true);
  mount(layout.PreloadPath(), kLimiterPreloadInContainer, true);
  mount(layout.ConfigPath(pod_uid, container), kLimiterConfigInContainer, true);
  mount(layout.RegionDir(pod_uid, container), kLimiterRegionDirInContainer, false);
  for (const auto& seat : seats) {
    const std::string dir = std::string(kLimiterCardsInContainer) + "/" + std::to_string(seat.region_card);
    mount(layout.CardDir(seat.card_uuid), dir, true);
    mount(layout.EntryPath(seat.card_uuid, seat.slot), dir + "/" + limiter::kEntryFilePrefix + std::to_string(seat.slot),
          false);
  }
  (*response.mutable_envs())["TIDESLICE_LIMITER"] = "on";
}

namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// A name for a temporary entry that no other writer in this process or another uses.
std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::Unavailable(Errno("cannot open " + path));
  int rc = ::fsync(fd);
  Status s = rc == 0 ? Status::Ok() : Status::Unavailable(Errno("cannot sync " + path));
  ::close(fd);
  return s;
}
Status SyncDir(const std::string& dir) { return SyncPath(dir, O_RDONLY | O_DIRECTORY); }

// mkdir with exactly `mode` (the umask does not apply); an existing directory is fine.
Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0) {
    if (errno != EEXIST) return Status::Unavailable(Errno("cannot create directory " + path));
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Status::FailedPrecondition(path + " exists and is not a directory");
    return Status::Ok();
  }
  if (::chmod(path.c_str(), mode) != 0) return Status::Unavailable(Errno("cannot chmod " + path));
  return Status::Ok();
}

// Writes `size` bytes from `data` (nullptr: zeros) to a new file `path` with `mode`, synced.
Status WriteNewFile(const std::string& path, const void* data, size_t size, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Status::Unavailable(Errno("cannot create " + path));
  auto fail = [&](const std::string& what) {
    Status s = Status::Unavailable(Errno(what + " " + path));
    ::close(fd);
    ::unlink(path.c_str());
    return s;
  };
  if (::fchmod(fd, mode) != 0) return fail("cannot chmod");
  if (data == nullptr) {
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return fail("cannot size");
  } else {
    const char* p = static_cast<const char*>(data);
    for (size_t done = 0; done < size;) {
      ssize_t n = ::write(fd, p + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("cannot write");
      done += static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) return fail("cannot sync");
  if (::close(fd) != 0) {
    Status s = Status::Unavailable(Errno("cannot close " + path));
    ::unlink(path.c_str());
    return s;
  }
  return Status::Ok();
}

// The region: zeros with the header initialised, written under a temporary name and linked into
// place (link refuses to replace, so a reader never sees a half-written region under its name).
Status WriteRegion(const std::string& dir) {
  const std::string tmp = dir + "/.region.tmp-" + UniqueSuffix();
  const std::string final_path = dir + "/" + limiter::kRegionFileName;
  TS_RETURN_IF_ERROR(WriteNewFile(tmp, nullptr, sizeof(limiter::Region), 0666));
  limiter::RegionHeader header{};
  limiter::InitRegionHeader(header, static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                              std::chrono::system_clock::now().time_since_epoch())
                                                              .count()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  bool ok = fd >= 0 && ::pwrite(fd, &header, sizeof header, 0) == static_cast<ssize_t>(sizeof header) && ::fsync(fd) == 0;
  int saved = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    errno = saved;
    Status s = Status::Unavailable(Errno("cannot write the region header to " + tmp));
    ::unlink(tmp.c_str());
    return s;
  }
  if (::link(tmp.c_str(), final_path.c_str()) != 0) {
    Status s = Status::Unavailable(Errno("cannot link the region into place as " + final_path));
    ::unlink(tmp.c_str());
    return s;
  }
  ::unlink(tmp.c_str());
  return SyncDir(dir);
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);  // never follows symbolic links: a link is removed, not its target
}

bool IsRealDirectory(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

namespace {

Status CheckContainerNames(const std::string& uid, const std::string& container) {
  if (!IsLimiterPathSegment(uid))
    return Status::InvalidArgument("pod uid", "\"" + uid + "\" cannot name a limiter directory (want 1..253 of "
                                              "[A-Za-z0-9-._~], not starting with '.')");
  if (!IsLimiterPathSegment(container))
    return Status::InvalidArgument("container", "\"" + container + "\" cannot name a limiter directory (want 1..253 "
                                                "of [A-Za-z0-9-._~], not starting with '.')");
  return Status::Ok();
}

// Names under `dir` that IsLimiterPathSegment accepts and that are real directories (no links).
std::vector<std::string> RealSubdirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (IsLimiterPathSegment(name) && IsRealDirectory(it->path().string())) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

constexpr size_t kMaxSeatsBytes = 64 * 1024;

// A whole small regular file, not following links; nullopt when there is none or it is unusable.
std::optional<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  std::optional<std::string> out;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 && static_cast<size_t>(st.st_size) <= max_bytes) {
    std::string text(static_cast<size_t>(st.st_size), '\0');
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::pread(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (done == text.size()) out = std::move(text);
  }
  ::close(fd);
  return out;
}

std::string SeatsJson(const v1::LimiterConfig& config, const std::vector<CardSeat>& seats) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : seats)
    list.push_back({{"card", s.card_uuid}, {"regionCard", s.region_card}, {"slot", s.slot}, {"sharePermille", s.share_permille}});
  nlohmann::json j = {{"version", 1},
                      {"podUid", config.pod_uid()},
                      {"container", config.container()},
                      {"workloadClass", config.workload_class()},
                      {"workConserving", config.work_conserving()},
                      {"seats", list}};
  return j.dump(2) + "\n";
}

// The roster file of a card, when it is one (regular file, exact size, valid header).
std::unique_ptr<limiter::Roster> ReadRosterFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return nullptr;
  auto roster = std::make_unique<limiter::Roster>();
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == sizeof(limiter::Roster);
  char* p = reinterpret_cast<char*>(roster.get());
  for (size_t done = 0; ok && done < sizeof(limiter::Roster);) {
    ssize_t n = ::pread(fd, p + done, sizeof(limiter::Roster) - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (!ok || !limiter::RosterHeaderValid(roster->header)) return nullptr;
  return roster;
}

// A card's entry file for `slot`: zeros with the header initialised, mode 0666 (the container's
// limiter writes it, whatever its UID), written under a temporary name and linked into place.
Status CreateEntryFile(const std::string& card_dir, const std::string& final_path) {
  const std::string tmp = card_dir + "/.entry.tmp-" + UniqueSuffix();
  limiter::CardEntry entry{};
  limiter::InitCardEntry(entry);
  TS_RETURN_IF_ERROR(WriteNewFile(tmp, &entry, sizeof entry, 0666));
  if (::link(tmp.c_str(), final_path.c_str()) != 0) {
    Status s = Status::Unavailable(Errno("cannot link the entry into place as " + final_path));
    ::unlink(tmp.c_str());
    return s;
  }
  ::unlink(tmp.c_str());
  return SyncDir(card_dir);
}

// "entry-<n>" with n decimal (no sign, no leading zeros but "0"); nullopt for any other name.
std::optional<uint64_t> EntrySlotOf(const std::string& name) {
  const std::string prefix = limiter::kEntryFilePrefix;
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string digits = name.substr(prefix.size());
  if (digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

struct LimiterFiles::Record {
  std::string pod_uid, container, workload_class;
  bool work_conserving = false;
  std::vector<CardSeat> seats;
};

namespace {

// A container's seats.json, checked against the directory it is in; nullopt when unusable.
std::optional<std::vector<CardSeat>> ParseSeats(const std::string& text, const std::string& uid,
                                                const std::string& container, std::string* workload_class,
                                                bool* work_conserving) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("version", nlohmann::json()) != 1) return std::nullopt;
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  if (str("podUid") != uid || str("container") != container) return std::nullopt;
  *workload_class = str("workloadClass").value_or("");
  auto wc = j.find("workConserving");
  *work_conserving = wc != j.end() && wc->is_boolean() && wc->get<bool>();
  auto list = j.find("seats");
  if (list == j.end() || !list->is_array()) return std::nullopt;
  std::vector<CardSeat> out;
  for (const auto& s : *list) {
    if (!s.is_object()) return std::nullopt;
    auto card = s.find("card");
    auto region_card = s.find("regionCard");
    auto slot = s.find("slot");
    auto share = s.find("sharePermille");
    if (card == s.end() || !card->is_string() || region_card == s.end() || !region_card->is_number_unsigned() ||
        slot == s.end() || !slot->is_number_unsigned() || share == s.end() || !share->is_number_unsigned())
      return std::nullopt;
    CardSeat seat;
    seat.card_uuid = card->get<std::string>();
    const uint64_t rc = region_card->get<uint64_t>(), sl = slot->get<uint64_t>(), sh = share->get<uint64_t>();
    if (!IsLimiterPathSegment(seat.card_uuid) || rc >= limiter::kRegionMaxCards || sl >= limiter::kRosterMaxEntries ||
        sh == 0 || sh > 1000)
      return std::nullopt;
    seat.region_card = static_cast<uint32_t>(rc);
    seat.slot = static_cast<uint32_t>(sl);
    seat.share_permille = static_cast<uint32_t>(sh);
    out.push_back(std::move(seat));
  }
  return out;
}

}  // namespace

Status LimiterFiles::WriteContainer(const v1::LimiterConfig& config) {
  std::lock_guard<std::mutex> lock(mu_);
  return WriteContainerLocked(config, nullptr);
}

Status LimiterFiles::WriteContainerLocked(const v1::LimiterConfig& config, const std::string* seats_json) {
  const std::string& uid = config.pod_uid();
  const std::string& container = config.container();
  TS_RETURN_IF_ERROR(CheckContainerNames(uid, container));
  TS_RETURN_IF_ERROR(MakeDir(layout_.root, 0755));
  TS_RETURN_IF_ERROR(MakeDir(layout_.ContainersDir(), 0755));
  const std::string pod_dir = layout_.PodDir(uid);
  TS_RETURN_IF_ERROR(MakeDir(pod_dir, 0755));
  const std::string tmp = pod_dir + "/.tmp-" + container + "-" + UniqueSuffix();
  auto built = [&]() -> Status {
    TS_RETURN_IF_ERROR(MakeDir(tmp, 0755));
    const std::string json = LimiterConfigJson(config);
    TS_RETURN_IF_ERROR(WriteNewFile(tmp + "/config.json", json.data(), json.size(), 0644));
    if (seats_json)
      TS_RETURN_IF_ERROR(
          WriteNewFile(tmp + "/" + kLimiterSeatsFileName, seats_json->data(), seats_json->size(), 0644));
    TS_RETURN_IF_ERROR(MakeDir(tmp + "/region", 0755));
    TS_RETURN_IF_ERROR(WriteRegion(tmp + "/region"));
    return SyncDir(tmp);
  }();
  if (!built.ok()) {
    RemoveTree(tmp);
    ::rmdir(pod_dir.c_str());  // only when empty: nothing of this Allocate stays behind
    return built.WithContext("writing the limiter files of " + uid + "/" + container);
  }
  // A directory of an earlier Allocate of this container (its acknowledgement failed, or the
  // agent stopped in between) is set aside, replaced, then removed.
  const std::string target = layout_.ContainerDir(uid, container);
  std::string old;
  struct stat st {};
  if (::lstat(target.c_str(), &st) == 0) {
    old = pod_dir + "/.old-" + container + "-" + UniqueSuffix();
    if (::rename(target.c_str(), old.c_str()) != 0) {
      Status s = Status::Unavailable(Errno("cannot move the old " + target + " aside"));
      RemoveTree(tmp);
      ::rmdir(pod_dir.c_str());
      return s;
    }
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    Status s = Status::Unavailable(Errno("cannot rename the limiter files into place as " + target));
    RemoveTree(tmp);
    if (!old.empty()) (void)::rename(old.c_str(), target.c_str());
    ::rmdir(pod_dir.c_str());
    return s;
  }
  if (!old.empty()) RemoveTree(old);
  return SyncDir(pod_dir);
}

Status LimiterFiles::SetUpContainer(v1::LimiterConfig& config, std::vector<CardSeat>& seats) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string uid = config.pod_uid();
  const std::string container = config.container();
  TS_RETURN_IF_ERROR(CheckContainerNames(uid, container));
  std::set<std::string> seen;
  for (const auto& seat : seats) {
    if (!IsLimiterPathSegment(seat.card_uuid))
      return Status::InvalidArgument("card", "\"" + seat.card_uuid + "\" cannot name a card's coordination directory "
                                             "(want 1..253 of [A-Za-z0-9-._~], not starting with '.')");
    if (!seen.insert(seat.card_uuid).second)
      return Status::InvalidArgument("card", "container " + uid + "/" + container + " holds two shares of card " +
                                                 seat.card_uuid);
    if (seat.share_permille == 0 || seat.share_permille > 1000)
      return Status::InvalidArgument("card", "a compute share of " + std::to_string(seat.share_permille) +
                                                 " permille on card " + seat.card_uuid + " is not 1..1000");
  }
  const std::vector<Record> before = RecordsLocked();
  std::set<std::string> created;  // entry paths
  auto undo_entries = [&]() {
    for (const auto& path : created) ::unlink(path.c_str());
  };
  for (auto& seat : seats) {
    std::set<uint32_t> held;
    for (const auto& r : before)
      for (const auto& s : r.seats)
        if (s.card_uuid == seat.card_uuid) held.insert(s.slot);
    uint32_t slot = 0;
    while (slot < limiter::kRosterMaxEntries && held.count(slot)) ++slot;
    if (slot == limiter::kRosterMaxEntries) {
      undo_entries();
      return Status::FailedPrecondition("card " + seat.card_uuid + " has all " +
                                        std::to_string(limiter::kRosterMaxEntries) +
                                        " roster slots taken by containers with compute shares; refusing " + uid +
                                        "/" + container + "'s");
    }
    const std::string card_dir = layout_.CardDir(seat.card_uuid);
    Status made = MakeDir(layout_.root, 0755);
    if (made.ok()) made = MakeDir(layout_.CardsDir(), 0755);
    if (made.ok()) made = MakeDir(card_dir, 0755);
    const std::string entry = layout_.EntryPath(seat.card_uuid, slot);
    struct stat st {};
    if (made.ok() && ::lstat(entry.c_str(), &st) == 0) ::unlink(entry.c_str());  // a leftover no record holds
    if (made.ok()) made = CreateEntryFile(card_dir, entry);
    if (!made.ok()) {
      undo_entries();
      return made.WithContext("setting up card " + seat.card_uuid + " for the compute share of " + uid + "/" + container);
    }
    created.insert(entry);
    seat.slot = slot;
  }
  SetCoordination(config, seats);
  const std::string json = SeatsJson(config, seats);
  Status written = WriteContainerLocked(config, seats.empty() ? nullptr : &json);
  if (!written.ok()) {
    undo_entries();
    return written;
  }
  // The rosters of the cards this container holds now, and of those an earlier directory of
  // the same container held (replaced just now: their slots are free).
  std::set<std::string> cards;
  for (const auto& seat : seats) cards.insert(seat.card_uuid);
  for (const auto& r : before)
    if (r.pod_uid == uid && r.container == container)
      for (const auto& s : r.seats) cards.insert(s.card_uuid);
  const std::vector<Record> after = RecordsLocked();
  for (const auto& card : cards) {
    Status synced = SyncCardLocked(card, after, &created);
    if (!synced.ok()) {
      (void)RemoveContainerLocked(uid, container);  // its seats and entries go with it
      return synced.WithContext("writing the roster of card " + card + " for " + uid + "/" + container);
    }
  }
  return Status::Ok();
}

Status LimiterFiles::RemoveContainer(const std::string& pod_uid, const std::string& container) {
  std::lock_guard<std::mutex> lock(mu_);
  return RemoveContainerLocked(pod_uid, container);
}

Status LimiterFiles::RemoveContainerLocked(const std::string& pod_uid, const std::string& container) {
  if (!IsLimiterPathSegment(pod_uid) || !IsLimiterPathSegment(container))
    return Status::InvalidArgument("pod uid", "\"" + pod_uid + "/" + container + "\" names no limiter directory");
  std::set<std::string> cards;
  for (const auto& r : RecordsLocked())
    if (r.pod_uid == pod_uid && r.container == container)
      for (const auto& s : r.seats) cards.insert(s.card_uuid);
  const std::string target = layout_.ContainerDir(pod_uid, container);
  std::error_code ec;
  fs::remove_all(target, ec);
  if (ec) return Status::Unavailable("cannot remove " + target + ": " + ec.message());
  ::rmdir(layout_.PodDir(pod_uid).c_str());  // only when empty; another container may have one
  if (cards.empty()) return Status::Ok();
  const std::vector<Record> records = RecordsLocked();
  Status first = Status::Ok();
  for (const auto& card : cards) {
    Status s = SyncCardLocked(card, records);
    if (!s.ok() && first.ok()) first = s.WithContext("freeing the roster slot of " + pod_uid + "/" + container);
  }
  return first;
}

std::vector<CardSeat> LimiterFiles::SeatsOf(const std::string& pod_uid, const std::string& container) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!IsLimiterPathSegment(pod_uid) || !IsLimiterPathSegment(container)) return {};
  auto text = ReadSmallFile(layout_.SeatsPath(pod_uid, container), kMaxSeatsBytes);
  if (!text) return {};
  std::string cls;
  bool wc = false;
  return ParseSeats(*text, pod_uid, container, &cls, &wc).value_or(std::vector<CardSeat>{});
}

std::vector<LimiterFiles::Record> LimiterFiles::RecordsLocked() const {
  std::vector<Record> out;
  for (const auto& uid : RealSubdirs(layout_.ContainersDir())) {
    for (const auto& container : RealSubdirs(layout_.PodDir(uid))) {
      auto text = ReadSmallFile(layout_.SeatsPath(uid, container), kMaxSeatsBytes);
      if (!text) continue;  // no compute share (or no record yet)
      Record r;
      r.pod_uid = uid;
      r.container = container;
      auto seats = ParseSeats(*text, uid, container, &r.workload_class, &r.work_conserving);
      if (!seats) {
        log::Warn("limiter.seats_unreadable", "a container's record of its roster slots is unusable; its slots are "
                                              "treated as free",
                  {{"path", layout_.SeatsPath(uid, container)}});
        continue;
      }
      r.seats = std::move(*seats);
      out.push_back(std::move(r));
    }
  }
  return out;
}

Status LimiterFiles::SyncCardLocked(const std::string& card_uuid, const std::vector<Record>& records,
                                    const std::set<std::string>* just_created) {
  if (!IsLimiterPathSegment(card_uuid))
    return Status::InvalidArgument("card", "\"" + card_uuid + "\" cannot name a card's coordination directory");
  const std::string card_dir = layout_.CardDir(card_uuid);
  TS_RETURN_IF_ERROR(MakeDir(layout_.root, 0755));
  TS_RETURN_IF_ERROR(MakeDir(layout_.CardsDir(), 0755));
  TS_RETURN_IF_ERROR(MakeDir(card_dir, 0755));
  auto want = std::make_unique<limiter::Roster>();
  limiter::InitRosterHeader(want->header);
  std::set<uint32_t> taken;
  for (const auto& r : records) {
    for (const auto& s : r.seats) {
      if (s.card_uuid != card_uuid) continue;
      if (!taken.insert(s.slot).second) {
        log::Warn("limiter.slot_conflict", "two containers' records hold one roster slot; the first keeps it",
                  {{"card", card_uuid}, {"slot", std::to_string(s.slot)}, {"container", r.pod_uid + "/" + r.container}});
        continue;
      }
      limiter::RosterSlot& slot = want->slots[s.slot];
      slot.state = 1;
      slot.workload_class = WorkloadClassCode(r.workload_class);
      slot.share_permille = s.share_permille;
      slot.work_conserving = r.work_conserving ? 1 : 0;
      std::memcpy(slot.pod_uid, r.pod_uid.data(), std::min(r.pod_uid.size(), sizeof slot.pod_uid - 1));
    }
  }
  // Entry files present now: those of free slots are leftovers (or of containers just removed).
  std::vector<std::string> names;
  {
    std::error_code ec;
    for (fs::directory_iterator it(card_dir, ec), end; !ec && it != end; it.increment(ec))
      names.push_back(it->path().filename().string());
  }
  // Entries first: a taken slot never lacks its entry, and a freed slot's entry goes even if the
  // roster cannot be written.
  const bool had_entries = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
    return EntrySlotOf(n).has_value() && !(just_created && just_created->count(card_dir + "/" + n));
  });
  for (const auto& name : names) {
    const std::string path = card_dir + "/" + name;
    if (auto slot = EntrySlotOf(name); slot && !taken.count(static_cast<uint32_t>(*slot))) ::unlink(path.c_str());
    if (name.rfind(".entry.tmp-", 0) == 0 || name.rfind(".roster.tmp-", 0) == 0) ::unlink(path.c_str());
  }
  for (uint32_t slot : taken) {
    const std::string entry = layout_.EntryPath(card_uuid, slot);
    struct stat st {};
    if (::lstat(entry.c_str(), &st) == 0) continue;
    TS_RETURN_IF_ERROR(CreateEntryFile(card_dir, entry));
  }
  const std::string roster_path = layout_.RosterPath(card_uuid);
  auto old = ReadRosterFile(roster_path);
  if (!old || std::memcmp(old->slots, want->slots, sizeof want->slots) != 0) {
    // A roster that was missing or unreadable while entries exist may have been read by a limiter
    // at some generation: start from a number no earlier roster of this card had.
    want->header.generation =
        old ? old->header.generation + 1
            : (had_entries ? static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count())
                           : 1);
    const std::string tmp = card_dir + "/.roster.tmp-" + UniqueSuffix();
    TS_RETURN_IF_ERROR(WriteNewFile(tmp, want.get(), sizeof(limiter::Roster), 0644));
    if (::rename(tmp.c_str(), roster_path.c_str()) != 0) {
      Status s = Status::Unavailable(Errno("cannot rename the roster into place as " + roster_path));
      ::unlink(tmp.c_str());
      return s;
    }
    TS_RETURN_IF_ERROR(SyncDir(card_dir));
  }
  return Status::Ok();
}

std::vector<std::string> LimiterFiles::SyncCards() {
  std::lock_guard<std::mutex> lock(mu_);
  return SyncCardsLocked();
}

std::vector<std::string> LimiterFiles::SyncCardsLocked() {
  const std::vector<Record> records = RecordsLocked();
  std::set<std::string> cards;
  for (const auto& name : RealSubdirs(layout_.CardsDir())) cards.insert(name);
  for (const auto& r : records)
    for (const auto& s : r.seats) cards.insert(s.card_uuid);
  std::vector<std::string> errors;
  for (const auto& card : cards) {
    Status s = SyncCardLocked(card, records);
    if (!s.ok()) errors.push_back("card " + card + ": " + s.ToString());
  }
  return errors;
}

std::vector<std::string> LimiterFiles::PodUids() const {
  return RealSubdirs(layout_.ContainersDir());
}

LimiterFiles::GcReport LimiterFiles::RemoveGonePods(const std::set<std::string>& live_uids,
                                                    std::chrono::system_clock::time_point now,
                                                    std::chrono::seconds grace) {
  std::lock_guard<std::mutex> lock(mu_);
  GcReport report;
  auto changed_within_grace = [&](const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return true;  // vanished or unreadable: leave it alone
    auto mtime = std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec));
    return now - mtime < grace;
  };
  for (const auto& uid : PodUids()) {
    const std::string pod_dir = layout_.PodDir(uid);
    if (live_uids.count(uid)) {
      // A live pod keeps its containers; only leftovers of interrupted writes go.
      std::error_code ec;
      for (fs::directory_iterator it(pod_dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if ((name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0) && !changed_within_grace(it->path().string()))
          RemoveTree(it->path().string());
      }
      continue;
    }
    if (changed_within_grace(pod_dir)) continue;
    std::error_code ec;
    fs::remove_all(pod_dir, ec);
    if (ec) report.errors.push_back("cannot remove " + pod_dir + ": " + ec.message());
    else report.removed.push_back(uid);
  }
  // The removed containers' roster slots are free now.
  for (auto& e : SyncCardsLocked()) report.errors.push_back(std::move(e));
  return report;
}

namespace {

bool SameContent(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  struct stat st {};
  bool same = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) == content.size();
  std::string buf(content.size(), '\0');
  for (size_t done = 0; same && done < buf.size();) {
    ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) same = false;
    else done += static_cast<size_t>(n);
  }
  ::close(fd);
  return same && buf == content;
}

// Replaces `path` by a file holding `content` (temporary file, sync, rename, sync of the
// directory), unless it already holds exactly that.
Status ReplaceFile(const std::string& path, const std::string& content, mode_t mode) {
  if (SameContent(path, content)) {
    (void)::chmod(path.c_str(), mode);
    return Status::Ok();
  }
  const fs::path p(path);
  const std::string tmp = (p.parent_path() / ("." + p.filename().string() + ".tmp-" + UniqueSuffix())).string();
  TS_RETURN_IF_ERROR(WriteNewFile(tmp, content.data(), content.size(), mode));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::Unavailable(Errno("cannot rename " + tmp + " to " + path));
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDir(p.parent_path().string());
}

StatusOr<std::string> ReadLibrary(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FailedPrecondition(Errno("--limiter-library " + path));
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* f) { ::close(*f); });
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    return Status::FailedPrecondition("--limiter-library " + path + " is not a regular file");
  if (st.st_size > (off_t(256) << 20))
    return Status::FailedPrecondition("--limiter-library " + path + " is larger than 256 MiB; not the limiter");
  std::string data(static_cast<size_t>(st.st_size), '\0');
  for (size_t done = 0; done < data.size();) {
    ssize_t n = ::pread(fd, data.data() + done, data.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::Unavailable(Errno("cannot read " + path));
    if (n == 0) {
      data.resize(done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (data.size() < 4 || data.compare(0, 4, "\x7f" "ELF") != 0)
    return Status::FailedPrecondition("--limiter-library " + path + " is not a shared library (no ELF header)");
  return data;
}

}  // namespace

Status InstallLimiterLibrary(const std::string& library, const LimiterLayout& layout) {
  auto data = ReadLibrary(library);
  if (!data.ok()) return data.status();
  TS_RETURN_IF_ERROR(MakeDir(layout.root, 0755));
  TS_RETURN_IF_ERROR(MakeDir(layout.LibraryDir(), 0755));
  TS_RETURN_IF_ERROR(MakeDir(layout.ContainersDir(), 0755));
  // Read and executable by every container UID; the mounts are read-only.
  TS_RETURN_IF_ERROR(ReplaceFile(layout.LibraryPath(), *data, 0755));
  return ReplaceFile(layout.PreloadPath(), std::string(kLimiterLibraryInContainer) + "\n", 0644);
}

}  // namespace tideslice::deviceplugin
