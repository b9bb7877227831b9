#!/usr/bin/env bash
# Sprint Studio bootstrap: installs what is missing, builds, then runs the app or the tests.
#
#   ./bootstrap.sh run [args...]   install + build + run the app (args go to sprint-studio); headless: generate
#   ./bootstrap.sh generate [args] install + build + run the headless generator sprint-generate
#   ./bootstrap.sh test            install + build + run the whole test suite (what CI runs)
#   ./bootstrap.sh model [--smoke] rebuild the bundled default model + its report (hours on 2 cores; resumable)
#   ./bootstrap.sh sanitize        build everything with ASan + UBSan in ./build-asan and run the unit, parity and
#                                  fuzz labels there (about 2 hours on 2 cores)
#   ./bootstrap.sh install [PREFIX] build, then install the programs, data and libraries (default ~/.local)
#   ./bootstrap.sh package         build, then make a .deb in ./out (cpack)
#   ./bootstrap.sh deps | build    only install / only install + build
#
# Idempotent: a second call skips what is already there. Environment knobs:
#   SPRINT_CACHE   where the pinned Python environment (LibTorch) lives   (default ~/.cache/sprint-studio)
#   SPRINT_BUILD   build folder                                            (default ./build)
#   SPRINT_CUDA    AUTO | ON | OFF, passed to CMake                        (default AUTO)
#   SPRINT_JOBS    parallel compile jobs                                   (default: nproc)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmd="${1:-run}"; shift || true

cache="${SPRINT_CACHE:-$HOME/.cache/sprint-studio}"
build="${SPRINT_BUILD:-$here/build}"
jobs="${SPRINT_JOBS:-$(nproc)}"
log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

# Debian packages the build and the tests need.
apt_packages=(
  build-essential cmake ninja-build pkg-config python3 python3-venv
  libimgui-dev libglfw3-dev libepoxy-dev libopencv-dev libsentencepiece-dev nlohmann-json3-dev libcli11-dev
  libspdlog-dev libfmt-dev libpng-dev libgtest-dev libgmock-dev libbenchmark-dev libicu-dev libgloo-dev
  xvfb xauth libgl1-mesa-dri mesa-utils fonts-noto-color-emoji python3-emoji ruby-gemojione librsvg2-bin
  clang libclang-rt-14-dev
)

install_apt() {
  local missing=()
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The pinned Python environment that provides LibTorch; keyed by the requirements file so a pin change
# makes a fresh one.
venv_dir() {
  local key; key="$(sha256sum "$here/cmake/requirements.txt" | cut -c1-12)"
  echo "$cache/venv-$key"
}

install_python() {
  local venv; venv="$(venv_dir)"
  if [ -f "$venv/.complete" ]; then return 0; fi
  log "creating the pinned Python environment in $venv (LibTorch comes from the torch wheel; ~6 GB)"
  mkdir -p "$cache"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/cmake/requirements.txt"
  touch "$venv/.complete"
}

# configure_and_build [extra CMake arguments for the first configure]
configure_and_build() {
  local venv; venv="$(venv_dir)"
  local torch_dir="$venv/lib/$("$venv/bin/python" -c 'import sys;print(f"python{sys.version_info.major}.{sys.version_info.minor}")')/site-packages/torch/share/cmake/Torch"
  local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  if [ ! -f "$build/CMakeCache.txt" ]; then
    log "configuring $build"
    cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DTorch_DIR="$torch_dir" -DSPRINT_PYTHON="$venv/bin/python" -DSPRINT_CUDA="${SPRINT_CUDA:-AUTO}" "$@"
  fi
  log "building ($jobs jobs)"
  cmake --build "$build" -j "$jobs"
}

case "$cmd" in
  deps)  install_apt; install_python ;;
  build) install_apt; install_python; configure_and_build ;;
  test)
    install_apt; install_python; configure_and_build
    # Every test, every label. GPU and display tests skip with a reason when there is no GPU / display;
    # the GUI tests start their own Xvfb.
    cd "$build"
    rc=0
    ctest --output-on-failure --timeout 1500 -j "$jobs" "$@" || rc=$?
    # Why each skipped test skipped (GoogleTest prints the reason on the line after "Skipped").
    awk '/^[0-9]+\/[0-9]+ Test: /{name=$3} /: Skipped$/{getline why; print "  skipped: " name ": " why}' \
      Testing/Temporary/LastTest.log 2>/dev/null | sort -u
    exit "$rc"
    ;;
  run)
    install_apt; install_python; configure_and_build
    # The desktop app when there is a display; otherwise a headless generation (sprint-generate).
    if [ -x "$build/bin/sprint-studio" ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
      exec "$build/bin/sprint-studio" "$@"
    fi
    log "no display: running the headless generator instead of the app (./bootstrap.sh generate --help)"
    exec "$0" generate "$@"
    ;;
  generate)
    install_apt; install_python; configure_and_build
    if [ $# -eq 0 ]; then
      mkdir -p "$here/out"
      if [ -f "$here/assets/models/sprint-emoji-64/model_index.json" ]; then
        # The bundled model on one of the sample sketches.
        set -- --model "$here/assets/models/sprint-emoji-64" --prompt "red apple" \
               --sketch "$here/assets/sketches/apple.png" --steps 1 --seed 0 --out "$here/out/sprint.png"
      else
        # Before the bundled model is built (./bootstrap.sh model): the tiny random-weight pipeline of the parity
        # fixtures (it exercises every stage; the picture is noise).
        set -- --model "$here/tests/fixtures/pipeline/tiny_pipeline" --prompt "a red fox in the snow" \
               --size 128x128 --steps 2 --seed 0 --out "$here/out/sprint.png"
      fi
    fi
    exec "$build/bin/sprint-generate" "$@"
    ;;
  install)
    install_apt; install_python; configure_and_build
    prefix="${1:-$HOME/.local}"
    cmake --install "$build" --prefix "$prefix"
    log "installed into $prefix: run $prefix/bin/sprint-studio (data in $prefix/share/sprint-studio)"
    ;;
  package)
    install_apt; install_python; configure_and_build
    mkdir -p "$here/out"
    (cd "$build" && cpack -B "$here/out")
    log "package: $(ls "$here"/out/*.deb)"
    ;;
  sanitize)
    # AddressSanitizer + UndefinedBehaviorSanitizer over our code (LibTorch is not instrumented). Leak checking is
    # on; LibTorch's and CUDA's process-lifetime allocations are not ours and are suppressed by library name.
    build="${SPRINT_BUILD:-$here/build-asan}"
    install_apt; install_python
    configure_and_build -DSPRINT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPRINT_CUDA=OFF
    cd "$build"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0"
    export LSAN_OPTIONS="suppressions=$here/tests/sanitize/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    exec ctest --output-on-failure --timeout 3000 -j "$jobs" -L "unit|parity|fuzz" "$@"
    ;;
  model)
    install_apt; install_python; configure_and_build
    exec "$here/training/rebuild_bundled_model.sh" "$build" "$(venv_dir)/bin/python" "$@"
    ;;
  *) echo "usage: $0 run|generate|test|model|install|package|sanitize|deps|build" >&2; exit 2 ;;
esac
