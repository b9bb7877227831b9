#include "sprint/model_folder.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint {

json VaeConfig::to_json() const {
  const auto& c = *this;
  return {{"_class_name", "AutoencoderDC"},
          {"in_channels", c.in_channels},
          {"latent_channels", c.latent_channels},
          {"attention_head_dim", c.attention_head_dim},
          {"encoder_block_types", c.encoder_block_types},
          {"decoder_block_types", c.decoder_block_types},
          {"encoder_block_out_channels", c.encoder_block_out_channels},
          {"decoder_block_out_channels", c.decoder_block_out_channels},
          {"encoder_layers_per_block", c.encoder_layers_per_block},
          {"decoder_layers_per_block", c.decoder_layers_per_block},
          {"encoder_qkv_multiscales", c.encoder_qkv_multiscales},
          {"decoder_qkv_multiscales", c.decoder_qkv_multiscales},
          {"upsample_block_type", c.upsample_block_type},
          {"downsample_block_type", c.downsample_block_type},
          {"decoder_norm_types", c.decoder_norm_types},
          {"decoder_act_fns", c.decoder_act_fns},
          {"encoder_out_shortcut", c.encoder_out_shortcut},
          {"decoder_in_shortcut", c.decoder_in_shortcut},
          {"decoder_conv_act_fn", c.decoder_conv_act_fn},
          {"scaling_factor", c.scaling_factor}};
}

json Gemma2Config::to_json() const {
  const auto& c = *this;
  json j = {{"architectures", {"Gemma2Model"}},
            {"model_type", "gemma2"},
            {"dtype", "float32"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"head_dim", c.head_dim},
            // transformers 5.x validates the type: an int (256), not 256.0.
            {"query_pre_attn_scalar", c.query_pre_attn_scalar == std::floor(c.query_pre_attn_scalar)
                                          ? json(static_cast<int64_t>(c.query_pre_attn_scalar))
                                          : json(c.query_pre_attn_scalar)},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_parameters", {{"rope_theta", c.rope_theta}, {"rope_type", "default"}}},
            {"sliding_window", c.sliding_window ? json(*c.sliding_window) : json(nullptr)},
            {"attn_logit_softcapping", c.attn_logit_softcapping ? json(*c.attn_logit_softcapping) : json(nullptr)},
            {"final_logit_softcapping", 30.0},
            {"hidden_activation", c.hidden_activation},
            {"attention_bias", c.attention_bias},
            {"attention_dropout", 0.0},
            {"layer_types", c.layer_types},
            {"pad_token_id", c.pad_token_id ? json(*c.pad_token_id) : json(nullptr)},
            {"bos_token_id", c.bos_token_id ? json(*c.bos_token_id) : json(nullptr)},
            {"eos_token_id", c.eos_token_ids.size() == 1 ? json(c.eos_token_ids[0]) : json(c.eos_token_ids)},
            {"max_position_embeddings", 8192},
            {"initializer_range", 0.02},
            {"tie_word_embeddings", true},
            {"use_cache", false}};
  return j;
}

json PromptOptions::to_json() const {
  return {{"complex_human_instruction", complex_human_instruction},
          {"max_sequence_length", max_sequence_length},
          {"lowercase", lowercase},
          {"sketch_canvas", sketch_canvas}};
}

PromptOptions PromptOptions::load(const std::string& model_dir) {
  PromptOptions o;
  auto path = fs::path(model_dir) / "sprint_pipeline.json";
  if (!fs::exists(path)) return o;
  auto j = read_json_file(path.string());
  ConfigReader r(j, path.string());
  o.complex_human_instruction = r.optional<bool>("complex_human_instruction", o.complex_human_instruction);
  o.max_sequence_length = r.optional<int>("max_sequence_length", o.max_sequence_length);
  o.lowercase = r.optional<bool>("lowercase", o.lowercase);
  o.sketch_canvas = r.optional<int>("sketch_canvas", o.sketch_canvas);
  if (o.max_sequence_length < 2 || o.max_sequence_length > 8192)
    r.reject("max_sequence_length", "must be from 2 to 8192 (Gemma-2's context)");
  if (o.sketch_canvas < 0 || o.sketch_canvas > 16384) r.reject("sketch_canvas", "must be 0 (generation size) or 1..16384 px");
  r.refuse_unknown();
  return o;
}

safetensors::StateDict module_state_dict(const torch::nn::Module& module) {
  safetensors::StateDict sd;
  for (const auto& p : module.named_parameters(true)) sd[p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers(true)) sd[b.key()] = b.value().detach();
  return sd;
}

void save_module(const torch::nn::Module& module, const std::string& file,
                 const std::map<std::string, std::string>& metadata) {
  fs::create_directories(fs::path(file).parent_path());
  safetensors::save(file, module_state_dict(module), metadata);
}

void write_text_file(const std::string& file, const std::string& text) {
  const auto parent = fs::path(file).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    SPRINT_CHECK(!ec, "cannot write '", file, "': cannot create folder '", parent.string(), "': ", ec.message());
  }
  write_file_atomically(file, text);
}

