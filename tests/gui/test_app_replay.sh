#!/usr/bin/env bash
# GUI smoke test: run sprint-studio under a virtual X server, replay recorded input (a prompt, a frame of the empty
# canvas, then scribbles), and check that
#   - the app exits cleanly after the replay,
#   - it wrote a window screenshot and the output frames,
#   - the output after the scribble differs from the one before it (the strokes reached the model),
#   - the stroke replayed as mouse input landed on the canvas where it was aimed,
#   - the screenshot is a drawn window, not a blank framebuffer.
# Usage: test_app_replay.sh SPRINT_STUDIO REPLAY_JSON OUT_DIR [extra sprint-studio args...]
# Exit 77 (CTest SKIP_RETURN_CODE) when no X server can be started.
set -u
studio=$1 replay=$2 out=$3
shift 3

source "$(dirname "$0")/xvfb.sh"

rm -rf "$out" && mkdir -p "$out"
"$studio" --replay "$replay" --screenshot "$out/screenshot.png" --save-output "$out/output.png" \
  --exit-after-replay --timeout 240 "$@"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: sprint-studio exited with $rc"
  exit 1
fi

python3 - "$out" "$(dirname "$0")" <<'PY'
import struct, sys, zlib, os
sys.path.insert(0, sys.argv[2])
from pngcheck import pixels

out = sys.argv[1]
ok = True
for name in ["screenshot.png", "output.png", "output.before.png", "output.sketch.png"]:
    if not os.path.exists(os.path.join(out, name)):
        print(f"FAIL: {name} was not written"); ok = False
if not ok: sys.exit(1)

before, after = pixels(f"{out}/output.before.png"), pixels(f"{out}/output.png")
if before[:3] != after[:3]:
    print(f"FAIL: output size changed {before[:3]} -> {after[:3]}"); sys.exit(1)
diff = sum(1 for x, y in zip(before[3], after[3]) if x != y)
print(f"output {after[0]}x{after[1]}: {diff} of {len(after[3])} channel values changed after the scribble")
if diff == 0:
    print("FAIL: the output did not change after the scribble"); sys.exit(1)

# The screenshot is large: compare raw scanlines instead of decoding it. A blank framebuffer has identical rows.
data = open(f"{out}/screenshot.png", "rb").read()
sw, sh = struct.unpack(">II", data[16:24])
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT": idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat)
stride = len(raw) // sh
distinct = len(set(raw[y * stride:(y + 1) * stride] for y in range(sh)))
print(f"screenshot {sw}x{sh}: {distinct} distinct rows")
if distinct < 50:
    print("FAIL: the screenshot looks blank"); sys.exit(1)

kw, kh, kc, sketch = pixels(f"{out}/output.sketch.png")
if sketch.count(0) == 0:
    print("FAIL: the saved sketch has no ink"); sys.exit(1)
# The replay's last stroke is mouse input through the canvas widget, along y = 0.08 from x = 0.06 to 0.30, where
# no other stroke goes: ink there means the widget turned the pointer into a stroke at the right place.
x, y = int(0.18 * kw), int(0.08 * kh)
if sketch[(y * kw + x) * kc] != 0:
    print(f"FAIL: no ink at ({x}, {y}) from the replayed mouse stroke"); sys.exit(1)
print("PASS")
PY
