#!/usr/bin/env bash
# App output == headless output. Under a virtual X server, sprint-studio replays a scripted sketch and exports
# frames (PNG with the sprint:* settings chunks + the sketch they were made from); sprint-generate --from each
# exported PNG must then give the same pixels, exactly. Along the way it checks:
#   - the sketch canvas size: the generation size, or the model's sketch_canvas on its longer side (SKETCH_CANVAS);
#   - the history strip: a frame exported from the history equals the frame exported when it was shown, and
#     selecting it restores its settings (seed) and shows it again, pixel for pixel;
#   - import: a bad file changes nothing (message, same frame); importing the sketch of an earlier frame gives that
#     frame again, exactly; undo brings the drawing back;
#   - every input changes the frame: each stroke, the prompt edit, the seed change;
#   - the exit timing report line;
#   - adaptive pacing: with a frame budget no frame can meet, strokes are drafted with 1 step, and the frame shown
#     once the input pauses is refined at the chosen steps (and again equals sprint-generate's).
# Usage: test_app_vs_generate.sh SPRINT_STUDIO SPRINT_GENERATE MODEL_DIR OUT_DIR [SKETCH_CANVAS]
# With SKETCH_CANVAS, MODEL_DIR is copied (as links) into OUT_DIR/model with sprint_pipeline.json
# {"sketch_canvas": SKETCH_CANVAS}. Exit 77 (CTest SKIP_RETURN_CODE) when no X server can be started or MODEL_DIR has no
# model_index.json.
set -u
studio=$1 generate=$2 model=$3 out=$4 sketch_canvas=${5:-0}
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -f "$model/model_index.json" ]]; then
  echo "SKIP: no model at $model (the bundled one is built by ./bootstrap.sh model)"; exit 77
fi

source "$(dirname "$0")/xvfb.sh"

