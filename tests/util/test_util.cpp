#include "test_util.h"

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "sprint/atomic_file.h"
#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/scribble.h"

namespace fs = std::filesystem;

namespace sprint::test {

std::string fixture_path(const std::string& relative) { return std::string(SPRINT_FIXTURES_DIR) + "/" + relative; }

FixtureCases::FixtureCases(const std::string& relative) : archive_(safetensors::Archive::open(fixture_path(relative))) {}

std::string artifact_path(const std::string& relative) {
  fs::path p = fs::path(SPRINT_ARTIFACTS_DIR) / relative;
  fs::create_directories(p.parent_path());
  return p.string();
}

std::string temp_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  fs::path p = fs::path(SPRINT_BINARY_DIR) / "test-tmp" /
               (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  sprint::remove_tree(p.string());
  fs::create_directories(p);
  return p.string();
}

TransformerConfig tiny_sprint_config(int num_layers) {
  TransformerConfig c;
  c.in_channels = c.out_channels = 4;
  c.num_attention_heads = c.num_cross_attention_heads = 2;
  c.attention_head_dim = c.cross_attention_head_dim = 4;
  c.cross_attention_dim = 8;
  c.caption_channels = 6;
  c.num_layers = num_layers;
  c.guidance_embeds = true;
  c.qk_norm = "rms_norm_across_heads";
  return c;
}

double nmse(const torch::Tensor& actual, const torch::Tensor& reference) {
  auto a = actual.detach().to(torch::kCPU, torch::kFloat64);
  auto b = reference.detach().to(torch::kCPU, torch::kFloat64);
  double den = b.pow(2).sum().item<double>();
  double num = (a - b).pow(2).sum().item<double>();
  return den > 0 ? num / den : num;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach().to(torch::kCPU, torch::kFloat64) - b.detach().to(torch::kCPU, torch::kFloat64)).abs().max().item<double>();
}

::testing::AssertionResult close_nmse(const torch::Tensor& actual, const torch::Tensor& reference, double tol) {
  if (actual.sizes() != reference.sizes())
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " != reference " << reference.sizes();
  if (!torch::isfinite(actual.to(torch::kFloat32)).all().item<bool>())
    return ::testing::AssertionFailure() << "non-finite values in the result";
  double e = nmse(actual, reference);
  if (e <= tol) return ::testing::AssertionSuccess() << "nmse " << e;
  auto a = actual.detach().to(torch::kCPU, torch::kFloat64).flatten();
  auto b = reference.detach().to(torch::kCPU, torch::kFloat64).flatten();
  std::ostringstream os;
  os << "nmse " << e << " > " << tol << ", max abs diff " << max_abs_diff(actual, reference) << "; first values:";
  for (int64_t i = 0; i < std::min<int64_t>(6, a.numel()); ++i) os << " (" << a[i].item<double>() << " vs " << b[i].item<double>() << ")";
  return ::testing::AssertionFailure() << os.str();
}

::testing::AssertionResult close_nmse_printed(const std::string& what, const torch::Tensor& actual,
                                              const torch::Tensor& reference, double tol) {
  std::printf("[ metric   ] %-40s NMSE %.3e\n", what.c_str(), nmse(actual, reference));
  return close_nmse(actual, reference, tol);
}

std::vector<std::string> fixture_pipeline_prompts() {
  return read_json_file(fixture_path("pipeline/prompts.json")).get<std::vector<std::string>>();
}

const std::vector<std::pair<int, int>>& fixture_pipeline_cases() {
  static const std::vector<std::pair<int, int>> cases = {{0, 1}, {0, 2}, {0, 4}, {1, 2}};
  return cases;
}

FixtureCases fixture_pipeline_references() { return FixtureCases("pipeline/cases.safetensors"); }

std::string fixture_pipeline_key(bool control, int prompt, int steps) {
  return str(control ? "control" : "plain", ".p", prompt, ".s", steps);
}

