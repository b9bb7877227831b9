// Helpers shared by the test executables: fixture access and error metrics.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "sprint/config.h"
#include "sprint/pipeline.h"
#include "sprint/safetensors.h"
#include "test_paths.h"

namespace sprint::test {

std::string fixture_path(const std::string& relative);   // tests/fixtures/<relative>
std::string artifact_path(const std::string& relative);  // <build>/test-artifacts/<relative>, folders created
std::string temp_dir(const std::string& tag);            // fresh empty folder under the build tree

// The reference tensors of a fixture archive: tests/fixtures/<relative>, a .safetensors file written by a
// tests/fixtures/fx_*.py generator. cases["key"] is one tensor.
class FixtureCases {
 public:
  explicit FixtureCases(const std::string& relative);
  torch::Tensor operator[](const std::string& key) const { return archive_.tensor(key); }
  bool contains(const std::string& key) const { return archive_.contains(key); }

 private:
  safetensors::Archive archive_;
};

// A tiny Sprint transformer config (D = 8, guidance embeds, QK norm, 4 latent and 6 caption channels) for tests
// that need a real network but no reference values.
TransformerConfig tiny_sprint_config(int num_layers = 2);

// Normalised mean squared error: sum((a-b)^2) / sum(b^2), computed in float64. b is the reference.
double nmse(const torch::Tensor& actual, const torch::Tensor& reference);
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

// gtest assertion: same shape, all finite, NMSE <= tol. On failure prints shape, NMSE, max abs diff and the
// first differing values.
::testing::AssertionResult close_nmse(const torch::Tensor& actual, const torch::Tensor& reference, double tol);
// close_nmse, after printing the NMSE as "[ metric   ] <what> NMSE <value>" (the parity suites' figures).
::testing::AssertionResult close_nmse_printed(const std::string& what, const torch::Tensor& actual,
                                              const torch::Tensor& reference, double tol);

// The tiny fixture pipeline's reference cases (tests/fixtures/pipeline, made by fx_pipeline.py): the prompts, the
// (prompt index, steps) pairs, the reference tensors, the key of a case ("plain.p0.s1", "control.p1.s2", ...) and
// its request (its seed, 64 x 64, guidance 4.5).
std::vector<std::string> fixture_pipeline_prompts();
const std::vector<std::pair<int, int>>& fixture_pipeline_cases();
FixtureCases fixture_pipeline_references();
std::string fixture_pipeline_key(bool control, int prompt, int steps);
GenerateRequest fixture_pipeline_request(const FixtureCases& cases, const std::string& key, const std::string& prompt,
                                         int steps);
// gtest expectations on one generated case against its reference: the latent and, where the fixture holds one, the
// image in [0, 1], each NMSE <= tol.
void expect_fixture_case_close(const GenerateResult& out, const FixtureCases& cases, const std::string& key,
                               double tol);

// The tiny fixture pipeline (tests/fixtures/pipeline, made by diffusers' SanaSprintPipeline) run with `options`
// (device, dtype) over its reference cases, plain and with the ControlNet. Per case key ("plain.p0.s1",
// "control.p1.s2", ...): NMSE of the final latent and of the [0, 1] image against the fp32 reference, and, for the
// ControlNet cases, NMSE of the latent against the plain reference of the same prompt/steps/seed (how far the
// ControlNet moves it: a result nearer the plain reference means the condition was lost).
struct FixtureCaseError {
  std::string key;
  double latent = 0, image = -1;     // image -1: the case has no reference image
  double latent_vs_plain = -1;       // ControlNet cases only
};
std::vector<FixtureCaseError> fixture_pipeline_errors(const PipelineOptions& options);
// gtest expectations on the above: every NMSE <= tol, and each ControlNet case 100x nearer its own reference than
// the plain one. Prints the errors (the figures go in notes).
void expect_fixture_pipeline_close(const PipelineOptions& options, double tol);

// The bundled model (assets/models/sprint-emoji-64) loaded with `options`, and the request the GPU tests make of it:
// "red apple", 1 step, 64 x 64, guidance 4.5, `seed`, the apple sketch as its condition (scale 1, version 1).
std::unique_ptr<Pipeline> bundled_pipeline(const PipelineOptions& options);
GenerateRequest bundled_apple_request(uint64_t seed);

// Expects `f` to throw sprint::Error whose message contains every one of `needles`.
template <typename F>
::testing::AssertionResult throws_with(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (const auto& n : needles)
      if (msg.find(n) == std::string::npos)
        return ::testing::AssertionFailure() << "message lacks '" << n << "': " << msg;
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no exception thrown";
}

}  // namespace sprint::test
