#!/usr/bin/env python3
"""Converts the HED annotator weights (lllyasviel/Annotators `ControlNetHED.pth`, a torch.save state dict of
ControlNetHED_Apache2) to safetensors for sprint::load_hed().

    python controlnet/tools/convert_hed_to_safetensors.py ControlNetHED.pth ControlNetHED.safetensors

The file is read with torch.load(weights_only=True): plain tensors only, no pickled code runs. Every key and shape is
checked against the layout in docs/maths.md#hed (the key table) and printed; anything missing, extra or
mis-shaped is an error (use --allow-mismatch to write the file anyway, e.g. for a reduced test network). Tensors are
stored as they are (fp32 in the official file) unless --dtype says otherwise.
"""
import argparse
import sys

import torch
from safetensors.torch import save_file

# (out, in) channels and conv count per block, in order: the official ControlNetHED_Apache2.
BLOCKS = [(64, 3, 2), (128, 64, 2), (256, 128, 3), (512, 256, 3), (512, 512, 3)]


def expected_shapes():
    shapes = {"norm": (1, 3, 1, 1)}
    for b, (cout, cin, n) in enumerate(BLOCKS, start=1):
        for j in range(n):
            shapes[f"block{b}.convs.{j}.weight"] = (cout, cin if j == 0 else cout, 3, 3)
            shapes[f"block{b}.convs.{j}.bias"] = (cout,)
        shapes[f"block{b}.projection.weight"] = (1, cout, 1, 1)
        shapes[f"block{b}.projection.bias"] = (1,)
    return shapes


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu", weights_only=True)
    # Some re-uploads wrap the weights ({"state_dict": ...}) or keep a DataParallel "module." prefix.
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: expected a state dict (dict of tensors), got {type(obj).__name__}")
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise SystemExit(f"{path}: entry '{k}' is a {type(v).__name__}, not a tensor")
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="ControlNetHED.pth")
    ap.add_argument("output", help="output .safetensors")
    ap.add_argument("--dtype", choices=["keep", "float32", "float16", "bfloat16"], default="keep",
                    help="cast floating-point tensors (default: keep; sprint::load_hed casts to the run dtype anyway)")
    ap.add_argument("--allow-mismatch", action="store_true",
                    help="write the file even if keys or shapes differ from the official layout")
    args = ap.parse_args()

    sd = load_state_dict(args.input)
    want = expected_shapes()
    problems = []
    for k, shape in want.items():
        if k not in sd:
            problems.append(f"missing: {k} {list(shape)}")
        elif tuple(sd[k].shape) != shape:
            problems.append(f"shape: {k}: expected {list(shape)}, got {list(sd[k].shape)}")
    problems += [f"unexpected: {k} {list(sd[k].shape)}" for k in sd if k not in want]

    total = 0
    for k in sorted(sd, key=lambda k: (k != "norm", k)):
        v = sd[k]
        total += v.numel()
        print(f"  {k:32s} {str(list(v.shape)):20s} {str(v.dtype).replace('torch.', '')}")
    print(f"{len(sd)} tensors, {total:,} parameters")
    if problems:
        print("differences from the official ControlNetHED_Apache2 layout:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        if not args.allow_mismatch:
            raise SystemExit("not written (use --allow-mismatch to write it anyway)")

    if args.dtype != "keep":
        dt = getattr(torch, args.dtype)
        sd = {k: v.to(dt) if v.is_floating_point() else v for k, v in sd.items()}
    save_file({k: v.contiguous() for k, v in sd.items()}, args.output,
              metadata={"format": "pt", "source": "ControlNetHED_Apache2 (lllyasviel/Annotators ControlNetHED.pth)"})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
