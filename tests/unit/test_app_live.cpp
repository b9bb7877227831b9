// The app's plain live-loop parts: sketch canvas size (app/include/sprint/app/canvas_size.h), frame timing and
// input-to-photon latency (frame_stats.h), adaptive pacing (pacing.h), and importing a picture into the stroke
// history (ui/strokes.h: one undoable step, strokes drawn over it).
#include <gtest/gtest.h>

#if __has_include("sprint/app/canvas_size.h")
#include "sprint/app/canvas_size.h"
#include "sprint/app/frame_stats.h"
#include "sprint/app/pacing.h"
#include "sprint/ui/strokes.h"

#include <memory>
#include <string>

using namespace sprint;

TEST(AppCanvasSize, GenerationSizeWithoutSketchCanvas) {
  EXPECT_EQ(sketch_canvas_size(0, 1024, 1024), std::make_pair(1024, 1024));
  EXPECT_EQ(sketch_canvas_size(0, 1024, 768), std::make_pair(1024, 768));
  EXPECT_EQ(sketch_canvas_size(0, 32, 32), std::make_pair(32, 32));
}

TEST(AppCanvasSize, LongerSideIsTheSketchCanvas) {
  EXPECT_EQ(sketch_canvas_size(256, 64, 64), std::make_pair(256, 256));
  EXPECT_EQ(sketch_canvas_size(256, 128, 64), std::make_pair(256, 128));
  EXPECT_EQ(sketch_canvas_size(256, 64, 128), std::make_pair(128, 256));
  EXPECT_EQ(sketch_canvas_size(256, 96, 64), std::make_pair(256, 171));  // 170.67 rounds to 171
  EXPECT_EQ(sketch_canvas_size(256, 1024, 1), std::make_pair(256, 1));    // never 0
  // Also when the canvas is smaller than the generation.
  EXPECT_EQ(sketch_canvas_size(512, 1024, 1024), std::make_pair(512, 512));
}

TEST(AppCanvasSize, DefaultBrushFollowsTheCanvas) {
  EXPECT_FLOAT_EQ(default_brush_radius(1024, 1024), 8.0f);
  EXPECT_FLOAT_EQ(default_brush_radius(256, 128), 2.0f);
  EXPECT_FLOAT_EQ(default_brush_radius(32, 32), 1.0f);
}

TEST(AppFrameStats, NearestRankPercentiles) {
  SampleWindow w;
  EXPECT_EQ(w.percentile(50), 0.0);
  for (int i = 100; i >= 1; --i) w.push(i);
  EXPECT_EQ(w.percentile(50), 50.0);
  EXPECT_EQ(w.percentile(99), 99.0);
  EXPECT_EQ(w.percentile(100), 100.0);
  EXPECT_EQ(w.percentile(0), 1.0);
  SampleWindow small(3);
  for (double v : {10.0, 1.0, 2.0, 3.0}) small.push(v);  // 10 falls out
  EXPECT_EQ(small.size(), 3u);
  EXPECT_EQ(small.percentile(100), 3.0);
}

TEST(AppFrameStats, ReportLineFormat) {
  SampleWindow f, p;
  for (double v : {10.0, 20.0, 30.0}) f.push(v);
  p.push(40.0);
  EXPECT_EQ(frame_report(f, p), "frames: 3  p50 20.0 ms  p99 30.0 ms  input-to-photon p50 40.0 ms");
}

TEST(AppFrameStats, InputToPhotonCountsSkippedInputsAtTheNewerFrame) {
  InputLatencyTracker<int> t;
  t.observe(0, 0.0);  // baseline: not an input
  EXPECT_EQ(t.pending(), 0u);
  t.observe(1, 1.0);
  t.observe(1, 1.1);  // unchanged: the same input
  t.observe(2, 1.2);
  t.observe(3, 1.3);
  EXPECT_EQ(t.pending(), 3u);
  EXPECT_EQ(t.displayed(0, 1.4), 0u);  // a stale frame shows none of them
  EXPECT_EQ(t.displayed(2, 1.5), 2u);  // frame for 2 also stands for the skipped 1
  EXPECT_EQ(t.pending(), 1u);
  EXPECT_EQ(t.displayed(3, 1.8), 1u);
  ASSERT_EQ(t.latency_ms().size(), 3u);
  EXPECT_NEAR(t.latency_ms().samples()[0], 500.0, 1e-6);
  EXPECT_NEAR(t.latency_ms().samples()[1], 300.0, 1e-6);
  EXPECT_NEAR(t.latency_ms().samples()[2], 500.0, 1e-6);
}

TEST(AppFrameStats, CustomReflectsMatchesDrafts) {
  // Keys as (value, steps): a draft (other steps) still shows the input.
  using K = std::pair<int, int>;
  InputLatencyTracker<K> t([](const K& frame, const K& in) { return frame.first == in.first; });
  t.observe({0, 2}, 0);
  t.observe({1, 2}, 1.0);
  EXPECT_EQ(t.displayed({1, 1}, 1.25), 1u);
  EXPECT_NEAR(t.latency_ms().percentile(50), 250.0, 1e-6);
}

