#include "replay.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"

namespace sprint {

namespace {

ReplayEvent parse_event(const nlohmann::json& j, const std::filesystem::path& base) {
  using T = ReplayEvent::Type;
  ReplayEvent e;
  SPRINT_CHECK(j.is_object(), "an event must be an object");
  e.t = j.value("t", -1.0);
  SPRINT_CHECK(e.t <= 7 * 24 * 3600.0, "event time t = ", e.t, " s is past a week");
  const std::string type = j.at("type").get<std::string>();
  if (type == "prompt") {
    e.type = T::Prompt;
    e.text = j.at("text").get<std::string>();
  } else if (type == "set") {
    e.type = T::Set;
    e.text = j.at("name").get<std::string>();
    e.value = j.at("value");
    if (is_setting(e.text)) {
      GenerationSettings check;  // a value of the wrong type fails here, at load time
      update_settings_from_json(check, nlohmann::json::object({{e.text, e.value}}), "set");
    } else {
      static const char* kPanelNames[] = {"seed_locked", "brush_radius", "eraser", "show_condition"};
      SPRINT_CHECK(std::find(std::begin(kPanelNames), std::end(kPanelNames), e.text) != std::end(kPanelNames),
                   "unknown setting '", e.text, "'");
      SPRINT_CHECK(e.value.is_number() || e.value.is_boolean(), "setting '", e.text, "' needs a number or true/false");
      if (e.text == "brush_radius")  // the controls panel's range, in canvas pixels
        SPRINT_CHECK(e.value.is_number() && e.value.get<double>() >= 0.5 && e.value.get<double>() <= 64,
                     "brush_radius ", e.value.dump(), " must be from 0.5 to 64 px");
    }
  } else if (type == "stroke" || type == "mouse_stroke") {
    e.type = type == "stroke" ? T::Stroke : T::MouseStroke;
    for (const auto& p : j.at("points")) {
      SPRINT_CHECK(p.is_array() && p.size() == 2 && p[0].is_number() && p[1].is_number(),
                   "a stroke point must be [x, y] with two numbers, not ", p.dump().substr(0, 80));
      const double x = p[0].get<double>(), y = p[1].get<double>();
      // Canvas fractions; a little outside the canvas is a pen leaving it, far outside is a broken file.
      SPRINT_CHECK(std::abs(x) <= 100 && std::abs(y) <= 100, "stroke point [", x, ", ", y,
                   "] is far outside the canvas (coordinates are fractions of it, 0 to 1)");
      e.points.push_back({static_cast<float>(x), static_cast<float>(y)});
    }
    SPRINT_CHECK(!e.points.empty(), "a stroke needs at least one point");
    SPRINT_CHECK(e.points.size() <= 100000, "a stroke has ", e.points.size(), " points, more than 100000");
    e.radius = j.value("radius", e.radius);
    SPRINT_CHECK(e.radius > 0 && e.radius <= 1, "stroke radius ", e.radius, " must be in (0, 1] (a canvas fraction)");
    e.eraser = j.value("eraser", false);
    e.duration = j.value("duration", e.duration);
    SPRINT_CHECK(e.duration >= 0 && e.duration <= 3600, "stroke duration ", e.duration, " must be 0 to 3600 seconds");
  } else if (type == "undo") {
    e.type = T::Undo;
  } else if (type == "redo") {
    e.type = T::Redo;
  } else if (type == "clear") {
    e.type = T::Clear;
  } else if (type == "wait_idle") {
    e.type = T::WaitIdle;
  } else if (type == "save_output") {
    e.type = T::SaveOutput;
    e.text = j.value("suffix", std::string("snapshot"));
  } else if (type == "pause") {
    e.type = T::Pause;
    e.duration = j.at("seconds").get<double>();
    SPRINT_CHECK(e.duration >= 0 && e.duration <= 3600, "pause seconds ", e.duration, " must be 0 to 3600");
  } else if (type == "import") {
    e.type = T::Import;
    const std::filesystem::path p = j.at("path").get<std::string>();
    e.text = (p.is_relative() ? base / p : p).string();
    e.mode = j.value("mode", std::string("auto"));
    SPRINT_CHECK(e.mode == "auto" || e.mode == "sketch" || e.mode == "picture" || e.mode == "photo",
                 "import mode '", e.mode, "': expected auto, sketch, picture or photo");
  } else if (type == "select_history" || type == "export_history") {
    e.type = type == "select_history" ? T::SelectHistory : T::ExportHistory;
    const auto& jindex = j.contains("index") ? j.at("index") : nlohmann::json(0);
    SPRINT_CHECK(jindex.is_number_integer() && jindex.get<int64_t>() >= 0 && jindex.get<int64_t>() < 4096,
                 "history index ", jindex.dump(), " must be a whole number from 0 to 4095");
    const int index = jindex.get<int>();
    e.index = static_cast<size_t>(index);
    e.text = j.value("suffix", str("history", index));
  } else {
    throw Error(str("unknown event type '", type, "'"));
  }
  return e;
}

}  // namespace

std::vector<ReplayEvent> load_replay(const std::string& path) {
  // A regular file of bounded size and nesting (read_json_file); errors name the file.
  const nlohmann::json doc = with_context("replay file", [&] { return read_json_file(path); });
  std::vector<ReplayEvent> events;
  const auto& list = doc.is_array() ? doc : doc.at("events");
  for (size_t i = 0; i < list.size(); ++i) {
    try {
      events.push_back(parse_event(list[i], std::filesystem::path(path).parent_path()));
    } catch (const std::exception& e) {
      throw Error(str("replay file '", path, "', event ", i, ": ", e.what()));
    }
  }
  return events;
}

void ReplayPlayer::advance(double dt, Target& target) {
  // Strokes in progress: add the points whose share of the duration has passed.
  const auto to_canvas = [&](ui::StrokePoint p) { return ui::StrokePoint{p.x * target.width, p.y * target.height}; };
  if (mouse_.active) {
    clock_ += dt;
    const ReplayEvent& e = events_[next_ - 1];
    ++mouse_frames_;
    if (mouse_frames_ == 1) {  // hovered on the first point; now press
      mouse_.down = true;
      stroke_start_ = clock_;
      return;
    }
    const double f = e.duration > 0 ? std::clamp((clock_ - stroke_start_) / e.duration, 0.0, 1.0) : 1.0;
    if (mouse_.down) {
      if (mouse_at_end_) {  // the widget saw the last point while pressed: release
        mouse_.down = false;
        return;
      }
      const double x = f * (e.points.size() - 1);
      const size_t i = std::min(static_cast<size_t>(x), e.points.size() - 1);
      const size_t j = std::min(i + 1, e.points.size() - 1);
      const float u = static_cast<float>(x - i);
      mouse_.pos = {e.points[i].x + u * (e.points[j].x - e.points[i].x), e.points[i].y + u * (e.points[j].y - e.points[i].y)};
      mouse_at_end_ = f >= 1.0;
      return;
    }
    mouse_ = Mouse{};  // released last frame: the widget has committed the stroke
    last_event_t_ = clock_;
    return;
  }
  if (stroke_active_ && !target.history.drawing()) stroke_active_ = false;  // cancelled from outside
  if (stroke_active_) {
    clock_ += dt;
    const ReplayEvent& e = events_[next_ - 1];
    const double f = e.duration > 0 ? std::clamp((clock_ - stroke_start_) / e.duration, 0.0, 1.0) : 1.0;
    const size_t want = std::max<size_t>(1, static_cast<size_t>(f * e.points.size() + 0.5));
    for (; stroke_points_added_ < std::min(want, e.points.size()); ++stroke_points_added_)
      target.history.extend_stroke(to_canvas(e.points[stroke_points_added_]));
    if (f >= 1.0) {
      target.history.end_stroke();
      target.pen_up = true;
      stroke_active_ = false;
      last_event_t_ = clock_;
    }
    return;  // one stroke at a time; the next event starts on a later frame
  }
  bool advanced_clock = false;
  while (next_ < events_.size()) {
    const ReplayEvent& e = events_[next_];
    const double due = e.t >= 0 ? std::max(e.t, last_event_t_) : last_event_t_;
    if (!advanced_clock) {
      clock_ += dt;
      advanced_clock = true;
    }
    if (clock_ < due) return;
    if (!apply(e, target, dt)) {
      clock_ -= dt;  // waiting: the replay clock stands still
      return;
    }
    ++next_;
    last_event_t_ = std::max(due, clock_);
    if (stroke_active_ || mouse_.active) return;
  }
}

bool ReplayPlayer::apply(const ReplayEvent& e, Target& target, double dt) {
  using T = ReplayEvent::Type;
  auto& c = target.controls;
  switch (e.type) {
    case T::Prompt:
      c.settings.prompt = e.text;
      target.settings_changed = true;
      break;
    case T::Set: {
      if (is_setting(e.text)) {
        update_settings_from_json(c.settings, nlohmann::json::object({{e.text, e.value}}), "replay");
        target.settings_changed = true;
        break;
      }
      const double v = e.value.is_boolean() ? (e.value.get<bool>() ? 1.0 : 0.0) : e.value.get<double>();
      if (e.text == "seed_locked") c.seed_locked = v != 0;
      else if (e.text == "brush_radius") c.brush.radius = static_cast<float>(v);
      else if (e.text == "eraser") c.brush.eraser = v != 0;
      else if (e.text == "show_condition") c.show_condition = v != 0;
      target.settings_changed = true;
      break;
    }
    case T::Stroke:
      target.history.begin_stroke({e.points[0].x * target.width, e.points[0].y * target.height},
                                  e.radius * target.width, e.eraser);
      stroke_active_ = true;
      stroke_start_ = clock_;
      stroke_points_added_ = 1;
      break;
    case T::MouseStroke:
      mouse_ = Mouse{true, e.points[0], false};
      mouse_frames_ = 0;
      mouse_at_end_ = false;
      break;
    case T::Undo: target.history.undo(); break;
    case T::Redo: target.history.redo(); break;
    case T::Clear: target.history.clear(); break;
    case T::Pause:
      // Wall time, not the replay clock (which stands still while an event waits).
      if (pause_left_ < 0) {
        pause_left_ = e.duration;
        return false;
      }
      pause_left_ -= dt;
      if (pause_left_ > 0) return false;
      pause_left_ = -1;
      break;
    case T::Import:
      SPRINT_CHECK(target.import_image, "this app cannot replay 'import'");
      return target.import_image(e.text, e.mode);
    case T::SelectHistory:
    case T::ExportHistory:
      SPRINT_CHECK(target.history_size && target.select_history && target.export_history,
                   "this app cannot replay history events");
      // Like a click: after the frame for the current input is shown (and so in the history).
      if (!waited_a_frame_) {
        waited_a_frame_ = true;
        return false;
      }
      if (!target.idle()) return false;
      waited_a_frame_ = false;
      SPRINT_CHECK(e.index < target.history_size(), "history has ", target.history_size(), " frames; there is no frame ",
                   e.index);
      if (e.type == T::SelectHistory) target.select_history(e.index);
      else target.export_history(e.index, e.text);
      target.settings_changed = true;
      break;
    case T::WaitIdle:
    case T::SaveOutput:
      // The input changed by earlier events is submitted after this call, so look one frame later.
      if (!waited_a_frame_) {
        waited_a_frame_ = true;
        return false;
      }
      if (!target.idle()) return false;
      waited_a_frame_ = false;
      if (e.type == T::SaveOutput) target.save_output(e.text);
      break;
  }
  return true;
}

}  // namespace sprint
