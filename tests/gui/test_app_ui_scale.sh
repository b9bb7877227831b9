#!/usr/bin/env bash
# High DPI: at UI scale 2 (what a monitor with content scale 2.0 gives; Xvfb reports 1, so --ui-scale sets it) the
# font is rasterised at twice the size and the window's menu bar, one line of text plus its padding, is twice as tall
# as at scale 1. Usage: test_app_ui_scale.sh SPRINT_STUDIO MODEL OUT_DIR. Exit 77 without an X server.
set -u
studio=$1 model=$2 out=$3
source "$(dirname "$0")/xvfb.sh"
rm -rf "$out" && mkdir -p "$out"
for scale in 1 2; do
  "$studio" --model "$model" --threads 1 --window 1200x800 --ui-scale "$scale" --frames 20 --timeout 240 \
    --screenshot "$out/scale$scale.png" > "$out/scale$scale.log" 2>&1 || { echo "FAIL: exit $? at scale $scale"; tail -5 "$out/scale$scale.log"; exit 1; }
done
grep -q "UI scale 1.00 (font 16 px)" "$out/scale1.log" || { echo "FAIL: scale 1 did not use a 16 px font"; exit 1; }
grep -q "UI scale 2.00 (font 32 px)" "$out/scale2.log" || { echo "FAIL: scale 2 did not use a 32 px font"; exit 1; }
python3 - "$out" "$(dirname "$0")" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from pngcheck import pixels

def menu_bar_rows(path):
    """Rows from the top of the window that have the menu bar's colour at its left edge, x = 2 (the bar spans the
    window; below it the panes start with other colours)."""
    w, h, c, px = pixels(path)
    at = lambda x, y: tuple(px[(y * w + x) * c:(y * w + x) * c + 3])
    bar = at(2, 1)
    rows = 0
    while rows < h and at(2, rows) == bar:
        rows += 1
    return rows

one, two = menu_bar_rows(f"{sys.argv[1]}/scale1.png"), menu_bar_rows(f"{sys.argv[1]}/scale2.png")
print(f"menu bar: {one} px at scale 1, {two} px at scale 2 (ratio {two / one:.2f})")
# Font height and padding both double; rounding of the font's pixel metrics moves the bar by a pixel or two.
if not (one >= 10 and 1.8 <= two / one <= 2.2):
    print("FAIL: the menu bar did not double"); sys.exit(1)
print("PASS")
PY
