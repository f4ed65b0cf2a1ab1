// End to end for deploy/examples/dra: each example ResourceClaimTemplate becomes a claim, which is
// allocated against the driver's own published devices as the scheduler would (class -> device
// type, CEL selectors of the forms the examples use, first fit in published order, prioritized
// lists tried in order, consumed capacity from the capacity requests), stored in the test API
// server with its allocation, prepared by the driver, and the CDI spec it writes is checked.
#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "common/codec/yaml_json.h"
#include "common/quantity.h"
#include "device-plugin/dra/driver.h"
#include "device-plugin/limiter/config.h"
#include "tests/dra/mig_mode_backend.h"
#include "tests/support/kube_env.h"

namespace tideslice::dra {
namespace {

using nlohmann::json;

constexpr const char* kCards = R"({"cards": [
  {"uuid": "GPU-h100-0", "index": 0, "model": "H100-80G"},
  {"uuid": "GPU-h100-1", "index": 1, "model": "H100-80G"},
  {"uuid": "GPU-a100-2", "index": 2, "model": "A100-80G"},
  {"uuid": "GPU-a100-3", "index": 3, "model": "A100-80G"},
  {"uuid": "GPU-a10-4", "index": 4, "model": "A10"},
  {"uuid": "NPU-910b3-5", "index": 5, "model": "Ascend910B3"}]})";

json Template(const std::string& file) {
  std::ifstream in(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/dra/" + file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find("\n---\n", start);
    if (end == std::string::npos) end = text.size();
    auto doc = codec::YamlToJson(text.substr(start, end - start), file);
    if (doc.ok() && doc->value("kind", "") == "ResourceClaimTemplate") return *doc;
    start = end + 5;
  }
  ADD_FAILURE() << "no ResourceClaimTemplate in " << file;
  return json();
}

// The scheduler's part, for the selector forms the examples use.
class MiniAllocator {
 public:
  explicit MiniAllocator(const NodeInventory& inv) : inv_(inv) {}

  json Allocate(const json& claim_spec) {
    json results = json::array();
    for (const auto& req : claim_spec["devices"]["requests"]) {
      const std::string name = req["name"];
      if (req.contains("exactly")) {
        EXPECT_TRUE(Pick(req["exactly"], name, results)) << "no device for request " << name;
      } else {
        bool done = false;
        for (const auto& sub : req["firstAvailable"])
          if ((done = Pick(sub, name + "/" + sub["name"].get<std::string>(), results))) break;
        EXPECT_TRUE(done) << "no subrequest of " << name << " fits";
      }
    }
    return results;
  }

