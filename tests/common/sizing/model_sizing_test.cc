// The sizing rule over the full table of dtypes, modes and model sizes (each expected figure
// worked out by hand from docs/model-sizing.md), the parsers' refusals (each says what to
// write instead), and fitting onto the catalog's cards.
#include "common/sizing/model_sizing.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/catalog/catalog.h"

namespace tideslice::sizing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseParams, UnitsAndDecimals) {
  EXPECT_EQ(*ParseParams("7B"), 7'000'000'000ULL);
  EXPECT_EQ(*ParseParams("13.5B"), 13'500'000'000ULL);
  EXPECT_EQ(*ParseParams("350M"), 350'000'000ULL);
  EXPECT_EQ(*ParseParams("1.8T"), 1'800'000'000'000ULL);
  EXPECT_EQ(*ParseParams("0.5B"), 500'000'000ULL);
  EXPECT_EQ(*ParseParams("1500.5M"), 1'500'500'000ULL);
  EXPECT_EQ(*ParseParams("100T"), kMaxParams);
  EXPECT_EQ(*ParseParams("0.001M"), 1'000ULL);
}

TEST(ParseParams, RefusalsSayWhatToWrite) {
  struct Case {
    const char* in;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{{"7b", "write 7B"},
                                         {"350m", "write 350M"},
                                         {"7G", "write 7B"},
                                         {"7000000000", "has no unit"},
                                         {"", "empty"},
                                         {"B", "such as 7B"},
                                         {".5B", "such as 7B"},
                                         {"7.B", "such as 7B"},
                                         {"1.2.3B", "such as 7B"},
                                         {"-7B", "such as 7B"},
                                         {" 7B", "such as 7B"},
                                         {"7 B", "such as 7B"},
                                         {"7e9", "such as 7B"},
                                         {"1.0005B", "more than 3 digits"},
                                         {"0B", "more than zero"},
                                         {"0.000M", "more than zero"},
                                         {"101T", "at most 100T"},
                                         {"99999999999999999999B", "at most 100T"},
                                         {"seven", "such as 7B"}}) {
    auto p = ParseParams(c.in);
    ASSERT_FALSE(p.ok()) << c.in;
    EXPECT_EQ(p.status().field(), kModelParamsAnnotation);
    EXPECT_THAT(p.status().message(), HasSubstr(c.says)) << c.in;
  }
  // Huge input is quoted within bounds.
  auto p = ParseParams(std::string(100000, '9') + "x");
  ASSERT_FALSE(p.ok());
  EXPECT_LT(p.status().message().size(), 400u);
}

TEST(FormatParams, RoundTrips) {
  for (const char* s : {"7B", "13.5B", "350M", "1.8T", "70B", "100T"})
    EXPECT_EQ(FormatParams(*ParseParams(s)), s);
  EXPECT_EQ(FormatParams(1'500'500'000ULL), "1.5005B");
  EXPECT_EQ(FormatParams(999), "999");
}

TEST(ParseDtype, NamesAndAliases) {
  EXPECT_EQ(*ParseDtype("fp32"), Dtype::kFp32);
  EXPECT_EQ(*ParseDtype("bf16"), Dtype::kBf16);
  EXPECT_EQ(*ParseDtype("fp16"), Dtype::kFp16);
  EXPECT_EQ(*ParseDtype("fp8"), Dtype::kFp8);
  EXPECT_EQ(*ParseDtype("int8"), Dtype::kInt8);
  EXPECT_EQ(*ParseDtype("int4"), Dtype::kInt4);
  for (auto [in, write] : std::vector<std::pair<const char*, const char*>>{{"bfloat16", "write \"bf16\""},
                                                                          {"BF16", "write \"bf16\""},
                                                                          {"float16", "write \"fp16\""},
                                                                          {"half", "write \"fp16\""},
                                                                          {"float32", "write \"fp32\""},
                                                                          {"nf4", "write \"int4\""},
                                                                          {"GPTQ", "write \"int4\""},
                                                                          {"e4m3", "write \"fp8\""},
                                                                          {"q8", "write \"int8\""}}) {
    auto d = ParseDtype(in);
    ASSERT_FALSE(d.ok()) << in;
    EXPECT_EQ(d.status().field(), kModelDtypeAnnotation);
    EXPECT_THAT(d.status().message(), HasSubstr(write)) << in;
  }
  auto d = ParseDtype("int3");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("one of fp32, bf16, fp16, fp8, int8, int4"));
  EXPECT_THAT(d.status().message(), HasSubstr("got \"int3\""));
}

TEST(ParseMode, NamesAndAliases) {
  EXPECT_EQ(*ParseMode("inference"), Mode::kInference);
  EXPECT_EQ(*ParseMode("finetune-lora"), Mode::kFinetuneLora);
  EXPECT_EQ(*ParseMode("train-full"), Mode::kTrainFull);
  for (auto [in, write] : std::vector<std::pair<const char*, const char*>>{{"lora", "finetune-lora"},
                                                                          {"QLoRA", "finetune-lora"},
                                                                          {"training", "train-full"},
                                                                          {"train", "train-full"},
                                                                          {"serving", "inference"},
                                                                          {"Inference", "inference"}}) {
    auto m = ParseMode(in);
    ASSERT_FALSE(m.ok()) << in;
    EXPECT_EQ(m.status().field(), kModelModeAnnotation);
    EXPECT_THAT(m.status().message(), HasSubstr(std::string("write \"") + write + "\"")) << in;
  }
  auto m = ParseMode("distill");
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(m.status().message(), HasSubstr("one of inference (the default), finetune-lora, train-full"));
}

TEST(ModelFromAnnotations, NoneSomeAndAll) {
  auto none = ModelFromAnnotations({{"team", "a"}});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  auto full = ModelFromAnnotations({{kModelParamsAnnotation, "7B"}, {kModelDtypeAnnotation, "bf16"}});
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  ASSERT_TRUE(full->has_value());
  EXPECT_EQ((*full)->params, 7'000'000'000ULL);
  EXPECT_EQ((*full)->dtype, Dtype::kBf16);
  EXPECT_EQ((*full)->mode, Mode::kInference);  // the default

  auto lora = ModelFromAnnotations(
      {{kModelParamsAnnotation, "13B"}, {kModelDtypeAnnotation, "int4"}, {kModelModeAnnotation, "finetune-lora"}});
  ASSERT_TRUE(lora.ok());
  EXPECT_EQ((*lora)->mode, Mode::kFinetuneLora);

  auto no_dtype = ModelFromAnnotations({{kModelParamsAnnotation, "7B"}});
  ASSERT_FALSE(no_dtype.ok());
  EXPECT_EQ(no_dtype.status().field(), kModelDtypeAnnotation);
  EXPECT_THAT(no_dtype.status().message(), HasSubstr("is required with tideslice.io/model-params"));

  auto no_params = ModelFromAnnotations({{kModelModeAnnotation, "inference"}});
  ASSERT_FALSE(no_params.ok());
  EXPECT_EQ(no_params.status().field(), kModelParamsAnnotation);
  EXPECT_THAT(no_params.status().message(), HasSubstr("e.g. 7B"));

  auto bad_mode = ModelFromAnnotations(
      {{kModelParamsAnnotation, "7B"}, {kModelDtypeAnnotation, "bf16"}, {kModelModeAnnotation, "lora"}});
  ASSERT_FALSE(bad_mode.ok());
  EXPECT_EQ(bad_mode.status().field(), kModelModeAnnotation);

  // Full training of quantized weights is refused with what to write instead.
  for (const char* dt : {"fp8", "int8", "int4"}) {
    auto q = ModelFromAnnotations(
        {{kModelParamsAnnotation, "7B"}, {kModelDtypeAnnotation, dt}, {kModelModeAnnotation, "train-full"}});
    ASSERT_FALSE(q.ok()) << dt;
    EXPECT_EQ(q.status().field(), kModelDtypeAnnotation);
    EXPECT_THAT(q.status().message(), HasSubstr("write bf16 for fp8 training"));
    EXPECT_THAT(q.status().message(), HasSubstr("finetune-lora"));
  }
}

// Bytes per parameter before the 1.2 overhead, for every dtype and mode.
TEST(Sizing, BytesPerParamTable) {
  struct Row {
    Dtype d;
    int64_t inference, lora, train;  // thousandths of a byte; train -1 = refused
  };
  for (const Row& r : std::vector<Row>{{Dtype::kFp32, 4000, 4160, 16000},
                                       {Dtype::kBf16, 2000, 2160, 16000},
                                       {Dtype::kFp16, 2000, 2160, 16000},
                                       {Dtype::kFp8, 1000, 1160, -1},
                                       {Dtype::kInt8, 1000, 1160, -1},
                                       {Dtype::kInt4, 500, 660, -1}}) {
    EXPECT_EQ(MilliBytesPerParam(r.d, Mode::kInference), r.inference) << DtypeName(r.d);
    EXPECT_EQ(MilliBytesPerParam(r.d, Mode::kFinetuneLora), r.lora) << DtypeName(r.d);
    ModelSpec m{7'000'000'000ULL, r.d, Mode::kTrainFull};
    if (r.train < 0) {
      EXPECT_FALSE(CheckMode(m).ok()) << DtypeName(r.d);
    } else {
      EXPECT_TRUE(CheckMode(m).ok()) << DtypeName(r.d);
      EXPECT_EQ(MilliBytesPerParam(r.d, Mode::kTrainFull), r.train) << DtypeName(r.d);
    }
  }
}

// The whole table: sizes x dtypes x modes -> GiB per single slice. Each figure is
// ceil(params x bytes/param x 1.2 / 2^30).
TEST(Sizing, TableOfSizesDtypesAndModes) {
  struct Row {
    const char* params;
    Dtype d;
    Mode m;
    int64_t gib;
  };
  const std::vector<Row> table = {
      // inference: params x bytes x 1.2
      {"350M", Dtype::kFp16, Mode::kInference, 1},   // 0.84 GB
      {"1.5B", Dtype::kFp32, Mode::kInference, 7},   // 7.2 GB = 6.71 GiB
      {"7B", Dtype::kFp32, Mode::kInference, 32},    // 33.6 GB = 31.29 GiB
      {"7B", Dtype::kBf16, Mode::kInference, 16},    // 16.8 GB = 15.65 GiB
      {"7B", Dtype::kFp16, Mode::kInference, 16},
      {"7B", Dtype::kFp8, Mode::kInference, 8},      // 8.4 GB = 7.82 GiB
      {"7B", Dtype::kInt8, Mode::kInference, 8},
      {"7B", Dtype::kInt4, Mode::kInference, 4},     // 4.2 GB = 3.91 GiB
      {"13B", Dtype::kBf16, Mode::kInference, 30},   // 31.2 GB = 29.06 GiB
      {"13.5B", Dtype::kBf16, Mode::kInference, 31}, // 32.4 GB = 30.17 GiB
      {"70B", Dtype::kBf16, Mode::kInference, 157},  // 168 GB = 156.46 GiB
      {"70B", Dtype::kInt4, Mode::kInference, 40},   // 42 GB = 39.12 GiB
      {"175B", Dtype::kFp16, Mode::kInference, 392}, // 420 GB = 391.15 GiB
      // finetune-lora: params x (bytes + 0.16) x 1.2
      {"7B", Dtype::kBf16, Mode::kFinetuneLora, 17},   // 18.144 GB = 16.90 GiB
      {"7B", Dtype::kInt4, Mode::kFinetuneLora, 6},    // 5.544 GB = 5.16 GiB
      {"7B", Dtype::kFp32, Mode::kFinetuneLora, 33},   // 34.944 GB = 32.54 GiB
      {"13B", Dtype::kInt8, Mode::kFinetuneLora, 17},  // 18.096 GB = 16.85 GiB
      {"65B", Dtype::kInt4, Mode::kFinetuneLora, 48},  // 51.48 GB = 47.94 GiB (QLoRA: 65B on one 48 GB card)
      {"70B", Dtype::kFp8, Mode::kFinetuneLora, 91},   // 97.44 GB = 90.75 GiB
      // train-full: params x 16 x 1.2
      {"350M", Dtype::kFp32, Mode::kTrainFull, 7},   // 6.72 GB = 6.26 GiB
      {"1.5B", Dtype::kBf16, Mode::kTrainFull, 27},  // 28.8 GB = 26.82 GiB
      {"7B", Dtype::kBf16, Mode::kTrainFull, 126},   // 134.4 GB = 125.17 GiB
      {"7B", Dtype::kFp16, Mode::kTrainFull, 126},
      {"7B", Dtype::kFp32, Mode::kTrainFull, 126},
  };
  for (const Row& r : table) {
    ModelSpec m{*ParseParams(r.params), r.d, r.m};
    Sizing s = Size(m, 1);
    EXPECT_EQ(s.mib_per_slice, r.gib * 1024) << r.params << " " << DtypeName(r.d) << " " << ModeName(r.m) << ": "
                                             << s.formula;
  }
}

TEST(Sizing, FormulaSaysHowAndSplitsOverSlices) {
  ModelSpec m{7'000'000'000ULL, Dtype::kBf16, Mode::kInference};
  Sizing s = Size(m, 1);
  EXPECT_EQ(s.total_bytes, 16'800'000'000ULL);
  EXPECT_EQ(s.formula, "7B x 2 B/param (bf16 weights) x 1.2 (inference) = 16.8 GB -> 16Gi per slice");
  // 70B bf16 over two cards: 168 GB / 2 = 84 GB = 78.23 GiB -> 79Gi each.
  Sizing two = Size({70'000'000'000ULL, Dtype::kBf16, Mode::kInference}, 2);
  EXPECT_EQ(two.mib_per_slice, 79 * 1024);
  EXPECT_EQ(two.formula, "70B x 2 B/param (bf16 weights) x 1.2 (inference) = 168.0 GB / 2 slices -> 79Gi per slice");
  EXPECT_EQ(Size({13'000'000'000ULL, Dtype::kInt4, Mode::kFinetuneLora}, 1).formula,
            "13B x (0.5 B/param int4 frozen weights + 0.16 B/param LoRA adapters) x 1.2 (finetune-lora) = 10.3 GB "
            "-> 10Gi per slice");
  EXPECT_EQ(Size({7'000'000'000ULL, Dtype::kBf16, Mode::kTrainFull}, 2).formula,
            "7B x 16 B/param (bf16 weights 2 + gradients 2 + fp32 master weights and Adam state 12) x 1.2 (train-full) "
            "= 134.4 GB / 2 slices -> 63Gi per slice");
  EXPECT_EQ(Size({350'000'000ULL, Dtype::kInt4, Mode::kInference}, 1).formula,
            "350M x 0.5 B/param (int4 weights) x 1.2 (inference) = 0.21 GB -> 1Gi per slice");
  // Never less than 1 GiB, and the largest model's arithmetic does not overflow.
  EXPECT_EQ(Size({1'000ULL, Dtype::kInt4, Mode::kInference}, 64).mib_per_slice, 1024);
  Sizing huge = Size({kMaxParams, Dtype::kFp32, Mode::kTrainFull}, 1);
  EXPECT_EQ(huge.total_bytes, 1'920'000'000'000'000ULL);
}

std::vector<const catalog::AcceleratorModel*> All(const catalog::Catalog& c) {
  std::vector<const catalog::AcceleratorModel*> out;
  for (const auto& m : c.models()) out.push_back(&m);
  return out;
}

TEST(FitOnCards, WhichCardsHoldItElseHowManyCards) {
  const auto& cat = catalog::Catalog::Builtin();
  // 7B bf16 inference: 16 GiB fits a 16 GB card and everything bigger, smallest first.
  Fit f = FitOnCards({7'000'000'000ULL, Dtype::kBf16, Mode::kInference}, 1, All(cat), 64);
  EXPECT_EQ(f.mib_per_slice, 16 * 1024);
  ASSERT_FALSE(f.holding_models.empty());
  EXPECT_EQ(f.holding_models.front(), "T4");
  EXPECT_EQ(f.holding_models.size(), cat.models().size());
  EXPECT_EQ(f.slices_needed, 0);
  // 70B bf16: 157 GiB on one card is more than the largest (80 GiB): two cards of 79 GiB.
  f = FitOnCards({70'000'000'000ULL, Dtype::kBf16, Mode::kInference}, 1, All(cat), 64);
  EXPECT_TRUE(f.holding_models.empty());
  EXPECT_EQ(f.largest_mib, 80 * 1024);
  EXPECT_EQ(f.largest_model, "A100-80G");  // the first by name among the 80 GiB models
  EXPECT_EQ(f.slices_needed, 2);
  EXPECT_EQ(f.mib_per_slice_needed, 79 * 1024);
  // Only Ascend 910B4 (32 GiB) allowed: 70B bf16 needs 5 (168 GB / 5 = 33.6 GB = 31.29 GiB -> 32).
  f = FitOnCards({70'000'000'000ULL, Dtype::kBf16, Mode::kInference}, 1, {cat.Find("Ascend910B4")}, 64);
  EXPECT_EQ(f.largest_model, "Ascend910B4");
  EXPECT_EQ(f.slices_needed, 5);
  EXPECT_EQ(f.mib_per_slice_needed, 32 * 1024);
  // Asking for 2 already and still too big: the suggestion is more than 2.
  f = FitOnCards({175'000'000'000ULL, Dtype::kFp16, Mode::kInference}, 2, All(cat), 64);
  EXPECT_TRUE(f.holding_models.empty());
  EXPECT_EQ(f.slices_needed, 5);  // 420 GB / 5 = 84 GB = 78.23 GiB -> 79
  // Beyond the per-container limit: no suggestion.
  f = FitOnCards({kMaxParams, Dtype::kFp32, Mode::kTrainFull}, 1, All(cat), 64);
  EXPECT_EQ(f.slices_needed, 0);
  // No cards at all.
  f = FitOnCards({7'000'000'000ULL, Dtype::kBf16, Mode::kInference}, 1, {}, 64);
  EXPECT_TRUE(f.holding_models.empty());
  EXPECT_EQ(f.largest_mib, 0);
  EXPECT_EQ(f.slices_needed, 0);
}

TEST(MemoryQuantity, WholeGiBOrMiB) {
  EXPECT_EQ(MemoryQuantity(16384), "16Gi");
  EXPECT_EQ(MemoryQuantity(1536), "1536Mi");
  EXPECT_EQ(MemoryQuantity(1024), "1Gi");
}

}  // namespace
}  // namespace tideslice::sizing
