// Loading and building the models the training commands share (internal to sprint-train).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "sprint/controlnet.h"
#include "sprint/pipeline.h"
#include "sprint/text_encoder.h"
#include "sprint/tokenizer.h"
#include "sprint/training/config_file.h"
#include "sprint/training/trigflow.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace sprint::training::cli {

// Tokenizer + Gemma-2 text encoder + the prompt options the published pipeline will use.
struct TextStack {
  Tokenizer tokenizer;
  Gemma2Model encoder{nullptr};
  PromptOptions prompt;
  // Embeddings exactly as the pipeline computes them (tokenize_prompts + embed_prompts). With grad when the encoder
  // requires grad and grad mode is on.
  TextCondition embed(const std::vector<std::string>& captions) const;
};

// A frozen flow teacher folder (from pretrain or controlnet): transformer, autoencoder, text stack and, when the
// folder has one, its ControlNet. Throws when the transformer is a distilled (guidance-embedding) one.
struct TeacherBundle {
  SanaTransformer2DModel transformer{nullptr};
  AutoencoderDC vae{nullptr};
  TextStack text;
  SanaControlNetModel controlnet{nullptr};
};
TeacherBundle load_teacher(const std::string& dir);

// A frozen module: eval mode, requires_grad off.
void freeze(torch::nn::Module& m);

// Reads a model folder's components for the later stages (teacher folder from pretrain, ControlNet teacher, ...).
AutoencoderDC load_frozen_vae(const std::string& dir);
TextStack load_text_stack(const std::string& model_dir, bool frozen);

// Latent of a [-1, 1] image batch in the transformer's units (vae latent x scaling_factor), no grad.
torch::Tensor encode_latents(AutoencoderDCImpl& vae, const torch::Tensor& images);
// Image from such a latent, no grad.
torch::Tensor decode_latents(AutoencoderDCImpl& vae, const torch::Tensor& latents);

// Fixed noise for sample grids: seeded, (n, C, h, w).
torch::Tensor grid_noise(int64_t n, int64_t channels, int64_t side, uint64_t seed);

}  // namespace sprint::training::cli
