// Sizing a slice by model: from "7B parameters in bf16, inference" to the memory per slice an ML
// engineer would otherwise work out by hand. Pure: no I/O, no JSON; the admission webhook reads
// the pod's annotations into it and writes the answer back (scheduler/service/webhook.cc).
//
// The rule (docs/model-sizing.md has the sources, and says which factors are rules of thumb):
//   memory = parameters x bytes per parameter for the mode x 1.2
//   inference      weights only:                               dtype bytes
//   finetune-lora  frozen weights + LoRA adapters (1 % of the parameters, each with its
//                  weights, gradients and Adam state: 16 B):  dtype bytes + 0.16
//   train-full     weights + gradients in the dtype + Adam state in fp32 (a master copy of the
//                  weights where the dtype is 16-bit, momentum, variance):
//                  fp32 4+4+8, bf16/fp16 2+2+12 = 16
// The 1.2 covers activations, caches and framework workspace (EleutherAI's "Transformer Math
// 101" for inference; for training a rule of thumb that assumes activation checkpointing).
// The total is split evenly over the container's slices (tensor/pipeline parallel or sharded
// data parallel) and rounded up to whole GiB per slice.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/catalog/model.h"
#include "common/status.h"

namespace tideslice::sizing {

inline constexpr char kModelParamsAnnotation[] = "tideslice.io/model-params";  // "7B", "13.5B", "350M"
inline constexpr char kModelDtypeAnnotation[] = "tideslice.io/model-dtype";    // "bf16", ...
inline constexpr char kModelModeAnnotation[] = "tideslice.io/model-mode";      // "inference" (default), ...
// Written by the webhook: how the memory per slice was computed, for people reading the pod.
inline constexpr char kSizedByAnnotation[] = "tideslice.io/sized-by";

enum class Dtype { kFp32, kBf16, kFp16, kFp8, kInt8, kInt4 };
enum class Mode { kInference, kFinetuneLora, kTrainFull };

const char* DtypeName(Dtype d);  // "bf16"
const char* ModeName(Mode m);    // "finetune-lora"

// Parameter counts above this are refused (the largest published models are ~2T).
inline constexpr uint64_t kMaxParams = 100'000'000'000'000ULL;  // 100T

// "7B" -> 7e9. A decimal number (at most 3 digits after the point) and one unit: M (million),
// B (billion) or T (trillion). Errors say what to write instead ("write 7B" for "7b").
StatusOr<uint64_t> ParseParams(std::string_view text);
StatusOr<Dtype> ParseDtype(std::string_view text);
StatusOr<Mode> ParseMode(std::string_view text);
// 7000000000 -> "7B", 13500000000 -> "13.5B", 350000000 -> "350M".
std::string FormatParams(uint64_t params);

struct ModelSpec {
  uint64_t params = 0;
  Dtype dtype = Dtype::kBf16;
  Mode mode = Mode::kInference;
};

// The model annotations of a pod: nullopt when it carries none of them; an error naming the
// annotation when one is malformed, or params and dtype are not both given.
StatusOr<std::optional<ModelSpec>> ModelFromAnnotations(const std::map<std::string, std::string>& annotations);

// Bytes per parameter of the mode and dtype before the 1.2 overhead, in thousandths of a byte
// (bf16 inference: 2000). Train-full exists for fp32, bf16 and fp16 only (see CheckMode).
int64_t MilliBytesPerParam(Dtype dtype, Mode mode);
// Train-full with fp8/int8/int4 weights is refused: mixed-precision training keeps fp32 master
// weights and Adam state whatever the compute dtype, so such an annotation would under-size.
Status CheckMode(const ModelSpec& model);

struct Sizing {
  uint64_t total_bytes = 0;      // the whole model's estimate, with the 1.2 overhead
  int slices = 1;
  int64_t mib_per_slice = 0;     // total / slices, rounded up to whole GiB
  std::string formula;           // "7B x 2 B/param (bf16) x 1.2 (inference) = 16.8 GB -> 16Gi per slice"
};

// `slices` >= 1. The model must pass CheckMode.
Sizing Size(const ModelSpec& model, int slices);

// Where a model of `model` fits among `cards` (the allowed catalog models).
struct Fit {
  int64_t mib_per_slice = 0;                // as Size() computes for `slices`
  std::vector<std::string> holding_models;  // models with at least that memory, smallest first
  std::string largest_model;                // the allowed model with the most memory
  int64_t largest_mib = 0;
  // When none holds a slice: the fewest slices (each on its own card) whose share fits on the
  // largest model, with that share; 0 when even `max_slices` do not suffice.
  int slices_needed = 0;
  int64_t mib_per_slice_needed = 0;
};
Fit FitOnCards(const ModelSpec& model, int slices, const std::vector<const catalog::AcceleratorModel*>& cards,
               int max_slices);

// 16384 -> "16Gi" (whole GiB), 1536 -> "1536Mi".
std::string MemoryQuantity(int64_t mib);

}  // namespace tideslice::sizing