TEST(AppPacing, DraftsOnlyWhileDrawingAndOverBudget) {
  PacingOptions o;
  o.budget_ms = 100;
  AdaptivePacer p(o);
  EXPECT_EQ(p.steps_for(4, true), 4);  // nothing measured yet
  p.record(4, 90);                     // under budget
  EXPECT_EQ(p.steps_for(4, true), 4);
  for (int i = 0; i < 20; ++i) p.record(4, 300);
  EXPECT_TRUE(p.reduced());
  EXPECT_EQ(p.steps_for(4, true), 1);   // drawing: draft
  EXPECT_EQ(p.steps_for(4, false), 4);  // paused: refine at the user's steps
  EXPECT_EQ(p.steps_for(1, true), 1);
}

TEST(AppPacing, HysteresisAndEstimateFromOtherStepCounts) {
  PacingOptions o;
  o.budget_ms = 100;
  AdaptivePacer p(o);
  p.record(1, 40);  // 4 steps estimated at 160 ms > 120: draft
  EXPECT_NEAR(p.estimate_ms(4), 160.0, 1e-9);
  EXPECT_EQ(p.steps_for(4, true), 1);
  for (int i = 0; i < 30; ++i) p.record(4, 90);  // 90 is inside 80..120: stays drafting
  EXPECT_TRUE(p.reduced());
  for (int i = 0; i < 30; ++i) p.record(4, 50);  // below 80: back to full steps
  EXPECT_FALSE(p.reduced());
  EXPECT_EQ(p.steps_for(4, true), 4);
  for (int i = 0; i < 30; ++i) p.record(4, 110);  // inside the band again: stays at full steps
  EXPECT_FALSE(p.reduced());
}

TEST(AppPacing, DisabledNeverDrafts) {
  PacingOptions o;
  o.enabled = false;
  o.budget_ms = 1;
  AdaptivePacer p(o);
  p.record(2, 1000);
  EXPECT_EQ(p.steps_for(2, true), 2);
  o.enabled = true;
  p.set_options(o);
  EXPECT_EQ(p.steps_for(2, true), 1);
}

TEST(AppImportPicture, ReplacesTheCanvasAsOneUndoableStep) {
  using namespace sprint::ui;
  StrokeHistory h;
  CanvasRaster r;
  r.resize(8, 8);
  h.begin_stroke({1.5f, 1.5f}, 0.8f, false);
  h.end_stroke();
  r.sync(h);
  const auto before = r.canvas().pixels;
  auto pic = std::make_shared<Canvas>();
  pic->reset(8, 8);
  pic->pixels[7 * 8 + 7] = 0;  // one ink pixel, bottom right
  h.import_picture(pic);
  ASSERT_TRUE(r.sync(h));
  EXPECT_EQ(r.canvas().pixels, pic->pixels);  // the stroke is gone, the picture shows
  EXPECT_TRUE(h.visible().empty());
  ASSERT_NE(h.background(), nullptr);
  // Draw over it.
  h.begin_stroke({0.5f, 0.5f}, 0.8f, false);
  h.end_stroke();
  r.sync(h);
  EXPECT_EQ(r.canvas().pixels[0], 0);
  EXPECT_EQ(r.canvas().pixels[7 * 8 + 7], 0);
  // Undo the stroke, then the import: the drawing from before comes back.
  ASSERT_TRUE(h.undo());
  ASSERT_TRUE(h.undo());
  r.sync(h);
  EXPECT_EQ(r.canvas().pixels, before);
  EXPECT_EQ(h.background(), nullptr);
  ASSERT_TRUE(h.redo());
  r.sync(h);
  EXPECT_EQ(r.canvas().pixels, pic->pixels);
  // Clear removes the picture too, and is undoable.
  h.clear();
  r.sync(h);
  EXPECT_EQ(r.canvas().pixels, std::vector<uint8_t>(64, 255));
  ASSERT_TRUE(h.undo());
  r.sync(h);
  EXPECT_EQ(r.canvas().pixels, pic->pixels);
}

TEST(AppImportPicture, OtherSizeIsScaledNearest) {
  using namespace sprint::ui;
  StrokeHistory h;
  CanvasRaster r;
  r.resize(8, 8);
  auto pic = std::make_shared<Canvas>();
  pic->reset(4, 4);
  pic->pixels[0] = 0;  // top-left 2x2 block on the 8x8 canvas
  h.import_picture(pic);
  r.sync(h);
  const auto& px = r.canvas().pixels;
  EXPECT_EQ(px[0], 0);
  EXPECT_EQ(px[1], 0);
  EXPECT_EQ(px[8], 0);
  EXPECT_EQ(px[9], 0);
  EXPECT_EQ(px[2], 255);
  EXPECT_EQ(px[16], 255);
}

#endif