rm -rf "$out" && mkdir -p "$out"
if [[ "$sketch_canvas" != 0 ]]; then
  mkdir -p "$out/model"
  for f in "$model"/*; do
    [[ "$(basename "$f")" == sprint_pipeline.json ]] || ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$out/model/"
  done
  echo "{\"sketch_canvas\": $sketch_canvas}" > "$out/model/sprint_pipeline.json"
  model=$out/model
fi
echo "this is not a PNG" > "$out/bad.png"

cat > "$out/replay.json" <<'JSON'
{"events": [
  {"type": "prompt", "text": "a small wooden house on a hill"},
  {"type": "set", "name": "seed", "value": 7},
  {"type": "set", "name": "steps", "value": 2},
  {"type": "stroke", "duration": 0.3, "radius": 0.05,
   "points": [[0.2, 0.8], [0.2, 0.45], [0.5, 0.2], [0.8, 0.45], [0.8, 0.8], [0.2, 0.8]]},
  {"type": "save_output", "suffix": "a"},
  {"type": "stroke", "duration": 0.2, "radius": 0.05, "points": [[0.4, 0.8], [0.4, 0.6], [0.55, 0.6], [0.55, 0.8]]},
  {"type": "save_output", "suffix": "b"},
  {"type": "set", "name": "seed", "value": 11},
  {"type": "wait_idle"},
  {"type": "pause", "seconds": 0.8},
  {"type": "export_history", "index": 1, "suffix": "h1"},
  {"type": "export_history", "index": 0, "suffix": "h0"},
  {"type": "select_history", "index": 1},
  {"type": "save_output", "suffix": "restored"},
  {"type": "import", "path": "bad.png"},
  {"type": "save_output", "suffix": "afterbad"},
  {"type": "import", "path": "app.a.sketch.png", "mode": "sketch"},
  {"type": "save_output", "suffix": "imported"},
  {"type": "undo"},
  {"type": "save_output", "suffix": "undone"},
  {"type": "prompt", "text": "a red apple on a table"},
  {"type": "save_output", "suffix": "prompt"},
  {"type": "mouse_stroke", "duration": 0.3, "points": [[0.06, 0.1], [0.3, 0.1]]},
  {"type": "wait_idle"}
]}
JSON

"$studio" --model "$model" --replay "$out/replay.json" --save-output "$out/app.png" --exit-after-replay \
  --timeout 300 --threads 1 --output-dir "$out" >"$out/studio.stdout" 2>"$out/studio.stderr"
rc=$?
cat "$out/studio.stdout"
if [[ $rc -ne 0 ]]; then
  tail -20 "$out/studio.stderr"
  echo "FAIL: sprint-studio exited with $rc"
  exit 1
fi
if ! grep -Eq '^frames: [0-9]+  p50 [0-9.]+ ms  p99 [0-9.]+ ms  input-to-photon p50 [0-9.]+ ms$' "$out/studio.stdout"; then
  echo "FAIL: no timing report line on stdout"; exit 1
fi
if ! grep -q "import failed" "$out/studio.stderr"; then
  echo "FAIL: importing a bad file gave no message"; exit 1
fi

for name in a b restored imported undone prompt h0 h1 ""; do
  png=$out/app${name:+.$name}.png
  "$generate" --from "$png" --model "$model" --out "$out/gen${name:+.$name}.png" --threads 1 2>"$out/gen${name:+.$name}.log"
  if [[ $? -ne 0 ]]; then
    cat "$out/gen${name:+.$name}.log"; echo "FAIL: sprint-generate --from $png failed"; exit 1
  fi
done

PYTHONPATH=$here python3 - "$out" "$sketch_canvas" "$model" <<'PY'
import json, os, sys
from pngcheck import pixels, text

out, sketch_canvas, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = os.path.join(model, "sprint_pipeline.json")
if not sketch_canvas and os.path.exists(cfg):  # the model's own canvas size (the bundled model: 256)
    sketch_canvas = json.load(open(cfg)).get("sketch_canvas", 0)
ok = True
def check(cond, msg):
    global ok
    if not cond:
        print("FAIL:", msg); ok = False

a = pixels(f"{out}/app.a.png")
w, h = a[0], a[1]
cw, ch = (sketch_canvas, sketch_canvas) if sketch_canvas else (w, h)  # square models here
sk = pixels(f"{out}/app.a.sketch.png")
print(f"generation {w}x{h}, sketch canvas {sk[0]}x{sk[1]}")
check((sk[0], sk[1]) == (cw, ch), f"sketch is {sk[0]}x{sk[1]}, expected {cw}x{ch}")
check(sk[3].count(0) > 0, "the sketch has no ink")

for name in ["a", "b", "restored", "imported", "undone", "prompt", "h0", "h1", ""]:
    suffix = "." + name if name else ""
    app, gen = pixels(f"{out}/app{suffix}.png"), pixels(f"{out}/gen{suffix}.png")
    same = app == gen
    print(f"app{suffix}.png vs sprint-generate --from: {'identical' if same else 'DIFFERENT'}")
    check(same, f"app{suffix}.png differs from sprint-generate's output")

b = pixels(f"{out}/app.b.png")
check(a[3] != b[3], "the second stroke did not change the frame")
check(pixels(f"{out}/app.h1.png") == b, "history frame 1 is not the frame shown before the seed change")
check(pixels(f"{out}/app.h1.sketch.png") == pixels(f"{out}/app.b.sketch.png"), "history frame 1 has another sketch")
check(pixels(f"{out}/app.restored.png") == b, "selecting the history frame did not show it again")
check(text(f"{out}/app.restored.png").get("sprint:seed") == "7", "selecting the history frame did not restore seed 7")
check(pixels(f"{out}/app.afterbad.png") == b, "a failed import changed the frame")
check(pixels(f"{out}/app.afterbad.sketch.png") == pixels(f"{out}/app.b.sketch.png"), "a failed import changed the drawing")
check(pixels(f"{out}/app.imported.sketch.png") == sk, "importing a sketch did not reproduce it on the canvas")
check(pixels(f"{out}/app.imported.png") == a, "importing the sketch of frame a did not give frame a")
check(pixels(f"{out}/app.undone.png") == b, "undoing the import did not bring the drawing back")
check(pixels(f"{out}/app.h0.png")[3] != b[3], "the seed change did not change the frame")
check(text(f"{out}/app.h0.png").get("sprint:seed") == "11", "history frame 0 is not the frame of seed 11")
check(pixels(f"{out}/app.prompt.png")[3] != b[3], "editing the prompt did not change the frame")
check(pixels(f"{out}/app.png")[3] != pixels(f"{out}/app.prompt.png")[3], "the last stroke did not change the frame")
print("PASS" if ok else "FAILED")
sys.exit(0 if ok else 1)
PY
[[ $? -eq 0 ]] || exit 1

# Adaptive pacing: every frame is over a 0.001 ms budget, so frames made while drawing are 1-step drafts.
mkdir -p "$out/pace"
"$studio" --model "$model" --replay "$out/replay.json" --save-output "$out/pace/app.png" --exit-after-replay \
  --timeout 300 --threads 1 --frame-budget-ms 0.001 --output-dir "$out/pace" >"$out/pace/studio.stdout" 2>"$out/pace/studio.stderr"
rc=$?
cat "$out/pace/studio.stdout"
[[ $rc -eq 0 ]] || { tail -20 "$out/pace/studio.stderr"; echo "FAIL: sprint-studio (pacing run) exited with $rc"; exit 1; }
drafts=$(sed -n 's/.* \([0-9][0-9]*\) drafts).*/\1/p' "$out/pace/studio.stdout")
if [[ -z "$drafts" || "$drafts" -eq 0 ]]; then
  echo "FAIL: no 1-step drafts with a frame budget no frame meets"; exit 1
fi
"$generate" --from "$out/pace/app.png" --model "$model" --out "$out/pace/gen.png" --threads 1 2>"$out/pace/gen.log" || {
  cat "$out/pace/gen.log"; echo "FAIL: sprint-generate --from pace/app.png failed"; exit 1; }
PYTHONPATH=$here python3 - "$out/pace" <<'PY'
import sys
from pngcheck import pixels, text
d = sys.argv[1]
steps = text(f"{d}/app.png").get("sprint:steps")
print(f"pacing: last frame made with {steps} steps; app vs sprint-generate:",
      "identical" if pixels(f"{d}/app.png") == pixels(f"{d}/gen.png") else "DIFFERENT")
if steps != "2":
    print("FAIL: the frame after the input paused was not refined to the chosen 2 steps"); sys.exit(1)
if pixels(f"{d}/app.png") != pixels(f"{d}/gen.png"):
    print("FAIL: pacing run: app output differs from sprint-generate"); sys.exit(1)
print("PASS (pacing)")
PY
