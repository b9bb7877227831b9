#!/usr/bin/env bash
# Packs the Debian build dependencies (headers, libraries, CMake and pkg-config files) into .device/ so the project
# can be built on a machine that has a compiler, CMake, CUDA and a Python torch but none of Debian's -dev packages
# (the lent GPU machine: it cannot reach a package registry). tests/gpu/device_check.sh builds against it.
#
#   tests/gpu/pack_deps.sh            writes .device/deps (a /usr-like prefix) and .device/bin/pkg-config
#
# Only what the CUDA build and its checks use: OpenCV core+imgproc, libpng, ICU, SentencePiece, nlohmann-json,
# CLI11, GoogleTest, and the UI's ImGui/GLFW/epoxy/stb with the GL vendor-neutral dispatch (glvnd's libEGL/libGL:
# epoxy loads them, and they load the NVIDIA driver's EGL named by __EGL_VENDOR_LIBRARY_FILENAMES). glibc, libstdc++, libgcc and zlib are taken from the target
# machine (they are newer there; zlib is linked through a symlink to the target's own copy).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$here/.device"
arch=x86_64-linux-gnu
sys=/usr/lib/$arch
rm -rf "$out/deps" "$out/bin" "$out/deps.tar.xz"
mkdir -p "$out/deps/usr/include" "$out/deps/usr/lib/$arch/pkgconfig" "$out/deps/usr/lib/$arch/cmake" \
         "$out/deps/usr/share/cmake" "$out/bin"
inc="$out/deps/usr/include" lib="$out/deps/usr/lib/$arch"

# OpenCV: the top-level headers and the two modules' folders only.
mkdir -p "$inc/opencv4/opencv2"
cp -a /usr/include/opencv4/opencv2/*.h* /usr/include/opencv4/opencv2/core /usr/include/opencv4/opencv2/imgproc \
      "$inc/opencv4/opencv2/"
for h in nlohmann CLI gtest unicode libpng16 png.h pngconf.h pnglibconf.h zlib.h zconf.h \
         sentencepiece_processor.h sentencepiece_trainer.h imgui GLFW epoxy stb EGL KHR GL; do
  [ -e "/usr/include/$h" ] || { echo "pack_deps: /usr/include/$h is missing (run ./bootstrap.sh deps)" >&2; exit 1; }
  cp -a "/usr/include/$h" "$inc/"
done

# Libraries: the named ones and everything they need, minus the base system (see above).
skip='^(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libz|ld-linux-x86-64)\.so'
declare -A seen=()
add_lib() {  # soname
  local name="$1"
  [[ -n "${seen[$name]:-}" || "$name" =~ $skip ]] && return 0
  seen[$name]=1
  local real; real="$(readlink -f "$sys/$name")"
  cp "$real" "$lib/$name"
  local dep
  for dep in $(readelf -d "$real" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do add_lib "$dep"; done
}
for l in libopencv_core.so.406 libopencv_imgproc.so.406 libpng16.so.16 libicuuc.so.72 libsentencepiece.so.0 \
         libsentencepiece_train.so.0 libglfw.so.3 libepoxy.so.0 libstb.so.0 libEGL.so.1 libGL.so.1 libOpenGL.so.0; do
  add_lib "$l"
done
# Link-time names (lib*.so) for the libraries the build links by name.
for pair in opencv_core:libopencv_core.so.406 opencv_imgproc:libopencv_imgproc.so.406 png16:libpng16.so.16 \
            png:libpng16.so.16 icuuc:libicuuc.so.72 icudata:libicudata.so.72 sentencepiece:libsentencepiece.so.0 \
            sentencepiece_train:libsentencepiece_train.so.0 glfw:libglfw.so.3 epoxy:libepoxy.so.0 stb:libstb.so.0; do
  ln -sf "${pair#*:}" "$lib/lib${pair%%:*}.so"
done
ln -sf libglfw.so.3 "$lib/libglfw.so.3.3"  # the name glfw3's CMake package file gives
ln -sf "/lib/$arch/libz.so.1" "$lib/libz.so"  # the target's zlib (resolved there)
cp "$sys"/libgtest.a "$sys"/libgtest_main.a "$sys"/libgmock.a "$sys"/libgmock_main.a "$sys"/libimgui.a "$lib/"

# pkg-config files, relocated: prefix = three levels above the .pc file.
# epoxy's private requirements (x11, egl, gl) only matter for static linking: dropped.
for pc in icu-uc sentencepiece imgui stb epoxy libpng16 libpng zlib; do
  src="$sys/pkgconfig/$pc.pc"; [ -f "$src" ] || src="/usr/share/pkgconfig/$pc.pc"
  sed -e 's|^prefix *= *.*|prefix=${pcfiledir}/../../..|' -e '/^Requires.private:/d' "$src" > "$lib/pkgconfig/$pc.pc"
done
# CMake package files that locate themselves relative to their own folder.
cp -a "$sys/cmake/GTest" "$sys/cmake/glfw3" "$lib/cmake/"
cp -a /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$out/deps/usr/share/cmake/"
# A small OpenCV package file for the two modules we use (Debian's lists every module and insists they all exist).
mkdir -p "$lib/cmake/opencv4"
cat > "$lib/cmake/opencv4/OpenCVConfig.cmake" <<'EOF'
# OpenCV core + imgproc from Debian's 4.6 libraries, packed by tests/gpu/pack_deps.sh.
get_filename_component(_ocv_prefix "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${_ocv_prefix}/include/opencv4")
set(OpenCV_LIBS "")
foreach(_m core imgproc)
  if(NOT TARGET opencv_${_m})
    add_library(opencv_${_m} SHARED IMPORTED)
    set_target_properties(opencv_${_m} PROPERTIES
      IMPORTED_LOCATION "${_ocv_prefix}/lib/x86_64-linux-gnu/libopencv_${_m}.so.406"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenCV_INCLUDE_DIRS}")
  endif()
  list(APPEND OpenCV_LIBS opencv_${_m})
endforeach()
set(OpenCV_FOUND TRUE)
EOF
# pkg-config itself, in case the target has none.
mkdir -p "$out/bin/lib"
cp "$(readlink -f /usr/bin/pkgconf)" "$out/bin/lib/pkgconf"
cp "$(readlink -f "$sys/libpkgconf.so.3")" "$out/bin/lib/libpkgconf.so.3"
cat > "$out/bin/pkg-config" <<'EOF'
#!/bin/sh
d="$(dirname "$0")/lib"
LD_LIBRARY_PATH="$d" exec "$d/pkgconf" "$@"
EOF
chmod +x "$out/bin/pkg-config"
# What travels: one archive (the GPU machine's call carries .device/deps.tar.xz, .device/bin and .device/whl).
tar -C "$out" -cJf "$out/deps.tar.xz" deps
echo "pack_deps: $(du -sh "$out/deps" | cut -f1) in .device/deps, $(du -sh "$out/deps.tar.xz" | cut -f1) packed"
