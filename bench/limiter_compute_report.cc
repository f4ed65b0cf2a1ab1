// limiter_compute_report: how well libtideslice-limiter.so holds containers to their compute
// shares on one fake card (tests/limiter/fakes: one FIFO execution engine per card, exact busy
// time per process). A command, not a test: it runs each scenario for --seconds (default 20;
// --quick: 3) and prints a Markdown table of the figures with PASS/FAIL against the targets:
//   (a) one container at 30 % alone, saturating:                 30 ± 3 %
//   (b) two containers at 30 % and 60 %, both saturating:         30 ± 5 % and 60 ± 5 %
//   (c) as (b), launching only CUDA graphs (NVIDIA):              30 ± 5 % and 60 ± 5 %
//   (d) a work-conserving container at 30 % alone:                >= 90 %
//   (e) an inference container at 30 % (bursts of 10 x 1 ms every 50 ms, about 20 % of the card)
//       beside a saturating work-conserving training container at 60 %: the inference kernels'
//       queueing delay p99 <= 2 x its p99 alone (run first); the training share is reported.
// Every container is a temporary directory of its own with a config.json
// (TIDESLICE_LIMITER_CONFIG, proto3 JSON of tideslice.v1.LimiterConfig) and its accounting
// region; the card's coordination directory (roster + entry-<slot>, card_coordination.h) is made
// as the node agent makes it; every process runs with LD_PRELOAD=<limiter>,
// LD_LIBRARY_PATH=<fakes> and one shared fake state file per scenario. Children are killed and
// the temporary directories removed on exit, on SIGINT/SIGTERM/SIGHUP, and the children die with
// this program (PR_SET_PDEATHSIG).
//
// Exit status: 0 when every check passes, 1 when one fails, 2 when a scenario could not run.
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "device-plugin/limiter/card_coordination.h"
#include "device-plugin/limiter/region_layout.h"
#include "tests/limiter/fakes/fake_state.h"

#ifndef TIDESLICE_LIMITER_SO
#error "TIDESLICE_LIMITER_SO must name libtideslice-limiter.so"
#endif
#ifndef TIDESLICE_FAKES_DIR
#error "TIDESLICE_FAKES_DIR must name the fake driver libraries' directory"
#endif
#ifndef TIDESLICE_COMPUTE_WORKLOAD
#error "TIDESLICE_COMPUTE_WORKLOAD must name the compute_workload program"
#endif

namespace {

namespace lim = tideslice::limiter;
namespace fake = tideslice::fake;

// ------------------------------------------------------------------ cleanup

volatile sig_atomic_t g_interrupted = 0;
pid_t g_children[64];
volatile sig_atomic_t g_child_count = 0;
std::string g_root;  // the temporary root, removed at exit
bool g_keep = false;

void KillChildren() {
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] > 0) kill(g_children[i], SIGKILL);
}

void OnSignal(int) {
  g_interrupted = 1;
  KillChildren();  // async-signal-safe; the main loop reaps them and cleans up
}

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) { return remove(path); }

void RemoveTree(const std::string& path) {
  if (!path.empty()) nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

void Cleanup() {
  KillChildren();
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] > 0) {
      waitpid(g_children[i], nullptr, 0);
      g_children[i] = 0;
    }
  g_child_count = 0;
  if (!g_keep) RemoveTree(g_root);
  else if (!g_root.empty()) fprintf(stderr, "kept %s\n", g_root.c_str());
  g_root.clear();
}

void ForgetChild(pid_t pid) {
  for (int i = 0; i < g_child_count; ++i)
    if (g_children[i] == pid) g_children[i] = 0;
}

[[noreturn]] void Fatal(const std::string& msg) {
  fprintf(stderr, "limiter_compute_report: %s\n", msg.c_str());
  Cleanup();
  exit(2);
}

// ------------------------------------------------------------------ files

bool WriteAtomically(const std::string& path, const void* data, size_t size) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = write(fd, data, size) == static_cast<ssize_t>(size);
  ok = close(fd) == 0 && ok;
  return ok && rename(tmp.c_str(), path.c_str()) == 0;
}

void MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) Fatal("mkdir " + path + ": " + strerror(errno));
}

