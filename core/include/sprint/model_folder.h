// Writing model folders in the diffusers layout the pipeline loads (and diffusers' SanaSprintPipeline reads):
//   model_index.json, sprint_pipeline.json (prompt options), transformer/, controlnet/ (optional), vae/,
//   text_encoder/, tokenizer/tokenizer.model, plus any extra files (a model card).
// Used by the training commands to publish their models and by sprint-bench for its random real-shape folder.
//
// Every file is written atomically (temporary file + fsync + rename), and a whole folder is first assembled in a
// sibling temporary folder and then renamed into place, so a crash or a full disk never leaves a half-written model
// where the app would load it.
#pragma once

#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "sprint/pipeline.h"
#include "sprint/safetensors.h"
#include "sprint/text_encoder.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace sprint {

// Every parameter and registered buffer under its module name (= its checkpoint key), detached.
safetensors::StateDict module_state_dict(const torch::nn::Module& module);

// module_state_dict written with safetensors::save (atomic).
void save_module(const torch::nn::Module& module, const std::string& file,
                 const std::map<std::string, std::string>& metadata = {});

// Pretty-printed JSON written atomically (temporary file in the same folder, fsync, rename). Creates the parent
// folder. Throws naming the file.
void write_json_file(const std::string& file, const nlohmann::json& j);

// Text written atomically, as write_json_file.
void write_text_file(const std::string& file, const std::string& text);

// The components of a SANA-Sprint model folder. controlnet may be null (core does not know the ControlNet class:
// pass the module and its ControlNetConfig::to_json()).
struct ModelFolderParts {
  const SanaTransformer2DModelImpl* transformer = nullptr;
  const torch::nn::Module* controlnet = nullptr;
  nlohmann::json controlnet_config;
  const AutoencoderDCImpl* vae = nullptr;
  const Gemma2ModelImpl* text_encoder = nullptr;
  std::string tokenizer_model;                      // a SentencePiece .model file, copied to tokenizer/
  std::optional<PromptOptions> prompt_options;      // written to sprint_pipeline.json when set
  std::map<std::string, std::string> extra_files;   // relative path -> text (README.md, ...)
};

// Writes the folder at `dir`, replacing an existing one only once the new one is complete.
void write_model_folder(const std::string& dir, const ModelFolderParts& parts);

}  // namespace sprint
