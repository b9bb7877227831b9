#!/usr/bin/env bash
# Remembered settings (app/user_state.h), under Xvfb:
#   1. a run that sets the prompt, seed, steps, guidance, brush and seed lock exits and leaves state.json;
#   2. the next run starts from them: its saved frame records that prompt, seed, steps and guidance;
#   3. a corrupt state.json gives one notice, not a crash, is set aside as state.json.bad and replaced by a valid one;
#   4. --reset-settings starts from the defaults.
# Usage: test_app_settings.sh SPRINT_STUDIO MODEL OUT_DIR. Exit 77 (CTest SKIP_RETURN_CODE) without an X server.
set -u
studio=$1 model=$2 out=$3
source "$(dirname "$0")/xvfb.sh"
rm -rf "$out" && mkdir -p "$out"
export XDG_CONFIG_HOME="$out/config"
state="$XDG_CONFIG_HOME/sprint-studio/state.json"
fail() { echo "FAIL: $*"; exit 1; }
run() {  # run NAME [args...]: the app on MODEL, its log in OUT/NAME.log
  local name=$1; shift
  "$studio" --model "$model" --threads 1 --timeout 240 "$@" > "$out/$name.log" 2>&1
}
recorded() {  # recorded PNG KEY: the sprint:KEY text chunk of the PNG
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from pngcheck import text; print(text(sys.argv[2]).get("sprint:" + sys.argv[3], ""))' \
    "$(dirname "$0")" "$1" "$2"
}

cat > "$out/set.json" <<'JSON'
{"events": [
  {"type": "prompt", "text": "a lighthouse at dusk"},
  {"type": "set", "name": "seed", "value": 4242},
  {"type": "set", "name": "steps", "value": 3},
  {"type": "set", "name": "guidance", "value": 6.5},
  {"type": "set", "name": "seed_locked", "value": true},
  {"type": "set", "name": "brush_radius", "value": 12},
  {"type": "wait_idle"}
]}
JSON
echo '{"events": [{"type": "wait_idle"}]}' > "$out/idle.json"

run first --replay "$out/set.json" --exit-after-replay || fail "first run exited $? ($(tail -3 "$out/first.log"))"
[ -f "$state" ] || fail "no $state after the first run"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["settings"]["prompt"] == "a lighthouse at dusk", s; assert s["brush_radius"] == 12, s' "$state" \
  || fail "state.json does not hold the first run's prompt and brush"
! grep -qF "\"$HOME/" "$state" || fail "state.json stores a path in the home folder as $HOME/... instead of ~/..."

run second --replay "$out/idle.json" --exit-after-replay --save-output "$out/second.png" || fail "second run exited $?"
for pair in "prompt=a lighthouse at dusk" "seed=4242" "steps=3" "guidance=6.5"; do
  key=${pair%%=*} want=${pair#*=}
  got=$(recorded "$out/second.png" "$key")
  [ "$got" = "$want" ] || fail "the second run's frame records $key='$got', not the remembered '$want'"
done
echo "ok: the second run started from the remembered prompt, seed, steps and guidance"

echo '{"settings": {"prompt": 7' > "$state"
run corrupt --replay "$out/idle.json" --exit-after-replay || fail "a corrupt state.json made the app exit $? ($(tail -3 "$out/corrupt.log"))"
[ "$(grep -c 'could not be read' "$out/corrupt.log")" = 1 ] || fail "no single notice about the corrupt file: $(cat "$out/corrupt.log" | head -5)"
[ -f "$state.bad" ] || fail "the corrupt file was not set aside as state.json.bad"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$state" || fail "state.json was not replaced by a valid file"
echo "ok: a corrupt state.json gave one notice, was set aside and replaced"

run first2 --replay "$out/set.json" --exit-after-replay || fail "run exited $?"
run reset --reset-settings --replay "$out/idle.json" --exit-after-replay --save-output "$out/reset.png" || fail "reset run exited $?"
[ "$(recorded "$out/reset.png" prompt)" != "a lighthouse at dusk" ] || fail "--reset-settings kept the remembered prompt"
echo "ok: --reset-settings starts from the defaults"
echo "PASS"
