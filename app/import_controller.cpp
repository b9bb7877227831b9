// See import_controller.h.
#include "import_controller.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "sprint/error.h"
#include "sprint/hed.h"
#include "sprint/picture_io.h"

namespace sprint {

ImportController::~ImportController() {
  if (job_.valid()) job_.wait();
}

std::string ImportController::request(const std::string& path, ImportMode mode, const std::optional<Canvas>& canvas) {
  if (path.empty()) return "";
  if (job_.valid()) return "an import is already running; try again when it is done";
  if (!canvas) {  // the canvas size is known once the model is loaded
    pending_ = path;
    pending_mode_ = mode;
    return "importing " + path + " once the model has loaded";
  }
  return start(path, mode, *canvas);
}

std::string ImportController::start_pending(const Canvas& canvas) {
  if (pending_.empty()) return "";
  const std::string path = pending_;
  pending_.clear();
  return start(path, pending_mode_, canvas);
}

std::string ImportController::start(const std::string& path, ImportMode mode, const Canvas& canvas) {
  source_ = path;
  job_ = std::async(std::launch::async, [this, path, mode, canvas] {
    Result out;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      torch::NoGradGuard no_grad;
      const torch::Tensor picture = read_picture(path);
      ImportMode m = mode == ImportMode::Auto ? with_context("importing '" + path + "'", [&] {
        return detect_import_mode(picture);
      }) : mode;
      if (m == ImportMode::Photo && !hed_path_.empty() && !hed_) hed_ = load_hed(hed_path_).ptr();
      out.sketch = import_sketch_pixels(picture, "importing '" + path + "'", canvas.width, canvas.height, m,
                                        canvas.pen_radius, m == ImportMode::Photo ? hed_.get() : nullptr);
    } catch (const std::exception& e) {
      out.error = message_of(e);
    }
    out.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return out;
  });
  return "importing " + path + "...";
}

std::optional<ImportController::Outcome> ImportController::poll() {
  if (!job_.valid() || job_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return std::nullopt;
  Result r = job_.get();
  Outcome out;
  if (!r.error.empty()) {
    out.error = "import failed: " + r.error;
    out.notice = out.error + " (the drawing is unchanged)";
    std::fprintf(stderr, "sprint-studio: %s\n", out.error.c_str());
    return out;
  }
  const ImportedSketch& s = *r.sketch;
  out.notice = str("imported ", std::filesystem::path(source_).filename().string(), " as a ", import_mode_name(s.mode),
                   " (", s.ink_pixels, " ink px, ", static_cast<int>(r.ms), " ms); Ctrl+Z undoes it");
  if (hed_path_.empty() && s.mode == ImportMode::Photo)
    out.notice += "; photo edges from the OpenCV soft-edge detector (no --hed weights)";
  std::fprintf(stderr, "sprint-studio: %s\n", out.notice.c_str());
  out.sketch = std::move(r.sketch);
  return out;
}

}  // namespace sprint
