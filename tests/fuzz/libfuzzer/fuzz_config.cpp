// fuzz_config: the input bytes as a model folder's JSON configs. Read as a config.json file with read_json_file
// (as every config reaches the product: TransformerConfig::load & co.), the value goes to TransformerConfig,
// VaeConfig, Gemma2Config and ControlNetConfig ::from_json; an accepted config then goes through what the loaders and
// the folder writer do with it next (derived sizes, parameter_estimate, to_json) and must read back from its own
// to_json. The same bytes, as the other files of a scratch model folder, go to PromptOptions::load
// (sprint_pipeline.json), SchedulerSettings::load (scheduler/scheduler_config.json) and check_model_index
// (model_index.json).
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

#include "fuzz_common.h"
#include "sprint/config.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/log.h"
#include "sprint/model_folder.h"
#include "sprint/text_encoder.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace fs = std::filesystem;
using nlohmann::json;
using sprint_fuzz::invariant_broken;

namespace {

// Runs one reader; an exception is its correct way to refuse the input.
template <typename F>
void refuse_ok(F&& f) {
  try {
    f();
  } catch (const std::exception&) {
  }
}

// An accepted config must be accepted again from its own to_json() (what write_model_folder writes) and describe
// the same model.
template <typename Config>
void check_round_trip(const Config& c, const char* name) {
  const json written = c.to_json();
  Config again;
  try {
    again = Config::from_json(written, "round trip");
  } catch (const std::exception& e) {
    invariant_broken(sprint::str(name, "::from_json refuses its own to_json() ", written.dump(), ": ",
                                 sprint::message_of(e)));
  }
  if (again.to_json() != written)
    invariant_broken(sprint::str(name, " changes when read back from its to_json(): ", written.dump(), " -> ",
                                 again.to_json().dump()));
}

void feed_json(const json& j) {
  refuse_ok([&] {
    const auto c = sprint::TransformerConfig::from_json(j, "fuzz");
    volatile double sink = c.inner_dim() + c.cross_inner_dim() + c.ff_hidden() + c.parameter_estimate();
    (void)sink;
    check_round_trip(c, "TransformerConfig");
  });
  refuse_ok([&] {
    const auto c = sprint::ControlNetConfig::from_json(j, "fuzz");
    volatile double sink = c.base.inner_dim() + c.base.ff_hidden() + c.parameter_estimate();
    (void)sink;
    check_round_trip(c, "ControlNetConfig");
  });
  refuse_ok([&] {
    const auto c = sprint::VaeConfig::from_json(j, "fuzz");
    volatile double sink = c.spatial_compression() + c.parameter_estimate();
    (void)sink;
    check_round_trip(c, "VaeConfig");
  });
  refuse_ok([&] {
    const auto c = sprint::Gemma2Config::from_json(j, "fuzz");
    volatile double sink = c.parameter_estimate();
    for (int layer = 0; layer < c.num_hidden_layers; ++layer) sink = sink + c.is_sliding(layer);
    (void)sink;
    check_round_trip(c, "Gemma2Config");
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  sprint::set_log_level(sprint::LogLevel::Error);  // the readers' warnings about unknown keys are noise here
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The bytes as every JSON file a model folder may hold.
  static const fs::path dir = [] {
    const fs::path d = sprint_fuzz::scratch_dir() / "model";
    std::error_code ec;
    fs::create_directories(d / "scheduler", ec);
    return d;
  }();
  sprint_fuzz::write_file(dir / "config.json", data, size);
  sprint_fuzz::write_file(dir / "sprint_pipeline.json", data, size);
  sprint_fuzz::write_file(dir / "scheduler" / "scheduler_config.json", data, size);
  sprint_fuzz::write_file(dir / "model_index.json", data, size);

  json j;
  bool parsed = false;
  refuse_ok([&] {
    j = sprint::read_json_file((dir / "config.json").string());
    parsed = true;
  });
  if (parsed) feed_json(j);
  refuse_ok([&] { sprint::PromptOptions::load(dir.string()); });
  refuse_ok([&] { sprint::SchedulerSettings::load(dir.string()); });
  refuse_ok([&] { sprint::check_model_index(dir.string()); });
  return 0;
}
