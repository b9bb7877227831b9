#!/usr/bin/env python3
"""Times diffusers' SanaSprintPipeline stage by stage on exactly what `sprint-bench --pipeline` ran.

WORK holds settings.json (model folder, prompt, seed, steps, guidance, size, ControlNet scale, thread count,
repeats) and inputs.safetensors (the scribble condition map the C++ run used, and its final latent and image of the
same request). The model folder is in diffusers layout: tokenizer/tokenizer.model, text_encoder/ (Gemma2Model),
transformer/, controlnet/ (SanaControlNetModel), vae/ (AutoencoderDC).

Per call, with the same seed (CPU torch.Generator, as the C++ noise) and thread count:
  condition     condition map -> (x / 255 - 0.5) / 0.5 on 3 channels -> vae.encode(...).latent * scaling_factor
  tokenize      the tokenizer calls inside encode_prompt (the CHI length probe and the padded batch call)
  text_encoder  text_encoder forward (hooks)
  transformer   first transformer call -> start of vae.decode: the whole SCM loop (ControlNet inside each call)
  decode        vae.decode
  total         condition + the pipe(...) call's wall time (output_type="pt", postprocessing included)
The first call is reported as "cold"; then the median of `repeats` warm calls. The final latent (captured at the
vae.decode input) and the image are compared with the C++ ones (NMSE), so the timings compare the same computation.

Two stand-ins, as in tests/fixtures/fx_pipeline.py: the tokenizer is the SentencePiece model behind a small
GemmaTokenizer-like adapter (transformers 5.x cannot load a .model file offline without protobuf), and since
diffusers has no Sprint+ControlNet pipeline, the ControlNet runs through a transformer subclass that adds diffusers
SanaControlNetModel residuals (after-block order, timestep x 1000 for a Sana 1.0 ControlNet), the rule
sprint::controlled_forward implements. The text encoder uses transformers' eager attention (the path the C++
encoder reproduces).

usage: bench_pipeline_diffusers.py WORK [--json OUT] [--threads N] [--repeats N]
"""
import argparse
import json
import os
import statistics
import time
import types

import diffusers
import sentencepiece as spm
import torch
import transformers
from diffusers import AutoencoderDC, SanaControlNetModel, SanaSprintPipeline, SanaTransformer2DModel, SCMScheduler
from safetensors.torch import load_file
from transformers import Gemma2Model

STAGES = ["tokenize", "text_encoder", "condition", "transformer", "decode", "total"]


