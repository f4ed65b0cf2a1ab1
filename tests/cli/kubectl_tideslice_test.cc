// kubectl-tideslice against the test API server loaded with recorded objects
// (tests/cli/fixtures/cluster.json: nodes with inventories, pods with assignments, notices and
// filter reasons, the tidal ConfigMaps, events), on a fixed clock: one golden output per
// command and format (tests/cli/golden/; TIDESLICE_UPDATE_GOLDEN=1 rewrites them, to be read
// before committing). Also the command line's usage errors, kubectl's kubeconfig order, colour
// only when asked for, and hostile objects shown without breaking the output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/cli.h"
#include "cli/render.h"
#include "common/kube/client.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::cli {
namespace {

using ::testing::HasSubstr;

const std::string kDir = std::string(TIDESLICE_SOURCE_DIR) + "/tests/cli/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Time Now() { return *kube::ParseRfc3339("now", "2026-12-02T03:00:00Z"); }

class KubectlTideslice : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = testsupport::TestApiServer::Start().release();
    json fixture = json::parse(ReadFile(kDir + "fixtures/cluster.json"));
    std::map<std::string, std::string> uids;  // fixture uid -> the server's
    for (const char* resource : {"nodes", "pods", "configmaps"})
      for (const auto& obj : fixture[resource]) {
        json stored = server_->Upsert(resource, obj);
        if (obj["metadata"].contains("uid")) uids[obj["metadata"]["uid"]] = stored["metadata"]["uid"];
      }
    for (json e : fixture["events"]) {
      auto it = uids.find(e["involvedObject"]["uid"]);
      if (it != uids.end()) e["involvedObject"]["uid"] = it->second;
      server_->Upsert("events", e);
    }
    dir_ = new testsupport::TempDir("tscli");
    kubeconfig_ = server_->WriteKubeconfig(dir_->path());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }

  struct Result {
    int code;
    std::string out, err;
  };
  static Result Run(std::vector<std::string> args, bool colour = false) {
    args.push_back("--kubeconfig");
    args.push_back(kubeconfig_);
    CliEnv env;
    env.access = [](const std::string& kubeconfig, const std::string& context) {
      return ResolveCliAccess(kubeconfig, context, nullptr, nullptr);
    };
    env.now = Now;
    env.colour = colour;
    std::ostringstream out, err;
    int code = RunCli(args, env, out, err);
    return {code, out.str(), err.str()};
  }
  // The output equals the golden file (or rewrites it when TIDESLICE_UPDATE_GOLDEN is set).
  static void ExpectGolden(const std::vector<std::string>& args, const std::string& golden) {
    Result r = Run(args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "colour without a terminal";
    const std::string path = kDir + "golden/" + golden;
    if (const char* update = std::getenv("TIDESLICE_UPDATE_GOLDEN"); update && *update) {
      std::ofstream(path) << r.out;
      return;
    }
    EXPECT_EQ(r.out, ReadFile(path)) << "kubectl tideslice differs from " << path << "; stderr: " << r.err;
  }

  static testsupport::TestApiServer* server_;
  static testsupport::TempDir* dir_;
  static std::string kubeconfig_;
};

testsupport::TestApiServer* KubectlTideslice::server_ = nullptr;
testsupport::TempDir* KubectlTideslice::dir_ = nullptr;
std::string KubectlTideslice::kubeconfig_;

TEST_F(KubectlTideslice, Nodes) {
  ExpectGolden({"nodes"}, "nodes.txt");
  ExpectGolden({"nodes", "-o", "json"}, "nodes.json");
}

