// Training pictures from a Hugging Face "imagefolder" dataset, in SANA-style aspect-ratio buckets.
//
// The folder (searched recursively) holds image files and metadata.jsonl files, one JSON object a line:
//   {"file_name": "cats/tabby.jpg", "text": "a tabby cat asleep on a sofa", ...}
// file_name is relative to the folder holding that metadata.jsonl and must stay inside it (relative, no ".."); other
// columns are ignored, whatever their type. A folder with no metadata.jsonl but the manifest.jsonl of
// training/data/build_emoji_dataset.py ({"file", "caption" / "captions", "split"}) is read as the same thing:
// file -> file_name, caption (else captions[0]) -> text, split kept.
// Formats: JPEG, PNG, WebP, BMP and TIFF, told apart by their first bytes (never by the name), probed and decoded by
// sprint/picture_io.h.
//
// Scanning a dataset of 100k+ pictures must not decode them all. The scan reads each file's header (a few small reads:
// PNG IHDR, JPEG frame header and Exif orientation, WebP VP8/VP8L/VP8X, BMP and TIFF headers) for its size and its
// bucket; options.verify also decodes every picture, which finds truncated or corrupt image data, at decoding cost.
// One bad item never stops the scan, and no good item is lost: a bad metadata line (not JSON, no file_name, no or
// empty text, a file_name leaving the folder, a file_name named twice), a missing or unreadable file, one that is
// not one of the formats, or one over the size limits is left out with one problem line naming it (and the metadata
// file and line). The caller decides whether to print them.
//
// Buckets follow SANA's multi-scale training (NVlabs Sana, diffusion/data/datasets/utils.py: ASPECT_RATIO_256 ...
// ASPECT_RATIO_2048, all one table scaled to the base resolution): each picture trains at the bucket whose aspect
// ratio is nearest to its own, resized to cover it and centre-cropped. Each step's batch comes from one bucket.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sprint::training {

struct Bucket {
  int64_t height = 0, width = 0;  // pixels
  bool operator==(const Bucket&) const = default;
};

// SANA's buckets for base resolution `base`: the 2048 px table (diffusers' ASPECT_RATIO_2048_BIN, which core holds
// for resolution_bin; Sana's own ASPECT_RATIO_{256,512,1024} are it scaled by base / 2048) scaled by base / 2048,
// each side rounded to the nearest multiple of `multiple` (at least one multiple; 32: the DC-AE's downsampling), sizes
// that round alike kept once. In the table's order (aspect ratio h / w ascending, 1/4 to 4). For base 512, 1024 and
// 2048 the scaling is exact: Sana's tables, which hold every entry of diffusers' 512 and 1024 tables too.
// Throws unless base is a positive multiple of `multiple`.
std::vector<Bucket> aspect_buckets(int64_t base, int64_t multiple = 32);

// The index of the bucket whose aspect ratio is nearest to height / width by log ratio, |log(h / w) - log(bh / bw)|
// (so 2:1 and 1:2 are equally far from 1:1); a tie goes to the first.
int64_t nearest_bucket(const std::vector<Bucket>& buckets, int64_t height, int64_t width);

struct ImageEntry {
  std::string file;               // the image's path: the dataset folder joined with file_name
  std::string file_name;          // relative to the dataset folder (normalised; includes the metadata's subfolder)
  std::string text;               // the caption
  std::string split;              // the legacy manifest's "split"; empty from metadata.jsonl
  int64_t width = 0, height = 0;  // as shown: a JPEG's Exif orientation applied
  int64_t bucket = 0;             // index into ImageFolder::buckets()
};

struct ImageFolderOptions {
  std::string text_column = "text";  // the metadata.jsonl column holding the caption
  int64_t resolution = 1024;         // base resolution of the buckets (aspect_buckets(resolution))
  std::vector<Bucket> buckets;       // when not empty, these buckets instead ({{R, R}}: everything square)
  // A picture of more pixels is refused from its header, before any decoding (64 Mi = 8192 x 8192; a decoded RGBA
  // picture of that size takes 256 MiB, per loader thread).
  int64_t max_pixels = int64_t{64} << 20;
  size_t max_file_bytes = size_t{256} << 20;     // a larger image file is refused without being read
  size_t max_metadata_bytes = size_t{1} << 30;   // per metadata.jsonl (read whole; 1M lines of captions fit)
  bool verify = false;                           // decode every picture while scanning (see the top)
  int threads = 0;                               // scan threads (header reads, verify); 0: the calling thread
};

class ImageFolder {
 public:
  // Reads the dataset at `dir`. Throws naming `dir` when it is not a folder, has neither metadata.jsonl nor
  // manifest.jsonl, or keeps no entry (the message gives the first problem).
  static ImageFolder scan(const std::string& dir, const ImageFolderOptions& options = {});