void write_json_file(const std::string& file, const json& j) { write_text_file(file, j.dump(2) + "\n"); }

void write_model_folder(const std::string& dir, const ModelFolderParts& parts) {
  SPRINT_CHECK(parts.transformer && parts.vae && parts.text_encoder, "write_model_folder('", dir,
               "'): transformer, vae and text_encoder are required");
  SPRINT_CHECK(!parts.tokenizer_model.empty() && fs::is_regular_file(parts.tokenizer_model), "write_model_folder('",
               dir, "'): tokenizer model '", parts.tokenizer_model, "' is not a file");
  const fs::path target = fs::path(dir).lexically_normal();
  const fs::path tmp = target.string() + str(".tmp-", ::getpid());
  const fs::path old = target.string() + str(".old-", ::getpid());
  remove_tree(tmp.string());
  try {
    fs::create_directories(tmp);
    write_json_file((tmp / "transformer" / "config.json").string(), parts.transformer->config.to_json());
    save_module(*parts.transformer, (tmp / "transformer" / "diffusion_pytorch_model.safetensors").string());
    json index = {{"_class_name", "SanaSprintPipeline"},
                  {"scheduler", {"diffusers", "SCMScheduler"}},
                  {"text_encoder", {"transformers", "Gemma2Model"}},
                  {"tokenizer", {"transformers", "GemmaTokenizer"}},
                  {"transformer", {"diffusers", "SanaTransformer2DModel"}},
                  {"vae", {"diffusers", "AutoencoderDC"}}};
    if (parts.controlnet) {
      write_json_file((tmp / "controlnet" / "config.json").string(),
                      parts.controlnet_config.is_null() ? parts.controlnet->config.to_json() : parts.controlnet_config);
      save_module(*parts.controlnet, (tmp / "controlnet" / "diffusion_pytorch_model.safetensors").string());
    }
    write_json_file((tmp / "vae" / "config.json").string(), parts.vae->config.to_json());
    save_module(*parts.vae, (tmp / "vae" / "diffusion_pytorch_model.safetensors").string());
    write_json_file((tmp / "text_encoder" / "config.json").string(), parts.text_encoder->config.to_json());
    save_module(*parts.text_encoder, (tmp / "text_encoder" / "model.safetensors").string());
    {
      std::ifstream in(parts.tokenizer_model, std::ios::binary);
      std::ostringstream bytes;
      bytes << in.rdbuf();
      SPRINT_CHECK(in.good() || in.eof(), "cannot read tokenizer model '", parts.tokenizer_model, "'");
      write_text_file((tmp / "tokenizer" / "tokenizer.model").string(), bytes.str());
    }
    write_json_file((tmp / "scheduler" / "scheduler_config.json").string(),
                    {{"_class_name", "SCMScheduler"}, {"num_train_timesteps", 1000}, {"prediction_type", "trigflow"},
                     {"sigma_data", 0.5}});
    if (parts.prompt_options) write_json_file((tmp / "sprint_pipeline.json").string(), parts.prompt_options->to_json());
    for (const auto& [rel, text] : parts.extra_files) write_text_file((tmp / rel).string(), text);
    write_json_file((tmp / "model_index.json").string(), index);
  } catch (...) {
    remove_tree(tmp.string());
    throw;
  }
  // Swap in: the old folder (if any) moves aside first, so `dir` is either the old or the new model at every
  // moment except between the two renames.
  const bool had_old = fs::exists(target);
  std::error_code ec;
  if (had_old) {
    fs::rename(target, old, ec);
    SPRINT_CHECK(!ec, "cannot replace '", target.string(), "': ", ec.message());
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    if (had_old) fs::rename(old, target);
    throw Error(str("cannot move the new model into '", target.string(), "': ", ec.message()));
  }
  if (had_old) remove_tree(old.string());
}

namespace {
void require_dir(const fs::path& p, const std::string& what) {
  SPRINT_CHECK(fs::is_directory(p), "model folder '", p.parent_path().string(), "' has no ", p.filename().string(),
               "/ subfolder (", what, ")");
}
}  // namespace

namespace {
std::string str_join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}
}  // namespace

SchedulerSettings SchedulerSettings::load(const std::string& model_dir) {
  SchedulerSettings s;
  const auto path = fs::path(model_dir) / "scheduler" / "scheduler_config.json";
  if (!fs::exists(fs::symlink_status(path))) return s;
  const auto j = read_json_file(path.string());
  ConfigReader r(j, path.string());
  const auto cls = r.optional<std::string>("_class_name", "SCMScheduler");
  if (cls != "SCMScheduler")
    r.reject("_class_name", "SANA-Sprint samples with SCMScheduler (TrigFlow consistency steps); this folder's "
                            "scheduler is another kind");
  const auto prediction = r.optional<std::string>("prediction_type", "trigflow");
  if (prediction != "trigflow") r.reject("prediction_type", "only \"trigflow\" is supported (SCMScheduler)");
  s.sigma_data = r.optional<double>("sigma_data", s.sigma_data);
  if (!(s.sigma_data > 0) || s.sigma_data > 100) r.reject("sigma_data", "must be a positive number up to 100 (SANA-Sprint: 0.5)");
  s.num_train_timesteps = r.optional<int>("num_train_timesteps", s.num_train_timesteps);
  if (s.num_train_timesteps < 1 || s.num_train_timesteps > 1000000)
    r.reject("num_train_timesteps", "must be from 1 to 1000000");
  r.refuse_unknown();
  return s;
}

