#!/usr/bin/env bash
# Builds Sprint Studio's libFuzzer targets (clang, AddressSanitizer, UndefinedBehaviorSanitizer) and runs each for a
# while: the input parsers (safetensors, model configs, PNG + settings chunks, settings text, replay files) get
# mutated inputs; an exception with a message is the correct outcome for bad input, while a crash, a sanitizer
# report, a broken invariant, a hang (> 10 s on one input), a leak, > 2 GB of memory or a single allocation of
# > 512 MB (reported with its stack) is a finding.
#
#   tests/fuzz/libfuzzer/run.sh BUILD_DIR SECONDS_PER_TARGET [TARGET ...]
#
# TARGET: fuzz_safetensors_header fuzz_config fuzz_png fuzz_settings fuzz_replay (default: all). Exit status 1 when a
# target found something, 2 on a usage, build or harness error.
#
# BUILD_DIR holds the build (incremental), the corpora (corpus/<target>: what the fuzzer has learnt, kept between
# runs; seeds/<target>: regenerated every run from make_seeds.py and the repository's fixtures, sketches and
# replays), findings/<target>/ (crash-*, leak-*, timeout-*, oom-* inputs of the last run) and logs/<target>.log.
#
# Longer runs (the corpus keeps growing between runs, so repeated runs go deeper):
#   tests/fuzz/libfuzzer/run.sh build-fuzz 3600                      # an hour per target
#   tests/fuzz/libfuzzer/run.sh build-fuzz 28800 fuzz_safetensors_header
#   FUZZ_KEEP_GOING=1 tests/fuzz/libfuzzer/run.sh build-fuzz 3600   # fork mode: record every finding, do not stop
# Reproduce or minimise a finding with the binary itself:
#   build-fuzz/fuzz_config build-fuzz/findings/fuzz_config/crash-<sha1>
#   build-fuzz/fuzz_config -minimize_crash=1 -runs=10000 build-fuzz/findings/fuzz_config/crash-<sha1>
#
# Environment: CXX (default clang++), SPRINT_PYTHON (Python of the pinned environment, to find LibTorch; default: the
# ./bootstrap.sh environment), FUZZ_JOBS (build jobs, default: all cores), FUZZ_KEEP_GOING=1 (see above),
# FUZZ_FRESH_CORPUS=1 (start from the seeds only).
set -euo pipefail

usage() { echo "usage: $0 BUILD_DIR SECONDS_PER_TARGET [TARGET ...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
build=$(mkdir -p "$1" && cd "$1" && pwd)
seconds=$2
shift 2
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] || usage
all_targets=(fuzz_safetensors_header fuzz_config fuzz_png fuzz_settings fuzz_replay)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "unknown target '$t' (known: ${all_targets[*]})" >&2; exit 2; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)

# ---- configure and build ------------------------------------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
  py=${SPRINT_PYTHON:-}
  if [ -z "$py" ]; then  # the environment ./bootstrap.sh creates, keyed by the requirements file
    key=$(sha256sum "$root/cmake/requirements.txt" | cut -c1-12)
    cand="${SPRINT_CACHE:-$HOME/.cache/sprint-studio}/venv-$key/bin/python"
    [ -x "$cand" ] && py=$cand
  fi
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="${CXX:-clang++}" ${py:+-DSPRINT_PYTHON="$py"} \
    || { echo "libfuzzer: configure failed" >&2; exit 2; }
fi
start=$(date +%s)
cmake --build "$build" -j "${FUZZ_JOBS:-$(nproc)}" --target "${targets[@]}" \
  || { echo "libfuzzer: build failed" >&2; exit 2; }
echo "libfuzzer: build up to date ($(( $(date +%s) - start )) s)"

