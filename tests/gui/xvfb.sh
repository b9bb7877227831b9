# Sourced by the GUI test scripts: starts a private Xvfb (no window pops up on a desktop) on a free display and
# exports DISPLAY, stopping it when the script exits; falls back to the current DISPLAY. Exits 77 (CTest
# SKIP_RETURN_CODE) with a reason when no X server can be had. The app's remembered settings (user_state.h) go to a
# private XDG_CONFIG_HOME, removed at exit, so tests neither read nor change a user's (a test that needs the folder
# across runs sets XDG_CONFIG_HOME itself after sourcing this).
sprint_test_config=$(mktemp -d)
export XDG_CONFIG_HOME=$sprint_test_config
if command -v Xvfb >/dev/null 2>&1; then
  # A free display number (no lock file), starting from one derived from our pid so parallel runs spread out.
  n=$((100 + $$ % 400))
  while [[ -e "/tmp/.X${n}-lock" || -e "/tmp/.X11-unix/X${n}" ]]; do n=$((n + 1)); done
  display=":$n"
  Xvfb "$display" -screen 0 1600x900x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb_pid=$!
  trap 'kill "$xvfb_pid" 2>/dev/null; wait "$xvfb_pid" 2>/dev/null; rm -rf "$sprint_test_config"' EXIT
  for _ in $(seq 50); do
    [[ -e "/tmp/.X11-unix/X${display#:}" ]] && break
    sleep 0.1
  done
  if ! kill -0 "$xvfb_pid" 2>/dev/null; then
    echo "SKIP: Xvfb failed to start on $display"
    exit 77
  fi
  export DISPLAY=$display
else
  trap 'rm -rf "$sprint_test_config"' EXIT
  if [[ -z "${DISPLAY:-}" ]]; then
    echo "SKIP: Xvfb is not installed (apt-get install xvfb) and no DISPLAY is set"
    exit 77
  fi
fi
