# Finds LibTorch (from the pinned PyPI torch wheel, or a user's -DTorch_DIR=...) and decides whether the CUDA
# parts are built. Provides:
#   sprint::torch       INTERFACE target to link against
#   SPRINT_HAVE_CUDA    ON when CUDA LibTorch + a toolkit of the same major version are used
#
# sprint::torch also carries OpenMP: at::parallel_for, which our hand-written CPU kernels use, is an OpenMP loop in
# LibTorch's headers, and compiled without OpenMP it quietly runs on the calling thread alone. The loops must use
# LibTorch's own OpenMP runtime (the wheel's libgomp.so.1), so that the process has one thread pool and
# torch::set_num_threads governs ours too; tests/unit/test_runtime.cpp checks that they use every thread.
#
# The PyPI wheel is a CUDA build. Its CMake config insists on a CUDA toolkit. When there is none, or its major
# version differs from the wheel's, or SPRINT_CUDA=OFF, we link the CPU half of the wheel (torch_cpu + c10)
# directly, which runs everything on the CPU.

if(NOT Torch_DIR)
  find_program(_sprint_py NAMES python3 python HINTS ${SPRINT_PYTHON})
  if(SPRINT_PYTHON)
    set(_sprint_py ${SPRINT_PYTHON})
  endif()
  execute_process(COMMAND ${_sprint_py} -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'share','cmake','Torch'))"
                  OUTPUT_VARIABLE _td OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0 AND EXISTS "${_td}")
    set(Torch_DIR "${_td}" CACHE PATH "LibTorch CMake config folder" FORCE)
  else()
    message(FATAL_ERROR "LibTorch not found. Run ./bootstrap.sh (it installs the pinned torch wheel), "
                        "or pass -DTorch_DIR=<libtorch>/share/cmake/Torch.")
  endif()
endif()

get_filename_component(SPRINT_TORCH_PREFIX "${Torch_DIR}/../../.." ABSOLUTE)

# CUDA version the LibTorch was built with (empty for a CPU LibTorch).
set(_torch_cuda "")
if(EXISTS "${SPRINT_TORCH_PREFIX}/version.py")
  file(STRINGS "${SPRINT_TORCH_PREFIX}/version.py" _line REGEX "^cuda")
  string(REGEX MATCH "'([0-9]+\\.[0-9]+)'" _m "${_line}")
  set(_torch_cuda "${CMAKE_MATCH_1}")
elseif(EXISTS "${SPRINT_TORCH_PREFIX}/lib/libtorch_cuda.so" OR EXISTS "${SPRINT_TORCH_PREFIX}/lib/libtorch_cuda.dylib")
  set(_torch_cuda "unknown")
endif()

set(SPRINT_HAVE_CUDA OFF)
set(_why "")
if(SPRINT_CUDA STREQUAL "OFF")
  set(_why "SPRINT_CUDA=OFF")
elseif(_torch_cuda STREQUAL "")
  set(_why "this LibTorch is a CPU build")
else()
  find_package(CUDAToolkit QUIET)
  if(NOT CUDAToolkit_FOUND)
    set(_why "no CUDA toolkit found (LibTorch wants CUDA ${_torch_cuda})")
  else()
    string(REGEX MATCH "^[0-9]+" _tk_major "${CUDAToolkit_VERSION}")
    string(REGEX MATCH "^[0-9]+" _lt_major "${_torch_cuda}")
    if(NOT _torch_cuda STREQUAL "unknown" AND NOT _tk_major STREQUAL _lt_major)
      set(_why "CUDA toolkit ${CUDAToolkit_VERSION} has another major version than LibTorch's CUDA ${_torch_cuda}")
    else()
      set(SPRINT_HAVE_CUDA ON)
    endif()
  endif()
endif()
if(SPRINT_CUDA STREQUAL "ON" AND NOT SPRINT_HAVE_CUDA)
  message(FATAL_ERROR "SPRINT_CUDA=ON but the CUDA parts cannot be built: ${_why}")
endif()

add_library(sprint_torch INTERFACE)
add_library(sprint::torch ALIAS sprint_torch)
target_compile_features(sprint_torch INTERFACE cxx_std_20)
if(SPRINT_HAVE_CUDA)
  find_package(Torch REQUIRED)
  target_link_libraries(sprint_torch INTERFACE ${TORCH_LIBRARIES})
  # The wheel's libtorch_cuda.so finds NCCL, cuBLAS, ... through its RUNPATH in site-packages/nvidia/*/lib at run
  # time; the linker needs the same folders to resolve those indirect dependencies.
  file(GLOB _nv_lib_dirs LIST_DIRECTORIES true "${SPRINT_TORCH_PREFIX}/../nvidia/*/lib" "${SPRINT_TORCH_PREFIX}/../nvidia/cu*/lib")
  foreach(d IN LISTS _nv_lib_dirs)
    target_link_options(sprint_torch INTERFACE "LINKER:-rpath-link,${d}")
  endforeach()
  target_compile_definitions(sprint_torch INTERFACE SPRINT_HAVE_CUDA=1)
  message(STATUS "Sprint: CUDA parts ON (LibTorch ${Torch_VERSION}, CUDA ${_torch_cuda}, toolkit ${CUDAToolkit_VERSION})")
else()
  message(STATUS "Sprint: CUDA parts OFF (${_why}); building CPU-only against ${SPRINT_TORCH_PREFIX}")
  find_library(_torch_cpu torch_cpu PATHS "${SPRINT_TORCH_PREFIX}/lib" NO_DEFAULT_PATH REQUIRED)
  find_library(_torch_lib torch PATHS "${SPRINT_TORCH_PREFIX}/lib" NO_DEFAULT_PATH)
  find_library(_c10 c10 PATHS "${SPRINT_TORCH_PREFIX}/lib" NO_DEFAULT_PATH REQUIRED)
  target_include_directories(sprint_torch SYSTEM INTERFACE
      "${SPRINT_TORCH_PREFIX}/include" "${SPRINT_TORCH_PREFIX}/include/torch/csrc/api/include")
  target_link_libraries(sprint_torch INTERFACE ${_torch_cpu} ${_c10})
  # The wheel's libraries use the new C++11 ABI.
  target_compile_definitions(sprint_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  set_target_properties(sprint_torch PROPERTIES INTERFACE_LINK_OPTIONS "-Wl,-rpath,${SPRINT_TORCH_PREFIX}/lib")
endif()

find_package(OpenMP REQUIRED COMPONENTS CXX)
target_compile_options(sprint_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${OpenMP_CXX_FLAGS}>)
if(EXISTS "${SPRINT_TORCH_PREFIX}/lib/libgomp.so.1")
  target_link_libraries(sprint_torch INTERFACE "${SPRINT_TORCH_PREFIX}/lib/libgomp.so.1")
else()  # a LibTorch without its own runtime (a source build): the compiler's
  target_link_libraries(sprint_torch INTERFACE OpenMP::OpenMP_CXX)
endif()
