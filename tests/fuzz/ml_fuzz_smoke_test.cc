// The entry points of ml_targets.h on seeds and deterministic mutations of them, on every build
// (the coverage-guided runs use the libFuzzer binaries, cmake -DTIDESLICE_FUZZ=ON with clang).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/mutate.h"
#include "tests/fuzz/ml_targets.h"

namespace tideslice::fuzz {
namespace {

void Mutate(Target target, const std::vector<std::string>& seeds, int rounds) {
  const std::string alphabet = "{}[]\":,0123456789.-BMTb|fpintlorauce \\\n\x1b";
  RunMutations(target, seeds, rounds, alphabet, 4242);
}

TEST(MlFuzzSmoke, ModelAnnotations) {
  Mutate(Fuzz_model_annotations,
         {"7B|bf16", "13.5B|int4|finetune-lora", "100T|fp32|train-full", "350M|fp16|inference", "0.001M|int4",
          "99999999B|fp32|train-full", "7b|bfloat16|lora"},
         400);
}

TEST(MlFuzzSmoke, FilterRecord) {
  Mutate(Fuzz_filter_record,
         {R"({"since":"2026-12-02T02:57:30Z","nodes":{"gpu-a":"no card","gpu-b":"stale"},"omitted":3})",
          R"({"since":"2026-12-02T02:57:30+08:00","nodes":{}})", std::string(200, '[')},
         400);
}

TEST(MlFuzzSmoke, CliViews) {
  const std::string node =
      R"({"metadata":{"name":"n","labels":{"tideslice.io/pool":"p"},"annotations":{"tideslice.io/inventory":)"
      R"("{\"nodeName\":\"n\",\"cards\":[{\"uuid\":\"g\",\"index\":0,\"model\":\"H100-80G\",\"memoryMib\":\"81920\",\"health\":\"HEALTH_HEALTHY\"}]}"}}})";
  const std::string pod =
      R"({"metadata":{"name":"p","namespace":"ml","annotations":{"tideslice.io/assignment":)"
      R"("{\"nodeName\":\"n\",\"phase\":\"ASSIGNMENT_PHASE_ALLOCATED\",\"containers\":[{\"name\":\"c\",\"slices\":[{\"cardUuid\":\"g\",\"memoryMib\":\"1024\",\"profile\":\"vir05_1c_16g\"}]}]}",)"
      R"("tideslice.io/filter-reasons":"{\"since\":\"2026-01-01T00:00:00Z\",\"nodes\":{\"n\":\"x\"}}",)"
      R"("tideslice.io/checkpoint-notice":"{\"pool\":\"p\",\"transition\":\"t\",\"issued\":\"2026-01-01T00:00:00Z\",\"deadline\":\"2026-01-01T00:10:00Z\"}"}},)"
      R"("spec":{"nodeName":"n","schedulerName":"tideslice-scheduler"},"status":{"phase":"Running"},)"
      R"("reason":"FailedScheduling","message":"0/1","lastTimestamp":"2026-01-01T00:00:00Z",)"
      R"("data":{"p":"{\"tide\":\"day\",\"since\":\"2026-01-01T00:00:00Z\",\"loadHoldUntil\":\"2026-01-01T00:00:00Z\"}",)"
      R"("scheduler-config.json":"{\"pools\":[{\"name\":\"p\",\"nodeSelector\":{\"a\":\"b\"},\"timezone\":\"UTC\",\"dayWindows\":[{\"start\":\"08:00\",\"end\":\"20:00\"}]}]}"}})";
  Mutate(Fuzz_cli_views, {node, pod, "{}", R"({"metadata":null,"spec":[],"status":7})"}, 300);
}

}  // namespace
}  // namespace tideslice::fuzz
