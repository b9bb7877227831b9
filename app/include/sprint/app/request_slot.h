// A one-slot "latest request" mailbox between the UI thread and the generation worker (docs/architecture.md#live-loop).
//
//   UI thread:  offer(key, payload, final)  -- never blocks on the model; newest input wins
//   worker:     wait_take() -> generate -> finish()
//
// Rules:
//   - at most one pending request: a new offer replaces a pending one (the stale one is dropped and counted);
//   - an offer whose key equals the key of the last accepted request is skipped (unchanged input costs nothing);
//   - a final request (pen-up) is skipped only when the same key was already accepted as final, so the frame for
//     the finished stroke is always produced, even when the live frames for the same input were;
//   - the worker runs one job at a time; idle() is true when nothing is pending or running.
// Key needs operator==. Thread-safe; the lock is held only to move a request in or out.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

namespace sprint {

enum class OfferResult { Accepted, Replaced, Skipped };

template <class Key, class Payload>
class LatestRequestSlot {
 public:
  struct Job {
    uint64_t id = 0;  // 1, 2, ... in acceptance order
    Key key;
    Payload payload;
    bool final = false;
  };

  struct Stats {
    uint64_t accepted = 0;  // includes the ones later dropped
    uint64_t dropped = 0;   // replaced while pending, never run
    uint64_t skipped = 0;   // unchanged input
    uint64_t finished = 0;
  };

  OfferResult offer(const Key& key, Payload payload, bool final = false) {
    std::lock_guard lock(mutex_);
    if (last_key_ && *last_key_ == key && (!final || last_final_)) {
      ++stats_.skipped;
      return OfferResult::Skipped;
    }
    const bool replaced = pending_.has_value();
    if (replaced) ++stats_.dropped;
    pending_ = Job{++next_id_, key, std::move(payload), final};
    last_key_ = key;
    last_final_ = final;
    ++stats_.accepted;
    cv_.notify_one();
    return replaced ? OfferResult::Replaced : OfferResult::Accepted;
  }

  // Worker: the pending request, or nothing after `timeout` or once closed. Marks it in flight.
  std::optional<Job> wait_take(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return pending_.has_value() || closed_; });
    return take_locked();
  }
  std::optional<Job> try_take() {
    std::lock_guard lock(mutex_);
    return take_locked();
  }

  // Worker: the job taken last is done (succeeded or failed).
  void finish() {
    std::lock_guard lock(mutex_);
    in_flight_ = false;
    ++stats_.finished;
  }

  // Forget the last key so the same input is generated again (e.g. a "regenerate" after an error).
  void invalidate() {
    std::lock_guard lock(mutex_);
    last_key_.reset();
  }

  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    pending_.reset();
    cv_.notify_all();
  }

  bool closed() const { std::lock_guard lock(mutex_); return closed_; }
  bool has_pending() const { std::lock_guard lock(mutex_); return pending_.has_value(); }
  bool idle() const { std::lock_guard lock(mutex_); return !pending_ && !in_flight_; }
  Stats stats() const { std::lock_guard lock(mutex_); return stats_; }

 private:
  std::optional<Job> take_locked() {
    if (!pending_ || closed_) return std::nullopt;
    std::optional<Job> job = std::move(pending_);
    pending_.reset();
    in_flight_ = true;
    return job;
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<Job> pending_;
  std::optional<Key> last_key_;
  bool last_final_ = false;
  bool in_flight_ = false;
  bool closed_ = false;
  uint64_t next_id_ = 0;
  Stats stats_;
};

}  // namespace sprint