std::string ReadFile(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

bool ReadEntry(const std::string& path, lim::CardEntry* e) {
  std::string s = ReadFile(path);
  if (s.size() != sizeof(lim::CardEntry)) return false;
  memcpy(static_cast<void*>(e), s.data(), sizeof *e);
  return lim::CardEntryValid(*e);
}

// ------------------------------------------------------------------ scenarios

struct Options {
  double seconds = 20;
  std::string vendor = "nvidia";
  unsigned kernel_us = 200;
  std::set<char> only;
};

struct Container {
  std::string name;
  bool inference = false;
  unsigned share_permille = 0;
  bool work_conserving = false;
  std::vector<std::string> args;  // compute_workload arguments
  double start_delay_s = 0;       // started this long after the scenario's first container
  double extra_seconds = 0;       // runs this much longer than the scenario's length
};

struct Outcome {
  std::string name;
  pid_t pid = -1;
  int exit_code = -1;
  bool timed_out = false;
  std::map<std::string, std::string> kv;
  std::string stderr_text;
  bool has_entry = false;
  lim::CardEntry entry{};

  double Num(const std::string& k, double def = -1) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : strtod(it->second.c_str(), nullptr);
  }
  bool ok() const { return exit_code == 0 && !timed_out && kv.count("share"); }
  double SharePercent() const { return 100.0 * Num("share", 0); }
};

std::string CardUuid(const Options& o) { return o.vendor == "nvidia" ? fake::FakeUuid(0) : "0"; }

std::string ConfigJson(const Options& o, const std::string& scenario, const Container& c, const std::string& dir,
                       const std::string& coordination, int slot) {
  std::ostringstream j;
  j << "{\"version\":1,\"podNamespace\":\"compute-report\",\"podName\":\"" << scenario << "-" << c.name
    << "\",\"podUid\":\"uid-" << scenario << "-" << c.name << "\",\"container\":\"main\",\"vendor\":\"" << o.vendor
    << "\",\"regionPath\":\"" << dir << "/region\",\"contextReserveBytes\":\"0\",\"workloadClass\":\""
    << (c.inference ? "inference" : "training") << "\",\"workConserving\":" << (c.work_conserving ? "true" : "false")
    << ",\"cards\":[{\"uuid\":\"" << CardUuid(o) << "\",\"visibleIndex\":0,\"memoryLimitBytes\":\"0\","
    << "\"computePermille\":" << c.share_permille << ",\"regionCard\":0,\"coordinationDir\":\"" << coordination
    << "\",\"coordinationSlot\":" << slot << "}]}";
  return j.str();
}

pid_t Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int out_fd, int err_fd) {
  std::vector<char*> av, ev;
  for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execve(av[0], av.data(), ev.data());
    _exit(127);
  }
  return pid;
}

int64_t NowNs() { return fake::FakeNowNs(); }

// Runs the containers of one scenario side by side on one fake card; returns their outcomes in
// order.
std::string StatePathOf(const std::string& scenario) { return g_root + "/" + scenario + "/fake-state"; }

