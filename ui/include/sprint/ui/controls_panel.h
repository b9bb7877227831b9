// The controls panel: prompt, sampling settings, seed, brush, canvas actions. A function of plain structs; the
// caller turns the returned actions into work (new seed, undo, save, ...). It is where the generation settings
// (sprint/generation_settings.h) are shown and edited.
#pragma once

#include <cstdint>
#include <string>

#include "sprint/generation_settings.h"
#include "sprint/ui/canvas_widget.h"

namespace sprint::ui {

struct ControlsState {
  // The settings the panel edits: prompt, steps, guidance, ControlNet scale, scribble thickness (0-4 in the UI; the
  // Sana demo's range is 1-4), seed. The model and the size are shown, not edited.
  GenerationSettings settings;
  bool seed_locked = true;     // unlocked: every finished stroke draws a new seed
  BrushSettings brush;
  bool show_condition = false; // canvas pane shows the condition map the model sees
  bool adaptive_steps = true;  // drafts with fewer steps while drawing when frames are over budget
  std::string import_path;     // Import image: path of a picture (PNG, JPEG, WebP, BMP, TIFF)
  int import_mode = 0;         // 0 auto, 1 sketch, 2 picture, 3 photo (ImportMode order)
};

// Facts shown read-only.
struct ControlsInfo {
  const char* device = "";
  const char* model = "";
  int width = 0, height = 0;
  bool has_controlnet = true;
  bool can_undo = false, can_redo = false;
  const char* error = "";  // last worker error, shown in red when non-empty
  bool importing = false;  // an import is running
  int canvas_width = 0, canvas_height = 0;  // sketch canvas (may differ from the generation size)
};

struct ControlsActions {
  bool settings_changed = false;  // anything that changes the generated frame
  bool undo = false, redo = false, clear = false;
  bool randomise_seed = false;
  bool save_output = false;
  bool import_image = false;  // import state.import_path with state.import_mode
};

// The import row (path field, mode, button); also used by the File > Import image popup. Returns true on "Import".
bool draw_import_row(ControlsState& state, bool importing);

ControlsActions draw_controls_panel(ControlsState& state, const ControlsInfo& info);

}  // namespace sprint::ui
