// The history strip's model: the frames that reached final quality, newest first, and which one is selected. Plain
// data: each entry carries the handle of its thumbnail texture, which Studio (the view) uploads and releases.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "generation_worker.h"
#include "sprint/ui/gl_texture.h"

namespace sprint {

// A generated frame as shown and kept: pixels, the key it was made for and the sketch it was made from.
struct ShownFrame {
  std::vector<uint8_t> rgb;  // (height, width, 3)
  int width = 0, height = 0;
  LiveKey key;
  std::shared_ptr<const std::vector<uint8_t>> canvas;  // (canvas_height, canvas_width), null for text-only models
  int canvas_width = 0, canvas_height = 0;
  bool final = false;
};

class FrameHistory {
 public:
  struct Entry {
    ShownFrame frame;
    ui::GlTexture thumb;
  };

  explicit FrameHistory(size_t capacity = 12) : capacity_(capacity < 1 ? 1 : capacity) {}

  // Adds `frame` as the newest entry, unless the newest entry was made for the same key. Returns the new entry (null
  // when nothing was added) and moves the entries that no longer fit into `dropped`, for their thumbnails to go.
  Entry* add(const ShownFrame& frame, std::vector<Entry>& dropped);
  // Selects entry `index` and returns its frame; throws sprint::Error for an index out of range.
  const ShownFrame& select(size_t index);

  size_t size() const { return entries_.size(); }
  const Entry& at(size_t index) const;  // throws for an index out of range
  const std::deque<Entry>& entries() const { return entries_; }
  std::deque<Entry>& entries() { return entries_; }
  int selected() const { return selected_; }  // -1: none

 private:
  size_t capacity_;
  std::deque<Entry> entries_;  // newest first
  int selected_ = -1;
};

}  // namespace sprint