class Timer:
    """Accumulates the stage timings of one pipeline call."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.tokenize = 0.0
        self.te_start = self.te_end = None
        self.tr_start = None
        self.decode_start = None
        self.decode_ms = None
        self.decode_input = None


class SpmGemmaTokenizer:
    """What SanaSprintPipeline uses of a GemmaTokenizer: encode() with BOS, and batch calls padded on the right."""

    padding_side = "right"

    def __init__(self, path, timer):
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.timer = timer

    def encode(self, text):
        t0 = time.perf_counter()
        ids = [self.sp.bos_id()] + self.sp.encode(text)
        self.timer.tokenize += time.perf_counter() - t0
        return ids

    def __call__(self, texts, padding, max_length, truncation, add_special_tokens, return_tensors):
        assert padding == "max_length" and truncation and add_special_tokens and return_tensors == "pt"
        t0 = time.perf_counter()
        ids = torch.full((len(texts), max_length), self.sp.pad_id(), dtype=torch.int64)
        mask = torch.zeros((len(texts), max_length), dtype=torch.int64)
        for b, t in enumerate(texts):
            row = ([self.sp.bos_id()] + self.sp.encode(t))[:max_length]
            ids[b, : len(row)] = torch.tensor(row)
            mask[b, : len(row)] = 1
        self.timer.tokenize += time.perf_counter() - t0
        return types.SimpleNamespace(input_ids=ids, attention_mask=mask)


class ControlledSprint(SanaTransformer2DModel):
    """The Sprint transformer with a diffusers SanaControlNetModel attached (after-block residuals)."""

    def forward(self, hidden_states, encoder_hidden_states, timestep, guidance=None, encoder_attention_mask=None,
                **kw):
        res = self.controlnet(hidden_states, encoder_hidden_states, timestep * 1000, self.cond,
                              conditioning_scale=self.control_scale, encoder_attention_mask=encoder_attention_mask,
                              return_dict=False)[0]
        return super().forward(hidden_states, encoder_hidden_states, timestep, guidance=guidance,
                               encoder_attention_mask=encoder_attention_mask, controlnet_block_samples=res, **kw)


def check_loading(folder, info):
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise SystemExit(f"{folder}: the saved weights do not fit diffusers' model: {bad}")


def load_components(model_dir, device, dtype):
    # low_cpu_mem_usage=False: the pinned venv has no `accelerate`, and asking for it only prints a warning.
    kw = dict(torch_dtype=dtype, low_cpu_mem_usage=False, output_loading_info=True)
    transformer, info = ControlledSprint.from_pretrained(os.path.join(model_dir, "transformer"), **kw)
    check_loading("transformer", info)
    controlnet, info = SanaControlNetModel.from_pretrained(os.path.join(model_dir, "controlnet"), **kw)
    check_loading("controlnet", info)
    vae, info = AutoencoderDC.from_pretrained(os.path.join(model_dir, "vae"), **kw)
    check_loading("vae", info)
    text_encoder, info = Gemma2Model.from_pretrained(os.path.join(model_dir, "text_encoder"), dtype=dtype,
                                                     attn_implementation="eager", output_loading_info=True)
    check_loading("text_encoder", info)
    for m in (transformer, controlnet, vae, text_encoder):
        m.eval().requires_grad_(False).to(device)
    object.__setattr__(transformer, "controlnet", controlnet)  # not a submodule: keeps the state dict as is
    return transformer, text_encoder, vae


def nmse(out, ref):
    out, ref = out.double().cpu(), ref.double().cpu()
    return float(((out - ref) ** 2).sum() / (ref ** 2).sum().clamp_min(1e-300))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--threads", type=int, help="default: the C++ run's")
    ap.add_argument("--repeats", type=int, help="default: the C++ run's")
    args = ap.parse_args()

    with open(os.path.join(args.work, "settings.json")) as f:
        s = json.load(f)
    threads = args.threads or s["threads"]
    device = torch.device(s.get("device", "cpu"))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[s.get("dtype", "fp32")]

    def sync():  # stage boundaries wait for the GPU, as the C++ timings do
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    repeats = args.repeats or s["repeats"]
    torch.set_num_threads(threads)
    transformers.utils.logging.disable_progress_bar()
    print(f"bench_pipeline_diffusers.py: torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} threads, {device} {s.get('dtype', 'fp32')}, "
          f"case {s['case']}", flush=True)

    t0 = time.perf_counter()
    transformer, text_encoder, vae = load_components(s["model_dir"], device, dtype)
    print(f"  loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    timer = Timer()
    tokenizer = SpmGemmaTokenizer(os.path.join(s["model_dir"], "tokenizer", "tokenizer.model"), timer)
    scheduler = SCMScheduler(prediction_type="trigflow", sigma_data=0.5)
    pipe = SanaSprintPipeline(tokenizer=None, text_encoder=text_encoder, vae=vae, transformer=transformer,
                              scheduler=scheduler)
    pipe.tokenizer = tokenizer  # plain attribute: the adapter is not a registrable component
    pipe.set_progress_bar_config(disable=True)
    transformer.control_scale = s["control_scale"]

    # Stage hooks.
    def te_pre(*_):
        sync()
        timer.te_start = time.perf_counter()

    def te_post(*_):
        sync()
        timer.te_end = time.perf_counter()

    def tr_pre(*_):
        if timer.tr_start is None:
            sync()
            timer.tr_start = time.perf_counter()

    text_encoder.register_forward_pre_hook(te_pre)
    text_encoder.register_forward_hook(te_post)
    transformer.register_forward_pre_hook(tr_pre)
    vae_decode = vae.decode

    def timed_decode(z, *a, **kw):
        sync()
        timer.decode_start = time.perf_counter()
        timer.decode_input = z
        out = vae_decode(z, *a, **kw)
        sync()
        timer.decode_ms = (time.perf_counter() - timer.decode_start) * 1e3
        return out

    vae.decode = timed_decode

    inputs = load_file(s["inputs"])
    cmap = inputs["condition_map"]
    h, w = s["height"], s["width"]
    assert tuple(cmap.shape) == (h, w), f"condition map {tuple(cmap.shape)} is not {h}x{w}"
    steps = s["steps"]

    @torch.inference_mode()
    def call():
        timer.reset()
        t_start = time.perf_counter()
        img = ((cmap.float() / 255.0 - 0.5) / 0.5).expand(1, 3, h, w).to(device, dtype)
        transformer.cond = vae.encode(img).latent * vae.config.scaling_factor
        sync()
        condition_ms = (time.perf_counter() - t_start) * 1e3
        kw = dict(prompt=s["prompt"], num_inference_steps=steps, guidance_scale=s["guidance"], height=h, width=w,
                  use_resolution_binning=False, generator=torch.Generator().manual_seed(s["seed"]), output_type="pt")
        if steps != 2:
            kw["intermediate_timesteps"] = None
        t1 = time.perf_counter()
        image = pipe(**kw)[0]
        sync()
        call_ms = (time.perf_counter() - t1) * 1e3
        times = dict(tokenize=timer.tokenize * 1e3, text_encoder=(timer.te_end - timer.te_start) * 1e3,
                     condition=condition_ms, transformer=(timer.decode_start - timer.tr_start) * 1e3,
                     decode=timer.decode_ms, total=condition_ms + call_ms)
        latent = timer.decode_input.float() * vae.config.scaling_factor
        return times, latent, image

    cold, latent, image = call()
    print("  cold: " + ", ".join(f"{k} {v:.1f} ms" for k, v in cold.items()), flush=True)
    warm = []
    for _ in range(repeats):
        t, latent, image = call()
        warm.append(t)
        print(f"  warm: total {t['total']:.1f} ms", flush=True)
    median = {k: statistics.median(t[k] for t in warm) for k in STAGES}
    err_latent = nmse(latent, inputs["latent"])
    err_image = nmse(image.float(), (inputs["image"] * 0.5 + 0.5).clamp(0, 1))
    print("  median of %d warm calls: " % repeats + ", ".join(f"{k} {v:.1f} ms" for k, v in median.items()))
    print(f"  NMSE vs C++: final latent {err_latent:.2e}, image {err_image:.2e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "bench_pipeline_diffusers.py", "torch": torch.__version__,
                       "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                       "threads": threads, "device": str(device), "dtype": s.get("dtype", "fp32"),
                       "repeats": repeats, "case": s["case"], "cold_ms": cold,
                       "median_ms": median, "warm_ms": warm, "nmse_latent": err_latent, "nmse_image": err_image}, f,
                      indent=2)


if __name__ == "__main__":
    main()
