#!/usr/bin/env bash
# Install, package and reuse (docs/usage.md#install):
#   1. `cmake --install` into a scratch prefix; no installed file names the source or build folder;
#   2. from that prefix, with the build and source folders hidden (a private mount namespace where they are empty;
#      skipped with a note when namespaces are not allowed): sprint-generate --version, one generation on the
#      installed bundled model, `--from` that picture (which finds the model by name among the installed ones), and
#      sprint-studio / sprint-train --version;
#   3. a project outside the tree (tests/install/consumer) builds against the installed CMake package and runs;
#   4. cpack makes the .deb, which unpacks into a scratch root and runs there (--version and one generation).
# Usage: test_install.sh SOURCE_DIR BUILD_DIR
# The scratch folder is a new one under $TMPDIR (or /tmp), outside both trees since they are hidden in step 2; it is
# removed when the test passes and kept (its path printed) when it fails.
set -euo pipefail
src=$(cd "$1" && pwd) build=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sprint-install.XXXXXX")
case "$work/" in "$src/"* | "$build/"*) echo "FAIL: TMPDIR is inside the source or build folder"; exit 1 ;; esac
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "scratch folder kept: $work"; fi' EXIT
fail() { echo "FAIL: $*"; exit 1; }
same_pixels() {  # the PNGs' image data (IDAT) are equal; text chunks may differ
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from pngcheck import idat
sys.exit(0 if idat(sys.argv[2]) == idat(sys.argv[3]) != b"" else 1)' "$src/tests/gui" "$1" "$2"
}
sketch="$work/apple.png"
cp "$src/assets/sketches/apple.png" "$sketch"
model_name=$(sed -n 's/.*kDefaultModelName = "\(.*\)";/\1/p' "$src/app/data_dir.h")

echo "== 1. cmake --install"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
for f in bin/sprint-generate bin/sprint-train lib/libsprint_spm.so share/sprint-studio/shaders \
         "share/sprint-studio/models/$model_name/model_index.json" lib/cmake/SprintStudio/SprintStudioConfig.cmake; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
if grep -rlF -e "$build" -e "$src" "$prefix" > "$work/paths.txt"; then
  fail "installed files name the build or source folder: $(head -5 "$work/paths.txt" | tr '\n' ' ')"
fi
echo "ok: $(find "$prefix" -type f | wc -l) files; none names $build or $src"

echo "== 2. the installed programs, build and source folders hidden"
run_hidden() {  # runs "$@" with the build and source folders replaced by empty ones
  if unshare --mount --propagation private true 2>/dev/null; then
    unshare --mount --propagation private sh -c 'mount -t tmpfs none "$1" && mount -t tmpfs none "$2" && shift 2 && exec "$@"' \
      sh "$build" "$src" "$@"
  else
    "$@"
  fi
}
unshare --mount --propagation private true 2>/dev/null || echo "note: no mount namespaces here; the folders stay visible"
cd "$work"
run_hidden "$prefix/bin/sprint-generate" --version || fail "sprint-generate --version"
run_hidden env -u SPRINT_DATA_DIR SPRINT_THREADS=1 "$prefix/bin/sprint-generate" \
  -m "$prefix/share/sprint-studio/models/$model_name" -p "red apple" --sketch "$sketch" -s 1 -n 1 -o "$work/out.png" -q \
  || fail "a generation from the installed prefix"
[ -s "$work/out.png" ] || fail "no picture written"
run_hidden env -u SPRINT_DATA_DIR SPRINT_THREADS=1 "$prefix/bin/sprint-generate" --from "$work/out.png" \
  -o "$work/again.png" -q || fail "--from did not find the installed bundled model by name"
same_pixels "$work/out.png" "$work/again.png" || fail "--from gave another picture"
run_hidden "$prefix/bin/sprint-train" --version || fail "sprint-train --version"
if [ -x "$prefix/bin/sprint-studio" ]; then
  run_hidden env -u DISPLAY "$prefix/bin/sprint-studio" --version || fail "sprint-studio --version"
fi
echo "ok: generated $(stat -c %s "$work/out.png") bytes, re-ran it with --from"

echo "== 3. a consumer project against the installed package"
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" > "$work/consumer-configure.log" 2>&1 || { tail -20 "$work/consumer-configure.log"; fail "consumer configure"; }
cmake --build "$work/consumer" > "$work/consumer-build.log" 2>&1 || { tail -20 "$work/consumer-build.log"; fail "consumer build"; }
SPRINT_THREADS=1 run_hidden "$work/consumer/sprint-consumer" "$prefix/share/sprint-studio/models/$model_name" \
  || fail "the consumer did not run"

echo "== 4. the Debian package"
(cd "$work" && cpack --config "$build/CPackConfig.cmake" -B "$work/package" > "$work/cpack.log" 2>&1) \
  || { tail -20 "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/package/*.deb)
dpkg-deb --info "$deb" | grep -E "Package|Version|Depends"
dpkg-deb -x "$deb" "$work/root"
run_hidden "$work/root/usr/bin/sprint-generate" --version || fail "the packaged sprint-generate --version"
run_hidden env -u SPRINT_DATA_DIR SPRINT_THREADS=1 "$work/root/usr/bin/sprint-generate" \
  -m "$work/root/usr/share/sprint-studio/models/$model_name" -p "red apple" --sketch "$sketch" -s 1 -n 1 \
  -o "$work/deb.png" -q || fail "a generation from the unpacked package"
same_pixels "$work/out.png" "$work/deb.png" || fail "the packaged program drew another picture than the installed one"
echo "PASS"
