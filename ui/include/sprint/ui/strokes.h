// Strokes as vectors, an undo/redo history over them, and their rasterisation into the uint8 sketch canvas.
// Plain classes with no GL or ImGui: the canvas widget, the replay player and the unit tests drive the same code.
//
// The history is a list of entries (a stroke, a "clear" or an imported picture) with a cursor; what is visible is
// everything after the last clear or import before the cursor, over that import's picture. Undo/redo move the
// cursor; a new stroke, clear or import drops the redo tail. Clear and import are undoable like a stroke.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sprint::ui {

struct StrokePoint {
  float x = 0, y = 0;  // canvas pixels; pixel (i, j) covers [i, i+1) x [j, j+1)
};

struct Stroke {
  std::vector<StrokePoint> points;
  float radius = 3.0f;  // canvas pixels
  bool eraser = false;
};

struct Canvas;

class StrokeHistory {
 public:
  // Pen down / move / up. extend_stroke and end_stroke without an active stroke are programmer errors (asserted).
  void begin_stroke(StrokePoint p, float radius, bool eraser);
  void extend_stroke(StrokePoint p);  // drops a point closer than kMinPointSpacing to the previous one
  void end_stroke();                  // commits the active stroke (a single point makes a dot)
  void cancel_stroke();               // drops the active stroke

  bool undo();   // false when there is nothing to undo (or a stroke is being drawn)
  bool redo();
  void clear();  // undoable; a no-op on an empty canvas
  // Replaces what the canvas shows by `picture` (a whole canvas, e.g. an imported image turned into pen lines); the
  // user keeps drawing over it. One undoable step. An active stroke is cancelled first. `picture` must be non-null.
  void import_picture(std::shared_ptr<const Canvas> picture);

  bool can_undo() const;
  bool can_redo() const;
  bool drawing() const { return active_.has_value; }
  const Stroke* active() const { return active_.has_value ? &active_.stroke : nullptr; }
  std::vector<const Stroke*> visible() const;  // committed strokes on the canvas, oldest first
  const Canvas* background() const;            // the imported picture under them, or nullptr (paper)

  // Bumps on every change of what the canvas shows (points added, commits, undo, redo, clear, cancel): the exact
  // dirty flag for the condition map.
  uint64_t revision() const { return revision_; }
  // Bumps on commit, undo, redo, clear: "the user finished an edit".
  uint64_t commit_count() const { return commits_; }
  // Bumps when the visible list changes in a way other than appending the active stroke (undo, redo, clear,
  // cancel): the rasteriser redraws everything then.
  uint64_t structure_version() const { return structure_; }

  static constexpr float kMinPointSpacing = 0.5f;  // canvas pixels; mouse jitter below this adds nothing

 private:
  struct Entry {
    bool is_clear = false;                   // a clear or an import: nothing before it is visible
    std::shared_ptr<const Canvas> picture;   // an import (is_clear is set too)
    Stroke stroke;
  };
  size_t first_visible() const;  // index after the last clear/import before the cursor
  struct Active {
    bool has_value = false;
    Stroke stroke;
  } active_;
  void push(Entry e);
  std::vector<Entry> entries_;
  size_t cursor_ = 0;  // entries_[0, cursor_) are applied
  uint64_t revision_ = 0, commits_ = 0, structure_ = 0;
};

// A (height, width) uint8 luma canvas: 255 paper, 0 ink (what sketch_to_scribble expects: dark strokes on light).
struct Canvas {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major, width * height
  void reset(int w, int h);     // all paper
};

// Paints one stroke: every pixel whose centre lies within `radius` of the polyline becomes ink (or paper for the
// eraser). Only segments from `first_point` on are painted (incremental drawing). Binary, no antialiasing: the
// condition map thresholds at luma 128 anyway. Painting the same stroke twice gives the same pixels.
void paint_stroke(Canvas& canvas, const Stroke& stroke, size_t first_point = 0);

// Keeps a Canvas in step with a StrokeHistory, drawing only what changed when it can. An imported picture whose size
// differs from the canvas is drawn scaled (nearest neighbour).
class CanvasRaster {
 public:
  void resize(int width, int height);  // clears and forces a full redraw
  // Returns true when pixels changed.
  bool sync(const StrokeHistory& history);
  const Canvas& canvas() const { return canvas_; }

 private:
  Canvas canvas_;
  uint64_t seen_structure_ = ~0ull, seen_revision_ = ~0ull;
  size_t committed_drawn_ = 0, active_drawn_ = 0;
};

}  // namespace sprint::ui
