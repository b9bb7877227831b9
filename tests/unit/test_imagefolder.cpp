// ImageFolder: Hugging Face imagefolder datasets (metadata.jsonl, the legacy manifest.jsonl), header probing of every
// format, bad input left out with one problem each, SANA aspect-ratio buckets, loading at a bucket's exact size, the
// bucketed batch sampler and the loader threads. Every dataset is written here, into a temp folder, with OpenCV.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "picture_samples.h"
#include "sprint/error.h"
#include "sprint/picture_io.h"
#include "sprint/pipeline.h"
#include "sprint/training/imagefolder.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace sprint;
using namespace sprint::training;
using sprint::test::pattern;
using sprint::test::rgb_of;
using sprint::test::with_exif_orientation;

namespace {

struct Threads {
  Threads() { torch::set_num_threads(1); }
} threads_once;

void write_image(const fs::path& path, const cv::Mat& m, const std::vector<int>& params = {}) {
  fs::create_directories(path.parent_path());
  if (!cv::imwrite(path.string(), m, params)) throw Error("cv::imwrite failed for " + path.string());
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  write_bytes(path, text);
}

std::string line(const std::string& file_name, const std::string& text) {
  return json{{"file_name", file_name}, {"text", text}}.dump();
}

std::vector<std::string> names(const ImageFolder& f) {
  std::vector<std::string> out;
  for (const auto& e : f.entries()) out.push_back(e.file_name);
  return out;
}

const ImageEntry& entry_named(const ImageFolder& f, const std::string& name) {
  for (const auto& e : f.entries())
    if (e.file_name == name) return e;
  throw Error("no entry " + name);
}

// How many problem lines mention `what`.
int mentions(const ImageFolder& f, const std::string& what) {
  return static_cast<int>(std::count_if(f.problems().begin(), f.problems().end(),
                                        [&](const std::string& p) { return p.find(what) != std::string::npos; }));
}

std::string all_problems(const ImageFolder& f) {
  std::string s;
  for (const auto& p : f.problems()) s += p + "\n";
  return s;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// ---- buckets ------------------------------------------------------------------------------------------------------

TEST(ImageFolderBuckets, AreSanasTablesScaledFromTheOneInCore) {
  const auto b2048 = aspect_buckets(2048);
  ASSERT_EQ(b2048.size(), 40u);  // diffusers' ASPECT_RATIO_2048_BIN = Sana's ASPECT_RATIO_2048
  EXPECT_EQ(b2048.front(), (Bucket{1024, 4096}));
  EXPECT_EQ(b2048.back(), (Bucket{4096, 1024}));
  EXPECT_NE(std::find(b2048.begin(), b2048.end(), Bucket{2048, 2048}), b2048.end());
  for (const int64_t base : {512, 1024}) {  // exact scalings: Sana's ASPECT_RATIO_512 / _1024
    const auto b = aspect_buckets(base);
    ASSERT_EQ(b.size(), b2048.size());
    for (size_t i = 0; i < b.size(); ++i)
      EXPECT_EQ((Bucket{b[i].height * 2048 / base, b[i].width * 2048 / base}), b2048[i]) << base << " #" << i;
    // Every size diffusers' 512 / 1024 table (the one inference bins to) can give is a bucket.
    for (int h = 2500; h <= 40000; h += 7) {
      const auto bin = resolution_bin(base == 512 ? 16 : 32, h, 10000);
      ASSERT_TRUE(bin);
      EXPECT_NE(std::find(b.begin(), b.end(), Bucket{bin->first, bin->second}), b.end())
          << base << ": " << bin->first << "x" << bin->second;
    }
  }
  for (const int64_t base : {64, 96, 256, 320}) {  // rounded to multiples of 32, each size once
    const auto b = aspect_buckets(base);
    EXPECT_NE(std::find(b.begin(), b.end(), Bucket{base, base}), b.end()) << base;
    for (size_t i = 0; i < b.size(); ++i) {
      EXPECT_TRUE(b[i].height % 32 == 0 && b[i].width % 32 == 0 && b[i].height > 0 && b[i].width > 0) << base;
      for (size_t j = 0; j < i; ++j) EXPECT_NE(b[i], b[j]) << base;
    }
  }
  EXPECT_NE(error_of([] { aspect_buckets(1000); }).find("1000"), std::string::npos);
}

TEST(ImageFolderBuckets, NearestIsByLogRatio) {
  const std::vector<Bucket> b{{32, 64}, {64, 64}, {64, 32}};
  EXPECT_EQ(nearest_bucket(b, 10, 10), 1);
  EXPECT_EQ(nearest_bucket(b, 10, 40), 0);
  EXPECT_EQ(nearest_bucket(b, 40, 10), 2);
  // h / w = 0.72: 0.5 is nearer linearly (0.22 < 0.28), 1 by log ratio (0.329 < 0.365).
  EXPECT_EQ(nearest_bucket(b, 72, 100), 1);
}

// ---- scan and load ------------------------------------------------------------------------------------------------

TEST(ImageFolder, MixedSizesAndFormatsLandInTheirBucketsAndLoadAtItsSize) {
  const fs::path dir = test::temp_dir("imagefolder-mixed");
  write_image(dir / "wide.jpg", pattern(300, 200));
  write_image(dir / "square.png", pattern(128, 128));
  write_image(dir / "tall.webp", pattern(200, 400), {cv::IMWRITE_WEBP_QUALITY, 90});  // lossy: VP8
  write_image(dir / "lossless.webp", pattern(64, 40));                                 // default: VP8L
  cv::Mat bgra;
  cv::cvtColor(pattern(90, 30), bgra, cv::COLOR_BGR2BGRA);
  write_image(dir / "alpha.webp", bgra, {cv::IMWRITE_WEBP_QUALITY, 90});  // opaque alpha: written as VP8
  write_image(dir / "pics/tall.bmp", pattern(50, 100));
  write_image(dir / "pics/flat.tif", pattern(120, 40));
  write_lines(dir / "metadata.jsonl",
              {line("wide.jpg", "a wide picture"), line("square.png", "a square picture"),
               line("tall.webp", "a tall picture"), line("lossless.webp", "lossless"), line("alpha.webp", "alpha"),
               line("pics/tall.bmp", "a bitmap"), line("./pics/flat.tif", "a tiff")});
  ImageFolderOptions o;
  o.resolution = 512;
  const auto f = ImageFolder::scan(dir.string(), o);
  EXPECT_TRUE(f.problems().empty()) << all_problems(f);
  ASSERT_EQ(names(f), (std::vector<std::string>{"wide.jpg", "square.png", "tall.webp", "lossless.webp", "alpha.webp",
                                                "pics/tall.bmp", "pics/flat.tif"}));
  const std::map<std::string, std::pair<int64_t, int64_t>> sizes{  // (width, height) written
      {"wide.jpg", {300, 200}},     {"square.png", {128, 128}},   {"tall.webp", {200, 400}}, {"lossless.webp", {64, 40}},
      {"alpha.webp", {90, 30}},     {"pics/tall.bmp", {50, 100}}, {"pics/flat.tif", {120, 40}}};
  for (const auto& e : f.entries()) {
    EXPECT_EQ(std::pair(e.width, e.height), sizes.at(e.file_name)) << e.file_name;
    EXPECT_EQ(e.bucket, nearest_bucket(f.buckets(), e.height, e.width));
    const auto& b = f.buckets()[static_cast<size_t>(e.bucket)];
    const auto t = f.load(e, b);
    EXPECT_EQ(t.sizes(), (c10::IntArrayRef{b.height, b.width, 3})) << e.file_name;
    EXPECT_EQ(t.dtype(), torch::kUInt8);
  }
  // h / w = 2/3 -> 416 x 608 (0.684: log distance 0.026; 384 x 640 = 0.6 is 0.105 away); 1 -> 512 x 512; 2 -> 704 x 352.
  const auto bucket_of = [&](const std::string& n) { return f.buckets()[static_cast<size_t>(entry_named(f, n).bucket)]; };
  EXPECT_EQ(bucket_of("wide.jpg"), (Bucket{416, 608}));
  EXPECT_EQ(bucket_of("square.png"), (Bucket{512, 512}));
  EXPECT_EQ(bucket_of("tall.webp"), (Bucket{704, 352}));
  // Any bucket, not just the entry's: cover and crop.
  EXPECT_EQ(f.load(entry_named(f, "wide.jpg"), Bucket{64, 32}).sizes(), (c10::IntArrayRef{64, 32, 3}));
}

// Decoding is picture_io's (test_picture_io.cpp: formats, alpha, gray, 16-bit, orientation); at a picture's own size
// load gives exactly its decoded picture (no resize, no crop).
TEST(ImageFolder, LoadsTheDecodedPictureAtItsOwnSize) {
  const fs::path dir = test::temp_dir("imagefolder-pixels");
  const cv::Mat pic = pattern(300, 200);
  write_image(dir / "pic.jpg", pic, {cv::IMWRITE_JPEG_QUALITY, 95});
  cv::Mat bgra;
  cv::cvtColor(pic, bgra, cv::COLOR_BGR2BGRA);
  bgra.col(7).setTo(cv::Scalar(0, 0, 0, 0));  // one transparent column
  write_image(dir / "alpha.png", bgra);
  write_lines(dir / "metadata.jsonl", {line("pic.jpg", "j"), line("alpha.png", "a")});
  ImageFolderOptions o;
  o.buckets = {{200, 300}};
  const auto f = ImageFolder::scan(dir.string(), o);
  ASSERT_EQ(f.size(), 2);
  for (const auto& e : f.entries()) EXPECT_TRUE(torch::equal(f.load(e, {200, 300}), read_picture(e.file))) << e.file;
  EXPECT_TRUE(torch::equal(f.load(entry_named(f, "alpha.png"), {200, 300}).select(1, 7),
                           torch::full({200, 3}, 255, torch::kUInt8)));
}

TEST(ImageFolder, JpegExifOrientationTurnsThePicture) {
  const fs::path dir = test::temp_dir("imagefolder-exif");
  const cv::Mat pic = pattern(300, 200);
  write_image(dir / "plain.jpg", pic, {cv::IMWRITE_JPEG_QUALITY, 95});
  write_bytes(dir / "turned.jpg", with_exif_orientation(read_bytes(dir / "plain.jpg"), 6));  // 90 degrees clockwise
  write_lines(dir / "metadata.jsonl", {line("turned.jpg", "a picture turned by its Exif orientation")});
  ImageFolderOptions o;
  o.buckets = {{200, 300}, {300, 200}};
  const auto f = ImageFolder::scan(dir.string(), o);
  const auto& e = f.entries().at(0);
  EXPECT_EQ(std::pair(e.width, e.height), std::pair(int64_t{200}, int64_t{300}));  // as shown
  EXPECT_EQ(e.bucket, 1);
  // Loaded as shown: its decoded picture, turned (the turn itself is tested in test_picture_io.cpp).
  EXPECT_TRUE(torch::equal(f.load(e, Bucket{300, 200}), read_picture(e.file)));
}

namespace {

// A dataset with every kind of bad input next to good pictures (14 problems; 13 without verify).
fs::path write_bad_dataset(const std::string& tag) {
  const fs::path root = test::temp_dir(tag), dir = root / "data";
  write_image(dir / "a.jpg", pattern(300, 200));
  write_image(dir / "b.png", pattern(128, 128));
  write_image(dir / "c.webp", pattern(200, 400));
  write_image(dir / "sub/d.png", pattern(64, 64));
  write_image(dir / "e.png", pattern(64, 64));
  write_image(root / "escape.png", pattern(64, 64));  // exists: only the check keeps it out
  const std::string png = read_bytes(dir / "b.png");
  write_bytes(dir / "truncated.png", png.substr(0, png.size() / 2));  // header intact, image data cut
  write_bytes(dir / "stub.png", png.substr(0, 20));                    // cut inside the header
  std::mt19937 rng(7);
  std::string noise(2000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng() & 0xFF);
  noise[0] = 'x';
  write_bytes(dir / "noise.jpg", noise);
  // A PNG header of 100000 x 100000 (10 G pixels) and nothing to decode.
  write_bytes(dir / "huge.png", png.substr(0, 16) + std::string("\x00\x01\x86\xA0\x00\x01\x86\xA0", 8) + png.substr(24));
  fs::create_directories(dir / "folder.png");
  write_lines(dir / "metadata.jsonl",
              {line("a.jpg", "a"),                                                                      // 1
               json{{"file_name", "b.png"}, {"text", "b"}, {"extra", {{"nested", {1, 2}}}}, {"score", 0.5}}.dump(),
               line("c.webp", "c"),                                                                     // 3
               line("truncated.png", "cut in its image data"),                                          // 4
               line("noise.jpg", "not a picture"),                                                      // 5
               line("missing.png", "never written"),                                                    // 6
               R"({"file_name": "e.png", "text": )",                                                    // 7: not JSON
               R"({"text": "no file name"})",                                                           // 8
               line("e.png", "   "),                                                                    // 9: empty text
               R"({"file_name": "e.png"})",                                                             // 10: no text
               line("../escape.png", "outside"),                                                        // 11
               line((root / "escape.png").string(), "absolute"),                                        // 12
               line("a.jpg", "a again"),                                                                // 13: duplicate
               line("huge.png", "too many pixels"),                                                     // 14
               line("folder.png", "a folder"),                                                          // 15
               line("stub.png", "cut in its header"),                                                   // 16
               "",                                                                                      // blank: skipped
               "[1, 2]"});                                                                              // 18
  write_lines(dir / "sub/metadata.jsonl", {line("d.png", "d, named relative to sub/")});
  return dir;
}

}  // namespace

TEST(ImageFolder, BadInputIsReportedOnceEachAndGoodPicturesAreKept) {
  const fs::path dir = write_bad_dataset("imagefolder-bad");
  ImageFolderOptions o;
  o.verify = true;
  const auto f = ImageFolder::scan(dir.string(), o);
  EXPECT_EQ(names(f), (std::vector<std::string>{"a.jpg", "b.png", "c.webp", "sub/d.png"}));
  const std::string why = all_problems(f);
  EXPECT_EQ(f.problems().size(), 14u) << why;
  const std::vector<std::string> bad{"truncated.png", "noise.jpg", "missing.png", "../escape.png", "huge.png",
                                     "folder.png",    "stub.png",  (dir.parent_path() / "escape.png").string()};
  for (const auto& name : bad)
    EXPECT_EQ(mentions(f, name), 1) << name << "\n" << why;
  for (int l : {7, 8, 9, 10, 11, 12, 13, 18}) EXPECT_EQ(mentions(f, str("metadata.jsonl:", l, ":")), 1) << l << "\n" << why;
  EXPECT_EQ(mentions(f, "more than the limit"), 1) << why;  // huge.png: refused from its header, never decoded
  EXPECT_EQ(mentions(f, "already named at"), 1) << why;
  EXPECT_EQ(mentions(f, "cannot be decoded"), 1) << why;  // truncated.png, found by verify
  // The same with scan threads.
  o.threads = 3;
  const auto g = ImageFolder::scan(dir.string(), o);
  EXPECT_EQ(names(g), names(f));
  EXPECT_EQ(g.problems(), f.problems());
}

TEST(ImageFolder, WithoutVerifyAPictureCutInItsDataFailsAtLoadNamingTheFile) {
  const fs::path dir = write_bad_dataset("imagefolder-noverify");
  const auto f = ImageFolder::scan(dir.string());
  EXPECT_EQ(f.problems().size(), 13u) << all_problems(f);  // all but truncated.png, whose header is whole
  const auto& e = entry_named(f, "truncated.png");
  const auto msg = error_of([&] { f.load(e, f.buckets()[static_cast<size_t>(e.bucket)]); });
  EXPECT_NE(msg.find("truncated.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot be decoded"), std::string::npos) << msg;
  // A file gone since the scan.
  fs::remove(dir / "a.jpg");
  const auto gone = error_of([&] { f.load(entry_named(f, "a.jpg"), Bucket{32, 32}); });
  EXPECT_NE(gone.find("a.jpg"), std::string::npos) << gone;
}

TEST(ImageFolder, NothingUsableThrowsNamingTheFolder) {
  const fs::path dir = test::temp_dir("imagefolder-allbad");
  write_bytes(dir / "noise.png", "not a picture at all");
  write_lines(dir / "metadata.jsonl", {line("noise.png", "n"), line("missing.jpg", "m"), "{"});
  auto msg = error_of([&] { ImageFolder::scan(dir.string()); });
  EXPECT_NE(msg.find(dir.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no usable picture (3 problems"), std::string::npos) << msg;

  const fs::path empty = test::temp_dir("imagefolder-nometa");
  write_image(empty / "a.png", pattern(8, 8));
  msg = error_of([&] { ImageFolder::scan(empty.string()); });
  EXPECT_NE(msg.find(empty.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("no metadata.jsonl"), std::string::npos) << msg;

  msg = error_of([&] { ImageFolder::scan((empty / "nowhere").string()); });
  EXPECT_NE(msg.find("nowhere"), std::string::npos) << msg;
}

TEST(ImageFolder, ReadsTheLegacyManifest) {
  const fs::path dir = test::temp_dir("imagefolder-legacy");
  write_image(dir / "images/apple.png", pattern(64, 64));
  write_image(dir / "images/pear.png", pattern(64, 64));
  write_lines(dir / "manifest.jsonl",
              {R"({"id": "apple", "file": "images/apple.png", "caption": "a red apple",)"
               R"( "captions": ["a red apple", "an apple"], "split": "train"})",
               R"({"id": "pear", "file": "images/pear.png", "captions": ["a green pear"], "split": "heldout"})",
               R"({"id": "plum", "file": "images/plum.png", "caption": "a plum", "split": "train"})"});
  ImageFolderOptions o;
  o.buckets = {{64, 64}};
  const auto f = ImageFolder::scan((dir / "").string(), o);  // a trailing separator changes nothing
  ASSERT_EQ(names(f), (std::vector<std::string>{"images/apple.png", "images/pear.png"}));
  EXPECT_EQ(f.entries()[0].text, "a red apple");
  EXPECT_EQ(f.entries()[0].split, "train");
  EXPECT_EQ(f.entries()[1].text, "a green pear");
  EXPECT_EQ(f.entries()[1].split, "heldout");
  EXPECT_EQ(mentions(f, "plum.png"), 1) << all_problems(f);
  EXPECT_TRUE(torch::equal(f.load(f.entries()[0], {64, 64}), rgb_of(pattern(64, 64))));
}

// ---- sampler and loader threads -----------------------------------------------------------------------------------

namespace {

// 10 square entries, 7 of 1:2, one of 2:1 (too few for a batch: merged into its nearest bucket, the square one).
std::pair<std::vector<ImageEntry>, std::vector<Bucket>> sampler_entries() {
  const std::vector<Bucket> buckets{{32, 64}, {64, 64}, {64, 32}};
  std::vector<ImageEntry> e;
  const auto add = [&](int64_t bucket, int n) {
    for (int i = 0; i < n; ++i) e.push_back({"", str("b", bucket, "-", i), "t", "", 1, 1, bucket});
  };
  add(1, 6), add(0, 7), add(2, 1), add(1, 4);
  return {e, buckets};
}

}  // namespace

TEST(BucketBatchSampler, OneBucketPerStepDeterministicAndSplitOverRanks) {
  const auto [entries, buckets] = sampler_entries();
  const BucketBatchSampler s(entries, buckets, 4, 11), again(entries, buckets, 4, 11), other(entries, buckets, 4, 12);
  EXPECT_EQ(s.steps_per_epoch(), 3 + 2);  // 11 square (with the 2:1 one) -> 3 batches, 7 of 1:2 -> 2
  bool differs = false;
  for (int64_t step = 0; step < 3 * s.steps_per_epoch(); ++step) {
    const auto st = s.step(step);
    ASSERT_EQ(st.indices.size(), 4u);
    EXPECT_EQ(std::set<int64_t>(st.indices.begin(), st.indices.end()).size(), 4u) << step;  // no repeat in a batch
    for (const int64_t i : st.indices) {
      const int64_t b = entries[static_cast<size_t>(i)].bucket;
      EXPECT_EQ(b == 2 ? 1 : b, st.bucket) << step;
    }
    const auto a = again.step(step);
    EXPECT_EQ(a.indices, st.indices);
    EXPECT_EQ(a.bucket, st.bucket);
    differs |= other.step(step).indices != st.indices;
    const auto r0 = s.step(step, 0, 2), r1 = s.step(step, 1, 2);
    EXPECT_EQ(r0.bucket, st.bucket);
    EXPECT_EQ(r1.bucket, st.bucket);
    auto joined = r0.indices;
    joined.insert(joined.end(), r1.indices.begin(), r1.indices.end());
    EXPECT_EQ(joined, st.indices) << step;
  }
  EXPECT_TRUE(differs);
  // Resume: a fresh sampler asked for a late step first gives what the running one gave.
  const BucketBatchSampler resumed(entries, buckets, 4, 11);
  EXPECT_EQ(resumed.step(13).indices, s.step(13).indices);
  // Every entry at least once per epoch.
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    for (int64_t k = 0; k < s.steps_per_epoch(); ++k)
      for (const int64_t i : s.step(epoch * s.steps_per_epoch() + k).indices) seen.insert(i);
    EXPECT_EQ(seen.size(), entries.size()) << epoch;
  }
  const auto msg = error_of([&] { s.step(0, 0, 3); });
  EXPECT_NE(msg.find("world size must divide the batch"), std::string::npos) << msg;
  EXPECT_THROW(s.step(0, 2, 2), Error);
}

TEST(BucketBatchSampler, ADatasetSmallerThanABatchRepeatsEntries) {
  const std::vector<Bucket> buckets{{64, 64}, {32, 64}};
  const std::vector<ImageEntry> entries{{"", "x", "t", "", 1, 1, 0}, {"", "y", "t", "", 1, 1, 1}, {"", "z", "t", "", 1, 1, 0}};
  const BucketBatchSampler s(entries, buckets, 5, 3);
  EXPECT_EQ(s.steps_per_epoch(), 1);
  const auto st = s.step(4);
  EXPECT_EQ(st.bucket, 0);
  EXPECT_EQ(st.indices.size(), 5u);
  EXPECT_EQ(std::set<int64_t>(st.indices.begin(), st.indices.end()).size(), 3u);
}

TEST(BatchPrefetcher, ThreadsGiveTheInlineBatches) {
  const fs::path dir = test::temp_dir("imagefolder-prefetch");
  std::vector<std::string> lines;
  const std::vector<std::pair<int, int>> sizes{{90, 60}, {60, 90}, {64, 64}, {120, 80}, {40, 80},
                                               {70, 70}, {99, 66}, {30, 60}, {50, 50}, {81, 54}};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto name = str("p", i, i % 2 ? ".png" : ".jpg");
    write_image(dir / name, pattern(sizes[i].first, sizes[i].second));
    lines.push_back(line(name, str("picture ", i)));
  }
  write_lines(dir / "metadata.jsonl", lines);
  ImageFolderOptions o;
  o.resolution = 64;
  const auto f = ImageFolder::scan(dir.string(), o);
  ASSERT_EQ(f.size(), 10);
  const BucketBatchSampler s(f.entries(), f.buckets(), 4, 5);
  for (const int64_t world : {1, 2}) {
    BatchPrefetcher inline_loader(f, s, 0, world - 1, world), threaded(f, s, 3, world - 1, world);
    for (const int64_t step : {0, 1, 2, 3, 4, 5, 9, 2, 3}) {  // in order, then jumps (a prefetch is dropped)
      const auto a = inline_loader.next(step), b = threaded.next(step);
      EXPECT_EQ(b.step, step);
      EXPECT_EQ(a.bucket, b.bucket);
      EXPECT_EQ(a.indices, b.indices);
      EXPECT_EQ(a.indices, s.step(step, world - 1, world).indices);
      EXPECT_EQ(a.texts, b.texts);
      EXPECT_EQ(a.images.sizes(), (c10::IntArrayRef{4 / world, a.bucket.height, a.bucket.width, 3}));
      EXPECT_TRUE(torch::equal(a.images, b.images)) << "step " << step;
      for (size_t r = 0; r < a.indices.size(); ++r)
        EXPECT_TRUE(torch::equal(a.images[static_cast<int64_t>(r)],
                                 f.load(f.entries()[static_cast<size_t>(a.indices[r])], a.bucket)));
    }
  }
  // A picture broken after the scan: that step throws, naming it, with and without threads.
  write_bytes(dir / "p1.png", "broken");
  for (const int threads : {0, 2}) {
    BatchPrefetcher loader(f, s, threads);
    bool named = false;
    for (int64_t step = 0; step < s.steps_per_epoch(); ++step) {
      const auto msg = error_of([&] { loader.next(step); });
      named |= msg.find("p1.png") != std::string::npos;
    }
    EXPECT_TRUE(named) << threads;
  }
}
