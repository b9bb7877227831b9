#!/usr/bin/env python3
"""The command-line conventions every program shares (docs/usage.md#command-line), checked on the built binaries.

  cli_conventions.py --bin BUILD/bin --tiny-pipeline tests/fixtures/pipeline/tiny_pipeline --work DIR

For each of sprint-generate, sprint-train, sprint-bench and (when built) sprint-studio: `--version` prints one line
with the version, commit, LibTorch and backend and exits 0; an unknown option and a malformed value exit 2 with one
line naming the program and the option; `--opt=value` works as `--opt value`; runtime errors exit 1. For
sprint-generate also the short flags and -q / -v. Prints one line per check and exits 1 if any failed.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "gui"))
import pngcheck  # noqa: E402  (tests/gui/pngcheck.py: PNG chunks, pixels, text)
from pngcheck import idat  # noqa: E402

VERSION = re.compile(r"^(?P<prog>[\w-]+) \d+\.\d+\.\d+ \(git (?:[0-9a-f]{12}(?:-modified)?|unknown)\), "
                     r"LibTorch \d+\.\d+\.\d+, (?:CPU only|CUDA .*|built with CUDA.*)$")

failures = []


def run(exe, *args, env=None, timeout=300):
    e = dict(os.environ, SPRINT_THREADS="1", **(env or {}))
    e.pop("DISPLAY", None)  # sprint-studio must answer --version and usage errors without a window
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, env=e)
    return p.returncode, p.stdout, p.stderr


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"))
    if not ok:
        failures.append(name)


def one_line(text):
    return text.strip() != "" and "\n" not in text.strip()


def conventions(bin_dir, prog, prefix=()):
    exe = os.path.join(bin_dir, prog)
    rc, out, err = run(exe, "--version")
    m = VERSION.match(out.strip())
    check(f"{prog} --version", rc == 0 and one_line(out) and m and m.group("prog") == prog,
          f"rc {rc}, stdout {out!r}, stderr {err[-300:]!r}")
    rc, out, err = run(exe, *prefix, "--no-such-option")
    check(f"{prog} unknown option: exit 2, one line", rc == 2 and one_line(err) and prog in err
          and "--no-such-option" in err, f"rc {rc}, stderr {err!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the build's bin folder")
    ap.add_argument("--tiny-pipeline", required=True, help="a small model folder (the parity fixture)")
    ap.add_argument("--work", required=True, help="scratch folder")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    gen = os.path.join(a.bin, "sprint-generate")

    conventions(a.bin, "sprint-generate")
    rc, _, err = run(gen, "--steps=0x10")
    check("sprint-generate --steps=0x10: exit 2, one line naming the flag",
          rc == 2 and one_line(err) and "--steps" in err and "0x10" in err, f"rc {rc}, stderr {err!r}")
    out = os.path.join(a.work, "short.png")
    rc, _, err = run(gen, "-m", a.tiny_pipeline, "-p", "a red fox", "-s", "3", "-n", "1", "--size=64x64",
                     "-o", out, "-q")
    check("sprint-generate short flags and --size=64x64 generate; -q prints nothing",
          rc == 0 and os.path.isfile(out) and err.strip() == "", f"rc {rc}, stderr {err!r}")
    out2 = os.path.join(a.work, "long.png")
    rc, _, err = run(gen, f"--model={a.tiny_pipeline}", "--prompt=a red fox", "--seed=3", "--steps=1",
                     "--size", "64x64", f"--out={out2}", "-v")
    check("sprint-generate --opt=value gives the same picture as the short flags; -v shows the stages",
          rc == 0 and os.path.isfile(out2) and "transformer" in err and "wrote" in err
          and idat(out) == idat(out2), f"rc {rc}, stderr {err[-500:]!r}")
    check_png_metadata(out, a.tiny_pipeline, a.bin)

    rc, _, err = run(gen, "--model", os.path.join(a.work, "no-such-model"), "--prompt", "x",
                     "--out", os.path.join(a.work, "x.png"))
    check("sprint-generate runtime error: exit 1, one line", rc == 1 and one_line(err) and "no-such-model" in err,
          f"rc {rc}, stderr {err!r}")

    train = os.path.join(a.bin, "sprint-train")
    conventions(a.bin, "sprint-train", prefix=("pretrain",))
    rc, _, err = run(train, "pretrain", "--stepz", "3")
    check("sprint-train unknown option suggests the closest", rc == 2 and one_line(err) and "did you mean '--steps'" in err,
          f"rc {rc}, stderr {err!r}")
    rc, _, err = run(train, "autoencodr")
    check("sprint-train unknown command: exit 2 with a suggestion",
          rc == 2 and one_line(err) and "did you mean 'autoencoder'" in err, f"rc {rc}, stderr {err!r}")
    missing = os.path.join(a.work, "missing.json")
    rc, _, err = run(train, "pretrain", f"--config={missing}", "--steps=3")
    check("sprint-train --config=FILE is read (runtime error naming it: exit 1)",
          rc == 1 and one_line(err) and "missing.json" in err, f"rc {rc}, stderr {err!r}")

    bench = os.path.join(a.bin, "sprint-bench")
    conventions(a.bin, "sprint-bench")
    rc, _, err = run(bench, "--rounds=0")
    check("sprint-bench --rounds=0: exit 2, one line", rc == 2 and one_line(err) and "--rounds" in err,
          f"rc {rc}, stderr {err!r}")
    rc, out, err = run(bench, "--conv", "--size=64", "--repeats=1", "--threads=1")
    check("sprint-bench --conv --size=64 runs", rc == 0 and "done" in out, f"rc {rc}, stderr {err[-300:]!r}")

    studio = os.path.join(a.bin, "sprint-studio")
    if os.path.isfile(studio):
        conventions(a.bin, "sprint-studio")
    else:
        print("skip sprint-studio: not built (SPRINT_BUILD_UI=OFF)")

    print(f"{len(failures)} failed")
    return 1 if failures else 0


# The way AUTOMATIC1111's web UI reads a `parameters` chunk (its parse_generation_parameters): the prompt lines, an
# optional "Negative prompt:" line, and a last line of "Key: value" pairs (a value may be a quoted string).
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_a1111(text):
    lines = text.strip().split("\n")
    last = lines[-1] if len(A1111_PARAM.findall(lines[-1])) >= 3 else ""
    prompt = [l for l in (lines[:-1] if last else lines) if not l.startswith("Negative prompt:")]
    return "\n".join(prompt).strip(), {k: v.strip() for k, v in A1111_PARAM.findall(last)}


def check_png_metadata(png, model, bin_dir):
    """sprint-generate's picture carries an A1111 `parameters` chunk, and no chunk names a folder of this machine."""
    text = pngcheck.text(png)
    prompt, params = parse_a1111(text.get("parameters", ""))
    want = {"Steps": "1", "Seed": "3", "Size": "64x64", "Model": os.path.basename(os.path.normpath(model))}
    check("the PNG's `parameters` chunk reads the A1111 way",
          prompt == "a red fox" and all(params.get(k) == v for k, v in want.items()) and "CFG scale" in params,
          f"prompt {prompt!r}, parameters {params}")
    folders = {os.path.expanduser("~"), os.path.abspath(os.path.join(bin_dir, "..")), os.path.abspath(model),
               os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))}
    leaks = [f"{k} names {f}" for k, v in text.items() for f in folders if len(f) > 1 and f in v]
    check("no text chunk names the home, build, model or source folder", not leaks, "; ".join(leaks))


if __name__ == "__main__":
    sys.exit(main())
