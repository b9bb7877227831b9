// Gemma2Model forward vs transformers 5.24 (eager attention) on a tiny seeded random-init model
// (tests/fixtures/fx_text_encoder.py): 3 layers (sliding, full, sliding), GQA, head_dim != hidden / heads,
// query_pre_attn_scalar != head_dim, soft-cap 2.0, sliding window 4, a right-padded batch with true lengths 12, 7, 3.
//
// Tolerance: NMSE <= 1e-10 in fp32 on the CPU. Both sides run the same ops in the same order in float32 (the port
// mirrors the eager path op for op), so only kernel-level summation order can differ: a few ulps per element.
// Measured NMSE (printed by each check) is exactly 0 here, fp32 and bf16, with 1 or 2 threads: the outputs are
// bit-identical. 1e-10 leaves room for other BLAS builds and still catches any real error: a missing soft-cap gives
// 1.7e-2 and an ignored window 3e-1 (both asserted below); in bf16, rounding the norm before "* (1 + w)" gives 2e-4
// and a bf16-rounded RoPE inv_freq 6e-5 (checked in Python against the fixture).
//
// Every position is compared, padded ones included: the port reproduces the eager mask exactly (causal + key padding
// + window as 0 / finfo.min), so a padded query row that sees no key in a sliding layer (rows j >= len + 3 here) gets
// the same uniform softmax as in Python.
#include <gtest/gtest.h>

#include <cstdio>

#include "sprint/error.h"
#include "sprint/safetensors.h"
#include "sprint/text_encoder.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::close_nmse;
using sprint::test::fixture_path;
using sprint::test::FixtureCases;
using sprint::test::nmse;

namespace {
constexpr double kFp32Nmse = 1e-10;

struct Cases : FixtureCases {
  Cases() : FixtureCases("text_encoder/forward_cases.safetensors") {}
};

std::string model_dir() { return fixture_path("text_encoder/tiny_gemma2/text_encoder"); }

// The fixture weights under a modified config (the reference changed config.sliding_window / soft-cap the same way).
Gemma2Model load_with(const Gemma2Config& config) {
  Gemma2Model m(config);
  load_text_encoder_weights(*m, safetensors::Archive::open(model_dir()));
  m->eval();
  return m;
}

::testing::AssertionResult matches(const torch::Tensor& out, const torch::Tensor& ref, const char* what) {
  return sprint::test::close_nmse_printed(str("text encoder: ", what), out, ref, kFp32Nmse);
}
}  // namespace

TEST(TextEncoderParity, ConfigOfTheFixture) {
  auto c = Gemma2Config::load(model_dir());
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.query_pre_attn_scalar, 12);
  EXPECT_EQ(c.rope_theta, 1000.0);  // from rope_parameters (transformers 5.x layout)
  EXPECT_EQ(c.sliding_window, 4);
  EXPECT_EQ(c.attn_logit_softcapping, 2.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.layer_types, (std::vector<std::string>{"sliding_attention", "full_attention", "sliding_attention"}));
}

TEST(TextEncoderParity, PaddedBatchWithSlidingWindowThatMasks) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load_text_encoder(model_dir());
  auto out = model->forward(c["input_ids"], c["attention_mask"]);
  EXPECT_TRUE(matches(out, c["window4"], "window 4, all positions"));
  // Per sequence, and the padded rows alone (the ones whose sliding rows see no key included).
  const int64_t lengths[] = {12, 7, 3};
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_TRUE(close_nmse(out[b].narrow(0, 0, lengths[b]), c["window4"][b].narrow(0, 0, lengths[b]), kFp32Nmse)) << b;
    if (lengths[b] < 12) {
      auto pad_out = out[b].narrow(0, lengths[b], 12 - lengths[b]);
      auto pad_ref = c["window4"][b].narrow(0, lengths[b], 12 - lengths[b]);
      EXPECT_TRUE(matches(pad_out, pad_ref, b == 1 ? "window 4, padded rows of sequence 1" : "window 4, padded rows of sequence 2"));
    }
  }
}

TEST(TextEncoderParity, SlidingWindowLongerThanSequenceChangesNothing) {
  torch::NoGradGuard ng;
  Cases c;
  auto config = Gemma2Config::load(model_dir());
  config.sliding_window = 64;  // > L = 12
  auto out = load_with(config)->forward(c["input_ids"], c["attention_mask"]);
  EXPECT_TRUE(matches(out, c["window64"], "window 64 > L"));
  // With the window irrelevant, making every layer global gives the same function.
  config.layer_types.assign(3, "full_attention");
  auto all_full = load_with(config)->forward(c["input_ids"], c["attention_mask"]);
  EXPECT_TRUE(matches(all_full, c["window64"], "all layers full attention"));
}

TEST(TextEncoderParity, SlidingWindowThatMattersChangesTheResult) {
  // The window-4 and window-64 references differ clearly, so the two tests above check different things.
  Cases c;
  EXPECT_GT(nmse(c["window4"], c["window64"]), 1e-2);
  // Sequence 2 (length 3 < window) differs only at padded rows: its real rows see all their keys either way.
  EXPECT_TRUE(close_nmse(c["window4"][2].narrow(0, 0, 3), c["window64"][2].narrow(0, 0, 3), kFp32Nmse));
}

