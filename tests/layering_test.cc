// The layers of docs/architecture.md, checked on the sources: every file of a layer, with every
// project header it reaches through quoted includes, must not include what the layer must not
// depend on. CMake cannot enforce this (nlohmann, gRPC and Boost all live in /usr/include, which
// every target sees), so a stray include would otherwise compile and the layering would rot.
#include <algorithm>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tideslice {
namespace {

namespace fs = std::filesystem;

struct Include {
  std::string target;   // as written between the quotes or brackets
  bool quoted = false;
};

std::vector<Include> IncludesOf(const fs::path& file) {
  static const std::regex kInclude(R"(^\s*#\s*include\s*([<"])([^>"]+)[>"])");
  std::vector<Include> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, kInclude)) out.push_back({m[2].str(), m[1].str() == "\""});
  }
  return out;
}

// One layer: the files it is made of (path prefixes under the root, with optional exceptions)
// and the includes it must not reach (prefixes of the include target as written).
struct LayerRule {
  std::string name;
  std::vector<std::string> sources;
  std::vector<std::string> except_sources;
  std::vector<std::string> forbidden;
  std::string why;
};

bool StartsWithAny(const std::string& s, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) { return s.rfind(p, 0) == 0; });
}

// Walks quoted includes from `file` (paths relative to `root`, as the tree writes them) and
// reports every forbidden include reached, with the chain that reached it.
class LayerChecker {
 public:
  explicit LayerChecker(fs::path root) : root_(std::move(root)) {}

  std::vector<std::string> Check(const LayerRule& rule) {
    std::vector<std::string> violations;
    for (auto it = fs::recursive_directory_iterator(root_); it != fs::recursive_directory_iterator(); ++it) {
      const auto& entry = *it;
      std::string name = entry.path().filename().string();
      if (entry.is_directory() && (name == "build" || name == "node_modules" || name[0] == '.')) {
        it.disable_recursion_pending();  // build outputs, npm packages, .git
        continue;
      }
      if (!entry.is_regular_file()) continue;
      std::string rel = fs::relative(entry.path(), root_).generic_string();
      std::string ext = entry.path().extension().string();
      if (ext != ".h" && ext != ".cc" && ext != ".hpp" && ext != ".cpp") continue;
      if (!StartsWithAny(rel, rule.sources) || StartsWithAny(rel, rule.except_sources)) continue;
      std::set<std::string> seen;
      Walk(rel, rel, rule, &seen, &violations);
    }
    return violations;
  }

 private:
  void Walk(const std::string& rel, const std::string& chain, const LayerRule& rule, std::set<std::string>* seen,
            std::vector<std::string>* violations) {
    if (!seen->insert(rel).second) return;
    for (const Include& inc : IncludesOf(root_ / rel)) {
      if (StartsWithAny(inc.target, rule.forbidden)) {
        violations->push_back(rule.name + ": " + chain + " -> " + inc.target + " (" + rule.why + ")");
        continue;
      }
      if (inc.quoted && fs::exists(root_ / inc.target)) Walk(inc.target, chain + " -> " + inc.target, rule, seen, violations);
    }
  }

  fs::path root_;
};

