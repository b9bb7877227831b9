#!/usr/bin/env python3
"""Checks the include graph of the project's own headers and sources (docs/architecture.md#layering).

  check_includes.py REPO_ROOT

1. No upward includes: a file of a layer includes only headers of that layer or of the layers below it
   (core <- controlnet <- training; core <- ui_model <- ui <- app; ui may also use core's settings header, which is
   plain C++; tests may use everything).
2. No cycles among the project's headers.
3. core's private headers (core/src/...) are included only from core/src (and the test and benchmark of the CPU
   engine's kernels).
Prints every violation, one line each, and exits 1 if there is any.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# The layers each layer may include from (itself included).
ALLOWED = {
    "core": {"core"},
    "controlnet": {"core", "controlnet"},
    "training": {"core", "controlnet", "training"},
    "ui_model": {"ui_model"},
    "ui": {"ui", "ui_model", "core_settings"},
    "app": {"app", "ui", "ui_model", "core", "controlnet"},
    "tests": {"core", "controlnet", "training", "ui", "ui_model", "app", "tests"},
}
# Core headers that are plain C++ (no LibTorch), which ui embeds.
CORE_SETTINGS = {"core/include/sprint/generation_settings.h"}
UI_MODEL_FILES = {"ui/include/sprint/ui/strokes.h", "ui/src/strokes.cpp"}  # sprint::ui_model (ui/CMakeLists.txt)
# The only files outside core/src that may see core's private CPU-engine headers: the tests and the benchmark of
# its kernels.
PRIVATE_CORE_READERS = {"tests/unit/test_fast_conv.cpp", "tests/bench/conv_bench.cpp"}


def layer_of(rel):
    if rel in UI_MODEL_FILES:
        return "ui_model"
    top = rel.split("/", 1)[0]
    return top if top in ALLOWED else None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    files = []
    for top in ("core", "controlnet", "training", "ui", "app", "tests"):
        for d, _, names in os.walk(os.path.join(root, top)):
            if "/fixtures" in d or "/fuzz/libfuzzer/build" in d:
                continue
            files += [os.path.relpath(os.path.join(d, n), root) for n in names if n.endswith((".h", ".hpp", ".cpp"))]
    include_dirs = ["core/include", "core/cli/include", "controlnet/include", "training/include", "ui/include",
                    "app/include", "app",
                    "core/src", "tests/util", "training/commands", "tests/bench"]
    known = set(files)

    def resolve(src, inc):
        local = os.path.normpath(os.path.join(os.path.dirname(src), inc))
        if local in known:
            return local
        for d in include_dirs:
            cand = os.path.normpath(os.path.join(d, inc))
            if cand in known:
                return cand
        return None  # a system or third-party header

    problems = []
    graph = {}
    for f in sorted(files):
        with open(os.path.join(root, f), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        deps = []
        for inc in INCLUDE.findall(text):
            target = resolve(f, inc)
            if target is None:
                continue
            deps.append(target)
            src_layer, dst_layer = layer_of(f), layer_of(target)
            if src_layer is None or dst_layer is None:
                continue
            allowed = ALLOWED[src_layer]
            ok = dst_layer in allowed or ("core_settings" in allowed and target in CORE_SETTINGS)
            if not ok:
                problems.append(f"{f}: includes {target} ({src_layer} may not include {dst_layer})")
            if target.startswith("core/src/") and not (f.startswith("core/src/") or f in PRIVATE_CORE_READERS):
                problems.append(f"{f}: includes core's private header {target}")
        graph[f] = deps

    # Cycles among headers: depth-first search with colours.
    colour = {}
    stack = []

    def visit(n):
        colour[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if not m.endswith((".h", ".hpp")):
                continue
            if colour.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                problems.append("include cycle: " + " -> ".join(cycle))
            elif colour.get(m) is None:
                visit(m)
        stack.pop()
        colour[n] = 2

    for n in sorted(graph):
        if n.endswith((".h", ".hpp")) and colour.get(n) is None:
            visit(n)

    for p in problems:
        print(p)
    headers = sum(1 for f in files if f.endswith((".h", ".hpp")))
    print(f"{len(files)} files, {headers} headers, {sum(len(v) for v in graph.values())} project includes: "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
