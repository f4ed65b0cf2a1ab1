#include "tests/fuzz/ml_targets.h"

#include <string>
#include <string_view>

#include "cli/render.h"
#include "cli/views.h"
#include "common/catalog/catalog.h"
#include "common/codec/bounded_json.h"
#include "common/sizing/model_sizing.h"
#include "scheduler/service/filter_record.h"

namespace tideslice::fuzz {

namespace {
std::string_view View(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }
}  // namespace

void Fuzz_model_annotations(const uint8_t* data, size_t size) {
  const std::string text(View(data, size));
  (void)sizing::ParseParams(text);
  (void)sizing::ParseDtype(text);
  (void)sizing::ParseMode(text);
  // "params|dtype|mode": each part one annotation (a missing part: the annotation is absent).
  std::map<std::string, std::string> annotations;
  const char* keys[] = {sizing::kModelParamsAnnotation, sizing::kModelDtypeAnnotation, sizing::kModelModeAnnotation};
  size_t start = 0;
  for (int i = 0; i < 3 && start <= text.size(); ++i) {
    size_t end = text.find('|', start);
    if (end == std::string::npos) end = text.size();
    annotations[keys[i]] = text.substr(start, end - start);
    start = end + 1;
  }
  auto model = sizing::ModelFromAnnotations(annotations);
  if (!model.ok() || !model->has_value()) return;
  std::vector<const catalog::AcceleratorModel*> cards;
  for (const auto& m : catalog::Catalog::Builtin().models()) cards.push_back(&m);
  for (int slices : {1, 2, 64}) {
    (void)sizing::Size(**model, slices);
    (void)sizing::FitOnCards(**model, slices, cards, 64);
  }
}

void Fuzz_filter_record(const uint8_t* data, size_t size) {
  auto record = service::ParseFilterRecord(std::string(View(data, size)));
  if (record.ok()) (void)service::FormatFilterRecord(*record);
}

void Fuzz_cli_views(const uint8_t* data, size_t size) {
  auto parsed = codec::BoundedParse(View(data, size), "fuzz object");
  if (!parsed.ok() || !parsed->is_object()) return;
  const nlohmann::json& obj = *parsed;
  const std::vector<nlohmann::json> objects = {obj};
  cli::RenderOptions o;
  o.colour = size % 2 == 1;
  o.all_namespaces = true;
  (void)cli::RenderNodes(cli::NodesView(objects, objects), o);
  (void)cli::NodesJson(cli::NodesView(objects, objects)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  (void)cli::RenderPods(cli::PodsView(objects, "tideslice-scheduler"), o);
  (void)cli::PodsJson(cli::PodsView(objects, "tideslice-scheduler")).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  (void)cli::RenderWhy(cli::Why(obj, objects), o);
  std::string schedule_error;
  auto pools = cli::TideView(&obj, &obj, objects, objects, o.now, &schedule_error);
  (void)cli::RenderTide(pools, o);
  (void)cli::TideJson(pools, o.now).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace tideslice::fuzz
