// SANA ControlNet. See include/sprint/controlnet.h and docs/maths.md#controlnet.
#include "sprint/controlnet.h"

#include <filesystem>

#include "sprint/error.h"

namespace fs = std::filesystem;
namespace nn = torch::nn;

namespace sprint {

namespace {
const char* injection_name(ControlInjection i) { return i == ControlInjection::AfterBlock ? "after_block" : "before_block"; }

// A Sana 1.0 ControlNet's AdaLayerNormSingle was trained on flow timesteps x 1000 (docs/maths.md#controlnet-time).
constexpr double kSana1TimestepScale = 1000.0;
}  // namespace

ControlNetConfig ControlNetConfig::from_json(const nlohmann::json& j_in, const std::string& source) {
  SPRINT_CHECK(j_in.is_object(), source, ": expected a JSON object");
  nlohmann::json j = j_in;
  ControlNetConfig c;
  if (j.contains("control_injection")) {
    const auto& v = j["control_injection"];
    if (v == "after_block") {
      c.injection = ControlInjection::AfterBlock;
    } else if (v == "before_block") {
      c.injection = ControlInjection::BeforeBlock;
    } else {
      throw Error(str(source, ": 'control_injection' = ", v.dump(), ": expected \"after_block\" or \"before_block\""));
    }
    j.erase("control_injection");
  }
  if (!j.contains("num_layers")) j["num_layers"] = 7;  // diffusers SanaControlNetModel default
  c.base = TransformerConfig::from_json(j, source);
  return c;
}

ControlNetConfig ControlNetConfig::load(const std::string& path) {
  std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  return from_json(read_json_file(file), file);
}

nlohmann::json ControlNetConfig::to_json() const {
  auto j = base.to_json();
  j["_class_name"] = "SanaControlNetModel";
  j["control_injection"] = injection_name(injection);
  return j;
}

ControlNetConfig ControlNetConfig::for_transformer(const TransformerConfig& t, int num_layers, ControlInjection inj) {
  SPRINT_CHECK(num_layers >= 1 && num_layers < t.num_layers, "a ControlNet copies 1 to ", t.num_layers - 1,
               " blocks of this transformer, not ", num_layers);
  ControlNetConfig c;
  c.base = t;
  c.base.num_layers = num_layers;
  c.injection = inj;
  return c;
}

double ControlNetConfig::parameter_estimate() const {
  const double D = base.inner_dim();
  return base.parameter_estimate() + (base.num_layers + 1) * D * D;  // + input_block and one projection per block
}

SanaControlNetModelImpl::SanaControlNetModelImpl(const ControlNetConfig& c) : config(c) {
  check_model_size("controlnet", c.parameter_estimate(), "ControlNet config");
  front.build(*this, c.base);
  const int64_t D = c.base.inner_dim();
  input_block = register_module("input_block", nn::Linear(D, D));
  controlnet_blocks = register_module("controlnet_blocks", nn::ModuleList());
  for (int j = 0; j < c.base.num_layers; ++j) controlnet_blocks->push_back(nn::Linear(D, D));
  // Zero-initialised projections (ControlNet convention): a fresh ControlNet changes nothing.
  torch::NoGradGuard ng;
  for (auto& p : input_block->parameters()) p.zero_();
  for (auto& p : controlnet_blocks->parameters()) p.zero_();
}

std::vector<torch::Tensor> SanaControlNetModelImpl::control_stream(const torch::Tensor& start,
                                                                   const torch::Tensor& cond_latent,
                                                                   const SanaConditioning& cond, double scale) {
  SPRINT_CHECK(cond_latent.dim() == 4 && cond_latent.size(1) == config.base.in_channels,
               "ControlNet condition latent must be (B, ", config.base.in_channels, ", h, w), got ", cond_latent.sizes());
  auto c = start + input_block(front.embed(cond_latent.to(start.scalar_type())));
  std::vector<torch::Tensor> out;
  out.reserve(front.blocks.size());
  for (size_t j = 0; j < front.blocks.size(); ++j) {
    c = front.blocks[j]->forward(c, cond);
    out.push_back(controlnet_blocks[j]->as<nn::Linear>()->forward(c) * scale);
  }
  return out;
}

std::vector<torch::Tensor> SanaControlNetModelImpl::forward(const torch::Tensor& x, const torch::Tensor& enc,
                                                            const torch::Tensor& timestep, const torch::Tensor& guidance,
                                                            const torch::Tensor& cond_latent, double scale,
                                                            const torch::Tensor& enc_mask) {
  auto tokens = front.embed(x);
  const int64_t p = config.base.patch_size;
  auto cond = front.condition(enc, timestep, guidance, enc_mask, x.size(2) / p, x.size(3) / p, tokens.scalar_type());
  return control_stream(tokens, cond_latent, cond, scale);
}

void SanaControlNetModelImpl::init_from_transformer(const SanaTransformer2DModelImpl& t) {
  const auto& tc = t.config;
  const auto& cc = config.base;
  SPRINT_CHECK(tc.inner_dim() == cc.inner_dim() && tc.caption_channels == cc.caption_channels &&
                   tc.in_channels == cc.in_channels && tc.guidance_embeds == cc.guidance_embeds &&
                   tc.qk_norm == cc.qk_norm && cc.num_layers <= tc.num_layers,
               "the ControlNet's config does not match the transformer it is initialised from");
  torch::NoGradGuard ng;
  auto src = t.named_parameters();
  for (auto& p : named_parameters()) {
    if (auto* s = src.find(p.key())) p.value().copy_(*s);  // shared names: front end and transformer_blocks.{j}
  }
  for (auto& p : input_block->parameters()) p.zero_();
  for (auto& p : controlnet_blocks->parameters()) p.zero_();
}

SanaControlNetModel load_controlnet(const std::string& dir, const LoadOptions& options) {
  return with_context("loading ControlNet from '" + dir + "'", [&] {
    auto config = ControlNetConfig::load(dir);
    auto archive = safetensors::Archive::open(dir);
    check_model_size("controlnet", config.parameter_estimate(), dir + "/config.json", &archive);
    check_block_count(archive, "transformer_blocks.", config.base.num_layers, dir + "/config.json", "num_layers");
    SanaControlNetModel model(config);
    load_state_dict(*model, archive, options);
    model->eval();
    return model;
  });
}

void check_controlnet_fits(const TransformerConfig& cc, const TransformerConfig& tc) {
  SPRINT_CHECK(cc.inner_dim() == tc.inner_dim() && cc.caption_channels == tc.caption_channels &&
                   cc.in_channels == tc.in_channels && cc.num_layers < tc.num_layers,
               "ControlNet (hidden ", cc.inner_dim(), ", caption ", cc.caption_channels, ", latent ", cc.in_channels,
               " channels, ", cc.num_layers, " blocks) does not fit the transformer (hidden ", tc.inner_dim(),
               ", caption ", tc.caption_channels, ", latent ", tc.in_channels, " channels, ", tc.num_layers,
               " blocks): it needs the same widths and fewer blocks");
}

torch::Tensor controlled_forward(SanaTransformer2DModelImpl& t, SanaControlNetModelImpl& cn, const torch::Tensor& x,
                                 const torch::Tensor& enc, const torch::Tensor& timestep, const torch::Tensor& guidance,
                                 const torch::Tensor& enc_mask, const torch::Tensor& cond_latent, double scale) {
  const auto& cc = cn.config.base;
  check_controlnet_fits(cc, t.config);
  // A Sana 1.0 ControlNet (no guidance embeds) driven by a Sprint transformer (dense time s in [0, 1]) gets its
  // own training range, 1000 * s; otherwise both see the same timestep.
  const bool sana1_under_sprint = t.config.guidance_embeds && !cc.guidance_embeds;
  const auto cn_t = sana1_under_sprint ? timestep * kSana1TimestepScale : timestep;
  const auto cn_g = cc.guidance_embeds ? guidance : torch::Tensor();

  if (cn.config.injection == ControlInjection::AfterBlock) {
    auto res = cn.forward(x, enc, cn_t, cn_g, cond_latent, scale, enc_mask);
    return t.forward(x, enc, timestep, guidance, enc_mask, res, ControlInjection::AfterBlock);
  }
  // NVlabs order: the control stream starts from main block 0's output.
  auto tokens = t.front.embed(x);
  const int64_t p = t.config.patch_size, h = x.size(2) / p, w = x.size(3) / p;
  auto cond = t.front.condition(enc, timestep, guidance, enc_mask, h, w, tokens.scalar_type());
  tokens = t.run_block(0, tokens, cond);
  auto cn_cond = cn.front.condition(enc, cn_t, cn_g, enc_mask, h, w, tokens.scalar_type());
  auto res = cn.control_stream(tokens, cond_latent, cn_cond, scale);
  for (size_t i = 1; i < t.num_blocks(); ++i) {
    if (i <= res.size()) tokens = tokens + res[i - 1];
    tokens = t.run_block(i, tokens, cond);
  }
  return t.finish(tokens, cond);
}

}  // namespace sprint