TEST_F(KubectlTideslice, Pods) {
  ExpectGolden({"pods", "-n", "ml"}, "pods.txt");
  ExpectGolden({"pods", "-A"}, "pods-all.txt");
  ExpectGolden({"pods", "--all-namespaces", "-ojson"}, "pods-all.json");
  // The context's namespace (the test kubeconfig's is "default") holds none.
  Result r = Run({"pods"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "No TideSlice pods found in namespace default.\n");
}

TEST_F(KubectlTideslice, Why) {
  ExpectGolden({"why", "huge", "-n", "ml"}, "why.txt");
  ExpectGolden({"why", "huge", "--namespace=ml", "-o", "json"}, "why.json");
  ExpectGolden({"why", "llm-7b", "-n", "ml"}, "why-running.txt");
  Result r = Run({"why", "nope", "-n", "ml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("pod ml/nope not found (wrong namespace? use -n NS)"));
}

TEST_F(KubectlTideslice, Tide) {
  ExpectGolden({"tide"}, "tide.txt");
  ExpectGolden({"tide", "beijing-a100"}, "tide-pool.txt");
  ExpectGolden({"tide", "-o", "json"}, "tide.json");
  Result r = Run({"tide", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no pool named \"nope\"; pools: beijing-a100, lab"));
  // Without the scheduler's ConfigMap the tides still show, with a note on stderr.
  r = Run({"tide", "--scheduler-config", "elsewhere"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("beijing-a100"));
  EXPECT_THAT(r.err, HasSubstr("next switches are not shown: configmap tideslice-system/elsewhere"));
}

TEST_F(KubectlTideslice, ColourOnlyWhenAskedAndColumnsStayAligned) {
  Result plain = Run({"nodes"});
  Result coloured = Run({"nodes"}, /*colour=*/true);
  EXPECT_THAT(coloured.out, HasSubstr("\x1b[31mUnhealthy\x1b[0m"));
  std::string stripped = coloured.out;
  for (size_t p; (p = stripped.find('\x1b')) != std::string::npos;) stripped.erase(p, stripped.find('m', p) - p + 1);
  EXPECT_EQ(stripped, plain.out);
  // -o json never colours.
  EXPECT_EQ(Run({"nodes", "-o", "json"}, true).out.find('\x1b'), std::string::npos);
}

// The binary itself, as kubectl runs it: stdout is a pipe here, so no colour although the fixture
// has an unhealthy card; usage errors exit 2 with the message on stderr.
TEST_F(KubectlTideslice, TheBinaryAsKubectlRunsIt) {
  auto run = [](const std::string& args) {
    const std::string command = std::string(KUBECTL_TIDESLICE_BINARY) + " " + args + " 2>&1";
    std::string output;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (!pipe) return std::make_pair(-1, output);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) output.append(buf, n);
    int status = ::pclose(pipe);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, output);
  };
  auto [code, out] = run("nodes --kubeconfig " + kubeconfig_);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("Unhealthy"));
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  std::tie(code, out) = run("nods");
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("error: unknown command \"nods\""));
  std::tie(code, out) = run("--help");
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, HasSubstr("kubectl tideslice tide [POOL]"));
}

TEST_F(KubectlTideslice, TheApiServerUnreachableIsAnErrorNotACrash) {
  CliEnv env;
  env.access = [](const std::string&, const std::string&) {
    kube::KubeAccess a;
    a.server = "http://127.0.0.1:" + std::to_string(testsupport::FreeLoopbackPort());
    return StatusOr<kube::KubeAccess>(a);
  };
  env.now = Now;
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"nodes"}, env, out, err), 1);
  EXPECT_THAT(err.str(), HasSubstr("error: "));
  EXPECT_TRUE(out.str().empty());
}

TEST(KubectlTidesliceArgs, UsageErrorsSayWhatToWrite) {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{{{}, "name a command: nodes, pods, why POD or tide [POOL]"},
                                         {{"node"}, "unknown command \"node\"; use nodes, pods, why POD or tide [POOL]"},
                                         {{"why"}, "why needs exactly one pod name"},
                                         {{"why", "a", "b"}, "why needs exactly one pod name"},
                                         {{"why", "../etc"}, "is not a pod name"},
                                         {{"nodes", "x"}, "nodes takes no arguments"},
                                         {{"pods", "-A", "-n", "ml"}, "give either -n NS or -A, not both"},
                                         {{"nodes", "-A"}, "-A applies to pods only"},
                                         {{"pods", "-o", "yaml"}, "only -o json is supported"},
                                         {{"pods", "-o"}, "-o needs a value"},
                                         {{"pods", "-n"}, "-n needs a value"},
                                         {{"pods", "--namespace="}, "--namespace needs a value"},
                                         {{"pods", "-n", "a/b"}, "is not a namespace name"},
                                         {{"pods", "--watch"}, "unknown option --watch"},
                                         {{"tide", "a", "b"}, "tide takes at most one pool name"}}) {
    auto a = ParseArgs(c.args);
    ASSERT_FALSE(a.ok()) << ::testing::PrintToString(c.args);
    EXPECT_THAT(a.status().message(), HasSubstr(c.says)) << ::testing::PrintToString(c.args);
  }
  auto a = ParseArgs({"pods", "-nml", "-ojson"});
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ns, "ml");
  EXPECT_TRUE(a->json);
  a = ParseArgs({"tide", "p1", "--kubeconfig=/k", "--context", "c"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->pool, "p1");
  EXPECT_EQ(a->kubeconfig, "/k");
  EXPECT_EQ(a->context, "c");
  EXPECT_EQ(ParseArgs({"pods", "--help"})->command, "help");
  // Exit status 2 and a pointer to --help, nothing on stdout.
  CliEnv env;
  env.access = [](const std::string&, const std::string&) -> StatusOr<kube::KubeAccess> {
    ADD_FAILURE() << "no API call for a usage error";
    return Status::Internal("unreachable");
  };
  env.now = Now;
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"frob"}, env, out, err), 2);
  EXPECT_TRUE(out.str().empty());
  EXPECT_THAT(err.str(), HasSubstr("Run 'kubectl tideslice --help' for usage."));
  std::ostringstream help, none;
  EXPECT_EQ(RunCli({"--help"}, env, help, none), 0);
  EXPECT_THAT(help.str(), HasSubstr("kubectl tideslice why POD [-n NS]"));
}

