// Stroke history (undo/redo/clear, dirty counters) and the canvas rasteriser (ui/strokes.h).
#include <gtest/gtest.h>

#if __has_include("sprint/ui/strokes.h")
#include "sprint/ui/strokes.h"

#include <algorithm>

using namespace sprint::ui;

namespace {

void draw_line(StrokeHistory& h, StrokePoint a, StrokePoint b, float radius = 2, bool eraser = false) {
  h.begin_stroke(a, radius, eraser);
  h.extend_stroke({(a.x + b.x) / 2, (a.y + b.y) / 2});
  h.extend_stroke(b);
  h.end_stroke();
}

size_t ink(const Canvas& c) { return std::count(c.pixels.begin(), c.pixels.end(), uint8_t{0}); }

Canvas render(const StrokeHistory& h, int w = 64, int hgt = 64) {
  CanvasRaster r;
  r.resize(w, hgt);
  r.sync(h);
  return r.canvas();
}

}  // namespace

TEST(StrokeHistory, UndoRedoWalkTheStrokes) {
  StrokeHistory h;
  EXPECT_FALSE(h.can_undo());
  draw_line(h, {1, 1}, {10, 1});
  draw_line(h, {1, 5}, {10, 5});
  ASSERT_EQ(h.visible().size(), 2u);
  EXPECT_TRUE(h.undo());
  EXPECT_EQ(h.visible().size(), 1u);
  EXPECT_EQ(h.visible()[0]->points.front().y, 1.0f);
  EXPECT_TRUE(h.redo());
  EXPECT_EQ(h.visible().size(), 2u);
  EXPECT_FALSE(h.redo());
  EXPECT_TRUE(h.undo());
  EXPECT_TRUE(h.undo());
  EXPECT_FALSE(h.undo());
  EXPECT_TRUE(h.visible().empty());
}

TEST(StrokeHistory, NewStrokeDropsTheRedoTail) {
  StrokeHistory h;
  draw_line(h, {1, 1}, {10, 1});
  draw_line(h, {1, 5}, {10, 5});
  h.undo();
  draw_line(h, {1, 9}, {10, 9});
  EXPECT_FALSE(h.can_redo());
  ASSERT_EQ(h.visible().size(), 2u);
  EXPECT_EQ(h.visible()[1]->points.front().y, 9.0f);
}

TEST(StrokeHistory, ClearIsUndoable) {
  StrokeHistory h;
  draw_line(h, {1, 1}, {10, 1});
  draw_line(h, {1, 5}, {10, 5});
  h.clear();
  EXPECT_TRUE(h.visible().empty());
  draw_line(h, {1, 9}, {10, 9});
  EXPECT_EQ(h.visible().size(), 1u);
  h.undo();  // the stroke after the clear
  h.undo();  // the clear
  EXPECT_EQ(h.visible().size(), 2u);
  h.redo();
  EXPECT_TRUE(h.visible().empty());
  const uint64_t commits = h.commit_count();
  StrokeHistory empty;
  empty.clear();  // nothing to clear: no history entry
  EXPECT_FALSE(empty.can_undo());
  EXPECT_EQ(h.commit_count(), commits);
}

TEST(StrokeHistory, NoUndoWhileDrawing) {
  StrokeHistory h;
  draw_line(h, {1, 1}, {10, 1});
  h.begin_stroke({3, 3}, 2, false);
  EXPECT_TRUE(h.drawing());
  EXPECT_FALSE(h.undo());
  h.cancel_stroke();
  EXPECT_FALSE(h.drawing());
  EXPECT_EQ(h.visible().size(), 1u);
  EXPECT_TRUE(h.undo());
}

TEST(StrokeHistory, RevisionIsTheDirtyFlag) {
  StrokeHistory h;
  uint64_t r = h.revision();
  h.begin_stroke({1, 1}, 2, false);
  EXPECT_GT(h.revision(), r);
  r = h.revision();
  h.extend_stroke({1.2f, 1.1f});  // closer than kMinPointSpacing: nothing changes
  EXPECT_EQ(h.revision(), r);
  h.extend_stroke({8, 1});
  EXPECT_GT(h.revision(), r);
  r = h.revision();
  const uint64_t c = h.commit_count();
  h.end_stroke();
  EXPECT_GT(h.revision(), r);
  EXPECT_EQ(h.commit_count(), c + 1);
  r = h.revision();
  EXPECT_FALSE(h.redo());  // a no-op changes nothing
  EXPECT_EQ(h.revision(), r);
  h.undo();
  EXPECT_GT(h.revision(), r);
}

TEST(CanvasRaster, PaintsAndErases) {
  StrokeHistory h;
  draw_line(h, {8, 32}, {56, 32}, 3);
  const Canvas a = render(h);
  EXPECT_EQ(a.pixels[32 * 64 + 32], 0);   // on the line
  EXPECT_EQ(a.pixels[10 * 64 + 32], 255); // far from it
  // A capsule of radius 3 around a 48-px segment: about 48 * 6 + pi * 9 pixels.
  EXPECT_NEAR(static_cast<double>(ink(a)), 48 * 6 + 3.14159 * 9, 20);
  draw_line(h, {32, 20}, {32, 44}, 4, /*eraser=*/true);
  const Canvas b = render(h);
  EXPECT_EQ(b.pixels[32 * 64 + 32], 255);
  EXPECT_LT(ink(b), ink(a));
}

TEST(CanvasRaster, IncrementalMatchesFullRedraw) {
  StrokeHistory h;
  CanvasRaster live;
  live.resize(64, 64);
  // Draw point by point, syncing after each like the UI does every frame, with an undo and a redo in between.
  h.begin_stroke({5, 5}, 2, false);
  live.sync(h);
  for (int i = 1; i < 20; ++i) {
    h.extend_stroke({5.0f + 2.5f * i, 5.0f + 1.5f * i});
    live.sync(h);
  }
  h.end_stroke();
  live.sync(h);
  draw_line(h, {60, 2}, {2, 60}, 3);
  live.sync(h);
  h.undo();
  live.sync(h);
  EXPECT_EQ(live.canvas().pixels, render(h).pixels);
  h.redo();
  live.sync(h);
  h.begin_stroke({30, 30}, 5, true);
  h.extend_stroke({40, 40});
  live.sync(h);
  h.cancel_stroke();  // the half-drawn eraser stroke must disappear
  live.sync(h);
  EXPECT_EQ(live.canvas().pixels, render(h).pixels);
  EXPECT_FALSE(live.sync(h));  // nothing changed: nothing to do
}

TEST(CanvasRaster, DotAndClipping) {
  StrokeHistory h;
  h.begin_stroke({0, 0}, 0.1f, false);  // tiny brush at the corner: still one visible pixel, no out-of-bounds write
  h.end_stroke();
  draw_line(h, {-20, 70}, {90, 70}, 3);  // entirely below the canvas
  const Canvas c = render(h);
  EXPECT_EQ(c.pixels[0], 0);
  EXPECT_EQ(ink(c), 1u);
}

#else
TEST(StrokeHistory, NeedsUiModel) {
  GTEST_SKIP() << "sprint::app_model is not linked into sprint-tests-unit (tests/CMakeLists.txt: "
                  "sprint_add_test_folder(unit sprint::app_model))";
}
#endif