GenerateRequest fixture_pipeline_request(const FixtureCases& cases, const std::string& key, const std::string& prompt,
                                         int steps) {
  GenerateRequest r;
  r.prompt = prompt;
  r.steps = steps;
  r.seed = static_cast<uint64_t>(cases[key + ".seed"].item<int64_t>());
  r.width = r.height = 64;
  r.guidance = 4.5;
  return r;
}

std::unique_ptr<Pipeline> bundled_pipeline(const PipelineOptions& options) {
  return Pipeline::load(std::string(SPRINT_SOURCE_DIR) + "/assets/models/sprint-emoji-64", options);
}

GenerateRequest bundled_apple_request(uint64_t seed) {
  GenerateRequest r;
  r.prompt = "red apple";
  r.steps = 1;
  r.seed = seed;
  r.width = r.height = 64;
  r.guidance = 4.5;
  r.condition = GenerateCondition{
      sketch_to_scribble(read_png(std::string(SPRINT_SOURCE_DIR) + "/assets/sketches/apple.png").pixels), 1.0, 1};
  return r;
}

void expect_fixture_case_close(const GenerateResult& out, const FixtureCases& cases, const std::string& key,
                               double tol) {
  EXPECT_TRUE(close_nmse(out.latent, cases[key + ".latent"], tol)) << key;
  if (cases.contains(key + ".image"))
    EXPECT_TRUE(close_nmse((out.image * 0.5 + 0.5).clamp(0, 1), cases[key + ".image"], tol)) << key;
}

std::vector<FixtureCaseError> fixture_pipeline_errors(const PipelineOptions& options) {
  const auto c = fixture_pipeline_references();
  const auto prompts = fixture_pipeline_prompts();
  auto pipe = Pipeline::load(fixture_path("pipeline/tiny_pipeline"), options);
  const GenerateCondition condition{c["condition_map"].clone(), c["control_scale"].item<double>(), 1};
  std::vector<FixtureCaseError> errors;
  for (const bool control : {false, true}) {
    for (auto [p, steps] : fixture_pipeline_cases()) {
      const std::string plain_key = fixture_pipeline_key(false, p, steps);
      const std::string key = fixture_pipeline_key(control, p, steps);
      auto r = fixture_pipeline_request(c, key, prompts.at(static_cast<size_t>(p)), steps);
      if (control) r.condition = condition;
      auto out = pipe->generate(r);
      FixtureCaseError e;
      e.key = key;
      e.latent = nmse(out.latent, c[key + ".latent"]);
      if (c.contains(key + ".image")) e.image = nmse((out.image * 0.5 + 0.5).clamp(0, 1), c[key + ".image"]);
      if (control) e.latent_vs_plain = nmse(out.latent, c[plain_key + ".latent"]);
      errors.push_back(e);
    }
  }
  return errors;
}

void expect_fixture_pipeline_close(const PipelineOptions& options, double tol) {
  for (const auto& e : fixture_pipeline_errors(options)) {
    std::cout << "  " << e.key << ": latent NMSE " << e.latent << (e.image >= 0 ? str(", image NMSE ", e.image) : "")
              << (e.latent_vs_plain >= 0 ? str(", vs the plain reference ", e.latent_vs_plain) : "") << "\n";
    EXPECT_LE(e.latent, tol) << e.key;
    if (e.image >= 0) EXPECT_LE(e.image, tol) << e.key;
    if (e.latent_vs_plain >= 0) EXPECT_GT(e.latent_vs_plain, 100 * e.latent) << e.key << ": the condition was lost";
  }
}

}  // namespace sprint::test

namespace {
// Tests run one LibTorch thread each: results do not depend on the core count, and `ctest -j` does not
// oversubscribe the machine (OpenMP spin-waiting makes oversubscribed runs orders of magnitude slower).
class SingleThreadEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { torch::set_num_threads(1); }
};
[[maybe_unused]] auto* const g_threads_env = ::testing::AddGlobalTestEnvironment(new SingleThreadEnvironment);
}  // namespace
