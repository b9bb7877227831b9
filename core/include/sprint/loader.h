// Binds a state dict to a torch::nn::Module by exact diffusers key.
//
// Every parameter and buffer of the module is looked up under its own name (module names equal checkpoint keys).
// All problems are collected and reported together:
//   missing:    tensor 'transformer_blocks.3.attn1.to_q.weight' is missing from <archive>
//   shape:      tensor 'transformer_blocks.3.attn1.to_q.weight': expected [2240, 2240], got [1152, 1152]
//   dtype:      tensor 'x': expected a floating-point dtype, got I64
//   unexpected: tensor 'foo' in <archive> is not used by the model (an error in strict mode, else a warning)
// Floating-point tensors are cast to the run dtype (fp32 on CPU, bf16 on CUDA by default).
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "sprint/safetensors.h"

namespace sprint {

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  bool strict = true;                       // unexpected keys are errors
  std::string prefix;                       // prepended to module names when looking up ("" or e.g. "model.")
  std::set<std::string> optional;           // module names that may be absent (they keep their init values)
  std::function<bool(const std::string&)> ignore_unexpected;  // unexpected keys for which this returns true are fine
};

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing_optional;  // absent but allowed
  std::vector<std::string> unexpected;        // tolerated (non-strict or ignored)
};

// Throws sprint::Error listing every problem (missing, shape, dtype, unexpected in strict mode).
LoadReport load_state_dict(torch::nn::Module& module, const safetensors::Archive& archive, const LoadOptions& options);

// Number of numbered children under `prefix` in a checkpoint: keys "transformer_blocks.0.x" ... "transformer_blocks.6.y"
// give 7 for prefix "transformer_blocks.". Lets loaders say "config says 4 blocks, weights hold 3" in one line.
int count_numbered_children(const safetensors::Archive& archive, const std::string& prefix);

// Throws "<file>: '<key>' = <configured> but the weights hold <found> ..." when the two disagree.
void check_block_count(const safetensors::Archive& archive, const std::string& prefix, int configured,
                       const std::string& config_file, const std::string& key);

// Refuses a model before any of it is allocated when its config describes far more than can be: `params`
// (the config's parameter_estimate(), an estimate within a small factor) past what this machine's memory holds in
// float32, or, when `archive` is given, more than twice the elements its weights hold (a config.json whose num_layers
// or widths were mistyped or tampered with). Throws sprint::Error naming `what` and `source` (its config file).
void check_model_size(const std::string& what, double params, const std::string& source,
                      const safetensors::Archive* archive = nullptr);

// Run dtype for a device: fp32 on CPU, bf16 on CUDA.
torch::Dtype default_dtype_for(const torch::Device& device);

}  // namespace sprint
