// See include/sprint/training/imagefolder.h.
#include "sprint/training/imagefolder.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <tuple>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/json_depth.h"
#include "sprint/picture_io.h"
#include "sprint/pipeline.h"
#include "sprint/training/sampling.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training {
namespace {

// ---- cover and crop -------------------------------------------------------------------------------------------------

// Covers `b` by a uniform resize (area averaging when shrinking, bicubic when enlarging), then centre crop, into
// `out` (b.height x b.width x 3).
void cover_crop(const cv::Mat& img, const Bucket& b, cv::Mat& out) {
  const double s = std::max(static_cast<double>(b.height) / img.rows, static_cast<double>(b.width) / img.cols);
  const int rw = static_cast<int>(std::max<int64_t>(b.width, std::llround(img.cols * s)));
  const int rh = static_cast<int>(std::max<int64_t>(b.height, std::llround(img.rows * s)));
  cv::Mat r = img;
  if (rw != img.cols || rh != img.rows)
    cv::resize(img, r, cv::Size(rw, rh), 0, 0, s < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  r(cv::Rect((rw - static_cast<int>(b.width)) / 2, (rh - static_cast<int>(b.height)) / 2, static_cast<int>(b.width),
             static_cast<int>(b.height)))
      .copyTo(out);
}

// ---- threads --------------------------------------------------------------------------------------------------------

// Runs body(i) for every i in [0, n) on up to `threads` std::threads, started by the constructor and joined by wait()
// (or the destructor); threads = 0 runs them all in the constructor, on the calling thread. body must not throw.
class Workers {
 public:
  Workers(size_t n, int threads, std::function<void(size_t)> body) : n_(n), body_(std::move(body)) {
    const size_t count = std::min(static_cast<size_t>(std::max(threads, 0)), n);
    if (count == 0) drain();
    try {
      for (size_t t = 0; t < count; ++t) threads_.emplace_back([this] { drain(); });
    } catch (...) {  // could not start a thread: the started ones finish the work
      wait();
      throw;
    }
  }
  ~Workers() { wait(); }
  void wait() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void drain() {
    for (size_t i = next_++; i < n_; i = next_++) body_(i);
  }
  size_t n_;
  std::function<void(size_t)> body_;
  std::atomic<size_t> next_{0};
  std::vector<std::thread> threads_;
};

// ---- metadata -------------------------------------------------------------------------------------------------------

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

// A metadata file_name -> its path relative to the dataset folder; throws when it is empty or leaves its folder.
fs::path dataset_path(const fs::path& meta_folder, const std::string& name) {
  SPRINT_CHECK(!name.empty() && name.find('\0') == std::string::npos, "file_name is empty or holds a NUL character");
  const fs::path p(name);
  SPRINT_CHECK(!p.has_root_path(), "file_name '", name, "' is an absolute path: it must be relative to the folder");
  for (const auto& part : p) SPRINT_CHECK(part != "..", "file_name '", name, "' leaves the folder ('..')");
  return (meta_folder / p).lexically_normal();
}

// One metadata line -> (file_name, text, split); throws saying what is missing.
std::tuple<std::string, std::string, std::string> read_line(const std::string& line, bool legacy,
                                                            const std::string& text_column) {
  constexpr int kMaxDepth = 32;
  json j;
  try {
    j = json::parse(line, json_depth_limit(kMaxDepth, str("nests JSON values more than ", kMaxDepth, " deep")));
  } catch (const json::exception& e) {
    throw Error(str("not valid JSON: ", e.what()));
  }
  SPRINT_CHECK(j.is_object(), "not a JSON object");
  const char* file_key = legacy ? "file" : "file_name";
  SPRINT_CHECK(j.contains(file_key) && j[file_key].is_string(), "no \"", file_key, "\" string");
  std::string text;
  if (!legacy) {
    SPRINT_CHECK(j.contains(text_column) && j[text_column].is_string(), "no \"", text_column, "\" string");
    text = j[text_column].get<std::string>();
  } else if (j.contains("caption") && j["caption"].is_string()) {
    text = j["caption"].get<std::string>();
  } else {
    SPRINT_CHECK(j.contains("captions") && j["captions"].is_array() && !j["captions"].empty() &&
                     j["captions"][0].is_string(),
                 "no \"caption\" or \"captions\" string");
    text = j["captions"][0].get<std::string>();
  }
  SPRINT_CHECK(!blank(text), "empty text");
  const std::string split = legacy && j.contains("split") && j["split"].is_string() ? j["split"].get<std::string>() : "";
  return {j[file_key].get<std::string>(), text, split};
}

// The metadata.jsonl files under `dir` (sorted, so entries come in the same order on every machine), or the legacy
// manifest.jsonl when there is none.
std::pair<std::vector<fs::path>, bool> metadata_files(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->path().filename() == "metadata.jsonl") found.push_back(it->path());
  SPRINT_CHECK(!ec, "image folder '", dir.string(), "' cannot be listed: ", ec.message());
  std::sort(found.begin(), found.end());
  if (!found.empty()) return {found, false};
  SPRINT_CHECK(fs::exists(dir / "manifest.jsonl"), "image folder '", dir.string(),
               "' has no metadata.jsonl (lines {\"file_name\": ..., \"text\": ...}) nor a legacy manifest.jsonl");
  return {{dir / "manifest.jsonl"}, true};
}

}  // namespace