// The project's layers. Extend this table when a layer gains a rule; docs/architecture.md
// ("Layers and dependencies") says the same in prose.
const std::vector<LayerRule>& ProjectRules() {
  static const std::vector<LayerRule> rules = {
      {"placement core",
       {"scheduler/core/"},
       {},
       {"nlohmann/", "grpc", "grpcpp/", "google/protobuf/", "cpprest/", "prometheus/", "boost/", "yaml-cpp/",
        "tideslice/v1/", "common/kube/client.h", "common/kube/reflector.h", "common/kube/access.h",
        "common/kube/objects.h", "common/kube/pod_json.h", "common/http/", "common/codec/", "common/log/",
        "common/trust/", "common/metrics/", "fstream", "filesystem", "cstdio", "iostream", "chrono"},
       "the core is pure: no JSON, HTTP, gRPC, Prometheus, Kubernetes client, files, clocks or logging (its runner "
       "may fan out over threads on an immutable snapshot)"},
      {"simulator",
       {"scheduler/sim/"},
       {},
       {"grpc", "grpcpp/", "cpprest/", "prometheus/", "boost/", "common/kube/client.h", "common/kube/reflector.h",
        "common/http/", "scheduler/service/", "scheduler/extender/"},
       "the simulator runs the core offline: no network, no scheduler service"},
      {"tidal decisions",
       {"scheduler/tidal/"},
       {},
       {"grpc", "grpcpp/", "cpprest/", "prometheus/", "boost/", "common/kube/client.h", "common/kube/reflector.h",
        "common/http/", "scheduler/service/", "thread", "mutex"},
       "tidal decisions are pure functions of pool, tide and time; the controller does the I/O"},
      {"extender verbs",
       {"scheduler/extender/wire.", "scheduler/extender/verbs."},
       {},
       {"cpprest/", "boost/", "prometheus/", "grpc", "grpcpp/", "common/http/", "common/kube/client.h",
        "scheduler/service/"},
       "the verbs and their wire format do no I/O; common/http serves them"},
      {"device backends",
       {"device-plugin/backends/"},
       {},
       {"grpc", "grpcpp/", "cpprest/", "prometheus/", "common/kube/", "common/http/", "device-plugin/plugin/",
        "device-plugin/kube/", "device-plugin/exporter/", "tideslice/v1/", "v1beta1/"},
       "vendor code sees DeviceInfo, never Kubernetes objects, the kubelet or metrics"},
      {"device plugin's Kubernetes store",
       {"device-plugin/kube/"},
       {},
       {"prometheus/", "device-plugin/exporter/", "common/metrics/"},
       "the store reads and writes pods; metrics are the exporter's, fed by the binary"},
      {"metrics exporter",
       {"device-plugin/exporter/"},
       {},
       {"common/kube/client.h", "common/kube/reflector.h", "common/http/", "device-plugin/kube/", "grpcpp/"},
       "the exporter turns plain data into series; it calls nobody"},
      {"cpprest confinement",
       {"common/", "scheduler/", "device-plugin/", "bench/"},
       {"common/http/cpprest_client.cc"},
       {"cpprest/", "pplx/"},
       "cpprest's macro U breaks other headers: only common/http/cpprest_client.cc includes it"},
      {"Beast confinement",
       {"common/", "scheduler/", "device-plugin/", "bench/"},
       {"common/http/server.cc", "common/http/cpprest_client.cc"},
       {"boost/beast", "boost/asio"},
       "the listener's Boost.Beast/Asio stays inside common/http/server.cc"},
  };
  return rules;
}

TEST(Layering, EveryLayerIncludesOnlyWhatItMay) {
  LayerChecker checker(TIDESLICE_SOURCE_DIR);
  for (const LayerRule& rule : ProjectRules()) {
    std::vector<std::string> violations = checker.Check(rule);
    std::ostringstream all;
    for (const auto& v : violations) all << "\n  " << v;
    EXPECT_TRUE(violations.empty()) << "layer \"" << rule.name << "\" reaches forbidden headers:" << all.str();
  }
}

// The checker itself can fail: a synthetic tree whose core reaches nlohmann through a helper
// header, and a store that includes the exporter directly.
TEST(Layering, CheckerFindsTransitiveAndDirectViolations) {
  fs::path root = fs::temp_directory_path() / ("tideslice-layering-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "scheduler/core");
  fs::create_directories(root / "common");
  fs::create_directories(root / "device-plugin/kube");
  std::ofstream(root / "scheduler/core/placement.cc") << "#include \"common/helper.h\"\n#include <vector>\n";
  std::ofstream(root / "common/helper.h") << "#pragma once\n#include <nlohmann/json.hpp>\n";
  std::ofstream(root / "device-plugin/kube/store.h") << "#  include \"device-plugin/exporter/metrics.h\"\n";
  LayerChecker checker(root);
  const auto& rules = ProjectRules();
  auto core = std::find_if(rules.begin(), rules.end(), [](const LayerRule& r) { return r.name == "placement core"; });
  auto store = std::find_if(rules.begin(), rules.end(),
                            [](const LayerRule& r) { return r.name == "device plugin's Kubernetes store"; });
  ASSERT_NE(core, rules.end());
  ASSERT_NE(store, rules.end());
  auto core_violations = checker.Check(*core);
  ASSERT_EQ(core_violations.size(), 1u);
  EXPECT_NE(core_violations[0].find("scheduler/core/placement.cc -> common/helper.h -> nlohmann/json.hpp"),
            std::string::npos)
      << core_violations[0];
  EXPECT_EQ(checker.Check(*store).size(), 1u);
  fs::remove_all(root);
}

}  // namespace
}  // namespace tideslice
