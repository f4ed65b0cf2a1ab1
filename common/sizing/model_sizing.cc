#include "common/sizing/model_sizing.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace tideslice::sizing {

namespace {

constexpr int64_t kMiB = 1024 * 1024;
constexpr int64_t kGiBInMiB = 1024;
// The overhead factor as a fraction: 1.2 = 6 / 5.
constexpr int64_t kOverheadNum = 6, kOverheadDen = 5;
// LoRA: trainable adapter parameters as a share of the model (1 %), each costing its weight,
// gradient and Adam state in mixed precision (2 + 2 + 12 = 16 bytes): 0.16 B per model parameter.
constexpr int64_t kLoraMilliBytes = 160;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Input quoted in messages, cut so that a huge annotation cannot make a huge refusal.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return "\"" + std::string(s) + "\"";
  return "\"" + std::string(s.substr(0, kMax)) + "...\"";
}

int64_t WeightMilliBytes(Dtype d) {
  switch (d) {
    case Dtype::kFp32: return 4000;
    case Dtype::kBf16:
    case Dtype::kFp16: return 2000;
    case Dtype::kFp8:
    case Dtype::kInt8: return 1000;
    case Dtype::kInt4: return 500;
  }
  return 0;
}

std::string Decimal(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f" : "%.1f", v);
  return buf;
}

// "2", "0.5", "0.16": thousandths as a short decimal.
std::string Milli(int64_t milli) {
  std::string s = std::to_string(milli / 1000);
  int64_t frac = milli % 1000;
  if (frac == 0) return s;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03lld", static_cast<long long>(frac));
  std::string f = buf;
  while (!f.empty() && f.back() == '0') f.pop_back();
  return s + "." + f;
}

}  // namespace

const char* DtypeName(Dtype d) {
  switch (d) {
    case Dtype::kFp32: return "fp32";
    case Dtype::kBf16: return "bf16";
    case Dtype::kFp16: return "fp16";
    case Dtype::kFp8: return "fp8";
    case Dtype::kInt8: return "int8";
    case Dtype::kInt4: return "int4";
  }
  return "?";
}

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kInference: return "inference";
    case Mode::kFinetuneLora: return "finetune-lora";
    case Mode::kTrainFull: return "train-full";
  }
  return "?";
}

StatusOr<uint64_t> ParseParams(std::string_view text) {
  const std::string field = kModelParamsAnnotation;
  const std::string expected =
      "must be a parameter count with a unit, such as 7B, 13.5B or 350M (M = million, B = billion, T = trillion)";
  if (text.empty()) return Status::InvalidArgument(field, expected + "; got an empty value");
  const char unit = text.back();
  std::string_view number = text.substr(0, text.size() - 1);
  uint64_t scale = 0;
  switch (unit) {
    case 'M': scale = 1'000'000ULL; break;
    case 'B': scale = 1'000'000'000ULL; break;
    case 'T': scale = 1'000'000'000'000ULL; break;
    default: break;
  }
  auto all_number = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
  };
  if (scale == 0) {
    if (unit == 'm' || unit == 'b' || unit == 't') {
      if (all_number(number))
        return Status::InvalidArgument(field, expected + "; got " + Quote(text) + ": write " + std::string(number) +
                                                  static_cast<char>(std::toupper(static_cast<unsigned char>(unit))));
    }
    if (unit == 'G' || unit == 'g') {
      if (all_number(number))
        return Status::InvalidArgument(field, expected + "; got " + Quote(text) + ": write " + std::string(number) + "B");
    }
    if (all_number(text))
      return Status::InvalidArgument(field, expected + "; got " + Quote(text) + ", which has no unit");
    return Status::InvalidArgument(field, expected + "; got " + Quote(text));
  }
  // digits [ '.' 1..3 digits ]
  size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : number.substr(dot + 1);
  auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
  };
  if (whole.empty() || !digits(whole) || (dot != std::string_view::npos && (frac.empty() || !digits(frac))))
    return Status::InvalidArgument(field, expected + "; got " + Quote(text));
  if (frac.size() > 3)
    return Status::InvalidArgument(field, "has more than 3 digits after the point; got " + Quote(text) +
                                              " (use a smaller unit, e.g. 1500.5M for 1.5005B)");
  if (whole.size() > 9) return Status::InvalidArgument(field, "is too large: at most 100T parameters; got " + Quote(text));
  uint64_t milli = 0;
  for (char c : whole) milli = milli * 10 + static_cast<uint64_t>(c - '0');
  for (size_t i = 0; i < 3; ++i) milli = milli * 10 + (i < frac.size() ? static_cast<uint64_t>(frac[i] - '0') : 0);
  // milli < 1e12 and scale / 1000 <= 1e9: the product could exceed 64 bits only past 1e21.
  const unsigned __int128 params = static_cast<unsigned __int128>(milli) * (scale / 1000);
  if (params == 0) return Status::InvalidArgument(field, "must be more than zero parameters; got " + Quote(text));
  if (params > kMaxParams) return Status::InvalidArgument(field, "is too large: at most 100T parameters; got " + Quote(text));
  return static_cast<uint64_t>(params);
}

