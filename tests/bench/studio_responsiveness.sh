#!/usr/bin/env bash
# Responsiveness of the live app while the model runs without a break: sprint-studio replays ten seconds of
# continuous scribbling (five 2-second strokes, each ending with a pen-up, so a final frame follows each) under a
# private Xvfb, then prints its exit report: UI frame time p50/p99 and input-to-photon latency (input event -> the
# frame made from it on screen), plus the generation timings. A measurement, not a test: nothing is asserted.
# Usage: tests/bench/studio_responsiveness.sh BUILD_DIR [MODEL_DIR] [extra sprint-studio args...]
# (MODEL_DIR defaults to the app's default model: the bundled one when it is there.)
set -u
build=${1:?usage: studio_responsiveness.sh BUILD_DIR [MODEL_DIR] [sprint-studio args...]}
model=${2:-}
shift $(( $# >= 2 ? 2 : 1 ))
source "$(dirname "$0")/../gui/xvfb.sh"
out=$(mktemp -d)
trap 'rm -rf "$out"; kill "${xvfb_pid:-}" 2>/dev/null' EXIT
python3 - "$out/replay.json" <<'PY'
import json, math, sys
events = [{"type": "prompt", "text": "red apple"}, {"type": "set", "name": "steps", "value": 1}]
for k in range(5):  # zig-zags across the canvas, 2 s each
    pts = [[0.1 + 0.8 * i / 24, 0.5 + 0.3 * math.sin(i * 0.7 + k)] for i in range(25)]
    events.append({"type": "stroke", "duration": 2.0, "radius": 0.02, "points": pts})
events.append({"type": "wait_idle"})
json.dump({"events": events}, open(sys.argv[1], "w"))
PY
args=(--replay "$out/replay.json" --exit-after-replay --timeout 120)
[[ -n "$model" ]] && args+=(--model "$model")
"$build/bin/sprint-studio" "${args[@]}" "$@" 2>"$out/stderr" | grep -E "^(frames|generated):"
rc=${PIPESTATUS[0]}
if [[ $rc -ne 0 ]]; then tail -5 "$out/stderr"; echo "sprint-studio exited with $rc"; exit 1; fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
