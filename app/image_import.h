// Image import: a picture (PNG, JPEG, WebP, BMP, TIFF) becomes the starting sketch on the canvas (pen lines the user
// can keep drawing over). Files are read by read_picture (picture_io.h: Exif orientation applied, alpha on white).
//
//   sketch   dark lines on light paper (a scan, or a sketch this app exported): luma < 128 is ink, kept as is;
//   picture  flat-colour picture / clip art / emoji: picture_to_stroke_mask (picture_edges.h), the same pen
//            drawing our own ControlNet's training conditions are made from;
//   photo    a photo: the soft-edge stage of photo_to_scribble (hed.h: the HED network when weights are given,
//            else the OpenCV soft-edge fallback) and its non-maximum suppression give thin ridge lines, which are
//            inked with the brush's round pen. (photo_to_scribble's own output is the finished condition map with
//            ~11 px bands; drawn on the canvas it would go through the stroke conversion a second time.)
//   auto     picks one of the three from the picture's colour statistics (detect_import_mode).
// The picture is fitted to the canvas keeping its aspect (sketch/picture: padded with paper; photo: centre-cropped).
// Everything throws sprint::Error naming the file; nothing here touches the canvas.
#pragma once

#include <torch/types.h>

#include <string>

#include "sprint/ui/strokes.h"

namespace sprint {

struct HEDImpl;

enum class ImportMode { Auto, Sketch, Picture, Photo };

const char* import_mode_name(ImportMode m);
ImportMode parse_import_mode(const std::string& s);  // "auto" | "sketch" | "picture" | "photo"; throws otherwise

// (H, W, C) uint8 picture -> Sketch, Picture or Photo.
ImportMode detect_import_mode(const torch::Tensor& picture);

struct ImportedSketch {
  ui::Canvas canvas;       // canvas_w x canvas_h, 255 paper, 0 ink
  ImportMode mode = ImportMode::Auto;  // the mode actually used
  size_t ink_pixels = 0;
};

// pen_radius: the brush radius in canvas px (photo lines are inked with it; pictures use a pen twice as wide).
// hed: HED network for photos, or nullptr for the OpenCV soft-edge fallback.
ImportedSketch import_sketch_image(const std::string& path, int canvas_w, int canvas_h, ImportMode mode,
                                   float pen_radius, HEDImpl* hed = nullptr);

// Same, from pixels already in memory (`source` names them in errors).
ImportedSketch import_sketch_pixels(const torch::Tensor& picture, const std::string& source, int canvas_w,
                                    int canvas_h, ImportMode mode, float pen_radius, HEDImpl* hed = nullptr);

}  // namespace sprint