  const std::string& dir() const { return dir_; }
  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  const std::vector<ImageEntry>& entries() const { return entries_; }
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // What was left out and why, one line each, in reading order ("<file> (<metadata>:<line>): <why>" for a picture,
  // "<metadata>:<line>: <why>" for a line).
  const std::vector<std::string>& problems() const { return problems_; }

  // The picture of `entry` at exactly bucket.height x bucket.width: decoded (a JPEG turned by its Exif orientation;
  // gray spread to RGB; alpha composited on white, as transparent pixels have no colour to train on and the
  // project's pictures are drawn on white; 16-bit samples scaled to 8), resized so it covers the bucket (area
  // averaging when shrinking, bicubic when enlarging) and centre-cropped. (H, W, 3) uint8 RGB. Safe to call from
  // several threads. Throws naming the file when it can no longer be read or decoded or breaks a limit.
  torch::Tensor load(const ImageEntry& entry, const Bucket& bucket) const;

 private:
  std::string dir_;
  ImageFolderOptions options_;
  std::vector<ImageEntry> entries_;
  std::vector<Bucket> buckets_;
  std::vector<std::string> problems_;
};

// Which entries each training step uses. Every step's global batch comes from one bucket, so its pictures stack.
// Each epoch (seeded by seed and the epoch number) permutes every bucket's entries, cuts each permutation into batches
// and shuffles the order of all those batches; a bucket's last, partial batch is filled from the start of its own
// permutation, so every entry is seen at least once per epoch and never twice in one batch. A bucket holding fewer
// entries than one batch is merged, smallest first, into the bucket nearest in aspect ratio (log ratio) until every
// bucket holds a batch (or one is left): its entries train at that bucket's size, more cropped, rather than repeated
// within a batch. Only a dataset smaller than one batch repeats entries within a batch.
// A step's batch depends only on (the entries' buckets, batch, seed, step): a resumed run sees the same batches.
// Rank r of `world` takes the contiguous rows [r * batch / world, (r + 1) * batch / world) of the global batch.
class BucketBatchSampler {
 public:
  // `buckets` are those the entries' bucket indices point into (ImageFolder::buckets()).
  BucketBatchSampler(const std::vector<ImageEntry>& entries, const std::vector<Bucket>& buckets, int64_t batch,
                     uint64_t seed);

  struct Step {
    int64_t bucket = 0;            // the bucket every row loads at
    std::vector<int64_t> indices;  // entries of the rank's rows
  };
  // The rank's slice of the global batch at `step`. Throws unless 0 <= rank < world and world divides the batch.
  // Safe to call from several threads.
  Step step(int64_t step, int64_t rank = 0, int64_t world = 1) const;
  int64_t steps_per_epoch() const { return steps_per_epoch_; }

 private:
  struct Group {
    int64_t bucket;
    std::vector<int64_t> members;  // entry indices, ascending
  };
  void plan_epoch(int64_t epoch) const;  // caller holds mutex_

  std::vector<Group> groups_;
  int64_t batch_;
  uint64_t seed_;
  int64_t steps_per_epoch_ = 0;
  mutable std::mutex mutex_;
  mutable int64_t planned_epoch_ = -1;
  mutable std::vector<std::vector<int64_t>> perms_;        // per group: its permutation this epoch
  mutable std::vector<std::pair<int64_t, int64_t>> order_;  // per step of the epoch: (group, batch of the group)
};

struct ImageBatch {
  int64_t step = 0;
  Bucket bucket;
  torch::Tensor images;            // (B, H, W, 3) uint8 RGB; B = the rank's share of the batch
  std::vector<std::string> texts;  // per row
  std::vector<int64_t> indices;    // per row, into the folder's entries
};

// Loads the next step's batch on `threads` std::threads while the current step trains: next(s) hands out the batch of
// step s (the one prefetched when it was s, else loaded now) and starts loading s + 1. threads = 0 loads inline, in
// next(), without prefetching. The batches are the same either way (load() is a pure function of the file and the
// bucket). A picture that fails to load makes next() throw for that step, naming the file. `folder` and `sampler`
// must outlive the prefetcher; destroying it waits for its threads.
class BatchPrefetcher {
 public:
  BatchPrefetcher(const ImageFolder& folder, const BucketBatchSampler& sampler, int threads, int64_t rank = 0,
                  int64_t world = 1);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  ImageBatch next(int64_t step);

 private:
  struct Job;
  std::unique_ptr<Job> start(int64_t step) const;

  const ImageFolder& folder_;
  const BucketBatchSampler& sampler_;
  int threads_;
  int64_t rank_, world_;
  std::unique_ptr<Job> pending_;
};

}  // namespace sprint::training