void check_model_index(const std::string& model_dir) {
  const auto path = fs::path(model_dir) / "model_index.json";
  if (!fs::exists(fs::symlink_status(path))) return;
  const auto j = read_json_file(path.string());
  SPRINT_CHECK(j.is_object(), path.string(), ": expected a JSON object");
  const std::string cls = j.contains("_class_name") && j["_class_name"].is_string() ? j["_class_name"].get<std::string>() : "";
  SPRINT_CHECK(cls.rfind("SanaSprint", 0) == 0, path.string(), ": '_class_name' = \"", cls,
               "\": Sprint Studio runs SANA-Sprint pipelines (SanaSprintPipeline); this folder holds another kind of model");
  // The components it names, where it names them (["diffusers", "SanaTransformer2DModel"]), must be the ones this
  // program builds: another transformer class in transformer/ would be read as a SANA one.
  const std::map<std::string, std::set<std::string>> expected = {
      {"transformer", {"SanaTransformer2DModel"}},
      {"controlnet", {"SanaControlNetModel"}},
      {"vae", {"AutoencoderDC"}},
      {"scheduler", {"SCMScheduler"}},
      {"text_encoder", {"Gemma2Model", "Gemma2ForCausalLM"}},
      {"tokenizer", {"GemmaTokenizer", "GemmaTokenizerFast"}}};
  for (const auto& [component, classes] : expected) {
    if (!j.contains(component) || j[component].is_null()) continue;
    const auto& entry = j[component];
    const bool named = entry.is_array() && entry.size() == 2 && entry[1].is_string();
    SPRINT_CHECK(named && classes.count(entry[1].get<std::string>()), path.string(), ": '", component, "' = ",
                 entry.dump().substr(0, 120), ": expected one of ", str_join(classes));
  }
}

ModelFolder read_model_folder(const std::string& dir, const LoadOptions& options, const ModelFolderComponents& what) {
  SPRINT_CHECK(fs::is_directory(dir), "model folder '", dir, "' does not exist");
  const fs::path root(dir);
  check_model_index(dir);
  if (what.transformer) require_dir(root / "transformer", "the diffusion transformer");
  if (what.vae) require_dir(root / "vae", "the DC-AE autoencoder");
  if (what.text) {
    require_dir(root / "text_encoder", "the Gemma-2 text encoder");
    require_dir(root / "tokenizer", "the SentencePiece tokenizer");
  }
  ModelFolder m;
  m.dir = dir;
  m.prompt_options = PromptOptions::load(dir);
  m.scheduler = SchedulerSettings::load(dir);
  if (what.text) {
    m.tokenizer = with_context("loading tokenizer", [&] { return Tokenizer::load((root / "tokenizer").string()); });
    m.text_encoder = load_text_encoder((root / "text_encoder").string(), options);
  }
  if (what.transformer) m.transformer = load_transformer((root / "transformer").string(), options);
  if (what.vae) m.vae = load_vae((root / "vae").string(), options);
  if (what.controlnet && fs::is_directory(root / "controlnet"))
    m.controlnet = load_controlnet((root / "controlnet").string(), options);
  // Components must fit together; say which config keys disagree rather than failing inside a matmul.
  if (m.transformer && m.text_encoder) {
    const auto& tc = m.transformer->config;
    SPRINT_CHECK(tc.caption_channels == m.text_encoder->config.hidden_size, dir,
                 ": transformer/config.json caption_channels = ", tc.caption_channels,
                 " but text_encoder/config.json hidden_size = ", m.text_encoder->config.hidden_size);
  }
  if (m.transformer && m.vae) {
    SPRINT_CHECK(m.transformer->config.in_channels == m.vae->config.latent_channels, dir,
                 ": transformer/config.json in_channels = ", m.transformer->config.in_channels,
                 " but vae/config.json latent_channels = ", m.vae->config.latent_channels);
  }
  if (m.text_encoder) {
    SPRINT_CHECK(m.tokenizer.vocab_size() <= m.text_encoder->config.vocab_size, dir, ": the tokenizer has ",
                 m.tokenizer.vocab_size(), " tokens but text_encoder/config.json vocab_size = ",
                 m.text_encoder->config.vocab_size);
  }
  if (m.transformer && m.controlnet)
    with_context(str(dir, ": controlnet/config.json against transformer/config.json"),
                 [&] { check_controlnet_fits(m.controlnet->config.base, m.transformer->config); });
  return m;
}

}  // namespace sprint
