// Importing a picture (PNG, JPEG, WebP, BMP, TIFF) as the starting sketch (File > Import image, a file dropped on the
// window, --import, a replay's "import" event): one job at a time, off the UI thread. A request made before the model
// has loaded waits for the canvas size. The controller only runs jobs and words the outcome; Studio puts the sketch
// into the stroke history.
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>

#include "image_import.h"

namespace sprint {

class ImportController {
 public:
  explicit ImportController(std::string hed_path) : hed_path_(std::move(hed_path)) {}
  ~ImportController();  // waits for a running job (it reads hed_)
  ImportController(const ImportController&) = delete;
  ImportController& operator=(const ImportController&) = delete;

  // The canvas an import is drawn for: its size and the pen radius of the drawn outlines.
  struct Canvas {
    int width = 0, height = 0;
    float pen_radius = 1.0f;
  };

  // Starts importing `path`, or keeps it for start_pending() when `canvas` is not known yet (the model is loading).
  // Returns the status-line notice; an empty path does nothing (and returns "").
  std::string request(const std::string& path, ImportMode mode, const std::optional<Canvas>& canvas);
  // Starts the request kept while the model was loading; returns its notice ("" when there was none).
  std::string start_pending(const Canvas& canvas);

  bool busy() const { return job_.valid() || !pending_.empty(); }  // a job is running or waiting for the model
  bool running() const { return job_.valid(); }

  struct Outcome {
    std::optional<ImportedSketch> sketch;  // set on success
    std::string error;                     // "import failed: ..." on failure
    std::string notice;                    // what the status line says about it
  };
  // The finished job's outcome, once (nullopt while none has finished).
  std::optional<Outcome> poll();

 private:
  struct Result {
    std::optional<ImportedSketch> sketch;
    std::string error;
    double ms = 0;
  };
  std::string start(const std::string& path, ImportMode mode, const Canvas& canvas);

  std::string hed_path_;          // HED weights for photos; empty: the OpenCV soft-edge fallback
  std::shared_ptr<HEDImpl> hed_;  // loaded by the first photo import when hed_path_ is set
  std::future<Result> job_;
  std::string source_;            // the running job's path
  std::string pending_;           // requested before the model was ready
  ImportMode pending_mode_ = ImportMode::Auto;
};

}  // namespace sprint
