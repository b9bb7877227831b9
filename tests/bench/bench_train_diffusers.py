#!/usr/bin/env python3
"""The PyTorch/diffusers side of `sprint-bench --train`: the same training steps on the same weights and inputs.

DIR (written by sprint-bench --train; kept with --keep) holds
  teacher/       the flow teacher (diffusers SanaTransformer2DModel layout)
  text_encoder/  its Gemma-2 (transformers Gemma2Model layout)
  student/       the student transformer (guidance embeds; the teacher's weights, guidance embedder's last linear 0)
  heads.safetensors   the student's logvar head ("logvar.*") and the discriminator heads ("disc.*")
  inputs.safetensors  latents z, token ids and masks (prompts and the empty prompt)
  cpp_results.json    the C++ rows (step, device, batch, warm-up, repeats, times, first-step losses), the settings
                      (from training/configs/emoji) and the generator seeds
  cpp_first_step.safetensors  C++ intermediates of the first step (text embeddings, x_t, teacher velocity, JVP, ...)

Steps, each timed like the C++ side (same warm-up, repeats, thread count; median):
  teacher    flow matching as diffusers' examples/dreambooth/train_dreambooth_lora_sana.py computes it (noisy input
             (1 - s) z + s e, target e - z, per-sample mean of the weighted squared error), here with full
             fine-tuning of the transformer and of the Gemma-2 text encoder (as `sprint-train pretrain`), grad
             clipping, AdamW;
  distill G  the generator phase of examples/research_projects/sana/train_sana_sprint_diffusers.py: teacher CFG on the
             doubled batch through a TrigFlow wrapper, torch.func.jvp of the student (explicit-softmax attention),
             tangent normalisation, logvar-weighted sCM loss, a second student forward at a max-time weighted t, the
             LADD generator hinge loss through the discriminator (forward hooks on the frozen teacher's blocks,
             StyleGAN-T heads with spectral norm and local batch norm), clipping, AdamW;
  distill D  its discriminator phase: student x0 without grad, renoised fakes + misaligned real pairs and reals, hinge
             loss, clipping, AdamW on the heads.
Random draws replay the C++ CPU generator sequence (same seeds, order, shapes and dtypes; torch and LibTorch share
the generator), so both sides compute the same losses; the first-step values go back to sprint-bench.

--mode parity (default) matches the C++ maths exactly. --mode reference reproduces four choices of the research script
literally (the timing stays comparable; the losses then differ by design):
  1. set_attn_processor(vanilla) swaps EVERY attention of the student for softmax attention, its linear
     self-attention included (parity: only the cross-attention, as the C++ student's explicit attention);
  2. the logvar head reads the time embedding of the TrigFlow t (parity: of the flow time s the forward uses);
  3. disc.eval() in the G phase, i.e. no spectral-norm power iteration there (parity: the heads stay in train mode);
  4. the discriminator heads keep requires_grad in the G phase, so the G backward also fills their gradients, which
     the next D step adds to its own (parity: heads frozen during the G phase, as the C++ command does).
Not reproduced in either mode (would change the computation or not run): the script's D phase replaces max-time
samples by largest_timestep_prob (0.5) instead of largest_timestep (pi/2), and with --misaligned_pairs_D passes the
doubled prompt batch to the real-sample pass too; the dreambooth script's discretised timesteps (sigma from 1000
scheduler bins; the bundled teacher takes the dense time s directly); bf16 mixed precision and a bf16 text encoder.

usage: bench_train_diffusers.py DIR [--json OUT] [--threads N] [--mode parity|reference]
"""
import argparse
import json
import math
import os
import statistics
import time
import warnings

import diffusers
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from diffusers import SanaTransformer2DModel
from diffusers.training_utils import compute_loss_weighting_for_sd3
from safetensors.torch import load_file
from transformers import Gemma2Model

transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars in the benchmark output
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)

LOSS_KEYS = {"teacher": ["loss"], "distill G": ["loss_scm", "loss_adv", "loss_g"], "distill D": ["loss_d"]}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def nmse(out, ref):
    out, ref = out.detach().double().cpu(), ref.double()
    return float(((out - ref) ** 2).sum() / (ref ** 2).sum().clamp_min(1e-300))


