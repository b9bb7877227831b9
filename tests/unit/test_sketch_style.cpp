// Sketch-faithful training data and the sketch-transfer evaluation's pieces: sketches drawn as people draw, the joint
// geometry augmentation, pictures cut into other silhouettes, hand-drawn outlines, and the shape/colour metrics.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "sprint/picture_edges.h"
#include "sprint/scribble.h"
#include "sprint/training/metrics.h"
#include "sprint/training/sketch_style.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::training;
using sprint::test::throws_with;

namespace {

// A filled disc, or a filled square when `square`, of colour rgb on white, with a white stripe inside it (a hole with
// inner edges that are not the outline).
torch::Tensor shape_picture(int64_t side, bool square, std::array<uint8_t, 3> rgb, bool stripe = true) {
  auto img = torch::full({side, side, 3}, 255, torch::kUInt8);
  auto a = img.accessor<uint8_t, 3>();
  const double c = (side - 1) / 2.0, r = side * 0.35;
  for (int64_t y = 0; y < side; ++y)
    for (int64_t x = 0; x < side; ++x) {
      const bool in = square ? std::fabs(x - c) <= r && std::fabs(y - c) <= r : std::hypot(x - c, y - c) <= r;
      const bool white = stripe && std::fabs(y - c) < side * 0.03 && std::fabs(x - c) < r * 0.7;
      if (in && !white)
        for (int k = 0; k < 3; ++k) a[y][x][k] = rgb[static_cast<size_t>(k)];
    }
  return img;
}

int64_t ink(const torch::Tensor& m) { return m.ne(0).sum().item<int64_t>(); }

}  // namespace

