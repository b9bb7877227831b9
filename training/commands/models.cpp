#include "models.h"

#include <filesystem>

#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/sampling.h"

namespace fs = std::filesystem;

namespace sprint::training::cli {

TextCondition TextStack::embed(const std::vector<std::string>& captions) const {
  auto tokens = tokenize_prompts(tokenizer, captions, prompt);
  auto [enc, mask] = embed_prompts(*encoder.ptr(), tokens, prompt, torch::kCPU);
  TextCondition c;
  c.enc = enc;
  c.mask = mask;
  return c;
}

void freeze(torch::nn::Module& m) {
  m.eval();
  for (auto& p : m.parameters(true)) p.set_requires_grad(false);
}

AutoencoderDC load_frozen_vae(const std::string& dir) {
  auto vae = load_vae(dir);
  freeze(*vae);
  vae->prepare_for_inference(torch::kCPU, torch::kFloat32);  // encode_latents / decode_latents: the CPU engine
  return vae;
}

namespace {
TextStack text_stack_of(ModelFolder& m, bool frozen) {
  TextStack t;
  t.tokenizer = std::move(m.tokenizer);
  t.encoder = m.text_encoder;
  t.prompt = m.prompt_options;
  if (frozen) {
    freeze(*t.encoder);
  } else {
    for (auto& p : t.encoder->parameters(true)) p.set_requires_grad(true);
  }
  return t;
}
}  // namespace

TextStack load_text_stack(const std::string& model_dir, bool frozen) {
  ModelFolderComponents text_only;
  text_only.transformer = text_only.vae = text_only.controlnet = false;
  auto m = read_model_folder(model_dir, {}, text_only);
  return text_stack_of(m, frozen);
}

TeacherBundle load_teacher(const std::string& dir) {
  auto m = read_model_folder(dir);
  TeacherBundle t;
  t.transformer = m.transformer;
  freeze(*t.transformer);
  SPRINT_CHECK(!t.transformer->config.guidance_embeds, "'", dir, "' holds a distilled (guidance-embedding) transformer; "
               "this command needs the flow teacher that `sprint-train pretrain` / `controlnet` write");
  t.vae = m.vae;
  freeze(*t.vae);
  t.text = text_stack_of(m, /*frozen=*/true);
  t.controlnet = m.controlnet;
  if (t.controlnet) freeze(*t.controlnet);
  return t;
}

torch::Tensor encode_latents(AutoencoderDCImpl& vae, const torch::Tensor& images) {
  torch::NoGradGuard ng;
  return vae.encode(images) * vae.config.scaling_factor;
}

torch::Tensor decode_latents(AutoencoderDCImpl& vae, const torch::Tensor& latents) {
  torch::NoGradGuard ng;
  return vae.decode(latents / vae.config.scaling_factor).clamp(-1, 1);
}

torch::Tensor grid_noise(int64_t n, int64_t channels, int64_t side, uint64_t seed) {
  auto gen = make_generator(seed);
  return randn(gen, {n, channels, side, side});
}

}  // namespace sprint::training::cli