std::vector<Outcome> RunScenario(const Options& o, const std::string& scenario, const std::vector<Container>& cs,
                                 double seconds) {
  const std::string sdir = g_root + "/" + scenario;
  MakeDir(sdir);
  const std::string state_path = StatePathOf(scenario);
  fake::FakeState* state = fake::FakeStateCreate(state_path.c_str(), 1, 80ull << 30, 0);
  if (!state) Fatal("cannot create " + state_path);
  fake::FakeStateClose(state);

  // The card's coordination directory, as the node agent lays it out.
  const std::string cdir = sdir + "/card0";
  MakeDir(cdir);
  auto* roster = new lim::Roster{};
  lim::InitRosterHeader(roster->header);
  roster->header.generation = 1;
  for (size_t i = 0; i < cs.size(); ++i) {
    lim::RosterSlot& s = roster->slots[i];
    s.state = 1;
    s.workload_class = cs[i].inference ? lim::kClassInference : lim::kClassTraining;
    s.share_permille = cs[i].share_permille;
    s.work_conserving = cs[i].work_conserving ? 1 : 0;
    snprintf(s.pod_uid, sizeof s.pod_uid, "uid-%s-%s", scenario.c_str(), cs[i].name.c_str());
    lim::CardEntry entry{};
    lim::InitCardEntry(entry);
    if (!WriteAtomically(cdir + "/" + lim::kEntryFilePrefix + std::to_string(i), &entry, sizeof entry))
      Fatal("cannot write an entry file in " + cdir);
  }
  if (!WriteAtomically(cdir + "/" + lim::kRosterFileName, roster, sizeof *roster)) Fatal("cannot write the roster");
  delete roster;

  struct Running {
    pid_t pid = -1;
    int out = -1;
    std::string out_text;
    std::string dir;
    bool started = false;
  };
  std::vector<Running> run(cs.size());
  std::vector<Outcome> outcomes(cs.size());
  for (size_t i = 0; i < cs.size(); ++i) {
    run[i].dir = sdir + "/" + cs[i].name;
    MakeDir(run[i].dir);
    auto* region = new lim::Region{};
    lim::InitRegionHeader(region->header, static_cast<uint64_t>(time(nullptr)));
    bool ok = WriteAtomically(run[i].dir + "/region", region, sizeof *region);
    delete region;
    std::string config = ConfigJson(o, scenario, cs[i], run[i].dir, cdir, static_cast<int>(i));
    if (!ok || !WriteAtomically(run[i].dir + "/config.json", config.data(), config.size()))
      Fatal("cannot write the container files in " + run[i].dir);
    outcomes[i].name = cs[i].name;
  }

  const int64_t t0 = NowNs();
  double longest = 0;
  for (const Container& c : cs) longest = std::max(longest, c.start_delay_s + seconds + c.extra_seconds);
  const int64_t deadline = t0 + static_cast<int64_t>((longest + 60) * 1e9);
  for (;;) {
    // Start whoever is due.
    for (size_t i = 0; i < cs.size(); ++i) {
      if (run[i].started || NowNs() < t0 + static_cast<int64_t>(cs[i].start_delay_s * 1e9)) continue;
      int pipefd[2];
      if (pipe2(pipefd, O_CLOEXEC) != 0) Fatal("pipe");
      int err = open((run[i].dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (err < 0) Fatal("cannot create " + run[i].dir + "/stderr");
      std::vector<std::string> argv = {TIDESLICE_COMPUTE_WORKLOAD, "--vendor", o.vendor, "--device", "0"};
      argv.insert(argv.end(), cs[i].args.begin(), cs[i].args.end());
      char secs[32];
      snprintf(secs, sizeof secs, "%.3f", seconds + cs[i].extra_seconds);
      argv.push_back("--seconds");
      argv.push_back(secs);
      std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
                                      std::string("LD_LIBRARY_PATH=") + TIDESLICE_FAKES_DIR,
                                      std::string("LD_PRELOAD=") + TIDESLICE_LIMITER_SO,
                                      "TIDESLICE_LIMITER_CONFIG=" + run[i].dir + "/config.json",
                                      "TIDESLICE_FAKE_STATE=" + state_path};
      pid_t pid = Spawn(argv, env, pipefd[1], err);
      close(pipefd[1]);
      close(err);
      if (pid < 0) Fatal("fork failed");
      if (g_child_count < static_cast<int>(sizeof g_children / sizeof g_children[0])) {
        g_children[g_child_count] = pid;
        g_child_count = g_child_count + 1;
      }
      run[i].pid = pid;
      run[i].out = pipefd[0];
      run[i].started = true;
    }
    bool all_started = std::all_of(run.begin(), run.end(), [](const Running& r) { return r.started; });
    bool any_open = std::any_of(run.begin(), run.end(), [](const Running& r) { return r.out >= 0; });
    if (all_started && !any_open) break;
    if (g_interrupted) break;
    std::vector<pollfd> fds;
    std::vector<size_t> who;
    for (size_t i = 0; i < run.size(); ++i)
      if (run[i].out >= 0) {
        fds.push_back({run[i].out, POLLIN, 0});
        who.push_back(i);
      }
    int pr = poll(fds.data(), fds.size(), 20);
    if (pr < 0 && errno != EINTR) Fatal("poll failed");
    for (size_t k = 0; pr > 0 && k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Running& r = run[who[k]];
      char buf[4096];
      ssize_t n = read(r.out, buf, sizeof buf);
      if (n > 0) {
        r.out_text.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(r.out);
        r.out = -1;
      }
    }
    if (NowNs() > deadline) {
      for (size_t i = 0; i < run.size(); ++i)
        if (run[i].pid > 0 && run[i].out >= 0) {
          outcomes[i].timed_out = true;
          kill(run[i].pid, SIGKILL);
        }
    }
  }
  for (size_t i = 0; i < run.size(); ++i) {
    if (run[i].out >= 0) close(run[i].out);
    if (run[i].pid <= 0) continue;
    if (g_interrupted) kill(run[i].pid, SIGKILL);
    int status = 0;
    while (waitpid(run[i].pid, &status, 0) < 0 && errno == EINTR) {
    }
    ForgetChild(run[i].pid);
    outcomes[i].pid = run[i].pid;
    outcomes[i].exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::istringstream in(run[i].out_text);
    std::string line;
    while (std::getline(in, line)) {
      auto eq = line.find('=');
      if (eq != std::string::npos && eq > 0) outcomes[i].kv[line.substr(0, eq)] = line.substr(eq + 1);
    }
    outcomes[i].stderr_text = ReadFile(run[i].dir + "/stderr");
    outcomes[i].has_entry = ReadEntry(cdir + "/" + lim::kEntryFilePrefix + std::to_string(i), &outcomes[i].entry);
  }
  return outcomes;
}

// ------------------------------------------------------------------ the report

struct Row {
  std::string scenario, container, klass, share, mode, workload, achieved, target, result, notes;
};

struct Report {
  std::vector<Row> rows;
  std::vector<std::string> problems;
  std::vector<std::pair<std::string, const Outcome*>> details;
  int passes = 0, fails = 0, errors = 0;

  void Check(Row r, bool ok) {
    r.result = ok ? "PASS" : "FAIL";
    (ok ? passes : fails)++;
    rows.push_back(std::move(r));
  }
  void Info(Row r) {
    r.result = "info";
    rows.push_back(std::move(r));
  }
  // False (and a problem noted) when a container did not run to its end.
  bool Ran(const std::string& scenario, const Outcome& out) {
    if (out.ok()) return true;
    std::ostringstream m;
    m << scenario << " / " << out.name << ": " << (out.timed_out ? "timed out" : "exit " + std::to_string(out.exit_code));
    std::string err = out.stderr_text;
    if (err.size() > 600) err = "..." + err.substr(err.size() - 600);
    if (!err.empty()) m << "; stderr: " << err;
    problems.push_back(m.str());
    ++errors;
    return false;
  }
};

std::string Pct(double v) {
  char b[32];
  snprintf(b, sizeof b, "%.1f %%", v);
  return b;
}

std::string Ms(double us) {
  char b[32];
  snprintf(b, sizeof b, "%.2f ms", us / 1000.0);
  return b;
}

std::string Secs(uint64_t ns) {
  char b[32];
  snprintf(b, sizeof b, "%.2f s", static_cast<double>(ns) / 1e9);
  return b;
}

Container Saturating(const std::string& name, unsigned permille, bool wc, unsigned kernel_us, int graph = 0) {
  Container c;
  c.name = name;
  c.share_permille = permille;
  c.work_conserving = wc;
  c.args = {"saturate", "--kernel-us", std::to_string(kernel_us), "--inflight", "16"};
  if (graph > 0) {
    c.args.push_back("--graph");
    c.args.push_back(std::to_string(graph));
  }
  return c;
}

std::string SaturateLabel(unsigned kernel_us, int graph) {
  char b[96];
  if (graph > 0) snprintf(b, sizeof b, "saturate, graphs of %d x %u us", graph, kernel_us);
  else snprintf(b, sizeof b, "saturate, %u us kernels", kernel_us);
  return b;
}

void ShareRows(Report& rep, const std::string& label, const std::string& scen, const std::vector<Container>& cs,
               const std::vector<Outcome>& outs, const std::vector<double>& targets, double tol,
               const std::string& workload) {
  for (size_t i = 0; i < cs.size(); ++i) {
    rep.details.push_back({scen, &outs[i]});
    Row r{label, cs[i].name, cs[i].inference ? "inference" : "training", Pct(cs[i].share_permille / 10.0),
          cs[i].work_conserving ? "work-conserving" : "capped", workload, "-", "", "", ""};
    char t[48];
    if (targets[i] < 0) snprintf(t, sizeof t, ">= %.0f %%", -targets[i]);
    else snprintf(t, sizeof t, "%.0f ± %.0f %%", targets[i], tol);
    r.target = t;
    if (!rep.Ran(scen, outs[i])) {
      r.result = "ERROR";
      rep.rows.push_back(r);
      continue;
    }
    const double got = outs[i].SharePercent();
    r.achieved = Pct(got);
    rep.Check(r, targets[i] < 0 ? got >= -targets[i] : std::abs(got - targets[i]) <= tol);
  }
}

std::string Cell(std::string s) {
  for (auto& ch : s)
    if (ch == '|' || ch == '\n') ch = ' ';
  return s;
}

void Print(const Options& o, const Report& rep, double seconds) {
  printf("# Limiter compute-share report\n\n");
  printf("- limiter: `%s`\n", TIDESLICE_LIMITER_SO);
  printf("- vendor: %s; one fake card (one FIFO execution engine); %.0f s per scenario; saturating kernels %u us, "
         "16 launches in flight per stream\n",
         o.vendor.c_str(), seconds, o.kernel_us);
  printf("- achieved share = the container's device time (fake timeline, exact) / its wall time\n\n");
  printf("| Scenario | Container | Class | Share | Mode | Workload | Achieved | Target | Result |\n");
  printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rep.rows)
    printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s%s%s |\n", Cell(r.scenario).c_str(), Cell(r.container).c_str(),
           Cell(r.klass).c_str(), Cell(r.share).c_str(), Cell(r.mode).c_str(), Cell(r.workload).c_str(),
           Cell(r.achieved).c_str(), Cell(r.target).c_str(), r.result.c_str(), r.notes.empty() ? "" : " — ",
           Cell(r.notes).c_str());
  printf("\n**%d of %d checks pass**%s\n", rep.passes, rep.passes + rep.fails,
         rep.errors ? " (some containers did not run to the end, see below)" : "");
  printf("\n## What each container's limiter reported (its entry file)\n\n");
  printf("| Scenario | Container | Launches (workload) | Launches (limiter) | Throttled | Yields | Yielded | Window share |\n");
  printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto& [scen, out] : rep.details) {
    if (!out->has_entry) {
      printf("| %s | %s | %.0f | (no entry) | | | | |\n", scen.c_str(), out->name.c_str(), out->Num("launches", 0));
      continue;
    }
    const lim::CardEntry& e = out->entry;
    printf("| %s | %s | %.0f | %llu | %s | %llu | %s | %.1f %% |\n", scen.c_str(), out->name.c_str(),
           out->Num("launches", 0), static_cast<unsigned long long>(e.launches.load()), Secs(e.throttled_ns.load()).c_str(),
           static_cast<unsigned long long>(e.yields.load()), Secs(e.yielded_ns.load()).c_str(),
           static_cast<double>(e.window_share_ppm.load()) / 1e4);
  }
  std::set<std::string> lines;
  for (const auto& [scen, out] : rep.details) {
    std::istringstream in(out->stderr_text);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && lines.size() < 12) lines.insert(line);
  }
  if (!lines.empty()) {
    printf("\n## Distinct stderr lines of the containers\n\n");
    for (const auto& l : lines) printf("    %s\n", l.c_str());
  }
  if (!rep.problems.empty()) {
    printf("\n## Problems\n\n");
    for (const auto& p : rep.problems) printf("- %s\n", Cell(p).c_str());
  }
}

