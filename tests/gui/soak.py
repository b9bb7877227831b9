#!/usr/bin/env python3
"""Soak test: sprint-studio replays thousands of seeded random input events while its resident memory is sampled.

  soak.py --studio BIN/sprint-studio --model MODEL --out DIR [--events 3000] [--seed N] [--max-growth 0.05]

The events mix what a person does in a long sitting: strokes of every size (pen and eraser, as replayed strokes and
as mouse input through the canvas widget), undo and redo, clearing, prompt and slider changes, history clicks and
pauses. Passes when the app exits 0 after the last event, and its resident set size (VmRSS, sampled every 0.2 s) grew
by less than --max-growth from the warm-up window (25-35 % of the run: caches, the allocator's pools and the history
strip are full by then) to the last 10 % of the run (median of each window, so one sample's spike does not decide).
A leak of one frame's buffers per generation, or an unbounded history, shows as steady growth past that bound.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

PROMPTS = ["a red apple", "a small wooden house on a hill", "a sailboat", "a grinning face", "a yellow star",
           "a cat", "", "a castle in the fog", "\u00e9t\u00e9 \u2600\ufe0f", "x" * 300]


def random_events(n, rng):
    events = [{"type": "prompt", "text": "a small wooden house on a hill"}, {"type": "wait_idle"}]
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            k = rng.randint(1, 8)
            events.append({"type": "stroke", "points": [[rng.random(), rng.random()] for _ in range(k)],
                           "radius": rng.uniform(0.003, 0.08), "eraser": rng.random() < 0.15,
                           "duration": rng.uniform(0.005, 0.05)})
        elif r < 0.62:
            events.append({"type": "mouse_stroke", "points": [[rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)]
                                                              for _ in range(rng.randint(2, 5))],
                           "duration": rng.uniform(0.02, 0.06)})
        elif r < 0.72:
            events.append({"type": rng.choice(["undo", "redo"])})
        elif r < 0.74:
            events.append({"type": "clear"})
        elif r < 0.84:
            name, value = rng.choice([("steps", rng.randint(1, 4)), ("seed", rng.randint(0, 2**63 - 1)),
                                      ("guidance", round(rng.uniform(0, 10), 2)),
                                      ("control_scale", round(rng.uniform(0, 2), 2)),
                                      ("thickness", rng.randint(0, 8)), ("brush_radius", rng.uniform(1, 30)),
                                      ("seed_locked", rng.random() < 0.5), ("show_condition", rng.random() < 0.5)])
            events.append({"type": "set", "name": name, "value": value})
        elif r < 0.90:
            events.append({"type": "prompt", "text": rng.choice(PROMPTS)})
        elif r < 0.95:
            events.append({"type": "select_history", "index": 0})
        else:
            events.append({"type": "pause", "seconds": rng.uniform(0.01, 0.1)})
    events.append({"type": "wait_idle"})
    return {"description": f"soak test: {n} random events", "events": events}


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studio", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--max-growth", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=1200, help="seconds for the whole run")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    replay = os.path.join(a.out, "soak.json")
    with open(replay, "w") as f:
        json.dump(random_events(a.events, random.Random(a.seed)), f)
    log = open(os.path.join(a.out, "studio.log"), "w")
    cmd = [a.studio, "--model", a.model, "--replay", replay, "--exit-after-replay", "--timeout", str(a.timeout),
           "--threads", "1", "--output-dir", a.out]
    print(" ".join(cmd), flush=True)
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    samples = []  # (seconds, KiB)
    while p.poll() is None:
        kib = rss_kib(p.pid)
        if kib:
            samples.append((time.monotonic() - start, kib))
        if time.monotonic() - start > a.timeout + 60:
            p.kill()
            print("FAIL: the app did not finish in time")
            return 1
        time.sleep(0.2)
    took = time.monotonic() - start
    log.close()
    with open(os.path.join(a.out, "rss.tsv"), "w") as f:
        f.writelines(f"{t:.2f}\t{k}\n" for t, k in samples)
    tail = open(os.path.join(a.out, "studio.log")).read()[-2000:]
    if p.returncode != 0:
        print(f"FAIL: sprint-studio exited with {p.returncode}\n{tail}")
        return 1
    if len(samples) < 50:
        print(f"FAIL: only {len(samples)} memory samples in {took:.0f} s: the run was too short to judge")
        return 1
    end = samples[-1][0]
    warm = [k for t, k in samples if 0.25 * end <= t <= 0.35 * end]
    last = [k for t, k in samples if t >= 0.9 * end]
    base, final = statistics.median(warm), statistics.median(last)
    growth = final / base - 1
    print(f"{a.events} events in {took:.0f} s; RSS after warm-up {base / 1024:.1f} MiB, at the end {final / 1024:.1f} "
          f"MiB ({growth:+.1%}; peak {max(k for _, k in samples) / 1024:.1f} MiB; {len(samples)} samples)")
    if growth >= a.max_growth:
        print(f"FAIL: resident memory grew {growth:.1%} after warm-up (bound {a.max_growth:.0%})")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
