#include "sprint/ui/strokes.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

namespace sprint::ui {

// ---- StrokeHistory ---------------------------------------------------------------------------------------------

void StrokeHistory::begin_stroke(StrokePoint p, float radius, bool eraser) {
  assert(!active_.has_value && "begin_stroke while a stroke is active: call end_stroke or cancel_stroke first");
  active_.has_value = true;
  active_.stroke = Stroke{{p}, radius, eraser};
  ++revision_;
}

void StrokeHistory::extend_stroke(StrokePoint p) {
  assert(active_.has_value && "extend_stroke without begin_stroke");
  const StrokePoint& last = active_.stroke.points.back();
  if (std::hypot(p.x - last.x, p.y - last.y) < kMinPointSpacing) return;
  active_.stroke.points.push_back(p);
  ++revision_;
}

void StrokeHistory::end_stroke() {
  assert(active_.has_value && "end_stroke without begin_stroke");
  Entry e;
  e.stroke = std::move(active_.stroke);
  active_ = {};
  push(std::move(e));
  // The canvas already shows the stroke: revision_ is unchanged only if nothing else moved, but a commit is an
  // edit boundary, so it counts as one.
  ++revision_;
}

void StrokeHistory::cancel_stroke() {
  if (!active_.has_value) return;
  active_ = {};
  ++revision_;
  ++structure_;
}

void StrokeHistory::push(Entry e) {
  entries_.resize(cursor_);  // drop the redo tail
  entries_.push_back(std::move(e));
  cursor_ = entries_.size();
  ++commits_;
}

bool StrokeHistory::can_undo() const { return !active_.has_value && cursor_ > 0; }
bool StrokeHistory::can_redo() const { return !active_.has_value && cursor_ < entries_.size(); }

bool StrokeHistory::undo() {
  if (!can_undo()) return false;
  --cursor_;
  ++revision_, ++commits_, ++structure_;
  return true;
}

bool StrokeHistory::redo() {
  if (!can_redo()) return false;
  ++cursor_;
  ++revision_, ++commits_, ++structure_;
  return true;
}

void StrokeHistory::clear() {
  if (active_.has_value) cancel_stroke();
  if (visible().empty() && !background()) return;
  Entry e;
  e.is_clear = true;
  push(std::move(e));
  ++revision_, ++structure_;
}

void StrokeHistory::import_picture(std::shared_ptr<const Canvas> picture) {
  assert(picture && "import_picture needs a picture");
  if (active_.has_value) cancel_stroke();
  Entry e;
  e.is_clear = true;
  e.picture = std::move(picture);
  push(std::move(e));
  ++revision_, ++structure_;
}

size_t StrokeHistory::first_visible() const {
  for (size_t i = cursor_; i-- > 0;) {
    if (entries_[i].is_clear) return i + 1;
  }
  return 0;
}

const Canvas* StrokeHistory::background() const {
  const size_t first = first_visible();
  return first > 0 ? entries_[first - 1].picture.get() : nullptr;
}

std::vector<const Stroke*> StrokeHistory::visible() const {
  const size_t first = first_visible();
  std::vector<const Stroke*> out;
  out.reserve(cursor_ - first);
  for (size_t i = first; i < cursor_; ++i) out.push_back(&entries_[i].stroke);
  return out;
}

// ---- Rasterisation ---------------------------------------------------------------------------------------------

void Canvas::reset(int w, int h) {
  assert(w > 0 && h > 0 && "canvas size must be positive");
  width = w;
  height = h;
  pixels.assign(static_cast<size_t>(w) * h, 255);
}

namespace {

// Every pixel centre within r of segment a-b gets `value`.
void paint_capsule(Canvas& c, StrokePoint a, StrokePoint b, float r, uint8_t value) {
  const int x0 = std::max(0, static_cast<int>(std::floor(std::min(a.x, b.x) - r)));
  const int x1 = std::min(c.width - 1, static_cast<int>(std::ceil(std::max(a.x, b.x) + r)));
  const int y0 = std::max(0, static_cast<int>(std::floor(std::min(a.y, b.y) - r)));
  const int y1 = std::min(c.height - 1, static_cast<int>(std::ceil(std::max(a.y, b.y) + r)));
  const float dx = b.x - a.x, dy = b.y - a.y;
  const float len2 = dx * dx + dy * dy;
  const float r2 = r * r;
  for (int y = y0; y <= y1; ++y) {
    uint8_t* row = c.pixels.data() + static_cast<size_t>(y) * c.width;
    const float py = y + 0.5f;
    for (int x = x0; x <= x1; ++x) {
      const float px = x + 0.5f;
      float t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0.0f;
      t = std::clamp(t, 0.0f, 1.0f);
      const float ex = a.x + t * dx - px, ey = a.y + t * dy - py;
      if (ex * ex + ey * ey <= r2) row[x] = value;
    }
  }
}

}  // namespace

void paint_stroke(Canvas& canvas, const Stroke& stroke, size_t first_point) {
  assert(canvas.width > 0 && "paint_stroke on a canvas that was never reset()");
  if (stroke.points.empty()) return;
  // A radius below half a pixel would miss every pixel centre on a dot; keep the smallest brush visible.
  // Far larger than any canvas, or not a number, is a broken input: keep the loops and int conversions bounded.
  const float r = std::isfinite(stroke.radius) ? std::clamp(stroke.radius, 0.71f, 8192.0f) : 0.71f;
  const uint8_t value = stroke.eraser ? 255 : 0;
  const auto& p = stroke.points;
  if (p.size() == 1) {
    paint_capsule(canvas, p[0], p[0], r, value);
    return;
  }
  for (size_t i = std::max<size_t>(first_point, 1); i < p.size(); ++i) paint_capsule(canvas, p[i - 1], p[i], r, value);
}

void CanvasRaster::resize(int width, int height) {
  canvas_.reset(width, height);
  seen_structure_ = ~0ull;
  seen_revision_ = ~0ull;
}

bool CanvasRaster::sync(const StrokeHistory& history) {
  if (history.revision() == seen_revision_ && history.structure_version() == seen_structure_) return false;
  const auto visible = history.visible();
  const Stroke* active = history.active();
  if (history.structure_version() != seen_structure_ || visible.size() < committed_drawn_) {
    const Canvas* bg = history.background();
    if (!bg) {
      std::memset(canvas_.pixels.data(), 255, canvas_.pixels.size());
    } else if (bg->width == canvas_.width && bg->height == canvas_.height) {
      canvas_.pixels = bg->pixels;
    } else {
      for (int y = 0; y < canvas_.height; ++y) {
        const int sy = std::min(bg->height - 1, static_cast<int>((y + 0.5) * bg->height / canvas_.height));
        for (int x = 0; x < canvas_.width; ++x) {
          const int sx = std::min(bg->width - 1, static_cast<int>((x + 0.5) * bg->width / canvas_.width));
          canvas_.pixels[static_cast<size_t>(y) * canvas_.width + x] = bg->pixels[static_cast<size_t>(sy) * bg->width + sx];
        }
      }
    }
    for (const Stroke* s : visible) paint_stroke(canvas_, *s);
    committed_drawn_ = visible.size();
    active_drawn_ = 0;
  } else {
    // Newly committed strokes are the latest ones, so painting them again in full is exact (painting is
    // idempotent and nothing was drawn after them).
    for (; committed_drawn_ < visible.size(); ++committed_drawn_) paint_stroke(canvas_, *visible[committed_drawn_]);
    if (!active) active_drawn_ = 0;
  }
  if (active) {
    // Re-paint from the last painted point so the joining segment is drawn.
    paint_stroke(canvas_, *active, active_drawn_ > 0 ? active_drawn_ - 1 : 0);
    active_drawn_ = active->points.size();
  }
  seen_revision_ = history.revision();
  seen_structure_ = history.structure_version();
  return true;
}

}  // namespace sprint::ui
