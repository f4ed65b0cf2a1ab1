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

#include <google/protobuf/util/json_util.h>

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
                          v1beta1::ContainerAllocateResponse& response) {
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

Status LimiterFiles::WriteContainer(const v1::LimiterConfig& config) {
  const std::string& uid = config.pod_uid();
  const std::string& container = config.container();
  if (!IsLimiterPathSegment(uid))
    return Status::InvalidArgument("pod uid", "\"" + uid + "\" cannot name a limiter directory (want 1..253 of "
                                              "[A-Za-z0-9-._~], not starting with '.')");
  if (!IsLimiterPathSegment(container))
    return Status::InvalidArgument("container", "\"" + container + "\" cannot name a limiter directory (want 1..253 "
                                                "of [A-Za-z0-9-._~], not starting with '.')");
  TS_RETURN_IF_ERROR(MakeDir(layout_.root, 0755));
  TS_RETURN_IF_ERROR(MakeDir(layout_.ContainersDir(), 0755));
  const std::string pod_dir = layout_.PodDir(uid);
  TS_RETURN_IF_ERROR(MakeDir(pod_dir, 0755));
  const std::string tmp = pod_dir + "/.tmp-" + container + "-" + UniqueSuffix();
  auto built = [&]() -> Status {
    TS_RETURN_IF_ERROR(MakeDir(tmp, 0755));
    const std::string json = LimiterConfigJson(config);
    TS_RETURN_IF_ERROR(WriteNewFile(tmp + "/config.json", json.data(), json.size(), 0644));
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

Status LimiterFiles::RemoveContainer(const std::string& pod_uid, const std::string& container) {
  if (!IsLimiterPathSegment(pod_uid) || !IsLimiterPathSegment(container))
    return Status::InvalidArgument("pod uid", "\"" + pod_uid + "/" + container + "\" names no limiter directory");
  const std::string target = layout_.ContainerDir(pod_uid, container);
  std::error_code ec;
  fs::remove_all(target, ec);
  if (ec) return Status::Unavailable("cannot remove " + target + ": " + ec.message());
  ::rmdir(layout_.PodDir(pod_uid).c_str());  // only when empty; another container may have one
  return Status::Ok();
}

std::vector<std::string> LimiterFiles::PodUids() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(layout_.ContainersDir(), ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (IsLimiterPathSegment(name) && IsRealDirectory(it->path().string())) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

LimiterFiles::GcReport LimiterFiles::RemoveGonePods(const std::set<std::string>& live_uids,
                                                    std::chrono::system_clock::time_point now,
                                                    std::chrono::seconds grace) {
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