TEST(SketchStyle, RowRngIsASeededPortableStream) {
  RowRng a(42), b(42), c(43);
  // splitmix64's published first output for seed 0 (the reference sequence of the algorithm).
  EXPECT_EQ(RowRng(0).next(), 0xE220A8397B1DCDAFULL);
  for (int i = 0; i < 100; ++i) {
    const double u = a.uniform();
    EXPECT_EQ(u, b.uniform());
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  EXPECT_NE(RowRng(42).next(), c.next());
  EXPECT_TRUE(throws_with([&] { a.below(0); }, {"RowRng::below"}));
}

TEST(SketchStyle, OffIsThePlainEdgeMapAndOnIsDeterministicPerSeed) {
  auto pic = shape_picture(64, false, {200, 40, 40});
  PictureEdgeOptions edges;
  SketchStyleOptions off;
  RowRng r0(1);
  EXPECT_TRUE(torch::equal(sketch_of_picture(pic, edges, off, r0), picture_to_scribble(pic, edges)));
  EXPECT_EQ(r0.next(), RowRng(1).next());  // no draws when off
  SketchStyleOptions on;
  on.enabled = true;
  on.drop_inner = 0.5;
  on.jitter = 0.01;
  on.min_pen = 2;
  on.max_pen = 7;
  RowRng r1(5), r2(5);
  EXPECT_TRUE(torch::equal(sketch_of_picture(pic, edges, on, r1), sketch_of_picture(pic, edges, on, r2)));
}

TEST(SketchStyle, LayersSplitTheOutlineFromTheInnerLines) {
  auto pic = shape_picture(64, false, {30, 90, 200});
  PictureEdgeOptions edges;
  auto layers = picture_lines(pic, edges);
  // Together, inked, they are the edge map training always used (inner lines near the outline go to the outline).
  auto both = (layers.outline | layers.inner);
  EXPECT_GT(ink(layers.inner), 0);  // the stripe's two edges
  EXPECT_GT(ink(layers.outline), 0);
  auto full = picture_to_stroke_mask(pic, edges);
  EXPECT_LE(ink(ink_lines(both, edges.pen_width) & full.eq(0)), 0);  // nothing outside the old map
  // Outline only: the stripe's edges vanish from the sketch, the rim stays.
  SketchStyleOptions outline;
  outline.enabled = true;
  outline.outline_only = 1.0;
  RowRng rng(3);
  auto sketch = sketch_of_picture(pic, edges, outline, rng);
  auto plain = picture_to_scribble(pic, edges);
  EXPECT_LT(ink(sketch), ink(plain));
  EXPECT_EQ(sketch[128][128].item<uint8_t>(), 0);  // the stripe runs through the centre of the 256 canvas
  EXPECT_EQ(plain[128][128 - 40].item<uint8_t>(), 255);
  EXPECT_EQ(sketch[128][128 - 40].item<uint8_t>(), 0);
}

TEST(SketchStyle, UnfinishedSketchesKeepAnArcOfTheLines) {
  auto pic = shape_picture(64, true, {20, 160, 60}, false);
  PictureEdgeOptions edges;
  SketchStyleOptions part;
  part.enabled = true;
  part.partial = 1.0;
  part.min_partial = 0.3;
  int64_t whole = ink(picture_to_scribble(pic, edges));
  for (uint64_t seed = 0; seed < 6; ++seed) {
    RowRng rng(seed);
    auto s = sketch_of_picture(pic, edges, part, rng);
    EXPECT_LT(ink(s), whole) << "seed " << seed;
    EXPECT_GT(ink(s), whole / 5) << "seed " << seed;  // at least 30 % of a turn around the square
  }
}

TEST(SketchStyle, ACutPictureTakesTheOtherSilhouetteAndKeepsItsColours) {
  auto red_square = shape_picture(128, true, {220, 30, 30}, false);
  auto blue_disc = shape_picture(128, false, {30, 30, 220}, false);
  auto cut = cut_into_silhouette(red_square, blue_disc);
  ASSERT_EQ(cut.sizes(), red_square.sizes());
  // The figure is the disc's, in the square's red. The cut's anti-aliased rim (a 3x3 box) is one pixel wider than
  // the disc's hard edge at figure_mask's paper threshold: one ring of a radius-45 disc is ~4.5 % of its area, so
  // IoU ~0.955. Against the square the disc's IoU is pi / 4 = 0.785 (0.8 with the ring).
  EXPECT_GT(silhouette_iou(figure_mask(cut), figure_mask(blue_disc)), 0.94);
  EXPECT_LT(silhouette_iou(figure_mask(cut), figure_mask(red_square)), 0.85);
  auto centre = cut[64][64];
  EXPECT_EQ(centre[0].item<uint8_t>(), 220);
  EXPECT_EQ(centre[2].item<uint8_t>(), 30);
  EXPECT_TRUE(throws_with([&] { cut_into_silhouette(red_square, torch::zeros({8, 8, 3}, torch::kUInt8)); },
                          {"cut_into_silhouette"}));
}

TEST(SketchStyle, SmoothWarpMapsAreBoundedAndIdentityAtZero) {
  RowRng rng(9);
  auto [mx, my] = smooth_warp_maps(32, 48, 0.0, 4, rng);
  auto xs = torch::arange(48, torch::kFloat32).expand({32, 48});
  EXPECT_TRUE(torch::allclose(mx, xs));
  auto [wx, wy] = smooth_warp_maps(32, 48, 3.0, 4, rng);
  // Bicubic upsampling overshoots its lattice a little: within 1.5x the amplitude.
  EXPECT_LE((wx - xs).abs().max().item<double>(), 4.5);
  EXPECT_GT((wx - xs).abs().max().item<double>(), 0.1);
}

TEST(HandDrawn, EveryShapeEnclosesASilhouetteOfPlausibleSize) {
  const int canvas = 256;
  for (const auto& name : hand_drawn_shape_names()) {
    RowRng rng(17);
    auto strokes = hand_drawn_shape(name, canvas, rng);
    auto full = rasterise_strokes(strokes, canvas, 1.0);
    auto sil = fill_line_silhouette(full);
    const double area = static_cast<double>(ink(sil)) / (canvas * canvas);
    // Shapes fill 55-85 % of the canvas side: a thin lightning bolt covers ~8 %, a square up to ~60 %; an outline
    // that failed to close would fill only its own lines (~2-4 %).
    EXPECT_GT(area, 0.06) << name << " area " << area;
    EXPECT_LT(area, 0.75) << name;
    EXPECT_GT(ink(sil), ink(full)) << name << ": the outline does not enclose anything";
    // Unfinished drawings have less ink, and grow with the fraction.
    auto a30 = rasterise_strokes(strokes, canvas, 0.3), a60 = rasterise_strokes(strokes, canvas, 0.6);
    EXPECT_LT(ink(a30), ink(a60)) << name;
    EXPECT_LE(ink(a60), ink(full)) << name;
  }
  RowRng rng(1);
  EXPECT_TRUE(throws_with([&] { hand_drawn_shape("dragon", 256, rng); }, {"unknown shape 'dragon'"}));
}

TEST(TransferMetrics, SilhouetteIouAndColourRetrieval) {
  auto a = torch::zeros({10, 10}, torch::kUInt8), b = torch::zeros({10, 10}, torch::kUInt8);
  a.slice(0, 0, 5).fill_(255);
  b.slice(0, 0, 10).slice(1, 0, 5).fill_(1);
  EXPECT_DOUBLE_EQ(silhouette_iou(a, b), 25.0 / 75.0);
  EXPECT_DOUBLE_EQ(silhouette_iou(torch::zeros({3, 3}), torch::zeros({3, 3})), 1.0);
  EXPECT_TRUE(throws_with([&] { silhouette_iou(a, torch::zeros({4, 4})); }, {"silhouette_iou"}));

  auto red = shape_picture(32, false, {220, 30, 30}, false), blue = shape_picture(32, true, {30, 30, 220}, false),
       yellow = shape_picture(32, false, {240, 210, 40}, false), red_square = shape_picture(32, true, {220, 30, 30}, false);
  auto h = [](const torch::Tensor& p) { return colour_histogram(p, figure_mask(p)); };
  EXPECT_NEAR(h(red).sum().item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(histogram_distance(h(red), h(red_square)), 0.0, 1e-6);  // same colour, other shape
  EXPECT_GT(histogram_distance(h(red), h(blue)), 0.9);
  auto gallery = torch::stack({h(blue), h(yellow), h(red), h(blue)}, 0);
  const std::vector<int64_t> labels{0, 1, 2, 0};
  EXPECT_EQ(colour_retrieval_rank(h(red_square), gallery, labels, 2), 1);
  EXPECT_EQ(colour_retrieval_rank(h(blue), gallery, labels, 0), 1);
  EXPECT_GT(colour_retrieval_rank(h(red_square), gallery, labels, 0), 1);
  EXPECT_TRUE(throws_with([&] { colour_retrieval_rank(h(red), gallery, labels, 7); }, {"target label 7"}));
}

TEST(TransferMetrics, BootstrapIntervalsCoverTheMeanAndNarrowWithMoreCases) {
  std::vector<double> few, many;
  RowRng rng(4);
  for (int i = 0; i < 20; ++i) few.push_back(rng.uniform() < 0.5 ? 1.0 : 0.0);
  for (int i = 0; i < 2000; ++i) many.push_back(rng.uniform() < 0.5 ? 1.0 : 0.0);
  auto a = bootstrap_mean(few, 0.95, 2000, 1), b = bootstrap_mean(many, 0.95, 2000, 1);
  EXPECT_LE(a.lo, a.value);
  EXPECT_GE(a.hi, a.value);
  // A proportion's 95 % interval is about +-1.96 sqrt(p (1 - p) / n): ~0.44 wide at n = 20, ~0.044 at n = 2000. The
  // bootstrap's percentile interval lands within 30 % of that (resampling noise at 2000 resamples).
  EXPECT_NEAR(b.hi - b.lo, 2 * 1.96 * std::sqrt(0.25 / 2000), 0.3 * 0.044);
  EXPECT_GT(a.hi - a.lo, 5 * (b.hi - b.lo));
  auto again = bootstrap_mean(few, 0.95, 2000, 1);
  EXPECT_EQ(again.lo, a.lo);  // seeded
  EXPECT_EQ(again.hi, a.hi);
  auto one = bootstrap_mean({0.7});
  EXPECT_EQ(one.lo, 0.7);
  EXPECT_EQ(one.hi, 0.7);
  EXPECT_TRUE(throws_with([] { bootstrap_mean({}); }, {"no values"}));
  EXPECT_TRUE(throws_with([] { bootstrap_mean({1.0, NAN}); }, {"not finite"}));
}
