#!/usr/bin/env bash
# JPEG import in the app: File > Import image (replayed) on tests/gui/house.jpg, the house sample sketch saved as a
# JPEG, gives the same sketch as importing the PNG it was made from: the canvases agree on at least 90 % of their
# ink pixels (JPEG's ringing near the lines moves a few pixels across the ink threshold), and hold lines.
# Usage: test_app_import_jpeg.sh SPRINT_STUDIO MODEL SOURCE_DIR OUT_DIR. Exit 77 without an X server.
set -u
studio=$1 model=$2 src=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
source "$here/xvfb.sh"
rm -rf "$out" && mkdir -p "$out"
cp "$here/house.jpg" "$src/assets/sketches/house.png" "$out/"
for kind in png jpg; do
  cat > "$out/import_$kind.json" <<JSON
{"events": [{"type": "prompt", "text": "a small wooden house on a hill"},
            {"type": "import", "path": "house.$kind", "mode": "sketch"},
            {"type": "save_output", "suffix": "imported"}]}
JSON
  "$studio" --model "$model" --threads 1 --replay "$out/import_$kind.json" --exit-after-replay --timeout 240 \
    --save-output "$out/$kind.png" > "$out/$kind.log" 2>&1 || { echo "FAIL: exit $? importing house.$kind"; tail -5 "$out/$kind.log"; exit 1; }
done
python3 - "$out/png.imported.sketch.png" "$out/jpg.imported.sketch.png" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from pngcheck import pixels
(w, h, c, a), (w2, h2, c2, b) = pixels(sys.argv[1]), pixels(sys.argv[2])
if (w, h) != (w2, h2):
    print(f"FAIL: canvases differ in size: {w}x{h} and {w2}x{h2}"); sys.exit(1)
ink_a = {i for i in range(w * h) if a[i * c] < 128}
ink_b = {i for i in range(w * h) if b[i * c2] < 128}
iou = len(ink_a & ink_b) / max(1, len(ink_a | ink_b))
print(f"canvas {w}x{h}: PNG import {len(ink_a)} ink pixels, JPEG import {len(ink_b)}, IoU {iou:.3f}")
if len(ink_a) < 0.01 * w * h:
    print("FAIL: the PNG import left (almost) no lines: nothing to compare"); sys.exit(1)
if iou < 0.9:
    print("FAIL: the JPEG import differs from the PNG import"); sys.exit(1)
print("PASS")
PY