// ---- buckets --------------------------------------------------------------------------------------------------------

std::vector<Bucket> aspect_buckets(int64_t base, int64_t multiple) {
  SPRINT_CHECK(multiple >= 1 && base >= multiple && base % multiple == 0, "bucket base resolution ", base,
               " must be a positive multiple of ", multiple);
  // The 2048 px table is read back through resolution_bin (sample_size 64), so the numbers live once, in core. It maps
  // h / w to the entry of nearest ratio key; the keys lie in [1/4, 4], at least 0.01 apart, so h / w swept over
  // [1/4, 4] in steps of 1e-4 meets every entry, in ascending key order.
  static const std::vector<Bucket> table = [] {
    std::vector<Bucket> t;
    for (int h = 2500; h <= 40000; ++h) {
      const auto bin = resolution_bin(64, h, 10000);
      SPRINT_CHECK(bin, "resolution_bin has no 2048 px table");
      const Bucket b{bin->first, bin->second};
      if (t.empty() || !(t.back() == b)) t.push_back(b);
    }
    return t;
  }();
  const auto scaled = [&](int64_t side) {
    const double s = static_cast<double>(side) * static_cast<double>(base) / 2048.0 / static_cast<double>(multiple);
    return std::max<int64_t>(1, std::llround(s)) * multiple;
  };
  std::vector<Bucket> out;
  for (const auto& b : table) {
    const Bucket s{scaled(b.height), scaled(b.width)};
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

int64_t nearest_bucket(const std::vector<Bucket>& buckets, int64_t height, int64_t width) {
  SPRINT_CHECK(!buckets.empty() && height > 0 && width > 0, "nearest_bucket: no buckets or a size ", width, "x",
               height);
  const double r = std::log(static_cast<double>(height) / static_cast<double>(width));
  int64_t best = 0;
  double best_d = INFINITY;
  for (size_t i = 0; i < buckets.size(); ++i) {
    const double d =
        std::abs(r - std::log(static_cast<double>(buckets[i].height) / static_cast<double>(buckets[i].width)));
    if (d < best_d) best = static_cast<int64_t>(i), best_d = d;
  }
  return best;
}

// ---- scan and load --------------------------------------------------------------------------------------------------

ImageFolder ImageFolder::scan(const std::string& dir, const ImageFolderOptions& options) {
  SPRINT_CHECK(fs::is_directory(dir), "image folder '", dir, "' does not exist or is not a folder");
  SPRINT_CHECK(options.max_pixels >= 1 && options.threads >= 0 && !options.text_column.empty(),
               "image folder '", dir, "': max_pixels must be >= 1, threads >= 0 and text_column not empty");
  ImageFolder f;
  f.dir_ = dir;
  f.options_ = options;
  f.buckets_ = options.buckets.empty() ? aspect_buckets(options.resolution) : options.buckets;
  for (const auto& b : f.buckets_)
    SPRINT_CHECK(b.height >= 1 && b.width >= 1 && b.height <= 65536 && b.width <= 65536, "image folder '", dir,
                 "': bucket ", b.width, "x", b.height, " must have sides in [1, 65536]");

  // One row per metadata line (or unreadable metadata file): an entry to check, or why it was left out.
  struct Row {
    std::optional<ImageEntry> entry;
    std::string where;    // "<metadata>:<line>"
    std::string problem;
  };
  std::vector<Row> rows;
  std::map<std::string, std::string> named;  // file_name -> where first named
  const auto [metas, legacy] = metadata_files(dir);
  for (const auto& meta : metas) {
    std::string text;
    try {
      text = read_small_file(meta.string(), options.max_metadata_bytes);
    } catch (const std::exception& e) {
      rows.push_back({std::nullopt, "", str(message_of(e), " (no line of it read)")});
      continue;
    }
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte order mark
    const fs::path folder = meta.parent_path().lexically_relative(dir);
    size_t lineno = 0;
    for (size_t begin = 0; begin < text.size();) {
      const size_t end = std::min(text.find('\n', begin), text.size());
      const std::string line = text.substr(begin, end - begin);
      begin = end + 1;
      ++lineno;
      if (blank(line)) continue;
      Row row;
      row.where = str(meta.string(), ":", lineno);
      try {
        auto [name, caption, split] = read_line(line, legacy, options.text_column);
        const std::string rel = dataset_path(folder, name).generic_string();
        const auto [it, fresh] = named.emplace(rel, row.where);
        SPRINT_CHECK(fresh, "'", rel, "' is already named at ", it->second);
        row.entry = ImageEntry{(fs::path(dir) / rel).string(), rel, std::move(caption), std::move(split), 0, 0, 0};
      } catch (const std::exception& e) {
        row.problem = str(row.where, ": ", message_of(e));
      }
      rows.push_back(std::move(row));
    }
  }

  Workers(rows.size(), options.threads, [&](size_t i) {
    Row& row = rows[i];
    if (!row.entry) return;
    ImageEntry& e = *row.entry;
    const std::string what = str("'", e.file, "' (", row.where, ")");  // every problem line starts with it
    try {
      const PictureHeader h = probe_picture_file(e.file, what, options.max_pixels);  // a few small reads
      std::error_code ec;
      const auto bytes = fs::file_size(e.file, ec);
      SPRINT_CHECK(!ec, what, ": cannot be read: ", ec.message());
      SPRINT_CHECK(bytes <= options.max_file_bytes, what, ": is ", bytes, " bytes, more than the limit of ",
                   options.max_file_bytes);
      if (options.verify) decode_picture(read_small_file(e.file, options.max_file_bytes), what, options.max_pixels);
      e.width = h.shown_width();
      e.height = h.shown_height();
      e.bucket = nearest_bucket(f.buckets_, e.height, e.width);
    } catch (const std::exception& ex) {
      row.problem = message_of(ex);
      row.entry.reset();
    }
  }).wait();

  for (auto& row : rows) {
    if (row.entry) f.entries_.push_back(std::move(*row.entry));
    else f.problems_.push_back(std::move(row.problem));
  }
  SPRINT_CHECK(!f.entries_.empty(), "image folder '", dir, "' has no usable picture",
               f.problems_.empty() ? std::string(": its metadata lists none")
                                   : str(" (", f.problems_.size(), " problems; the first: ", f.problems_.front(), ")"));
  return f;
}

torch::Tensor ImageFolder::load(const ImageEntry& entry, const Bucket& bucket) const {
  SPRINT_CHECK(bucket.height >= 1 && bucket.width >= 1, "bucket ", bucket.width, "x", bucket.height, " is empty");
  const std::string what = str("image '", entry.file, "'");
  const auto picture = decode_picture(read_small_file(entry.file, options_.max_file_bytes), what, options_.max_pixels);
  return with_context(what, [&] {
    const cv::Mat rgb(static_cast<int>(picture.size(0)), static_cast<int>(picture.size(1)), CV_8UC3,
                      picture.data_ptr<uint8_t>());
    auto out = torch::empty({bucket.height, bucket.width, 3}, torch::kUInt8);
    cv::Mat dst(static_cast<int>(bucket.height), static_cast<int>(bucket.width), CV_8UC3, out.data_ptr<uint8_t>());
    cover_crop(rgb, bucket, dst);  // copyTo into a Mat of its size and type: writes into `out`
    return out;
  });
}

// ---- sampler --------------------------------------------------------------------------------------------------------

BucketBatchSampler::BucketBatchSampler(const std::vector<ImageEntry>& entries, const std::vector<Bucket>& buckets,
                                       int64_t batch, uint64_t seed)
    : batch_(batch), seed_(seed) {
  SPRINT_CHECK(batch >= 1 && !entries.empty(), "BucketBatchSampler: batch ", batch, " over ", entries.size(),
               " entries");
  std::vector<std::vector<int64_t>> members(buckets.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const int64_t b = entries[i].bucket;
    SPRINT_CHECK(b >= 0 && b < static_cast<int64_t>(buckets.size()), "entry '", entries[i].file_name, "' has bucket ",
                 b, " of ", buckets.size());
    members[static_cast<size_t>(b)].push_back(static_cast<int64_t>(i));
  }
  const auto log_ratio = [&](size_t b) {
    return std::log(static_cast<double>(buckets[b].height) / static_cast<double>(buckets[b].width));
  };
  // Merge the smallest bucket (ties: the first) into the nearest other non-empty one (ties: the first) while it is
  // smaller than a batch and not alone.
  for (;;) {
    std::optional<size_t> small;
    size_t nonempty = 0;
    for (size_t b = 0; b < members.size(); ++b) {
      if (members[b].empty()) continue;
      ++nonempty;
      if (!small || members[b].size() < members[*small].size()) small = b;
    }
    if (nonempty <= 1 || static_cast<int64_t>(members[*small].size()) >= batch) break;
    std::optional<size_t> into;
    for (size_t b = 0; b < members.size(); ++b)
      if (b != *small && !members[b].empty() &&
          (!into || std::abs(log_ratio(b) - log_ratio(*small)) < std::abs(log_ratio(*into) - log_ratio(*small))))
        into = b;
    auto& m = members[*into];
    m.insert(m.end(), members[*small].begin(), members[*small].end());
    std::sort(m.begin(), m.end());
    members[*small].clear();
  }
  for (size_t b = 0; b < members.size(); ++b) {
    if (members[b].empty()) continue;
    steps_per_epoch_ += (static_cast<int64_t>(members[b].size()) + batch - 1) / batch;
    groups_.push_back({static_cast<int64_t>(b), std::move(members[b])});
  }
}

void BucketBatchSampler::plan_epoch(int64_t epoch) const {
  auto gen = make_generator(seed_ * 1000003ULL + static_cast<uint64_t>(epoch));  // batch_indices' seeding
  const auto perm = [&](int64_t n) {
    const auto p = torch::randperm(n, gen, torch::kInt64);
    return std::vector<int64_t>(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + n);
  };
  perms_.clear();
  std::vector<std::pair<int64_t, int64_t>> batches;  // (group, batch of the group), in group order
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto n = static_cast<int64_t>(groups_[g].members.size());
    perms_.push_back(perm(n));
    for (int64_t j = 0; j * batch_ < n; ++j) batches.emplace_back(static_cast<int64_t>(g), j);
  }
  order_.clear();
  for (const int64_t k : perm(steps_per_epoch_)) order_.push_back(batches[static_cast<size_t>(k)]);
  planned_epoch_ = epoch;
}

BucketBatchSampler::Step BucketBatchSampler::step(int64_t step, int64_t rank, int64_t world) const {
  SPRINT_CHECK(step >= 0, "step ", step, " is negative");
  SPRINT_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " is not in [0, world size ", world, ")");
  SPRINT_CHECK(batch_ % world == 0, "the batch of ", batch_, " does not split over ", world,
               " ranks: the world size must divide the batch");
  std::lock_guard lock(mutex_);
  if (step / steps_per_epoch_ != planned_epoch_) plan_epoch(step / steps_per_epoch_);
  const auto [g, j] = order_[static_cast<size_t>(step % steps_per_epoch_)];
  const auto& group = groups_[static_cast<size_t>(g)];
  const auto& perm = perms_[static_cast<size_t>(g)];
  const auto n = static_cast<int64_t>(group.members.size());
  Step out;
  out.bucket = group.bucket;
  const int64_t per_rank = batch_ / world;
  for (int64_t i = rank * per_rank; i < (rank + 1) * per_rank; ++i)
    out.indices.push_back(group.members[static_cast<size_t>(perm[static_cast<size_t>((j * batch_ + i) % n)])]);
  return out;
}

