// Model folders in the diffusers layout (docs/architecture.md#model-folder), read and written in one place:
//   model_index.json, sprint_pipeline.json (prompt options), transformer/, controlnet/ (optional), vae/,
//   text_encoder/, tokenizer/tokenizer.model, plus any extra files (a model card).
// read_model_folder is what the pipeline (the app, sprint-generate, the evaluation's students), the training commands
// and sprint-bench load; write_model_folder is what the training commands publish and sprint-bench writes for its
// random real-shape folder. ModelFolder and ModelFolderParts hold the same components.
//
// Every file is written atomically (temporary file + fsync + rename), and a whole folder is first assembled in a
// sibling temporary folder and then renamed into place, so a crash or a full disk never leaves a half-written model
// where the app would load it.
#pragma once

#include <torch/nn/module.h>

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>

#include "sprint/controlnet.h"
#include "sprint/loader.h"
#include "sprint/safetensors.h"
#include "sprint/text_encoder.h"
#include "sprint/tokenizer.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace sprint {

// Prompt handling; defaults are the SANA-Sprint release's. A model folder may override them in an optional
// `sprint_pipeline.json` ({"complex_human_instruction": false, "max_sequence_length": 64, "lowercase": true}).
struct PromptOptions {
  bool complex_human_instruction = true;
  int max_sequence_length = 300;
  bool lowercase = true;
  // Longer side, in px, of the sketch canvas the model's ControlNet was trained with ("sketch_canvas"): the scribble
  // map is drawn at that size (its lines are ~11 px wide there) and then resized to the generation size. 0: the
  // generation size (the SANA releases: 1024 canvas for 1024 images). Our 64 px emoji model uses 256.
  int sketch_canvas = 0;
  static PromptOptions load(const std::string& model_dir);  // defaults when the file is absent
  nlohmann::json to_json() const;                           // sprint_pipeline.json
};

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

// The components of a SANA-Sprint model folder, to write. controlnet may be null.
struct ModelFolderParts {
  const SanaTransformer2DModelImpl* transformer = nullptr;
  const SanaControlNetModelImpl* controlnet = nullptr;
  nlohmann::json controlnet_config;                 // controlnet/config.json; null: controlnet->config.to_json()
  const AutoencoderDCImpl* vae = nullptr;
  const Gemma2ModelImpl* text_encoder = nullptr;
  std::string tokenizer_model;                      // a SentencePiece .model file, copied to tokenizer/
  std::optional<PromptOptions> prompt_options;      // written to sprint_pipeline.json when set
  std::map<std::string, std::string> extra_files;   // relative path -> text (README.md, ...)
};

// Writes the folder at `dir`, replacing an existing one only once the new one is complete.
void write_model_folder(const std::string& dir, const ModelFolderParts& parts);

// Which components read_model_folder reads; the others stay null (and their subfolders need not exist).
struct ModelFolderComponents {
  bool text = true;         // tokenizer/ and text_encoder/
  bool transformer = true;
  bool vae = true;
  bool controlnet = true;   // when the folder has a controlnet/ subfolder (it is optional)
};

// A model folder as read: what ModelFolderParts writes.
// scheduler/scheduler_config.json (diffusers' SCMScheduler): the sampler's settings. Absent: the defaults.
struct SchedulerSettings {
  double sigma_data = 0.5;        // the data scale of TrigFlow (SANA-Sprint: 0.5)
  int num_train_timesteps = 1000;
  // Reads the file, refusing another scheduler class, a prediction_type other than "trigflow", a sigma_data that is
  // not a positive finite number, and unknown keys; errors name the file and key.
  static SchedulerSettings load(const std::string& model_dir);
};

// model_index.json, when present, must name a SANA-Sprint pipeline ("SanaSprintPipeline", "SanaSprintImg2Img..."):
// a folder of another pipeline (Flux, SANA's 20-step flow model) would load nothing sensible. Throws naming the file.
void check_model_index(const std::string& model_dir);

struct ModelFolder {
  std::string dir;
  PromptOptions prompt_options;                // sprint_pipeline.json; the defaults when absent
  SchedulerSettings scheduler;                 // scheduler/scheduler_config.json; the defaults when absent
  Tokenizer tokenizer;
  Gemma2Model text_encoder{nullptr};
  SanaTransformer2DModel transformer{nullptr};
  SanaControlNetModel controlnet{nullptr};     // null when the folder has none
  AutoencoderDC vae{nullptr};
};

// Reads `dir` with every weight cast to options.dtype on options.device, in eval mode. A missing folder or subfolder,
// a bad config, weights that disagree with a config, and components that do not fit together (caption channels =
// the text encoder's width, latent channels, the tokenizer's vocabulary, check_controlnet_fits) throw sprint::Error
// naming the file, tensor or config keys.
ModelFolder read_model_folder(const std::string& dir, const LoadOptions& options = {},
                              const ModelFolderComponents& what = {});

}  // namespace sprint
