#!/usr/bin/env python3
"""Writes the model card (README.md) of the bundled model from the run folders that made it.

Everything in the card is read from files the training commands wrote: each stage's effective config
(config.json), its last metrics line (metrics.jsonl: step and training time), the dataset summary (dataset.json,
LICENSES.md) and the evaluation report (report.json). Nothing is typed in by hand, so the card cannot drift from
the model.

    python training/write_model_card.py --runs training/runs/emoji --data out/data/emoji \
        --eval assets/eval/report.json --out assets/models/sprint-emoji-64/README.md
"""
import argparse
import json
import os
import sys

STAGES = [
    ("autoencoder", "autoencoder", "sprint-train autoencoder --config training/configs/emoji/autoencoder.json"),
    ("teacher", "pretrain", "sprint-train pretrain --config training/configs/emoji/teacher.json"),
    ("controlnet", "controlnet", "sprint-train controlnet --config training/configs/emoji/controlnet.json"),
    ("student", "distill", "sprint-train distill --config training/configs/emoji/distill.json"),
]


def last_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    last = None
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        last = json.loads(line)
                    except json.JSONDecodeError:
                        pass
    return last or {}


def load_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def params_of(model_dir, component, weights):
    """Parameter count of one component from its safetensors header (no torch needed)."""
    path = os.path.join(model_dir, component, weights)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for d in info["shape"]:
            count *= d
        total += count
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--eval", required=True, help="report.json of sprint-train eval")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    for p in (a.runs, a.data):
        if not os.path.isdir(p):
            sys.exit(f"write_model_card: '{p}' is not a folder")
    student = os.path.join(a.runs, "student", "model")
    ds = load_json(os.path.join(a.data, "dataset.json")) or {}
    report = load_json(a.eval) or {}
    lic_path = os.path.join(a.data, "LICENSES.md")
    licences = open(lic_path).read().strip() if os.path.exists(lic_path) else "(LICENSES.md missing)"

    out = ["# sprint-emoji-64: the bundled Sprint Studio model", ""]
    out += ["A SANA-Sprint-architecture model with a scribble ControlNet, small enough to draw live on two CPU cores: "
            "64x64 pictures of emoji-style drawings from a prompt and a sketch, in 1-4 steps. Trained from scratch "
            "by this repository's own commands on Debian-packaged data; no outside weights.", ""]
    out += ["## Components", "", "| component | parameters | file |", "|---|---|---|"]
    for comp, weights in (("transformer", "diffusion_pytorch_model.safetensors"),
                          ("controlnet", "diffusion_pytorch_model.safetensors"),
                          ("vae", "diffusion_pytorch_model.safetensors"),
                          ("text_encoder", "model.safetensors")):
        n = params_of(student, comp, weights)
        out.append(f"| {comp} | {n:,} | `{comp}/{weights}` |" if n else f"| {comp} | missing | |")
    out += ["", "## Data", ""]
    counts = ds.get("counts", {})
    out.append(f"- {counts.get('rendered', '?')} Noto Color Emoji glyphs (skin-tone variants skipped), "
               f"{counts.get('train', '?')} train / {counts.get('heldout', '?')} held out "
               f"(rule: {ds.get('heldout_rule', '?')}), rendered at {ds.get('size', '?')} px on white.")
    out.append("- Captions: CLDR names from python3-emoji plus templated variants; condition maps from "
               "`picture_to_scribble` (the app's stroke conversion) on a 256 px canvas.")
    out += ["", "### Licences", "", licences, ""]
    out += ["## How it was made", "", "| stage | command | steps | batch | training time |", "|---|---|---|---|---|"]
    for stage, _, command in STAGES:
        run_dir = os.path.join(a.runs, stage)
        cfg = load_json(os.path.join(run_dir, "config.json")) or {}
        m = last_metrics(run_dir)
        t = m.get("time_s")
        out.append(f"| {stage} | `{command}` | {m.get('step', '?')} | {cfg.get('batch', '?')} | "
                   f"{'%.0f min' % (t / 60) if t else '?'} |")
    out += ["", "All stages at once: `./bootstrap.sh model` (resumes unfinished stages).", ""]
    out += ["## Evaluation", ""]
    if report:
        out.append("See `assets/eval/report.md` for the tables and grids. The issue's goals:")
        out.append("")
        goals = report.get("goals", {})
        for key, text in sorted(goals.items()):
            if isinstance(text, str):
                out.append(f"- {text}")
    else:
        out.append("No evaluation report was found.")
    out.append("")
    with open(a.out, "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
