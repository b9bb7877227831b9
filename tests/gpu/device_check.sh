#!/usr/bin/env bash
# The CUDA checks, in one call, on a machine with an NVIDIA GPU, nvcc, CMake, ninja and a CUDA torch in python3 but
# no Debian -dev packages (tests/gpu/pack_deps.sh packs those into .device/ beforehand):
#   1. configure + build against that python3's torch with SPRINT_CUDA=ON (the app too);
#   2. the gpu-labelled tests (pipeline on CUDA; CUDA-GL interop on a headless EGL context) and the CUDA unit test;
#   3. sprint-bench --pipeline --device cuda: the bundled model, the tiny fixture and the 0.6B shape at 1024x1024,
#      the last two next to diffusers on the same weights (bf16 on both sides);
#   4. sprint-bench --train --device cuda: training-step throughput next to PyTorch/diffusers.
# Every step's output goes to stdout and to $OUT/device_check.log (default out/device; the machine hands back a few
# files only: that log, machine.txt, the bench JSONs and one picture); the script goes on after a failure and the
# summary at the end says which steps failed.
#
#   tests/gpu/device_check.sh [build tests bench train ...]   (default: all four; "noui" builds without the app;
#                                                             bench-bundled / bench-1024: one of the two benches;
#                                                             bench-1024-notrim: the 1024 one with --no-trim;
#                                                             build-bench gdb-bench / asan-bench: the bench's crash)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
OUT="${OUT:-$root/out/device}"
mkdir -p "$OUT"
steps=("$@"); [ ${#steps[@]} -eq 0 ] && steps=(build tests bench train)
want() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
failed=()
log="$OUT/device_check.log"
: > "$log"
run() {  # name, command...: its output on stdout and appended to $log
  local name="$1"; shift
  echo "=== $name: $* ($(date +%T))" | tee -a "$log"
  local t0=$SECONDS
  if ! "$@" 2>&1 | tee -a "$log"; then failed+=("$name"); fi
  echo "=== $name: $((SECONDS - t0)) s" | tee -a "$log"
}

# ---- environment ----
deps="$root/.device/deps/usr"
[ -d "$deps" ] || tar -C "$root/.device" -xJf "$root/.device/deps.tar.xz"
export PKG_CONFIG_PATH="$deps/lib/x86_64-linux-gnu/pkgconfig"
command -v pkg-config >/dev/null || export PATH="$root/.device/bin:$PATH"
if ls "$root"/.device/whl/*.whl >/dev/null 2>&1; then  # diffusers (+ what it needs) for the comparisons
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/sprint-site \
    "$root"/.device/whl/*.whl && export PYTHONPATH=/tmp/sprint-site
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
  python3 -c "import diffusers, transformers; print('diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
  nvcc --version | tail -1; g++ --version | head -1; cmake --version | head -1; nproc
} 2>&1 | tee "$OUT/machine.txt"

b=/tmp/sprint-build
bin="$b/bin"
ui=ON; want noui && ui=OFF
# NVIDIA's EGL for glvnd (the driver's folder on these machines, else wherever the driver put its vendor file).
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then
  egl_json="$(ls /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json 2>/dev/null | head -1)"
  [ -n "$egl_json" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl_json"
fi
echo "EGL vendor file: ${__EGL_VENDOR_LIBRARY_FILENAMES:-none found}" | tee -a "$OUT/machine.txt"
if want build; then
  run configure cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPRINT_CUDA=ON -DSPRINT_BUILD_UI=$ui \
    -DSPRINT_PYTHON="$(command -v python3)" -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_BUILD_RPATH="$deps/lib/x86_64-linux-gnu" -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags \
    -DTORCH_CUDA_ARCH_LIST=9.0
  targets=(sprint-tests-gpu sprint-tests-unit sprint-bench sprint-generate)
  [ $ui = ON ] && targets+=(sprint-studio sprint-tests-gpu-gl)
  run build ninja -C "$b" "${targets[@]}"
fi

if want build-bench; then  # the bench alone (for gdb-bench)
  run configure cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPRINT_CUDA=ON -DSPRINT_BUILD_UI=OFF \
    -DSPRINT_PYTHON="$(command -v python3)" -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_BUILD_RPATH="$deps/lib/x86_64-linux-gnu" -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags \
    -DTORCH_CUDA_ARCH_LIST=9.0
  run build ninja -C "$b" sprint-bench
fi
if want gdb-bench; then  # where a bench run crashes: every thread's stack
  # At a jump to address 0 the stack cannot be unwound: the registers and the words around the stack pointer
  # (x/a names the code addresses among them) say who jumped there.
  run gdb-bench cuda-gdb -batch -ex run -ex "info registers rip rsp rbp rax rdi" -ex 'x/32a $sp-128' \
    -ex "thread apply 1 bt 25" --args "$bin/sprint-bench" --pipeline \
    --device cuda --tiny-pipeline assets/models/sprint-emoji-64 --steps 1 --repeats 2 --no-compare
fi
if want asan-bench; then  # the bench built with AddressSanitizer (its own build folder), run on the bundled model
  ab=/tmp/sprint-build-asan
  run configure-asan cmake -S "$root" -B "$ab" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPRINT_CUDA=ON \
    -DSPRINT_BUILD_UI=OFF -DSPRINT_PYTHON="$(command -v python3)" -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_BUILD_RPATH="$deps/lib/x86_64-linux-gnu" \
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags -fsanitize=address" \
    "-DCMAKE_CXX_FLAGS=-fsanitize=address -fno-omit-frame-pointer" -DTORCH_CUDA_ARCH_LIST=9.0
  run build-asan ninja -C "$ab" sprint-bench
  ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=0:detect_stack_use_after_return=1:halt_on_error=1 \
    run asan-bench "$ab/bin/sprint-bench" --pipeline --device cuda --tiny-pipeline assets/models/sprint-emoji-64 \
    --steps 1 --repeats 2 --no-compare
fi

if want tests; then
  run tests-gpu "$bin/sprint-tests-gpu"
  run tests-unit-cuda "$bin/sprint-tests-unit" --gtest_filter='*Cuda*'
  [ $ui = ON ] && run tests-gpu-gl "$bin/sprint-tests-gpu-gl"
  run generate "$bin/sprint-generate" --model assets/models/sprint-emoji-64 --device cuda --prompt "red apple" \
    --sketch assets/sketches/apple.png --steps 1 --seed 1 --size 64x64 --out "$OUT/apple-cuda.png"
fi

if want bench || want bench-bundled; then
  run bench-bundled "$bin/sprint-bench" --pipeline --device cuda --tiny-pipeline assets/models/sprint-emoji-64 \
    --steps 1 --repeats 20 --no-compare --json "$OUT/bench-bundled.json"
fi
if want bench || want bench-1024; then
  run bench-1024 "$bin/sprint-bench" --pipeline --device cuda --size 1024 --steps 1 --repeats 5 \
    --json "$OUT/bench-1024.json"  # 5 warm runs per scenario: the medians are steady on a GPU
fi
if want bench-1024-notrim; then  # the same with every text column encoded (what skipping the padding is worth)
  run bench-1024-notrim "$bin/sprint-bench" --pipeline --device cuda --size 1024 --steps 1 --repeats 5 --no-trim \
    --json "$OUT/bench-1024-notrim.json"
fi

if want train; then
  run bench-train "$bin/sprint-bench" --train --device cuda --json "$OUT/bench-train.json"
fi

echo "=== summary: steps ${steps[*]}; failed: ${failed[*]:-none}" | tee -a "$log"
[ ${#failed[@]} -eq 0 ]