const char* Usage() {
  return "usage: limiter_compute_report [--seconds N | --quick] [--vendor nvidia|huawei] [--kernel-us D]\n"
         "                              [--only abcde] [--keep]\n"
         "  Runs the compute-share scenarios (a)-(e) against the fake card and prints a Markdown report.\n"
         "  --seconds N   length of each scenario (default 20); --quick = 3\n"
         "  --kernel-us D kernel length of the saturating workloads (default 200)\n"
         "  --only abcde  run only these scenarios\n"
         "  --keep        keep the temporary directory (configs, coordination files, stderr)\n";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fputs(Usage(), stderr);
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") o.seconds = strtod(value().c_str(), nullptr);
    else if (a == "--quick") o.seconds = 3;
    else if (a == "--vendor") o.vendor = value();
    else if (a == "--kernel-us") o.kernel_us = static_cast<unsigned>(strtoul(value().c_str(), nullptr, 10));
    else if (a == "--only")
      for (char c : value()) o.only.insert(c);
    else if (a == "--keep") g_keep = true;
    else if (a == "-h" || a == "--help") {
      fputs(Usage(), stdout);
      return 0;
    } else {
      fputs(Usage(), stderr);
      return 2;
    }
  }
  if (o.seconds <= 0 || o.kernel_us == 0 || (o.vendor != "nvidia" && o.vendor != "huawei")) {
    fputs(Usage(), stderr);
    return 2;
  }
  auto wanted = [&](char s) { return o.only.empty() || o.only.count(s); };

  char tmpl[] = "/tmp/tideslice-compute-report-XXXXXX";
  if (!mkdtemp(tmpl)) Fatal(std::string("mkdtemp: ") + strerror(errno));
  g_root = tmpl;
  atexit(Cleanup);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);

  Report rep;
  const double s = o.seconds;
  const unsigned k = o.kernel_us;
  std::vector<std::vector<Outcome>> kept;  // outcomes live until the report is printed
  kept.reserve(8);
  auto interrupted = [&] {
    if (!g_interrupted) return false;
    fprintf(stderr, "limiter_compute_report: interrupted\n");
    Cleanup();
    exit(130);
  };

  if (wanted('a')) {
    fprintf(stderr, "(a) one container at 30 %% alone ...\n");
    std::vector<Container> cs = {Saturating("c30", 300, false, k)};
    kept.push_back(RunScenario(o, "a", cs, s));
    interrupted();
    ShareRows(rep, "(a) 30 % alone", "a", cs, kept.back(), {30}, 3, SaturateLabel(k, 0));
  }
  if (wanted('b')) {
    fprintf(stderr, "(b) 30 %% and 60 %% side by side ...\n");
    std::vector<Container> cs = {Saturating("c30", 300, false, k), Saturating("c60", 600, false, k)};
    kept.push_back(RunScenario(o, "b", cs, s));
    interrupted();
    ShareRows(rep, "(b) 30 % + 60 %", "b", cs, kept.back(), {30, 60}, 5, SaturateLabel(k, 0));
  }
  if (wanted('c')) {
    if (o.vendor == "nvidia") {
      fprintf(stderr, "(c) 30 %% and 60 %% side by side, graph launches only ...\n");
      std::vector<Container> cs = {Saturating("c30", 300, false, k, 10), Saturating("c60", 600, false, k, 10)};
      kept.push_back(RunScenario(o, "c", cs, s));
      interrupted();
      ShareRows(rep, "(c) 30 % + 60 %, graphs", "c", cs, kept.back(), {30, 60}, 5, SaturateLabel(k, 10));
    } else {
      rep.Info(Row{"(c) graphs", "-", "-", "-", "-", "-", "-", "-", "", "CUDA graphs: NVIDIA only"});
    }
  }
  if (wanted('d')) {
    fprintf(stderr, "(d) work-conserving 30 %% alone ...\n");
    std::vector<Container> cs = {Saturating("wc30", 300, true, k)};
    kept.push_back(RunScenario(o, "d", cs, s));
    interrupted();
    ShareRows(rep, "(d) 30 % work-conserving alone", "d", cs, kept.back(), {-90}, 0, SaturateLabel(k, 0));
  }
  if (wanted('e')) {
    Container inf;
    inf.name = "inference";
    inf.inference = true;
    inf.share_permille = 300;
    inf.args = {"bursty", "--kernel-us", "1000", "--burst", "10", "--period-ms", "50"};
    const std::string inf_label = "bursty, 10 x 1 ms every 50 ms";
    // The training container starts 0.5 s before the inference one and ends 0.5 s after it; its
    // share is taken over the inference container's run (from the fake's timeline).
    Container train = Saturating("training", 600, true, 1000);
    train.extra_seconds = 1.0;
    const std::string train_label = "saturate, 1000 us kernels";
    fprintf(stderr, "(e) inference alone (baseline) ...\n");
    kept.push_back(RunScenario(o, "e-alone", {inf}, s));
    interrupted();
    const Outcome& alone = kept.back()[0];
    fprintf(stderr, "(e) inference beside training ...\n");
    inf.start_delay_s = 0.5;
    kept.push_back(RunScenario(o, "e", {inf, train}, s));
    interrupted();
    const Outcome& mi = kept.back()[0];
    const Outcome& mt = kept.back()[1];
    rep.details.push_back({"e-alone", &alone});
    rep.details.push_back({"e", &mi});
    rep.details.push_back({"e", &mt});
    const bool base_ok = rep.Ran("e-alone", alone), inf_ok = rep.Ran("e", mi), train_ok = rep.Ran("e", mt);
    const double p99_alone = base_ok ? alone.Num("delay_p99_us") : -1;
    Row base{"(e) inference alone (baseline)", "inference", "inference", "30.0 %", "capped", inf_label, "-", "-", "", ""};
    if (base_ok) {
      base.achieved = "p99 " + Ms(p99_alone) + ", p50 " + Ms(alone.Num("delay_p50_us")) + ", share " +
                      Pct(alone.SharePercent());
      rep.Info(base);
    } else {
      base.result = "ERROR";
      rep.rows.push_back(base);
    }
    Row ri{"(e) inference beside training", "inference", "inference", "30.0 %", "capped", inf_label, "-", "-", "", ""};
    if (base_ok) ri.target = "p99 <= 2 x " + Ms(p99_alone) + " = " + Ms(2 * p99_alone);
    if (inf_ok && base_ok) {
      const double p99 = mi.Num("delay_p99_us");
      ri.achieved = "p99 " + Ms(p99) + ", p50 " + Ms(mi.Num("delay_p50_us")) + ", share " + Pct(mi.SharePercent());
      char ratio[48];
      snprintf(ratio, sizeof ratio, "%.2f x the baseline", p99_alone > 0 ? p99 / p99_alone : 0.0);
      ri.notes = ratio;
      rep.Check(ri, p99 <= 2 * p99_alone);
    } else {
      ri.result = "ERROR";
      rep.rows.push_back(ri);
    }
    Row rt{"(e) inference beside training", "training", "training", "60.0 %", "work-conserving", train_label, "-", "",
           "", ""};
    if (train_ok && inf_ok) {
      // The training container's device time while the inference container ran.
      const double t0 = mi.Num("t0_ns"), t1 = mi.Num("t1_ns");
      uint64_t busy = 0;
      int exact = -1;
      if (fake::FakeState* st = fake::FakeStateOpen(StatePathOf("e").c_str())) {
        exact = fake::FakeBusyNs(st, 0, static_cast<int32_t>(mt.pid), static_cast<int64_t>(t0), static_cast<int64_t>(t1),
                                 &busy);
        fake::FakeStateClose(st);
      }
      const double during = t1 > t0 ? 100.0 * static_cast<double>(busy) / (t1 - t0) : 0;
      rt.achieved = Pct(during) + " while the inference ran (" + Pct(mt.SharePercent()) + " over its own run)";
      if (exact != 0) rt.achieved += exact < 0 ? " [not measured]" : " [lower bound]";
      const double rest = 100.0 - mi.SharePercent();
      rt.target = "the rest: 100 − " + Pct(mi.SharePercent()) + " = " + Pct(rest);
      rep.Info(rt);
    } else {
      rt.result = "ERROR";
      rep.rows.push_back(rt);
    }
  }

  Print(o, rep, s);
  fflush(stdout);
  const int status = rep.errors ? 2 : rep.fails ? 1 : 0;
  Cleanup();
  return status;
}