std::string FormatParams(uint64_t params) {
  struct Unit {
    uint64_t scale;
    char name;
  };
  for (Unit u : {Unit{1'000'000'000'000ULL, 'T'}, Unit{1'000'000'000ULL, 'B'}, Unit{1'000'000ULL, 'M'}}) {
    if (params < u.scale) continue;
    std::string s = std::to_string(params / u.scale);
    uint64_t rest = params % u.scale;
    if (rest != 0) {
      // Up to six decimals, trailing zeros dropped.
      uint64_t micro = static_cast<uint64_t>(static_cast<unsigned __int128>(rest) * 1'000'000 / u.scale);
      char buf[16];
      std::snprintf(buf, sizeof buf, "%06llu", static_cast<unsigned long long>(micro));
      std::string f = buf;
      while (!f.empty() && f.back() == '0') f.pop_back();
      if (!f.empty()) s += "." + f;
    }
    return s + u.name;
  }
  return std::to_string(params);
}

StatusOr<Dtype> ParseDtype(std::string_view text) {
  static const std::pair<const char*, Dtype> kNames[] = {{"fp32", Dtype::kFp32}, {"bf16", Dtype::kBf16},
                                                         {"fp16", Dtype::kFp16}, {"fp8", Dtype::kFp8},
                                                         {"int8", Dtype::kInt8}, {"int4", Dtype::kInt4}};
  for (const auto& [name, d] : kNames)
    if (text == name) return d;
  // Other spellings of the same types: the message says which name to write.
  static const std::pair<const char*, Dtype> kAliases[] = {
      {"fp32", Dtype::kFp32},     {"float32", Dtype::kFp32}, {"float", Dtype::kFp32},    {"f32", Dtype::kFp32},
      {"bf16", Dtype::kBf16},     {"bfloat16", Dtype::kBf16}, {"fp16", Dtype::kFp16},    {"float16", Dtype::kFp16},
      {"half", Dtype::kFp16},     {"f16", Dtype::kFp16},     {"fp8", Dtype::kFp8},       {"float8", Dtype::kFp8},
      {"e4m3", Dtype::kFp8},      {"e5m2", Dtype::kFp8},     {"fp8_e4m3", Dtype::kFp8},  {"fp8-e4m3", Dtype::kFp8},
      {"int8", Dtype::kInt8},     {"i8", Dtype::kInt8},      {"q8", Dtype::kInt8},       {"8bit", Dtype::kInt8},
      {"int4", Dtype::kInt4},     {"i4", Dtype::kInt4},      {"q4", Dtype::kInt4},       {"nf4", Dtype::kInt4},
      {"4bit", Dtype::kInt4},     {"gptq", Dtype::kInt4},    {"awq", Dtype::kInt4}};
  const std::string lower = Lower(text);
  const std::string field = kModelDtypeAnnotation;
  for (const auto& [alias, d] : kAliases)
    if (lower == alias)
      return Status::InvalidArgument(field, "got " + Quote(text) + ": write \"" + DtypeName(d) +
                                                "\" (one of fp32, bf16, fp16, fp8, int8, int4)");
  return Status::InvalidArgument(field, "must be one of fp32, bf16, fp16, fp8, int8, int4 (the weights' type); got " +
                                            Quote(text));
}

StatusOr<Mode> ParseMode(std::string_view text) {
  if (text == "inference") return Mode::kInference;
  if (text == "finetune-lora") return Mode::kFinetuneLora;
  if (text == "train-full") return Mode::kTrainFull;
  static const std::pair<const char*, Mode> kAliases[] = {
      {"inference", Mode::kInference},        {"infer", Mode::kInference},
      {"serve", Mode::kInference},            {"serving", Mode::kInference},
      {"finetune-lora", Mode::kFinetuneLora}, {"finetune_lora", Mode::kFinetuneLora},
      {"lora", Mode::kFinetuneLora},          {"qlora", Mode::kFinetuneLora},
      {"peft", Mode::kFinetuneLora},          {"fine-tune-lora", Mode::kFinetuneLora},
      {"train-full", Mode::kTrainFull},       {"train_full", Mode::kTrainFull},
      {"train", Mode::kTrainFull},            {"training", Mode::kTrainFull},
      {"full", Mode::kTrainFull},             {"pretrain", Mode::kTrainFull},
      {"finetune-full", Mode::kTrainFull},    {"full-finetune", Mode::kTrainFull}};
  const std::string lower = Lower(text);
  const std::string field = kModelModeAnnotation;
  for (const auto& [alias, m] : kAliases)
    if (lower == alias)
      return Status::InvalidArgument(field, "got " + Quote(text) + ": write \"" + ModeName(m) +
                                                "\" (one of inference, finetune-lora, train-full)");
  return Status::InvalidArgument(field, "must be one of inference (the default), finetune-lora, train-full; got " +
                                            Quote(text));
}

StatusOr<std::optional<ModelSpec>> ModelFromAnnotations(const std::map<std::string, std::string>& annotations) {
  auto get = [&](const char* key) -> const std::string* {
    auto it = annotations.find(key);
    return it == annotations.end() ? nullptr : &it->second;
  };
  const std::string* params = get(kModelParamsAnnotation);
  const std::string* dtype = get(kModelDtypeAnnotation);
  const std::string* mode = get(kModelModeAnnotation);
  if (!params && !dtype && !mode) return std::optional<ModelSpec>();
  if (!params)
    return Status::InvalidArgument(kModelParamsAnnotation, std::string("is required with ") +
                                                               (dtype ? kModelDtypeAnnotation : kModelModeAnnotation) +
                                                               ": give the model's parameter count, e.g. 7B");
  if (!dtype)
    return Status::InvalidArgument(kModelDtypeAnnotation, std::string("is required with ") + kModelParamsAnnotation +
                                                              ": give the weights' type, one of fp32, bf16, fp16, fp8, "
                                                              "int8, int4");
  ModelSpec spec;
  auto p = ParseParams(*params);
  if (!p.ok()) return p.status();
  spec.params = *p;
  auto d = ParseDtype(*dtype);
  if (!d.ok()) return d.status();
  spec.dtype = *d;
  if (mode) {
    auto m = ParseMode(*mode);
    if (!m.ok()) return m.status();
    spec.mode = *m;
  }
  TS_RETURN_IF_ERROR(CheckMode(spec));
  return std::optional<ModelSpec>(spec);
}

Status CheckMode(const ModelSpec& model) {
  if (model.mode == Mode::kTrainFull && model.dtype != Dtype::kFp32 && model.dtype != Dtype::kBf16 &&
      model.dtype != Dtype::kFp16)
    return Status::InvalidArgument(
        kModelDtypeAnnotation,
        std::string("train-full is sized for fp32, bf16 or fp16 training, got \"") + DtypeName(model.dtype) +
            "\": mixed-precision training keeps fp32 master weights and Adam state whatever the compute type, so write "
            "bf16 for fp8 training; quantized int8/int4 weights are trained with " +
            kModelModeAnnotation + ": finetune-lora (QLoRA)");
  return Status::Ok();
}

int64_t MilliBytesPerParam(Dtype dtype, Mode mode) {
  const int64_t w = WeightMilliBytes(dtype);
  switch (mode) {
    case Mode::kInference: return w;
    case Mode::kFinetuneLora: return w + kLoraMilliBytes;
    case Mode::kTrainFull:
      // fp32: weights 4 + gradients 4 + Adam momentum and variance 8. 16-bit: weights 2 +
      // gradients 2 + fp32 master weights, momentum and variance 12.
      return dtype == Dtype::kFp32 ? 16000 : w + w + 12000;
  }
  return w;
}

Sizing Size(const ModelSpec& model, int slices) {
  Sizing s;
  s.slices = std::max(1, slices);
  const int64_t milli = MilliBytesPerParam(model.dtype, model.mode);
  // params <= 1e14, milli <= 16000, x6: < 1e19 fits 128 bits with room; the result fits 64.
  const unsigned __int128 num = static_cast<unsigned __int128>(model.params) * static_cast<uint64_t>(milli) * kOverheadNum;
  const unsigned __int128 den = 1000u * kOverheadDen;
  s.total_bytes = static_cast<uint64_t>((num + den - 1) / den);
  const uint64_t per_slice_bytes = (s.total_bytes + static_cast<uint64_t>(s.slices) - 1) / static_cast<uint64_t>(s.slices);
  const uint64_t gib = static_cast<uint64_t>(kGiBInMiB) * kMiB;
  const uint64_t per_slice_gib = std::max<uint64_t>(1, (per_slice_bytes + gib - 1) / gib);
  s.mib_per_slice = static_cast<int64_t>(per_slice_gib) * kGiBInMiB;

  const std::string dt = DtypeName(model.dtype);
  std::string per_param;
  switch (model.mode) {
    case Mode::kInference: per_param = Milli(milli) + " B/param (" + dt + " weights)"; break;
    case Mode::kFinetuneLora:
      per_param = "(" + Milli(WeightMilliBytes(model.dtype)) + " B/param " + dt + " frozen weights + " +
                  Milli(kLoraMilliBytes) + " B/param LoRA adapters)";
      break;
    case Mode::kTrainFull:
      per_param = Milli(milli) + " B/param (" +
                  (model.dtype == Dtype::kFp32 ? std::string("fp32 weights 4 + gradients 4 + Adam state 8")
                                               : dt + " weights 2 + gradients 2 + fp32 master weights and Adam state 12") +
                  ")";
      break;
  }
  s.formula = FormatParams(model.params) + " x " + per_param + " x 1.2 (" + ModeName(model.mode) +
              ") = " + Decimal(static_cast<double>(s.total_bytes) / 1e9) + " GB";
  if (s.slices > 1) s.formula += " / " + std::to_string(s.slices) + " slices";
  s.formula += " -> " + MemoryQuantity(s.mib_per_slice) + " per slice";
  return s;
}

Fit FitOnCards(const ModelSpec& model, int slices, const std::vector<const catalog::AcceleratorModel*>& cards,
               int max_slices) {
  Fit fit;
  fit.mib_per_slice = Size(model, slices).mib_per_slice;
  std::vector<const catalog::AcceleratorModel*> sorted;
  for (const auto* c : cards)
    if (c) sorted.push_back(c);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->memory_mib != b->memory_mib ? a->memory_mib < b->memory_mib : a->name < b->name;
  });
  for (const auto* c : sorted)
    if (c->memory_mib >= fit.mib_per_slice) fit.holding_models.push_back(c->name);
  if (!sorted.empty()) {
    // The largest; among equals the first by name.
    const int64_t most = sorted.back()->memory_mib;
    for (const auto* c : sorted)
      if (c->memory_mib == most) {
        fit.largest_model = c->name;
        fit.largest_mib = most;
        break;
      }
  }
  if (fit.holding_models.empty() && fit.largest_mib > 0) {
    for (int k = std::max(1, slices) + 1; k <= max_slices; ++k) {
      const int64_t share = Size(model, k).mib_per_slice;
      if (share <= fit.largest_mib) {
        fit.slices_needed = k;
        fit.mib_per_slice_needed = share;
        break;
      }
    }
  }
  return fit;
}

std::string MemoryQuantity(int64_t mib) {
  if (mib > 0 && mib % kGiBInMiB == 0) return std::to_string(mib / kGiBInMiB) + "Gi";
  return std::to_string(mib) + "Mi";
}

}  // namespace tideslice::sizing
