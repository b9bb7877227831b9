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

# Prefer a private Xvfb (no window pops up on a desktop); fall back to the current display.
if command -v Xvfb >/dev/null 2>&1; then
  # A free display number (no lock file), starting from one derived from our pid so parallel runs spread out.
  n=$((100 + $$ % 400))
  while [[ -e "/tmp/.X${n}-lock" || -e "/tmp/.X11-unix/X${n}" ]]; do n=$((n + 1)); done
  display=":$n"
  Xvfb "$display" -screen 0 1600x900x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb_pid=$!
  trap 'kill "$xvfb_pid" 2>/dev/null; wait "$xvfb_pid" 2>/dev/null' EXIT
  for _ in $(seq 50); do
    [[ -e "/tmp/.X11-unix/X${display#:}" ]] && break
    sleep 0.1
  done
  if ! kill -0 "$xvfb_pid" 2>/dev/null; then
    echo "SKIP: Xvfb failed to start on $display"
    exit 77
  fi
  export DISPLAY=$display
elif [[ -z "${DISPLAY:-}" ]]; then
  echo "SKIP: Xvfb is not installed (apt-get install xvfb) and no DISPLAY is set"
  exit 77
fi

rm -rf "$out" && mkdir -p "$out"
"$studio" --replay "$replay" --screenshot "$out/screenshot.png" --save-output "$out/output.png" \
  --exit-after-replay --timeout 240 "$@"
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: sprint-studio exited with $rc"
  exit 1
fi

python3 - "$out" <<'PY'
import struct, sys, zlib, os

def pixels(path):
    """(width, height, channels, raw scanlines) of an 8-bit PNG; the raw data is compared as a whole."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    # Undo the per-row filters so equal images compare equal however they were encoded.
    stride, out, prev = w * channels, bytearray(), bytearray(w * channels)
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b, c = prev[i], (prev[i - channels] if i >= channels else 0)
            if f == 1: row[i] = (row[i] + a) & 255
            elif f == 2: row[i] = (row[i] + b) & 255
            elif f == 3: row[i] = (row[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += row
        prev = row
    return w, h, channels, bytes(out)

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
