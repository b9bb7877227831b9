#!/usr/bin/env python3
"""Times diffusers' SanaTransformer2DModel on exactly what `sprint-bench --save-weights DIR` (or --compare) used.

DIR holds cpp_results.json (the C++ rows: case, device, dtype, threads, warm-up, repeats, latency) and one folder
per case with config.json + diffusion_pytorch_model.safetensors (diffusers layout) and inputs.safetensors (x, enc,
mask, timestep, guidance and the C++ outputs out.cpu / out.cuda). For every C++ row this script loads the same
weights, sets the same thread count, runs the same warm-up and repeats, and prints the latency, the ratio
C++/diffusers and the NMSE of its output against the C++ output (a parity check at real size). The first warm-up
run goes through torch's FlopCounterMode, as a check of sprint-bench's analytic FLOP count.

usage: bench_diffusers.py DIR [--json OUT] [--threads N] [--warmup N] [--repeats N]
"""
import argparse
import json
import os
import statistics
import time

import diffusers
import torch
from diffusers import SanaTransformer2DModel
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
HEAD = ["case", "device", "dtype", "threads", "impl", "mean ms", "stdev ms", "GFLOP", "GFLOP/s", "% of mm peak",
        "C++/diffusers", "NMSE vs C++"]


def load_model(folder, device, dtype):
    # low_cpu_mem_usage=False: the pinned venv has no `accelerate`, and asking for it only prints a warning.
    model, info = SanaTransformer2DModel.from_pretrained(folder, torch_dtype=dtype, low_cpu_mem_usage=False,
                                                         output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise SystemExit(f"{folder}: the saved weights do not fit diffusers' model: {bad}")
    # No parameter requires grad: FlopCounterMode's module tracker would otherwise try to hook autograd nodes
    # that inference mode does not create.
    return model.to(device).eval().requires_grad_(False)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def nmse(out, ref):
    out, ref = out.double().cpu(), ref.double()
    return float(((out - ref) ** 2).sum() / (ref ** 2).sum().clamp_min(1e-300))


def num(v, large="{:.1f}"):
    """Fixed decimals for large values, 3 significant digits for small ones (as sprint-bench prints them)."""
    return large.format(v) if abs(v) >= 10 or v == 0 else f"{v:.3g}"


def print_table(rows):
    w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEAD)]
    line = lambda cells: " | ".join(c.ljust(w[i]) if i < 5 else c.rjust(w[i]) for i, c in enumerate(cells))
    print(line(HEAD))
    print("-" * (sum(w) + 3 * (len(w) - 1)))
    for r in rows:
        print(line(r))


@torch.inference_mode()
def bench_row(model, inputs, cpp, warmup, repeats):
    device, dtype = cpp["device"], DTYPES[cpp["dtype"]]
    x = inputs["x"].to(device, dtype)
    enc = inputs["enc"].to(device, dtype)
    mask, t, g = (inputs[k].to(device) for k in ("mask", "timestep", "guidance"))

    def forward():
        return model(x, encoder_hidden_states=enc, timestep=t, guidance=g, encoder_attention_mask=mask,
                     return_dict=False)[0]

    counted = None
    for i in range(warmup):
        if i == 0:
            with FlopCounterMode(display=False) as fc:
                forward()
            counted = fc.get_total_flops() / 1e9
        else:
            forward()
    sync(device)
    ms = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = forward()
        sync(device)
        ms.append((time.perf_counter() - t0) * 1e3)
    if out is None:
        out = forward()
    ref_key = f"out.{device}"
    err = nmse(out.float(), inputs[ref_key]) if ref_key in inputs else None
    return ms, err, counted


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--json", help="write the diffusers rows here")
    ap.add_argument("--threads", type=int, help="default: the C++ run's")
    ap.add_argument("--warmup", type=int, help="default: the C++ run's, per case")
    ap.add_argument("--repeats", type=int, help="default: the C++ run's, per case")
    args = ap.parse_args()

    with open(os.path.join(args.dir, "cpp_results.json")) as f:
        cpp_results = json.load(f)
    threads = args.threads or cpp_results["threads"]
    torch.set_num_threads(threads)
    print(f"bench_diffusers.py: torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    rows, cells = [], []
    cached_key, model = None, None
    for cpp in cpp_results["rows"]:
        folder = os.path.join(args.dir, cpp["case"])
        device = cpp["device"]
        if device == "cuda" and not torch.cuda.is_available():
            print(f"  {cpp['case']} cuda: skipped (torch.cuda.is_available() is false)")
            continue
        # 512 and 1024 share one (hard-linked) weights file: load it once per device.
        st = os.stat(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
        key = (st.st_dev, st.st_ino, device, cpp["dtype"])
        if key != cached_key:
            model = None  # free the previous model before loading the next
            t0 = time.perf_counter()
            model = load_model(folder, device, DTYPES[cpp["dtype"]])
            cached_key = key
            print(f"model {cpp['case']} {device}: {time.perf_counter() - t0:.1f} s to load", flush=True)
        inputs = load_file(os.path.join(folder, "inputs.safetensors"))
        warmup = cpp["warmup"] if args.warmup is None else args.warmup
        repeats = cpp["repeats"] if args.repeats is None else args.repeats
        ms, err, counted = bench_row(model, inputs, cpp, warmup, repeats)
        mean = statistics.fmean(ms)
        stdev = statistics.stdev(ms) if len(ms) > 1 else 0.0
        gflops = cpp["gflop"] / (mean * 1e-3)
        peak = cpp.get("peak_gflops") or 0.0
        row = dict(case=cpp["case"], device=device, dtype=cpp["dtype"], impl="diffusers", threads=threads,
                   warmup=warmup, repeats=repeats, mean_ms=mean, stdev_ms=stdev, gflop=cpp["gflop"], gflops=gflops,
                   peak_gflops=peak, pct_peak=100 * gflops / peak if peak else None, times_ms=ms, nmse=err,
                   torch_counted_gflop=counted, cpp_mean_ms=cpp["mean_ms"], cpp_over_diffusers=cpp["mean_ms"] / mean)
        rows.append(row)
        print(f"  {cpp['case']} {device} {cpp['dtype']}: {mean:.2f} ms, NMSE vs C++ "
              f"{'-' if err is None else f'{err:.2e}'}, GFLOP: analytic {cpp['gflop']:.6g}, torch FlopCounterMode "
              f"{'-' if counted is None else f'{counted:.6g}'}", flush=True)
        cells.append([row["case"], device, row["dtype"], str(threads), "diffusers", f"{mean:.2f}", f"{stdev:.2f}",
                      num(cpp["gflop"], "{:.2f}"), num(gflops), "-" if not peak else num(row["pct_peak"]),
                      f"{row['cpp_over_diffusers']:.3f}", "-" if err is None else f"{err:.2e}"])
    model = None

    print()
    print_table(cells)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "bench_diffusers.py", "torch": torch.__version__, "diffusers": diffusers.__version__,
                       "threads": threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
