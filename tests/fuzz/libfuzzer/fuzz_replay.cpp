// fuzz_replay: the input bytes, written to a replay file, go to the app's replay reader sprint::load_replay
// (app/replay.cpp: JSON events, "set" values through update_settings_from_json); an accepted replay is then played
// by ReplayPlayer into a StrokeHistory and a 64 x 48 canvas for a bounded number of frames, as the headless GUI
// tests play one: strokes, undo/redo, pauses, and mouse strokes, which go through a stand-in for the canvas widget's
// pen handling (ui/src/canvas_widget.cpp: press -> begin_stroke with the brush settings, drag -> extend_stroke,
// release -> end_stroke). Imports and history events have no target here and must fail with a message.
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "replay.h"
#include "sprint/ui/strokes.h"

namespace {

constexpr int kWidth = 64, kHeight = 48;
constexpr int kMaxFrames = 400;  // at 30 frames a second: 13 s of replay, whatever the file asks for
constexpr double kFrameSeconds = 1.0 / 30;

void play(std::vector<sprint::ReplayEvent> events) {
  sprint::ui::StrokeHistory history;
  sprint::ui::ControlsState controls;
  sprint::ui::CanvasRaster raster;
  raster.resize(kWidth, kHeight);
  sprint::ReplayPlayer player(std::move(events));
  sprint::ReplayPlayer::Target target{history, controls, kWidth, kHeight, [] { return true; },
                                      [](const std::string&) {}};
  bool was_down = false, mouse_stroke = false;  // the canvas widget's view of the (synthetic) mouse
  for (int frame = 0; frame < kMaxFrames && !player.done(); ++frame) {
    target.settings_changed = target.pen_up = false;
    player.advance(kFrameSeconds, target);
    // What draw_canvas does with the mouse the player hands the app (canvas fractions -> canvas pixels).
    const auto& mouse = player.mouse();
    const bool down = mouse.active && mouse.down;
    const sprint::ui::StrokePoint at{mouse.pos.x * kWidth, mouse.pos.y * kHeight};
    if (down && !was_down && !history.drawing()) {
      history.begin_stroke(at, controls.brush.radius, controls.brush.eraser);
      mouse_stroke = true;
    } else if (mouse_stroke && history.drawing() && down) {
      history.extend_stroke(at);
    }
    if (mouse_stroke && !down) {
      if (history.drawing()) history.end_stroke();
      mouse_stroke = false;
    }
    was_down = down;
    raster.sync(history);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = (sprint_fuzz::scratch_dir() / "replay.json").string();
  sprint_fuzz::write_file(path, data, size);
  try {
    play(sprint::load_replay(path));
  } catch (const std::exception&) {
    // A bad replay (or an event this player cannot do) is refused with a message: the correct outcome.
  }
  return 0;
}
