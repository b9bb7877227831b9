// The live loop's one-slot "latest request" mailbox (app/include/sprint/app/request_slot.h): newest input wins, stale requests are
// dropped, unchanged input is skipped, and the pen-up frame is always produced.
#include <gtest/gtest.h>

#if __has_include("sprint/app/request_slot.h")
#include "sprint/app/request_slot.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using sprint::LatestRequestSlot;
using sprint::OfferResult;

namespace {

struct Key {
  uint64_t canvas = 0;
  std::string prompt;
  bool operator==(const Key&) const = default;
};
using Slot = LatestRequestSlot<Key, int>;
constexpr auto kNoWait = std::chrono::milliseconds(0);

}  // namespace

TEST(RequestSlot, NewestWinsAndStaleIsDropped) {
  Slot slot;
  EXPECT_EQ(slot.offer({1, "a"}, 1), OfferResult::Accepted);
  EXPECT_EQ(slot.offer({2, "a"}, 2), OfferResult::Replaced);
  EXPECT_EQ(slot.offer({3, "a"}, 3), OfferResult::Replaced);
  auto job = slot.try_take();
  ASSERT_TRUE(job);
  EXPECT_EQ(job->payload, 3);
  EXPECT_EQ(job->key.canvas, 3u);
  EXPECT_FALSE(slot.try_take());  // one slot, not a queue
  EXPECT_EQ(slot.stats().dropped, 2u);
}

TEST(RequestSlot, OneJobInFlightAndNewInputWaits) {
  Slot slot;
  slot.offer({1, "a"}, 1);
  auto first = slot.try_take();
  ASSERT_TRUE(first);
  EXPECT_FALSE(slot.idle());  // running
  slot.offer({2, "a"}, 2);    // arrives while the worker is busy: kept, newest
  slot.offer({3, "a"}, 3);
  slot.finish();
  EXPECT_FALSE(slot.idle());  // still pending
  auto next = slot.wait_take(kNoWait);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->payload, 3);
  EXPECT_GT(next->id, first->id);
  slot.finish();
  EXPECT_TRUE(slot.idle());
}

TEST(RequestSlot, UnchangedInputIsSkipped) {
  Slot slot;
  EXPECT_EQ(slot.offer({1, "a"}, 1), OfferResult::Accepted);
  EXPECT_EQ(slot.offer({1, "a"}, 2), OfferResult::Skipped);  // same key while pending
  slot.try_take();
  slot.finish();
  EXPECT_EQ(slot.offer({1, "a"}, 3), OfferResult::Skipped);  // same key after it ran
  EXPECT_TRUE(slot.idle());
  EXPECT_EQ(slot.offer({1, "b"}, 4), OfferResult::Accepted);  // a settings change is a change
  EXPECT_EQ(slot.stats().skipped, 2u);
  slot.invalidate();  // e.g. "regenerate": the same input runs again
  slot.try_take();
  slot.finish();
  EXPECT_EQ(slot.offer({1, "b"}, 5), OfferResult::Accepted);
}

TEST(RequestSlot, GoingBackToAnEarlierInputIsNotSkipped) {
  Slot slot;
  slot.offer({1, "a"}, 1);
  slot.offer({1, "ab"}, 2);
  EXPECT_EQ(slot.offer({1, "a"}, 3), OfferResult::Replaced);  // typed then deleted: the newest text wins
  EXPECT_EQ(slot.try_take()->payload, 3);
}

TEST(RequestSlot, FinalFrameOnPenUp) {
  Slot slot;
  // Live frames while drawing; the worker is busy with the first.
  slot.offer({1, "a"}, 1);
  auto running = slot.try_take();
  slot.offer({2, "a"}, 2);
  slot.offer({3, "a"}, 3);
  // Pen-up with the same input as the last live frame: not skipped, and it replaces that pending frame.
  EXPECT_EQ(slot.offer({3, "a"}, 30, /*final=*/true), OfferResult::Replaced);
  slot.finish();
  auto job = slot.try_take();
  ASSERT_TRUE(job);
  EXPECT_TRUE(job->final);
  EXPECT_EQ(job->payload, 30);
  slot.finish();
  // Even after the live frame for this input already ran, pen-up produces the final frame ...
  slot.offer({4, "a"}, 4);
  slot.try_take();
  slot.finish();
  EXPECT_EQ(slot.offer({4, "a"}, 40, true), OfferResult::Accepted);
  EXPECT_TRUE(slot.try_take()->final);
  slot.finish();
  // ... but only once, and a later live offer of the same input is still skipped.
  EXPECT_EQ(slot.offer({4, "a"}, 41, true), OfferResult::Skipped);
  EXPECT_EQ(slot.offer({4, "a"}, 42), OfferResult::Skipped);
  EXPECT_TRUE(slot.idle());
}

TEST(RequestSlot, LiveInputAfterPenUpReplacesIt) {
  Slot slot;
  slot.offer({1, "a"}, 1, true);
  EXPECT_EQ(slot.offer({2, "a"}, 2), OfferResult::Replaced);  // the next stroke began: newest input wins
  EXPECT_FALSE(slot.try_take()->final);
}

TEST(RequestSlot, WorkerThreadSeesOnlyTheNewest) {
  Slot slot;
  std::atomic<int> last_seen{0};
  std::atomic<int> runs{0};
  std::thread worker([&] {
    while (true) {
      auto job = slot.wait_take(std::chrono::milliseconds(20));
      if (!job) {
        if (slot.closed()) break;
        continue;
      }
      EXPECT_GT(job->payload, last_seen.load());  // never an older request after a newer one
      last_seen = job->payload;
      ++runs;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // "generating"
      slot.finish();
    }
  });
  for (int i = 1; i <= 200; ++i) {
    slot.offer({static_cast<uint64_t>(i), "a"}, i, i == 200);
    if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(slot.idle() && last_seen.load() == 200) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  slot.close();
  worker.join();
  EXPECT_EQ(last_seen.load(), 200);  // the final request always runs
  const auto s = slot.stats();
  EXPECT_EQ(s.accepted, 200u);
  EXPECT_EQ(s.finished, static_cast<uint64_t>(runs.load()));
  EXPECT_EQ(s.dropped + s.finished, 200u);  // every accepted request ran or was dropped
  EXPECT_LT(runs.load(), 200);              // some were dropped: the worker is slower than the input
}

TEST(RequestSlot, CloseWakesTheWorker) {
  Slot slot;
  std::thread worker([&] { EXPECT_FALSE(slot.wait_take(std::chrono::seconds(30))); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto t0 = std::chrono::steady_clock::now();
  slot.close();
  worker.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(slot.offer({1, "a"}, 1), OfferResult::Accepted);  // offers after close are harmless
  EXPECT_FALSE(slot.try_take());
}

#else
TEST(RequestSlot, NeedsAppModel) {
  GTEST_SKIP() << "sprint::app_model is not linked into sprint-tests-unit (tests/CMakeLists.txt: "
                  "sprint_add_test_folder(unit sprint::app_model))";
}
#endif
