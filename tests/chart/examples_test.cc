// The example pod specs in deploy/examples/pods are valid requests: each pod (or a Job's pod
// template) passes PreFilter and asks for accelerators, and the admission webhook admits it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/catalog/catalog.h"
#include "common/codec/yaml_json.h"
#include "common/kube/pod_json.h"
#include "scheduler/core/request.h"
#include "scheduler/service/webhook.h"

namespace tideslice {
namespace {

std::vector<nlohmann::json> Documents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str(), doc;
  std::vector<nlohmann::json> out;
  std::istringstream lines(text);
  std::string line;
  auto flush = [&] {
    auto j = codec::YamlToJson(doc, path);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    if (j.ok() && j->is_object()) out.push_back(*j);
    doc.clear();
  };
  while (std::getline(lines, line)) {
    if (line == "---") flush();
    else doc += line + "\n";
  }
  flush();
  return out;
}

TEST(Examples, EveryExamplePodIsAValidRequest) {
  int pods = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(TIDESLICE_SOURCE_DIR) + "/deploy/examples/pods")) {
    for (auto obj : Documents(entry.path().string())) {
      nlohmann::json pod = obj;
      if (obj["kind"] == "Job") {  // the pod is the Job's template
        pod = obj["spec"]["template"];
        pod["kind"] = "Pod";
        pod["metadata"]["name"] = obj["metadata"]["name"];
        pod["metadata"]["ownerReferences"] = {{{"kind", "Job"}, {"name", obj["metadata"]["name"]}, {"apiVersion", "batch/v1"}, {"uid", "u"}}};
      }
      const std::string where = entry.path().filename().string() + " " + pod["metadata"].value("name", "");
      auto spec = kube::PodSpecFromJson(pod);
      ASSERT_TRUE(spec.ok()) << where << ": " << spec.status().ToString();
      auto req = core::PreFilter(*spec, catalog::Catalog::Builtin());
      ASSERT_TRUE(req.ok()) << where << ": " << req.status().ToString();
      EXPECT_TRUE(req->WantsAccelerators()) << where;
      nlohmann::json review = {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"},
                               {"request", {{"uid", "x"}, {"namespace", "ml"}, {"object", pod}}}};
      auto answer = nlohmann::json::parse(service::ServeValidate(review.dump(), catalog::Catalog::Builtin(), {}).body);
      EXPECT_TRUE(answer["response"]["allowed"].get<bool>()) << where << ": " << answer.dump();
      ++pods;
    }
  }
  EXPECT_GE(pods, 7);
}

}  // namespace
}  // namespace tideslice
