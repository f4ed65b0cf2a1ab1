#include "tests/fuzz/targets.h"

#include <string>
#include <string_view>

#include "common/catalog/catalog.h"
#include "common/codec/annotations.h"
#include "common/kube/pod_json.h"
#include "common/quantity.h"
#include "scheduler/core/placement.h"
#include "scheduler/core/request.h"
#include "scheduler/sim/trace.h"

namespace tideslice::fuzz {
namespace {
std::string_view View(const uint8_t* d, size_t n) { return {reinterpret_cast<const char*>(d), n}; }
}  // namespace

void Fuzz_quantity(const uint8_t* data, size_t size) {
  auto text = View(data, size);
  (void)ParseQuantity(text);
  (void)ParseMemoryMiB(text);
  (void)ParseCount(text);
  (void)ParseMilliCpu(text);
}

void Fuzz_pod_json(const uint8_t* data, size_t size) { (void)kube::PodSpecFromJson(View(data, size)); }

void Fuzz_annotations(const uint8_t* data, size_t size) {
  auto text = View(data, size);
  auto inv = codec::DecodeInventory(text);
  if (inv.ok()) (void)codec::DecodeInventory(codec::EncodeInventory(*inv));
  auto a = codec::DecodeAssignment(text);
  if (a.ok()) (void)codec::DecodeAssignment(codec::EncodeAssignment(*a));
  (void)codec::DecodeSchedulerConfig(text);
}

void Fuzz_trace_csv(const uint8_t* data, size_t size) {
  (void)sim::ParseNodeCsv(View(data, size), "fuzz");
  (void)sim::ParsePodCsv(View(data, size), "fuzz");
}

void Fuzz_catalog(const uint8_t* data, size_t size) { (void)catalog::Catalog::FromJson(View(data, size)); }

// Pod JSON all the way through PreFilter and a Filter on a small node: the whole path an
// untrusted pod takes in the extender.
void Fuzz_prefilter(const uint8_t* data, size_t size) {
  auto pod = kube::PodSpecFromJson(View(data, size));
  if (!pod.ok()) return;
  auto req = core::PreFilter(*pod, catalog::Catalog::Builtin());
  if (!req.ok()) return;
  static const core::NodeState node = [] {
    core::NodeState n;
    n.name = "fuzz";
    const auto* m = catalog::Catalog::Builtin().Find("H100-80G");
    for (int i = 0; i < 4; ++i) {
      core::CardState c;
      c.uuid = "g" + std::to_string(i);
      c.index = i;
      c.model = m;
      c.memory_mib = m->memory_mib;
      c.link_domain = i < 2 ? "a" : "b";
      n.cards.push_back(c);
    }
    return n;
  }();
  core::Context ctx;
  (void)core::Filter(node, *req, ctx);
}

}  // namespace tideslice::fuzz