 private:
  static std::string TypeOfClass(const std::string& cls) {
    if (cls == "tideslice.io") return "card";
    return cls.substr(cls.rfind('-') + 1);  // tideslice.io-shared / -mig / -vnpu
  }
  bool Matches(const PublishedDevice& d, const json& req) const {
    const json& a = d.entry["attributes"];
    if (a["type"]["string"] != TypeOfClass(req["deviceClassName"])) return false;
    if (!req.contains("selectors")) return true;
    static const std::regex eq(R"re(^device\.attributes\["tideslice\.io"\]\.(\w+) == "([^"]*)"$)re");
    static const std::regex starts(R"re(^device\.attributes\["tideslice\.io"\]\.(\w+)\.startsWith\("([^"]*)"\)$)re");
    for (const auto& s : req["selectors"]) {
      const std::string expr = s["cel"]["expression"];
      std::smatch m;
      if (std::regex_match(expr, m, eq)) {
        if (!a.contains(m[1].str()) || a[m[1].str()]["string"] != m[2].str()) return false;
      } else if (std::regex_match(expr, m, starts)) {
        if (!a.contains(m[1].str()) || a[m[1].str()]["string"].get<std::string>().rfind(m[2].str(), 0) != 0) return false;
      } else {
        ADD_FAILURE() << "selector form the test allocator does not know: " << expr;
        return false;
      }
    }
    return true;
  }
  bool Pick(const json& req, const std::string& request, json& results) {
    const int64_t count = req.value("count", 1);
    std::vector<const PublishedDevice*> picked;
    for (const auto& d : inv_.devices) {
      if (static_cast<int64_t>(picked.size()) == count) break;
      if (!Matches(d, req)) continue;
      // What the card's counters do for the scheduler: a whole card excludes everything else on
      // it, a shared card excludes a whole one.
      if (whole_cards_.count(d.card.index)) continue;
      if (d.kind == DeviceKind::kWhole && shared_cards_.count(d.card.index)) continue;
      if (d.kind != DeviceKind::kShared && used_.count(d.name)) continue;
      if (std::find(picked.begin(), picked.end(), &d) != picked.end()) continue;
      picked.push_back(&d);
    }
    if (static_cast<int64_t>(picked.size()) < count) return false;
    for (const auto* d : picked) {
      json r = {{"request", request}, {"driver", "tideslice.io"}, {"pool", "node-a"}, {"device", d->name}};
      if (d->kind == DeviceKind::kShared) {
        char share[40];
        std::snprintf(share, sizeof share, "5ca1ab1e-0000-4000-8000-%012d", ++shares_);
        r["shareID"] = share;
        shared_cards_.insert(d->card.index);
        const json caps = req.contains("capacity") ? req["capacity"]["requests"] : json::object();
        // The request policies: memory rounded up to whole MiB (step 1Mi), cores as asked.
        const int64_t mib = static_cast<int64_t>(std::ceil(*ParseQuantity(caps.value("memory", "0")) / 1048576.0L));
        r["consumedCapacity"] = {{"memory", std::to_string(mib) + "Mi"}, {"cores", caps.value("cores", "0")}};
      } else {
        used_.insert(d->name);
        if (d->kind == DeviceKind::kWhole) whole_cards_.insert(d->card.index);
      }
      results.push_back(r);
    }
    return true;
  }
  const NodeInventory& inv_;
  std::set<std::string> used_;
  std::set<int> whole_cards_, shared_cards_;
  int shares_ = 0;
};

struct Fixture {
  Fixture() {
    std::filesystem::create_directories(dir.path() + "/cdi");
    std::filesystem::create_directories(dir.path() + "/limiter");
    mock = std::move(deviceplugin::MockBackend::FromJson(kCards, catalog::Catalog::Builtin())).value();
    backend = std::make_unique<testsupport::MigModeBackend>(*mock, std::set<std::string>{"GPU-h100-0"});
    ledger = std::move(deviceplugin::PartitionLedger::Open(dir.path() + "/partitions.json")).value();
    limiter = std::make_unique<deviceplugin::LimiterFiles>(dir.path() + "/limiter");
    DriverOptions o;
    o.node_name = "node-a";
    o.cdi_dir = dir.path() + "/cdi";
    o.checkpoint_path = dir.path() + "/checkpoint.json";
    auto* client = env.client.get();
    driver = std::make_unique<DraDriver>(
        o, *backend, catalog::Catalog::Builtin(),
        [client](const ClaimRef& r) -> StatusOr<std::string> {
          auto got = client->Get("/apis/resource.k8s.io/v1/namespaces/" + r.ns + "/resourceclaims/" + r.name);
          if (!got.ok()) return got.status();
          return got->dump();
        },
        ledger.get(), limiter.get());
    EXPECT_TRUE(driver->Start().ok());
    allocator = std::make_unique<MiniAllocator>(inventory = driver->Inventory());
  }

  // The claim the resource-claim controller makes from the template, allocated and stored, then
  // prepared; returns the claim UID and the CDI spec.
  std::pair<std::string, json> Run(const std::string& file, ClaimOutcome* outcome = nullptr) {
    json tmpl = Template(file);
    const std::string name = tmpl["metadata"]["name"].get<std::string>() + "-x7k2q";
    json claim = {{"metadata", {{"name", name}, {"namespace", "default"}}}, {"spec", tmpl["spec"]["spec"]}};
    auto created = env.client->Create("/apis/resource.k8s.io/v1/namespaces/default/resourceclaims", claim);
    EXPECT_TRUE(created.ok());
    json allocated = *created;
    allocated["status"] = {{"allocation", {{"devices", {{"results", allocator->Allocate(claim["spec"])}}}}}};
    EXPECT_TRUE(env.client->Replace("/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/" + name + "/status", allocated).ok());
    const std::string uid = (*created)["metadata"]["uid"];
    auto out = driver->Prepare({{"default", name, uid}});
    EXPECT_EQ(out[uid].error, "") << file;
    if (outcome) *outcome = out[uid];
    std::ifstream in(dir.path() + "/cdi/" + CdiSpecFileName("tideslice.io", uid));
    return {uid, in ? json::parse(in, nullptr, false) : json()};
  }

  testsupport::TempDir dir{"tsdraex"};
  testsupport::KubeEnv env;
  std::unique_ptr<deviceplugin::MockBackend> mock;
  std::unique_ptr<testsupport::MigModeBackend> backend;
  std::unique_ptr<deviceplugin::PartitionLedger> ledger;
  std::unique_ptr<deviceplugin::LimiterFiles> limiter;
  std::unique_ptr<DraDriver> driver;
  NodeInventory inventory;
  std::unique_ptr<MiniAllocator> allocator;
};

std::set<std::string> Env(const json& spec) {
  std::set<std::string> out;
  for (const auto& e : spec["devices"][0]["containerEdits"]["env"]) out.insert(e);
  return out;
}
std::set<std::string> Nodes(const json& spec) {
  std::set<std::string> out;
  for (const auto& n : spec["devices"][0]["containerEdits"]["deviceNodes"]) out.insert(n["path"]);
  return out;
}

TEST(DraExamplesEndToEnd, EveryExampleClaimIsPreparedIntoItsCdiSpec) {
  Fixture f;
  // Whole card: the first free H100 (card 0 is in MIG mode, so card 1).
  auto [whole_uid, whole] = f.Run("whole-card.yaml");
  EXPECT_EQ(whole["cdiVersion"], "0.5.0");
  EXPECT_EQ(whole["devices"][0]["name"], whole_uid + "-gpu");
  EXPECT_TRUE(Env(whole).count("NVIDIA_VISIBLE_DEVICES=GPU-h100-1"));
  EXPECT_TRUE(Nodes(whole).count("/dev/nvidia1"));
  EXPECT_TRUE(Nodes(whole).count("/dev/nvidiactl"));

  // "H100 else two A100": the free H100 is taken whole, so two A100s; one CDI device lists both,
  // handed out with the first device; request names without the subrequest.
  ClaimOutcome prio;
  auto [prio_uid, two] = f.Run("h100-else-two-a100.yaml", &prio);
  EXPECT_TRUE(Env(two).count("NVIDIA_VISIBLE_DEVICES=GPU-a100-2,GPU-a100-3"));
  ASSERT_EQ(prio.devices.size(), 2u);
  EXPECT_EQ(prio.devices[0].request_names, std::vector<std::string>{"gpus"});
  EXPECT_EQ(prio.devices[0].cdi_ids, std::vector<std::string>{"k8s.tideslice.io/card=" + prio_uid + "-gpus"});
  EXPECT_TRUE(prio.devices[1].cdi_ids.empty());
  EXPECT_EQ(prio.devices[1].device, "card-3");

  // 8 GiB / 30 %: the limiter's config says so, and the spec mounts it.
  auto [soft_uid, soft] = f.Run("soft-slice.yaml");
  EXPECT_TRUE(Env(soft).count("TIDESLICE_LIMITER=on"));
  EXPECT_TRUE(Env(soft).count("NVIDIA_VISIBLE_DEVICES=GPU-a10-4"));  // the first card nothing holds whole
  deviceplugin::LimiterLayout layout{f.dir.path() + "/limiter"};
  std::ifstream cin(layout.ConfigPath(soft_uid, "slice"));
  std::string text((std::istreambuf_iterator<char>(cin)), std::istreambuf_iterator<char>());
  limiter::Config config{};
  char error[256] = {};
  ASSERT_TRUE(limiter::ParseConfig(text.data(), text.size(), &config, error, sizeof error)) << error;
  EXPECT_EQ(config.cards[0].memory_limit_bytes, 8ull << 30);
  EXPECT_EQ(config.cards[0].compute_permille, 300u);
  bool mounted = false;
  for (const auto& m : soft["devices"][0]["containerEdits"]["mounts"])
    mounted |= m["hostPath"] == layout.ConfigPath(soft_uid, "slice");
  EXPECT_TRUE(mounted);

  // MIG 3g.40gb on the MIG-mode H100: the instance is created and named.
  auto [mig_uid, mig] = f.Run("mig-profile.yaml");
  auto parts = f.mock->Partitions();
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].rfind("GPU-h100-0/MIG-", 0), 0u) << parts[0];
  const std::string mig_id = parts[0].substr(parts[0].find('/') + 1);
  EXPECT_TRUE(Env(mig).count("NVIDIA_VISIBLE_DEVICES=" + mig_id));

  // Ascend vNPU vir05_1c_16g on the 910B3: a vNPU ID and its device node.
  auto [vnpu_uid, vnpu] = f.Run("ascend-vnpu.yaml");
  ASSERT_EQ(f.mock->Partitions().size(), 2u);
  std::string vnpu_env;
  for (const auto& e : Env(vnpu))
    if (e.rfind("ASCEND_VISIBLE_DEVICES=", 0) == 0) vnpu_env = e.substr(23);
  ASSERT_FALSE(vnpu_env.empty());
  EXPECT_TRUE(Nodes(vnpu).count("/dev/davinci" + vnpu_env));
  EXPECT_TRUE(Nodes(vnpu).count("/dev/davinci_manager"));

  // Everything undone.
  f.driver->Unprepare({{"default", "", whole_uid}, {"default", "", soft_uid}, {"default", "", mig_uid},
                       {"default", "", vnpu_uid}, {"default", "", prio_uid}});
  EXPECT_TRUE(f.mock->Partitions().empty());
  EXPECT_TRUE(std::filesystem::is_empty(f.dir.path() + "/cdi"));
}

TEST(DraExamplesEndToEnd, PublishedSlicesPassTheStrictSchemaShape) {
  // The slices of this node as JSON objects; their schema check is in the chart test (same
  // validator) and the builder's own ValidateResourceSlice.
  Fixture f;
  auto slices = BuildResourceSlices(f.inventory, SliceTarget{"tideslice.io", "node-a", "uid", 1});
  ASSERT_TRUE(slices.ok());
  for (const auto& s : *slices) EXPECT_TRUE(ValidateResourceSlice(s).ok());
}

}  // namespace
}  // namespace tideslice::dra
