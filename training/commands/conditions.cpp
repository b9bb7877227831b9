// sprint-train conditions: writes the condition map of every dataset picture (the third part of the
// (picture, caption, condition) triples) to <data.dir>/conditions/<id>.png, made by picture_to_scribble exactly as
// training makes them on the fly (without augmentation), and a preview grid <data.dir>/conditions_preview.png
// (pictures over their maps). Training does not read these files: it recomputes the maps after augmentation.
//
// With `augment_preview` = N > 0 (pass a training config: its augment.* and sketch.* keys apply) it instead writes
// <data.dir>/augment_preview.png: N training rows as that config makes them (augmented pictures over the sketches
// drawn from them), to check what the model will see.

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/scribble.h"
#include "sprint/training/sampling.h"

namespace fs = std::filesystem;

namespace sprint::training::cli {

int run_conditions(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  const std::string dir = cfg.require<std::string>("data.dir");
  const int64_t limit = cfg.get_range("data.limit", int64_t{0}, 0, int64_t{1} << 40);
  const int64_t preview = cfg.get_range("preview", int64_t{16}, 0, 256);
  PictureEdgeOptions edges;
  edges.canvas = static_cast<int>(cfg.get_range("edges.canvas", int64_t{edges.canvas}, 16, 8192));
  edges.pen_width = static_cast<int>(cfg.get_range("edges.pen_width", int64_t{edges.pen_width}, 1, 64));
  edges.thickness = static_cast<int>(cfg.get_range("edges.thickness", int64_t{edges.thickness}, 0, 24));
  const int64_t side = cfg.get_range("resolution", int64_t{128}, 8, 4096);
  const int64_t augment_preview = cfg.get_range("augment_preview", int64_t{0}, 0, 256);
  if (augment_preview > 0) {
    auto s = read_common(cfg);
    for (const char* k : {"teacher", "vae", "tokenizer", "prompt", "controlnet", "conditioning_scale", "flow", "sample",
                          "mode", "scm", "ladd", "transformer", "text_encoder", "text_encoder_lr_scale", "loss",
                          "model", "condition_fraction", "preview"})
      if (cfg.has(k)) cfg.get<nlohmann::json>(k, {});
    cfg.finish();
    auto data = ImageCaptionDataset::load(dir, "train", s.data_limit);
    auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
    auto b = make_batch(data, batch_indices(data.size(), augment_preview, 0, static_cast<uint64_t>(s.seed)), side, gen,
                        s.aug, true, s.edges);
    const auto file = (fs::path(dir) / "augment_preview.png").string();
    save_image_grid(file, torch::cat({b.images, b.conditions}), augment_preview, 2);
    std::cerr << "conditions: wrote " << file << " (" << augment_preview << " augmented rows; captions:";
    for (const auto& c : b.captions) std::cerr << " '" << c << "'";
    std::cerr << ")\n";
    return 0;
  }
  // Keys of the training configs that do not matter here are accepted, so the same config file can be passed.
  for (const char* k : {"out", "steps", "batch", "seed", "threads", "log_every", "ckpt_every", "sample_every"})
    if (cfg.has(k)) cfg.get<nlohmann::json>(k, {});
  cfg.finish();
  auto data = ImageCaptionDataset::load(dir, "all", limit);
  fs::create_directories(fs::path(dir) / "conditions");
  std::vector<torch::Tensor> pics, maps;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto& it = data.item(i);
    auto map = picture_to_scribble(it.image, edges);
    write_png((fs::path(dir) / "conditions" / (it.id + ".png")).string(), map.unsqueeze(-1));
    if (i < preview) {
      pics.push_back(picture_to_tensor(it.image, side));
      maps.push_back(scribble_to_condition(map, side, side));
    }
  }
  if (!pics.empty())
    save_image_grid((fs::path(dir) / "conditions_preview.png").string(), torch::cat({torch::cat(pics), torch::cat(maps)}),
                    static_cast<int64_t>(pics.size()), 1);
  std::cerr << "conditions: wrote " << data.size() << " maps to " << (fs::path(dir) / "conditions").string() << "\n";
  return 0;
}

}  // namespace sprint::training::cli