# ---- corpora ------------------------------------------------------------------------------------------------------
rm -rf "$build/seeds"
python3 "$here/make_seeds.py" "$build/seeds"
# Copies the repository files matching find's arguments into seeds/<target>/, named after their path.
add_seeds() {
  local target=$1 folder=$2
  shift 2
  mkdir -p "$build/seeds/$target"
  (cd "$root" && find "$folder" -type f "$@" -print0) | while IFS= read -r -d '' f; do
    cp "$root/$f" "$build/seeds/$target/${f//\//_}"
  done
}
add_seeds fuzz_safetensors_header tests/fixtures -name '*.safetensors' -size -32k  # larger ones add only data bytes
add_seeds fuzz_config tests/fixtures \( -name config.json -o -name model_index.json -o -name scheduler_config.json \
                                        -o -name sprint_pipeline.json \)
add_seeds fuzz_png assets/sketches -name '*.png'
add_seeds fuzz_replay tests/gui -name '*.json'

declare -A dict=([fuzz_safetensors_header]=safetensors [fuzz_config]=json [fuzz_png]=png [fuzz_settings]=settings
                 [fuzz_replay]=json)

# Parsers that read files get a scratch folder of their own, on tmpfs when there is one.
scratch_root=/dev/shm
[ -d "$scratch_root" ] && [ -w "$scratch_root" ] || scratch_root=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$scratch_root/sprint-libfuzzer.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# Any sanitizer report is fatal and printed with its stack; leaks are checked after every input (libFuzzer).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export SPRINT_FUZZ_TMPDIR=$scratch

# ---- run ----------------------------------------------------------------------------------------------------------
mkdir -p "$build/logs"
failed=0
summary=()
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  findings=$build/findings/$t
  log=$build/logs/$t.log
  [ "${FUZZ_FRESH_CORPUS:-0}" = 1 ] && rm -rf "$corpus"
  rm -rf "$findings"
  mkdir -p "$corpus" "$findings"
  mode=()
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  echo "libfuzzer: $t for $seconds s (log: $log)"
  set +e
  "$build/$t" "${mode[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    -dict="$here/dict/${dict[$t]}.dict" -artifact_prefix="$findings/" "$corpus" "$build/seeds/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -oE '^stat::number_of_executed_units: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
  [ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  rate=$(grep -oE '^stat::average_exec_per_sec: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
  [ -n "$rate" ] || rate=$(grep -oE 'exec/s:? [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
  units=$(find "$corpus" -type f | wc -l)
  mapfile -t found < <(find "$findings" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
                                                   -o -name 'oom-*' \) | sort)
  line="$t: ${runs:-?} executions${rate:+ ($rate exec/s)}, corpus $units inputs"
  if [ ${#found[@]} -gt 0 ]; then
    failed=1
    line+=", FOUND ${#found[@]}:"
    for f in "${found[@]:0:5}"; do line+=$'\n'"    $f"; done
    [ ${#found[@]} -le 5 ] || line+=$'\n'"    ... and $(( ${#found[@]} - 5 )) more in $findings"
    # The first report's headline and the top frames in our code.
    report=$(grep -m1 -E '^(==[0-9]+== ?ERROR|SUMMARY: |.*runtime error:|==== fuzz invariant broken)' "$log" || true)
    [ -n "$report" ] && line+=$'\n'"    $report"
    frames=$(grep -E '^ +#[0-9]+ .* in .*(/core/|/app/|/ui/|/tests/fuzz/)' "$log" | head -4 | sed 's/^ */      /' || true)
    [ -n "$frames" ] && line+=$'\n'"$frames"
    if grep -q 'AddressSanitizer: stack-overflow' "$log"; then  # ASan shows only the innermost 255 frames
      line+=$'\n'"    (deep recursion; the callers: ASAN_OPTIONS=handle_segv=0 gdb -batch -ex run -ex 'bt -12' --args $build/$t ${found[0]})"
    fi
    line+=$'\n'"    reproduce: $build/$t ${found[0]}"
  elif [ $rc -ne 0 ]; then
    [ $failed -eq 1 ] || failed=2
    line+=", FAILED (exit status $rc without a finding; see the log)"
  else
    line+=", nothing found"
  fi
  summary+=("$line")
done

echo
echo "libfuzzer summary ($seconds s per target):"
for line in "${summary[@]}"; do echo "  $line"; done
echo "longer runs: $0 $build 3600 [TARGET ...]   (the corpus in $build/corpus is kept and grows)"
exit $failed