# ---- models -------------------------------------------------------------------------------------------------------

def load_sana(folder, device):
    # low_cpu_mem_usage=False: the pinned venv has no `accelerate`.
    model, info = SanaTransformer2DModel.from_pretrained(folder, torch_dtype=torch.float32, low_cpu_mem_usage=False,
                                                         output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise SystemExit(f"{folder}: the saved weights do not fit diffusers' model: {bad}")
    return model.to(device)


def load_gemma(folder, device):
    # Eager attention: the path the C++ encoder reproduces (and Gemma-2's logit soft-capping needs).
    model, info = Gemma2Model.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager",
                                              output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise SystemExit(f"{folder}: the saved weights do not fit transformers' Gemma2Model: {bad}")
    return model.to(device)


def encode_prompt(text_encoder, ids, mask, max_sequence_length):
    """SanaPipeline.encode_prompt on given token ids: last hidden state, then the [0] + last (L - 1) selection."""
    hidden = text_encoder(ids, attention_mask=mask)[0]
    select = [0] + list(range(-max_sequence_length + 1, 0))
    return hidden[:, select], mask[:, select]


class ExplicitAttnProcessor:
    """Scaled dot-product attention written out with plain tensor ops, so torch.func.jvp can push tangents through
    it (the fused kernels have no forward-AD rule): the research script's SanaVanillaAttnProcessor, step by step
    (additive bias buffer, scaled scores, softmax, dropout with p = 0)."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, length = context.shape[0], context.shape[1]
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
        bias = torch.zeros(batch, attn.heads, query.shape[-2], key.shape[-2], dtype=query.dtype, device=query.device)
        if attention_mask is not None:
            bias = bias + attention_mask
        scores = query @ key.transpose(-2, -1) * (1.0 / math.sqrt(head_dim)) + bias
        probs = torch.dropout(torch.softmax(scores, dim=-1), 0.0, train=True)
        out = (probs @ value).transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


class TrigFlow(nn.Module):
    """A flow-matching SanaTransformer2DModel seen as a TrigFlow model, as the research script's SanaTrigFlow:
    x_scaled, t -> F = ((1 - 2s) x_fm + (1 - 2s + 2s^2) v(x_fm, s)) / c with s = sin t / (sin t + cos t),
    c = sqrt(s^2 + (1 - s)^2), x_fm = c x_scaled; the time embedding is evaluated once more afterwards for the
    adaptive-weighting head (logvar)."""

    def __init__(self, model, logvar_linear=None, logvar_on_trig_time=False):
        super().__init__()
        self.model = model
        self.logvar_linear = logvar_linear
        self.logvar_on_trig_time = logvar_on_trig_time

    def forward(self, x_scaled, t, enc, mask, guidance=None, return_logvar=False):
        batch = x_scaled.shape[0]
        t = t.flatten().to(enc.dtype)
        s = torch.sin(t) / (torch.cos(t) + torch.sin(t))
        se = s.view(-1, 1, 1, 1)
        c = torch.sqrt(se ** 2 + (1 - se) ** 2)
        x_fm = (x_scaled * c).to(enc.dtype)
        v = self.model(hidden_states=x_fm, encoder_hidden_states=enc, timestep=s, guidance=guidance,
                       encoder_attention_mask=mask, return_dict=False)[0]
        out = ((1 - 2 * se) * x_fm + (1 - 2 * se + 2 * se ** 2) * v) / c
        time_in = t if self.logvar_on_trig_time else s
        if guidance is not None:
            _, embedded = self.model.time_embed(time_in, guidance=guidance, hidden_dtype=x_scaled.dtype)
        else:
            _, embedded = self.model.time_embed(time_in, batch_size=batch, hidden_dtype=x_scaled.dtype)
        if return_logvar:
            return out, self.logvar_linear(embedded)
        return out


def spectral_conv1d(channels_in, channels_out, kernel):
    conv = nn.Conv1d(channels_in, channels_out, kernel, padding=kernel // 2, padding_mode="circular")
    return nn.utils.spectral_norm(conv, name="weight", n_power_iterations=1, dim=0, eps=1e-12)


class BatchNormLocal(nn.Module):
    """Batch norm over groups of `virtual_bs` samples, batch statistics always (StyleGAN-T)."""

    def __init__(self, channels, virtual_bs=8, eps=1e-5):
        super().__init__()
        self.virtual_bs, self.eps = virtual_bs, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        shape = x.shape
        groups = math.ceil(x.shape[0] / self.virtual_bs)
        x = x.view(groups, -1, x.shape[-2], x.shape[-1])
        mean = x.mean([1, 3], keepdim=True)
        var = x.var([1, 3], keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(var + self.eps)
        x = x * self.weight[None, :, None] + self.bias[None, :, None]
        return x.view(shape)


class DiscBlock(nn.Module):
    def __init__(self, channels, kernel, virtual_bs):
        super().__init__()
        self.conv = spectral_conv1d(channels, channels, kernel)
        self.norm = BatchNormLocal(channels, virtual_bs)
        self.act = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class DiscHead(nn.Module):
    """StyleGAN-T head over the token axis without class conditioning: block(1), residual block(9), 1x1 to 1."""

    def __init__(self, channels, virtual_bs):
        super().__init__()
        self.block1 = DiscBlock(channels, 1, virtual_bs)
        self.block9 = DiscBlock(channels, 9, virtual_bs)
        self.cls = spectral_conv1d(channels, 1, 1)

    def forward(self, x):
        h = self.block1(x)
        h = (self.block9(h) + h) / math.sqrt(2)
        return self.cls(h)


class Discriminator(nn.Module):
    """The research script's SanaMSCMDiscriminator: the frozen TrigFlow teacher, forward hooks on the chosen blocks,
    one head per hooked block, logits (B, N x heads)."""

    def __init__(self, teacher_trig, block_ids, virtual_bs):
        super().__init__()
        self.transformer = teacher_trig
        self.transformer.requires_grad_(False)
        self.block_ids = set(block_ids)
        hidden = teacher_trig.model.config.num_attention_heads * teacher_trig.model.config.attention_head_dim
        self.heads = nn.ModuleList([DiscHead(hidden, virtual_bs) for _ in block_ids])

    def forward(self, x_scaled, t, enc, mask):
        feats = []
        hooks = [block.register_forward_hook(lambda _m, _i, out: feats.append(out))
                 for i, block in enumerate(self.transformer.model.transformer_blocks) if i in self.block_ids]
        self.transformer(x_scaled, t, enc, mask)
        for h in hooks:
            h.remove()
        logits = [head(f.transpose(1, 2)).reshape(f.shape[0], -1) for f, head in zip(feats, self.heads)]
        return torch.cat(logits, dim=1)


def load_heads(disc, heads, prefix="disc."):
    """Copies the C++ discriminator heads: same key names (spectral-norm weight_orig / weight_u / weight_v, bias,
    norm affine). Copied tensor by tensor: load_state_dict would take a dict without metadata for the pre-1.0
    spectral-norm format."""
    with torch.no_grad():
        own = disc.heads.state_dict(keep_vars=True)
        for k, v in own.items():
            v.copy_(heads[prefix + "heads." + k])
        missing = {k[len(prefix) + len("heads."):] for k in heads if k.startswith(prefix)} - set(own)
        if missing:
            raise SystemExit(f"heads.safetensors: discriminator keys this script does not know: {sorted(missing)}")


# ---- random draws: the C++ generator sequence (sprint::training::sampling) ---------------------------------------

class Draws:
    def __init__(self, seed, device):
        self.gen = torch.Generator().manual_seed(seed)
        self.device = device

    def randn(self, shape):
        return torch.randn(tuple(shape), generator=self.gen, dtype=torch.float32).to(self.device)

    def trigflow_time(self, batch, mean, std, time_sigma=0.5):
        n = torch.randn(batch, generator=self.gen, dtype=torch.float64)
        return torch.atan(torch.exp(mean + std * n) / time_sigma).float().to(self.device)

    def max_time(self, t, prob, max_t):
        u = torch.rand(t.numel(), generator=self.gen, dtype=torch.float64)
        pick = (u < prob).to(t.device).view(t.shape)
        return torch.where(pick, torch.full_like(t, max_t), t)

    def cfg_scale(self, batch, choices):
        idx = torch.randint(len(choices), (batch,), generator=self.gen)
        return torch.tensor(choices, dtype=torch.float64)[idx].float().to(self.device)

    def flow_time(self, batch, uniform, mean, std):
        if uniform:
            s = torch.rand(batch, generator=self.gen, dtype=torch.float64)
        else:
            s = torch.sigmoid(mean + std * torch.randn(batch, generator=self.gen, dtype=torch.float64))
        return s.float().to(self.device)


# ---- steps --------------------------------------------------------------------------------------------------------

def time_step(record, i, warmup, device, step):
    """One step: wall time and process CPU time (what a busy machine skews less); record = [first terms, ms, cpu ms]."""
    t0, c0 = time.perf_counter(), time.process_time()
    terms = step(i)
    sync(device)
    elapsed, cpu = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
    if i == 0:
        record[0] = terms
    if i >= warmup:
        record[1].append(elapsed)
        record[2].append(cpu)


def bench_teacher(d, cfg, inputs, device, warmup, repeats, parity):
    st = cfg["settings"]["teacher"]
    teacher = load_sana(os.path.join(d, "teacher"), device).train().requires_grad_(True)
    text_encoder = load_gemma(os.path.join(d, "text_encoder"), device).train().requires_grad_(True)
    opt = torch.optim.AdamW(teacher.parameters(), lr=st["lr"], betas=tuple(st["betas"]),
                            weight_decay=st["weight_decay"], eps=st["eps"])
    opt_te = torch.optim.AdamW(text_encoder.parameters(), lr=st["lr"] * st["text_encoder_lr_scale"],
                               betas=tuple(st["betas"]), weight_decay=st["weight_decay"], eps=st["eps"])
    z = inputs["z"].to(device)
    ids, mask = inputs["ids"].to(device), inputs["mask"].to(device)
    bsz, L = z.shape[0], cfg["text_len"]
    draws = Draws(cfg["seeds"]["teacher"], device)

    def step(i):
        noise = draws.randn(z.shape)
        s = draws.flow_time(bsz, st["flow_time"] == "uniform", st["flow_mean"], st["flow_std"])
        prompt_embeds, prompt_mask = encode_prompt(text_encoder, ids, mask, L)
        sigmas = s.view(-1, 1, 1, 1)
        noisy = (1.0 - sigmas) * z + sigmas * noise
        pred = teacher(hidden_states=noisy, encoder_hidden_states=prompt_embeds, encoder_attention_mask=prompt_mask,
                       timestep=s * st["timestep_scale"], return_dict=False)[0]
        weighting = compute_loss_weighting_for_sd3(weighting_scheme="logit_normal", sigmas=sigmas)
        target = noise - z
        loss = torch.mean((weighting.float() * (pred.float() - target.float()) ** 2).reshape(bsz, -1), 1).mean()
        loss.backward()
        gn = nn.utils.clip_grad_norm_(teacher.parameters(), st["grad_clip"])
        gn_te = nn.utils.clip_grad_norm_(text_encoder.parameters(), st["grad_clip"])
        opt.step()
        opt_te.step()
        opt.zero_grad(set_to_none=True)
        opt_te.zero_grad(set_to_none=True)
        if i == 0:
            parity["teacher.enc"] = prompt_embeds.detach()
        return {"loss": loss.item(), "grad_norm": gn.item(), "grad_norm_text": gn_te.item()}

    record = [None, [], []]
    for i in range(warmup + repeats):
        time_step(record, i, warmup, device, step)
    return {"teacher": tuple(record)}


def bench_distill(d, cfg, inputs, heads, device, warmup, repeats, reference, parity):
    st = cfg["settings"]["distill"]
    sd, L = st["sigma_data"], cfg["text_len"]
    text_encoder = load_gemma(os.path.join(d, "text_encoder"), device).eval().requires_grad_(False)
    with torch.no_grad():
        prompt_embeds, prompt_mask = encode_prompt(text_encoder, inputs["ids"].to(device), inputs["mask"].to(device), L)
        neg_embeds, neg_mask = encode_prompt(text_encoder, inputs["uncond_ids"].to(device),
                                             inputs["uncond_mask"].to(device), L)
    parity["distill.cond_enc"], parity["distill.uncond_enc"] = prompt_embeds, neg_embeds
    del text_encoder

    teacher = TrigFlow(load_sana(os.path.join(d, "teacher"), device)).eval().requires_grad_(False)
    student_model = load_sana(os.path.join(d, "student"), device)
    hidden = student_model.config.num_attention_heads * student_model.config.attention_head_dim
    logvar_linear = nn.Linear(hidden, 1).to(device)
    with torch.no_grad():
        logvar_linear.weight.copy_(heads["logvar.weight"])
        logvar_linear.bias.copy_(heads["logvar.bias"])
    if reference:
        student_model.set_attn_processor(ExplicitAttnProcessor())  # every attention, self-attention included
    else:
        for block in student_model.transformer_blocks:
            block.attn2.set_processor(ExplicitAttnProcessor())
    student = TrigFlow(student_model, logvar_linear, logvar_on_trig_time=reference).train().requires_grad_(True)
    disc = Discriminator(teacher, st["head_block_ids"], st["virtual_batch"]).to(device).train()
    load_heads(disc, {k: v.to(device) for k, v in heads.items()})
    disc.transformer.requires_grad_(False)
    disc.heads.requires_grad_(True)
    opt_g = torch.optim.AdamW(student.parameters(), lr=st["lr"], betas=tuple(st["betas"]),
                              weight_decay=st["weight_decay"], eps=st["eps"])
    opt_d = torch.optim.AdamW(disc.heads.parameters(), lr=st["lr_d"], betas=tuple(st["betas"]),
                              weight_decay=st["weight_decay"], eps=st["eps"])
    gscale = student_model.config.guidance_embeds_scale

    x0 = inputs["z"].to(device) * sd
    bsz = x0.shape[0]
    draws = Draws(cfg["seeds"]["distill"], device)
    r = st["r"]

    def noised(x, t, z):
        return torch.cos(t) * x + torch.sin(t) * z

    def student_x0(guidance):
        t_new = draws.max_time(draws.trigflow_time(bsz, st["p_mean"], st["p_std"], st["time_sigma"]),
                               st["largest_timestep_prob"], st["largest_timestep"]).view(-1, 1, 1, 1)
        x_t_new = noised(x0, t_new, draws.randn(x0.shape) * sd)
        F_new = student(x_t_new / sd, t_new.flatten(), prompt_embeds, prompt_mask, guidance=guidance)
        return torch.cos(t_new) * x_t_new - torch.sin(t_new) * F_new * sd

    def g_step(i):
        student.train()
        if reference:
            disc.eval()
        else:
            disc.train()
            disc.heads.requires_grad_(False)
        scm_cfg_scale = draws.cfg_scale(bsz, st["cfg_scales"])
        guidance = scm_cfg_scale * gscale
        t = draws.trigflow_time(bsz, st["p_mean"], st["p_std"], st["time_sigma"]).view(-1, 1, 1, 1)
        x_t = noised(x0, t, draws.randn(x0.shape) * sd)

        with torch.no_grad():
            cfg_pred = teacher(torch.cat([x_t, x_t]) / sd, torch.cat([t, t]).flatten(),
                               torch.cat([neg_embeds, prompt_embeds]), torch.cat([neg_mask, prompt_mask]))
            dxt_dt_uncond, dxt_dt = (sd * cfg_pred).chunk(2)
            dxt_dt = dxt_dt_uncond + scm_cfg_scale.view(-1, 1, 1, 1) * (dxt_dt - dxt_dt_uncond)
        v_x = torch.cos(t) * torch.sin(t) * dxt_dt / sd
        v_t = torch.cos(t) * torch.sin(t)

        def model_wrapper(scaled_x_t, tt):
            return student(scaled_x_t, tt.flatten(), prompt_embeds, prompt_mask, guidance=guidance,
                           return_logvar=True)

        with torch.no_grad():
            _, F_theta_grad, _ = torch.func.jvp(model_wrapper, (x_t / sd, t), (v_x, v_t), has_aux=True)
        F_theta, logvar = student(x_t / sd, t.flatten(), prompt_embeds, prompt_mask, guidance=guidance,
                                  return_logvar=True)
        logvar = logvar.view(-1, 1, 1, 1)
        F_theta_grad = F_theta_grad.detach()
        F_theta_minus = F_theta.detach()
        g = -torch.cos(t) * torch.cos(t) * (sd * F_theta_minus - dxt_dt)
        g = g + -r * (torch.cos(t) * torch.sin(t) * x_t + sd * F_theta_grad)
        g_norm = torch.linalg.vector_norm(g, dim=(1, 2, 3), keepdim=True)
        g = g / (g_norm + st["tangent_norm_c"])
        weight = 1 / (torch.tan(t) * sd)
        l2_loss = torch.square(F_theta - F_theta_minus - g)
        loss = ((weight / torch.exp(logvar)) * l2_loss + logvar).mean()
        loss_no_logvar = (weight * l2_loss).mean()

        pred_x_0 = student_x0(guidance)
        t_D = draws.trigflow_time(bsz, st["disc_p_mean"], st["disc_p_std"], st["time_sigma"]).view(-1, 1, 1, 1)
        noised_pred = noised(pred_x_0, t_D, draws.randn(x0.shape) * sd)
        pred_fake = disc(noised_pred / sd, t_D.flatten(), prompt_embeds, prompt_mask)
        adv_loss = -torch.mean(pred_fake)
        total = st["scm_lambda"] * loss + adv_loss * st["adv_lambda"]
        total.backward()
        grad_norm = nn.utils.clip_grad_norm_(student.parameters(), st["grad_clip"])
        if torch.logical_or(grad_norm.isnan(), grad_norm.isinf()):
            raise SystemExit(f"G step {i + 1}: non-finite gradient norm")
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        disc.heads.requires_grad_(True)
        if i == 0:
            parity.update({"g.x_t": x_t, "g.dxdt": dxt_dt, "g.J": F_theta_grad, "g.F_theta": F_theta_minus,
                           "g.logvar": logvar.detach()})
        return {"loss_scm": loss.item(), "loss_no_logvar": loss_no_logvar.item(), "g_norm": g_norm.mean().item(),
                "loss_adv": adv_loss.item(), "loss_g": total.item(), "grad_norm_g": grad_norm.item()}

    def d_step(i):
        student.eval()
        disc.train()
        scm_cfg_scale = draws.cfg_scale(bsz, st["cfg_scales"])
        with torch.no_grad():
            pred_x_0 = student_x0(scm_cfg_scale * gscale)
        t_D = draws.trigflow_time(bsz, st["disc_p_mean"], st["disc_p_std"], st["time_sigma"]).view(-1, 1, 1, 1)
        noised_latents = noised(x0, t_D, draws.randn(x0.shape) * sd)
        noised_pred = noised(pred_x_0, t_D, draws.randn(x0.shape) * sd)
        t_fake, enc_fake, mask_fake = t_D, prompt_embeds, prompt_mask
        if st["misaligned_pairs"] and bsz > 1:
            t_shift = draws.trigflow_time(bsz, st["disc_p_mean"], st["disc_p_std"], st["time_sigma"]).view(-1, 1, 1, 1)
            noised_shift = noised(torch.roll(x0, 1, 0), t_shift, draws.randn(x0.shape) * sd)
            noised_pred = torch.cat([noised_pred, noised_shift])
            t_fake = torch.cat([t_D, t_shift])
            enc_fake = torch.cat([prompt_embeds, prompt_embeds])
            mask_fake = torch.cat([prompt_mask, prompt_mask])
        pred_fake = disc(noised_pred / sd, t_fake.flatten(), enc_fake, mask_fake)
        pred_true = disc(noised_latents / sd, t_D.flatten(), prompt_embeds, prompt_mask)
        loss_real = torch.mean(F.relu(1.0 - pred_true))
        loss_gen = torch.mean(F.relu(1.0 + pred_fake))
        loss_d = 0.5 * (loss_real + loss_gen)
        loss_d.backward()
        grad_norm = nn.utils.clip_grad_norm_(disc.parameters(), st["grad_clip"])
        if torch.logical_or(grad_norm.isnan(), grad_norm.isinf()):
            raise SystemExit(f"D step {i + 1}: non-finite gradient norm")
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        return {"loss_d": loss_d.item(), "loss_real": loss_real.item(), "loss_fake": loss_gen.item(),
                "grad_norm_d": grad_norm.item()}

    out = {"distill G": [None, [], []], "distill D": [None, [], []]}
    for i in range(warmup + repeats):  # G and D alternate, as in the script and the C++ command
        time_step(out["distill G"], i, warmup, device, g_step)
        time_step(out["distill D"], i, warmup, device, d_step)
    return {k: tuple(v) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--json", help="write the diffusers rows here")
    ap.add_argument("--threads", type=int, help="default: the C++ run's")
    ap.add_argument("--mode", choices=["parity", "reference"], default="parity")
    args = ap.parse_args()

    with open(os.path.join(args.dir, "cpp_results.json")) as f:
        cfg = json.load(f)
    threads = args.threads or cfg["threads"]
    torch.set_num_threads(threads)
    reference = args.mode == "reference"
    print(f"bench_train_diffusers.py: torch {torch.__version__}, diffusers {diffusers.__version__}, transformers "
          f"{transformers.__version__}, {torch.get_num_threads()} threads, mode {args.mode}", flush=True)
    inputs = load_file(os.path.join(args.dir, "inputs.safetensors"))
    heads = load_file(os.path.join(args.dir, "heads.safetensors"))
    cpp_first = load_file(os.path.join(args.dir, "cpp_first_step.safetensors"))

    rows, parity_out = [], {}
    for dev_name in dict.fromkeys(r["device"] for r in cfg["rows"]):
        if dev_name == "cuda" and not torch.cuda.is_available():
            print("  cuda: skipped (torch.cuda.is_available() is false)")
            continue
        device = torch.device(dev_name)
        cpp_rows = {r["step"]: r for r in cfg["rows"] if r["device"] == dev_name}
        warmup, repeats = cfg["warmup"], cfg["repeats"]
        parity = {}
        results = {}
        print(f"  {dev_name} teacher step ...", end="", flush=True)
        results.update(bench_teacher(args.dir, cfg, inputs, device, warmup, repeats, parity))
        print(f" {statistics.median(results['teacher'][1]):.1f} ms\n  {dev_name} distill G + D steps ...", end="",
              flush=True)
        results.update(bench_distill(args.dir, cfg, inputs, heads, device, warmup, repeats, reference, parity))
        print(f" G {statistics.median(results['distill G'][1]):.1f} ms, D "
              f"{statistics.median(results['distill D'][1]):.1f} ms", flush=True)
        for name, (first, ms, cpu_ms) in results.items():
            med = statistics.median(ms)
            cpp = cpp_rows.get(name)
            rows.append({"step": name, "device": dev_name, "batch": cfg["batch"], "warmup": warmup, "repeats": repeats,
                         "times_ms": ms, "median_ms": med, "cpu_times_ms": cpu_ms,
                         "median_cpu_ms": statistics.median(cpu_ms), "samples_per_s": cfg["batch"] / (med * 1e-3),
                         "first": first, "cpp_median_ms": cpp["median_ms"] if cpp else None})
            if cpp:
                for k in LOSS_KEYS[name]:
                    c, p = cpp["first"][k], first[k]
                    print(f"    {dev_name} {name} first-step {k}: C++ {c:.8g}, diffusers {p:.8g}, "
                          f"rel. diff {abs(c - p) / max(abs(c), 1e-30):.2e}")
        for k, v in parity.items():
            ref = cpp_first.get(f"{dev_name}.{k}")
            parity_out[f"{dev_name}:{k}"] = None if ref is None else nmse(v, ref)
    print("  first-step intermediates vs C++ (NMSE): " +
          ", ".join(f"{k} {'-' if v is None else f'{v:.1e}'}" for k, v in parity_out.items()), flush=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "bench_train_diffusers.py", "torch": torch.__version__, "diffusers": diffusers.__version__,
                       "transformers": transformers.__version__, "threads": threads, "mode": args.mode,
                       "rows": rows, "parity": parity_out}, f, indent=2)


if __name__ == "__main__":
    main()
