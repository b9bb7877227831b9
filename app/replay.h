// Recorded-input replay for demos and headless GUI tests: a JSON list of timestamped events applied to the same
// StrokeHistory and ControlsState the mouse and the panel edit, so a replay exercises the live loop (strokes are
// drawn over `duration` seconds, frame by frame, and end with a pen-up).
//
// File format:
//   {"events": [
//     {"t": 0.0, "type": "prompt", "text": "a cat"},
//     {"t": 0.1, "type": "set", "name": "steps", "value": 2},     // any generation setting by its key (steps
//                                                                  // guidance control_scale seed thickness ...,
//                                                                  // sprint/generation_settings.h), or seed_locked
//                                                                  // brush_radius eraser show_condition
//     {"t": 0.2, "type": "stroke", "points": [[0.2, 0.2], [0.8, 0.7]], "radius": 0.03, "eraser": false,
//      "duration": 0.5},                                           // points and radius as fractions of the canvas
//     {"type": "mouse_stroke", "points": [[0.1, 0.1], [0.3, 0.1]], "duration": 0.3},  // same, but as mouse input
//                                                                  // through the canvas widget (brush settings apply)
//     {"t": 1.0, "type": "undo"}, {"type": "redo"}, {"type": "clear"},
//     {"type": "wait_idle"},                                       // until the frame for the current input is shown
//     {"type": "save_output", "suffix": "before"},                 // wait_idle, then write <save-output>.<suffix>.png
//     {"type": "import", "path": "sketch.png", "mode": "auto"},    // File > Import image; waits until it is done
//                                                                  // (path relative to the replay file's folder)
//     {"type": "select_history", "index": 1},                      // click a history thumbnail (0 = newest)
//     {"type": "export_history", "index": 0, "suffix": "h0"},      // write history frame 0 to <save-output>.h0.png
//     {"type": "pause", "seconds": 0.5}                            // no input for this long (frames keep coming)
//   ]}
// "t" is seconds from the start of the replay (default: right after the previous event). The replay clock stops
// while an event waits, so later events keep their spacing.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "sprint/ui/controls_panel.h"
#include "sprint/ui/strokes.h"

namespace sprint {

struct ReplayEvent {
  enum class Type { Prompt, Set, Stroke, MouseStroke, Undo, Redo, Clear, WaitIdle, SaveOutput, Import, SelectHistory,
                    ExportHistory, Pause };
  Type type = Type::WaitIdle;
  double t = -1;  // < 0: right after the previous event
  std::string text;   // Prompt: the prompt; Set: the setting name; SaveOutput, ExportHistory: the suffix;
                      // Import: the path (resolved against the replay file's folder)
  std::string mode;   // Import: auto | sketch | picture | photo
  size_t index = 0;   // SelectHistory, ExportHistory
  nlohmann::json value;  // Set: the value as written (a generation setting's JSON form, or a number / bool)
  std::vector<ui::StrokePoint> points;  // Stroke, fractions of the canvas
  float radius = 0.02f;                 // Stroke, fraction of the canvas width
  bool eraser = false;
  double duration = 0.3;                // Stroke: seconds from pen-down to pen-up; Pause: its length
};

// Throws sprint::Error naming the file and the event index on a bad file.
std::vector<ReplayEvent> load_replay(const std::string& path);

class ReplayPlayer {
 public:
  struct Target {
    ui::StrokeHistory& history;
    ui::ControlsState& controls;
    int width, height;                                  // canvas size in pixels
    std::function<bool()> idle;                         // the frame for the current input is on screen
    std::function<void(const std::string&)> save_output;  // suffix
    // Out: what this call did.
    bool settings_changed = false;
    bool pen_up = false;
    // Optional (events that use them fail without): import returns true once the import has finished (it is
    // called every frame until then); history_size / select_history / export_history drive the history strip.
    std::function<bool(const std::string& path, const std::string& mode)> import_image = {};
    std::function<size_t()> history_size = {};
    std::function<void(size_t)> select_history = {};
    std::function<void(size_t, const std::string&)> export_history = {};
  };

  // Synthetic mouse for mouse_stroke events, in canvas fractions; the app maps it to screen coordinates and feeds
  // it to ImGui before the next frame.
  struct Mouse {
    bool active = false;  // a mouse_stroke is playing: override the real mouse
    ui::StrokePoint pos;
    bool down = false;
  };
  const Mouse& mouse() const { return mouse_; }

  explicit ReplayPlayer(std::vector<ReplayEvent> events) : events_(std::move(events)) {}
  // Plays the events due after `dt` more seconds. Call once per UI frame, before the frame's input is submitted.
  void advance(double dt, Target& target);
  bool done() const { return next_ >= events_.size() && !stroke_active_ && !mouse_.active; }
  size_t position() const { return next_; }
  size_t size() const { return events_.size(); }

 private:
  bool apply(const ReplayEvent& e, Target& target, double dt);  // false: must wait and retry next frame
  std::vector<ReplayEvent> events_;
  size_t next_ = 0;
  double clock_ = 0, last_event_t_ = 0;
  bool stroke_active_ = false;
  double stroke_start_ = 0;
  size_t stroke_points_added_ = 0;
  bool waited_a_frame_ = false;
  double pause_left_ = -1;  // Pause in progress: seconds to go
  Mouse mouse_;
  int mouse_frames_ = 0;  // frames since the mouse_stroke began: hover, press, then move
  bool mouse_at_end_ = false;
};

}  // namespace sprint