TEST(KubectlTidesliceAccess, KubectlsOrderOfKubeconfigs) {
  testsupport::TempDir dir("tsaccess");
  auto write = [&](const std::string& name, const std::string& server) {
    const std::string path = dir.path() + "/" + name;
    std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, "
                           "user: u, namespace: from-" + name + "}\n- name: other\n  context: {cluster: k, user: u, "
                           "namespace: other-ns}\nclusters:\n- name: k\n  cluster: {server: '" + server +
                           "'}\nusers:\n- name: u\n  user: {}\n";
    return path;
  };
  const std::string flag = write("flag", "http://127.0.0.1:1");
  const std::string env1 = write("env1", "http://127.0.0.1:2");
  ::mkdir((dir.path() + "/home").c_str(), 0755);
  ::mkdir((dir.path() + "/home/.kube").c_str(), 0755);
  write("home/.kube/config", "http://127.0.0.1:3");
  const std::string missing = dir.path() + "/missing";
  const std::string home = dir.path() + "/home";
  EXPECT_EQ(ResolveCliAccess(flag, "", (missing + ":" + env1).c_str(), home.c_str())->server, "http://127.0.0.1:1");
  EXPECT_EQ(ResolveCliAccess("", "", (missing + ":" + env1).c_str(), home.c_str())->server, "http://127.0.0.1:2");
  EXPECT_EQ(ResolveCliAccess("", "", missing.c_str(), home.c_str())->server, "http://127.0.0.1:3");
  EXPECT_EQ(ResolveCliAccess("", "", nullptr, home.c_str())->default_namespace, "from-home/.kube/config");
  EXPECT_EQ(ResolveCliAccess("", "other", nullptr, home.c_str())->default_namespace, "other-ns");
  auto none = ResolveCliAccess("", "", missing.c_str(), missing.c_str());
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(none.status().message(), HasSubstr("no kubeconfig found"));
}

// Objects anyone may write cannot move the reader's cursor or break the table.
TEST(KubectlTidesliceRender, HostileTextIsShownInertly) {
  PodRow p;
  p.ns = "ml";
  p.name = "evil\x1b[2J\r\nname";
  p.status = "Running";
  p.node = "n";
  p.assignment = "Allocated";
  p.slices.push_back({"c\x07", false, 0, "GPU-0\n", "", 1024, 100, false});
  RenderOptions o;
  const std::string text = RenderPods({p}, o);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);  // header and one row
}

TEST(KubectlTidesliceRender, ShortDurationsAndSizes) {
  using std::chrono::seconds;
  EXPECT_EQ(ShortDuration(seconds(45)), "45s");
  EXPECT_EQ(ShortDuration(seconds(150)), "2m30s");
  EXPECT_EQ(ShortDuration(seconds(12 * 60)), "12m");
  EXPECT_EQ(ShortDuration(seconds(3 * 3600 + 12 * 60 + 5)), "3h12m");
  EXPECT_EQ(ShortDuration(seconds(2 * 86400 + 4 * 3600)), "2d4h");
  EXPECT_EQ(ShortDuration(seconds(-90)), "1m30s");
  EXPECT_EQ(Mebibytes(16384), "16Gi");
  EXPECT_EQ(Mebibytes(12800), "12.5Gi");
  EXPECT_EQ(Mebibytes(512), "512Mi");
  EXPECT_EQ(Mebibytes(0), "0");
}

}  // namespace
}  // namespace tideslice::cli
