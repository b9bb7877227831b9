// See frame_history.h.
#include "frame_history.h"

#include "sprint/error.h"

namespace sprint {

FrameHistory::Entry* FrameHistory::add(const ShownFrame& frame, std::vector<Entry>& dropped) {
  if (!entries_.empty() && entries_.front().frame.key == frame.key) return nullptr;
  entries_.push_front(Entry{frame, {}});
  if (selected_ >= 0) ++selected_;
  while (entries_.size() > capacity_) {
    dropped.push_back(std::move(entries_.back()));
    entries_.pop_back();
  }
  if (selected_ >= static_cast<int>(entries_.size())) selected_ = -1;
  return &entries_.front();
}

const FrameHistory::Entry& FrameHistory::at(size_t index) const {
  SPRINT_CHECK(index < entries_.size(), "history has ", entries_.size(), " frames; there is no frame ", index);
  return entries_[index];
}

const ShownFrame& FrameHistory::select(size_t index) {
  const Entry& e = at(index);
  selected_ = static_cast<int>(index);
  return e.frame;
}

}  // namespace sprint