// ---- prefetcher -----------------------------------------------------------------------------------------------------

struct BatchPrefetcher::Job {
  int64_t step = 0;
  BucketBatchSampler::Step plan;
  Bucket bucket;
  torch::Tensor images;
  std::vector<std::exception_ptr> errors;  // per row
  std::unique_ptr<Workers> workers;        // last: destroyed (joined) first
};

BatchPrefetcher::BatchPrefetcher(const ImageFolder& folder, const BucketBatchSampler& sampler, int threads,
                                 int64_t rank, int64_t world)
    : folder_(folder), sampler_(sampler), threads_(threads), rank_(rank), world_(world) {
  SPRINT_CHECK(threads >= 0, "loader threads = ", threads, " must be >= 0");
}

BatchPrefetcher::~BatchPrefetcher() = default;

std::unique_ptr<BatchPrefetcher::Job> BatchPrefetcher::start(int64_t step) const {
  auto job = std::make_unique<Job>();
  job->step = step;
  job->plan = sampler_.step(step, rank_, world_);
  job->bucket = folder_.buckets().at(static_cast<size_t>(job->plan.bucket));
  const auto rows = job->plan.indices.size();
  job->images = torch::empty({static_cast<int64_t>(rows), job->bucket.height, job->bucket.width, 3}, torch::kUInt8);
  job->errors.resize(rows);
  Job* j = job.get();
  uint8_t* base = j->images.data_ptr<uint8_t>();
  const auto row_bytes = static_cast<size_t>(j->bucket.height * j->bucket.width * 3);
  job->workers = std::make_unique<Workers>(rows, threads_, [this, j, base, row_bytes](size_t i) {
    try {
      const auto& entry = folder_.entries().at(static_cast<size_t>(j->plan.indices[i]));
      const auto picture = folder_.load(entry, j->bucket);
      std::memcpy(base + i * row_bytes, picture.data_ptr<uint8_t>(), row_bytes);
    } catch (...) {
      j->errors[i] = std::current_exception();
    }
  });
  return job;
}

ImageBatch BatchPrefetcher::next(int64_t step) {
  std::unique_ptr<Job> job;
  if (pending_ && pending_->step == step) {
    job = std::move(pending_);
  } else {
    pending_.reset();  // a prefetch of another step: waited for and dropped
    job = start(step);
  }
  job->workers->wait();
  for (const auto& e : job->errors)
    if (e) std::rethrow_exception(e);  // the first failing row, whatever thread loaded it
  ImageBatch out;
  out.step = step;
  out.bucket = job->bucket;
  out.images = job->images;
  out.indices = job->plan.indices;
  for (const int64_t i : out.indices) out.texts.push_back(folder_.entries()[static_cast<size_t>(i)].text);
  if (threads_ > 0) pending_ = start(step + 1);
  return out;
}

}  // namespace sprint::training