TEST(TextEncoderParity, LogitSoftCapIsApplied) {
  torch::NoGradGuard ng;
  Cases c;
  auto config = Gemma2Config::load(model_dir());
  config.attn_logit_softcapping.reset();
  auto out = load_with(config)->forward(c["input_ids"], c["attention_mask"]);
  EXPECT_TRUE(matches(out, c["nocap"], "no soft-cap"));
  EXPECT_GT(nmse(c["nocap"], c["window4"]), 1e-3);
}

TEST(TextEncoderParity, Bf16AsThePipelinesLoadIt) {
  // The cast points (embedding scale in bf16, RMSNorm rounding once after "* (1 + w)", RoPE tables computed in fp32
  // and rounded, fp32 softmax rounded back) decide the bf16 result. Same CPU kernels on both sides, so the bound is
  // the fp32 one; a single misplaced rounding shows up as NMSE ~1e-5 (bf16 has 8 significant bits).
  torch::NoGradGuard ng;
  Cases c;
  LoadOptions options;
  options.dtype = torch::kBFloat16;
  auto model = load_text_encoder(model_dir(), options);
  auto out = model->forward(c["input_ids"], c["attention_mask"]);
  ASSERT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(matches(out, c["bf16"], "bf16, window 4, all positions"));
}

TEST(TextEncoderParity, UnpaddedSingleSequenceWithoutMask) {
  // Sequence 0 fills all 12 positions: alone and without a mask it must give the batch result.
  torch::NoGradGuard ng;
  Cases c;
  auto model = load_text_encoder(model_dir());
  auto out = model->forward(c["input_ids"].narrow(0, 0, 1));
  EXPECT_TRUE(matches(out, c["window4"].narrow(0, 0, 1), "sequence 0 alone, no mask"));
}

TEST(TextEncoderParity, SanaTokenSelectionMatchesDiffusersIndexing) {
  Cases c;
  for (int64_t max_len : {8, 13}) {  // 13 = L + 1: position 0 appears twice, as in diffusers
    auto [h, m] = select_sana_tokens(c["window4"], c["attention_mask"], max_len);
    EXPECT_TRUE(torch::equal(h, c[str("select", max_len, ".hidden")])) << max_len;
    EXPECT_TRUE(torch::equal(m, c[str("select", max_len, ".mask")])) << max_len;
  }
  EXPECT_TRUE(sprint::test::throws_with([&] { select_sana_tokens(c["window4"], c["attention_mask"], 14); },
                                        {"too few", "14"}));
}

// The prefix cache (what the pipeline keeps of SANA's instruction prefix): encoding the first P tokens once and
// continuing from their keys and values gives the states of the whole sequence, window and soft-cap included. The
// same fp32 ops on the same values, only split at P, so the fp32 bound above applies.
TEST(TextEncoderParity, PrefixCacheContinuesToTheSameStates) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load_text_encoder(model_dir());
  auto ids = c["input_ids"].to(torch::kLong);
  std::vector<int64_t> row0(ids[0].data_ptr<int64_t>(), ids[0].data_ptr<int64_t>() + 12);
  for (int64_t P : {1, 3, 5, 11}) {  // 5 > window 4: the continuation's sliding rows reach into the cache
    SCOPED_TRACE(P);
    auto cache = model->encode_prefix(std::vector<int64_t>(row0.begin(), row0.begin() + P));
    EXPECT_TRUE(close_nmse(cache.hidden, c["window4"].narrow(0, 0, 1).narrow(1, 0, P), kFp32Nmse));
    auto rest = model->forward_from(cache, P, ids.narrow(0, 0, 1).narrow(1, P, 12 - P));
    EXPECT_TRUE(matches(rest, c["window4"].narrow(0, 0, 1).narrow(1, P, 12 - P), "prefix cache, sequence 0"));
  }
  // A padded batch whose rows share 5 leading tokens, using 5 of a longer cache: same as forward() on the whole.
  auto batch = ids.narrow(0, 0, 2).clone();
  batch[1].narrow(0, 0, 5).copy_(batch[0].narrow(0, 0, 5));
  auto mask = c["attention_mask"].narrow(0, 0, 2);
  auto whole = model->forward(batch, mask);
  auto cache = model->encode_prefix(std::vector<int64_t>(row0.begin(), row0.begin() + 9));
  auto rest = model->forward_from(cache, 5, batch.narrow(1, 5, 7), mask.narrow(1, 5, 7));
  EXPECT_TRUE(matches(rest, whole.narrow(1, 5, 7), "prefix cache, padded batch"));
  // Not the cache's tokens: a clearly different result (the test above can fail).
  auto other = model->forward_from(model->encode_prefix({1, 2, 3, 4, 5}), 5, batch.narrow(1, 5, 7), mask.narrow(1, 5, 7));
  EXPECT_GT(nmse(other, whole.narrow(1, 5, 7)), 1e-3);
  EXPECT_TRUE(sprint::test::throws_with([&] { model->forward_from(cache, 10, batch.narrow(1, 5, 7)); },
                                        {"uses 10 of 9"}));
}
