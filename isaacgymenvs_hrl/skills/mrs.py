"""MRS: multi-resolution skills.

R skill horizons (default 4, 8, 16 and 32 control steps) share one policy backbone; each has its
own output head and its own segment encoder, and a last head ignores the latent (unconditional):
SkillPolicy(num_heads=R+1, unconditional_head=True). For resolution r, segments of H_r steps
(never crossing an episode boundary) are encoded by a bidirectional LSTM over (s_t, a_t) into
q_r(z | segment); head r must then reproduce every action of the segment from (s_t, z):

    loss = sum_r [ mean_t -log N(a_t; pi_r(s_t, z), σ²) + beta * KL(q_r(z | segment) || N(0, I)) / H_r ]
           + mean_t -log N(a_t; pi_R(s_t), σ²)                                    (unconditional head)

with z sampled by reparameterization, so the encoders learn through the policy (a latent-variable
behaviour-cloning VAE per resolution). A latent held for H_r steps only has to describe
behaviour of that length, so the heads specialise to coarse or fine skills.

The LLC runs in multires mode: the high level's action is R+1 head scores (argmax picks the head)
followed by z. ``latent_normalization``: 'tanh' (policy trained on tanh(z); the high level emits z
in prior units) or 'none' (policy trained on raw z; high-level action times latent_scale is z).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..datasets.hdf5 import episode_ids
from ..errors import UserError
from ..hrl.llc import normalize_latent
from ..hrl.llc_checkpoint import save_llc
from ..hrl.networks import SkillPolicy
from .common import (SegmentEncoder, distributed, gaussian_log_prob, kl_standard_normal, llc_spec, mean_std,
                     minibatches, parameter_digest, require_slices, rsample, seeded, split, standardize,
                     take_slices)
from .segments import require_windows, window_indices, window_starts


# ============================================================================================
# Config
# ============================================================================================
@dataclass
class MRSConfig:
    policy_obs: list = field(default_factory=lambda: ["proprio"])
    """observation slices the encoders and the skill policy read"""
    horizons: list = field(default_factory=lambda: [4, 8, 16, 32])
    """H_r: control steps one latent lasts, one per resolution head"""
    latent_dim: int = 8
    """size of z (shared by all resolutions)"""
    beta: float = 0.01
    """weight of KL(q_r(z | segment) || N(0, I))"""
    action_std: float = 0.2
    """std of the Gaussian action likelihood (actions are in [-1, 1])"""
    latent_normalization: str = "tanh"
    """'tanh' or 'none' (module docstring)"""
    latent_scale: float = 1.0
    """high-level action multiplier before normalization (the LLC's latent.scale)"""
    hidden: list = field(default_factory=lambda: [256, 256])
    """hidden sizes of the shared policy backbone"""
    lstm_hidden: int = 64
    """hidden size of each direction of every segment encoder"""
    activation: str = "elu"
    """activation of the policy backbone"""
    epochs: int = 20
    """passes over the shortest resolution's training segments"""
    batch_size: int = 128
    """segments per resolution per gradient step"""
    lr: float = 1e-3
    """Adam learning rate (cosine-annealed to 0)"""
    stride: int = 2
    """step between the starts of consecutive segments of an episode"""
    val_fraction: float = 0.05
    """share of segments (per resolution) held out for the validation losses"""
    default_steps: int = 8
    """k stored in the checkpoint: control steps per high-level decision"""
    device: str = "cpu"
    """torch device for training"""
    seed: int = 0
    """seeds torch and the data split"""


# ============================================================================================
# Losses
# ============================================================================================
def mrs_losses(policy: SkillPolicy, encoders: nn.ModuleList, cfg: MRSConfig, segments: list,
               single_obs: torch.Tensor, single_act: torch.Tensor) -> dict:
    """segments[r] = (obs (B, H_r, S) standardized, act (B, H_r, A)); single_* (B, S) / (B, A) are
    steps for the unconditional head."""
    log_std = torch.tensor(float(np.log(cfg.action_std)))
    out, total = {}, 0.0
    for r, (obs, act) in enumerate(segments):
        b, h = act.shape[:2]
        z_mean, z_log_std = encoders[r](torch.cat([obs, act], -1))
        z = normalize_latent(rsample(z_mean, z_log_std), cfg.latent_normalization)
        z = z[:, None].expand(-1, h, -1).reshape(b * h, -1)
        head = torch.full((b * h,), r, dtype=torch.long, device=obs.device)
        a_mean = policy(obs.reshape(b * h, -1), z, head).clamp(-1.0, 1.0)
        nll = -gaussian_log_prob(act.reshape(b * h, -1), a_mean, log_std).mean()
        kl = kl_standard_normal(z_mean, z_log_std).mean() / h
        out[f"nll_h{cfg.horizons[r]}"], out[f"kl_h{cfg.horizons[r]}"] = nll, kl
        out[f"mse_h{cfg.horizons[r]}"] = ((a_mean - act.reshape(b * h, -1)) ** 2).mean()
        total = total + nll + cfg.beta * kl
    head = torch.full((len(single_obs),), len(segments), dtype=torch.long, device=single_obs.device)
    zeros = torch.zeros(len(single_obs), cfg.latent_dim, device=single_obs.device)
    a_mean = policy(single_obs, zeros, head).clamp(-1.0, 1.0)
    out["nll_uncond"] = -gaussian_log_prob(single_act, a_mean, log_std).mean()
    out["mse_uncond"] = ((a_mean - single_act) ** 2).mean()
    out["loss"] = total + out["nll_uncond"]
    return out


# ============================================================================================
# Training
# ============================================================================================
def train_mrs(data: dict, meta: dict, cfg: MRSConfig, output: str, log=print, progress: bool = True) -> dict:
    """Fit, write the LLC checkpoint (multires mode) to ``output``; returns metrics, loss history
    and report data."""
    if not cfg.horizons or any(int(h) < 1 for h in cfg.horizons) or list(cfg.horizons) != sorted(set(cfg.horizons)):
        raise UserError(f"skills.horizons must be increasing positive step counts, got {list(cfg.horizons)}")
    if cfg.latent_normalization not in ("tanh", "none"):
        raise UserError(f"skills.latent_normalization must be 'tanh' or 'none', got '{cfg.latent_normalization}'")
    require_slices(meta, cfg.policy_obs, "MRS")
    dist = distributed(cfg.device)
    g = seeded(cfg.seed)
    dev = dist.device(cfg.device)
    horizons = [int(h) for h in cfg.horizons]

    # ---- data: one set of segments per resolution --------------------------------------------------
    obs_raw = take_slices(data, cfg.policy_obs)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    obs_mean, obs_std = mean_std(obs_raw)
    obs_n = standardize(obs_raw, obs_mean, obs_std).to(dev)
    act = act.to(dev)
    ep = episode_ids(data)
    seg_idx, seg_split, seg_starts = [], [], []
    for h in horizons:
        starts = window_starts(ep, h, cfg.stride)
        require_windows(starts, h, data, f"MRS horizon {h}",
                        "drop the longest horizon (skills.horizons) or collect longer episodes")
        seg_idx.append(torch.from_numpy(window_indices(starts, h)).to(dev))
        seg_split.append(split(len(starts), cfg.val_fraction, g))
        seg_starts.append(starts)
    step_train, step_val = split(len(act), cfg.val_fraction, g)

    # ---- model and optimizer -----------------------------------------------------------------
    policy = SkillPolicy(obs_raw.shape[1], cfg.latent_dim, act.shape[1], tuple(cfg.hidden), cfg.activation,
                         num_heads=len(horizons) + 1, unconditional_head=True).to(dev)
    encoders = nn.ModuleList([SegmentEncoder(obs_raw.shape[1] + act.shape[1], cfg.latent_dim, cfg.lstm_hidden)
                              for _ in horizons]).to(dev)
    dist.prepare([policy, encoders], cfg.seed)
    params = list(policy.parameters()) + list(encoders.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    keys = ["loss"] + [f"{m}_h{h}" for h in horizons for m in ("nll", "kl", "mse")] + ["nll_uncond", "mse_uncond"]
    history = {f"train_{k}": [] for k in keys} | {f"val_{k}": [] for k in keys}

    def draw(pool: torch.Tensor, n: int) -> torch.Tensor:
        return pool[torch.randint(len(pool), (n,), generator=g)]

    def batch(picks: list, steps: torch.Tensor):
        segs = [(obs_n[seg_idx[r][p]], act[seg_idx[r][p]]) for r, p in enumerate(picks)]
        return segs, obs_n[steps], act[steps]

    # ---- loop --------------------------------------------------------------------------------
    t0 = time.time()
    bar = tqdm(range(cfg.epochs), desc="mrs", disable=not progress)
    n_batches = -(-len(seg_split[0][0]) // cfg.batch_size)
    for epoch in bar:
        policy.train()
        encoders.train()
        sums = dict.fromkeys(keys, 0.0)
        for first in minibatches(len(seg_split[0][0]), cfg.batch_size, g):
            picks = [seg_split[0][0][first]] + [draw(tr, len(first)) for tr, _ in seg_split[1:]]
            steps = draw(step_train, len(first))
            picks, steps = [dist.shard(p) for p in picks], dist.shard(steps)
            out = mrs_losses(policy, encoders, cfg, *batch(picks, steps))
            opt.zero_grad()
            out["loss"].backward()
            dist.sync_grads(params)
            nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            for k in keys:
                sums[k] += out[k].item() / n_batches
        sums = dist.reduce(sums, mean=True)
        sched.step()
        policy.eval()
        encoders.eval()
        with torch.no_grad():
            v = mrs_losses(policy, encoders, cfg, *batch([va for _, va in seg_split], step_val))
        for k in keys:
            history[f"train_{k}"].append(sums[k])
            history[f"val_{k}"].append(v[k].item())
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{history['val_loss'][-1]:.3f}")
        log(f"epoch {epoch + 1}/{cfg.epochs}  loss {sums['loss']:.4f}  "
            + "  ".join(f"mse_h{h} {sums[f'mse_h{h}']:.4f}" for h in horizons)
            + f"  mse_uncond {sums['mse_uncond']:.4f}  | val loss {history['val_loss'][-1]:.4f}")

    # ---- checkpoint and report data -------------------------------------------------------------
    latents, labels = [], []
    with torch.no_grad():
        for r, idx in enumerate(seg_idx):
            z = torch.cat([encoders[r](torch.cat([obs_n[i], act[i]], -1))[0] for i in idx.split(4096)]).cpu()
            latents.append(z)
            labels.append(np.full(len(z), horizons[r]))
    metrics = {k: round(history[k][-1], 6) for k in history} | {
        "train_seconds": round(time.time() - t0, 1), "samples": int(len(act)),
        "segments": {str(h): int(len(i)) for h, i in zip(horizons, seg_idx)}}
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, action_dim=act.shape[1], default_steps=cfg.default_steps,
        latent={"dim": cfg.latent_dim, "normalization": cfg.latent_normalization, "scale": cfg.latent_scale,
                "modes": ["multires"], "multires": {"horizons": horizons, "unconditional": True}},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(obs_raw.shape[1]),
                                 "latent_dim": cfg.latent_dim, "action_dim": int(act.shape[1]),
                                 "hidden": list(cfg.hidden), "activation": cfg.activation,
                                 "num_heads": len(horizons) + 1, "unconditional_head": True}},
        algorithm="mrs", metrics=metrics, config=asdict(cfg))
    if dist.is_main:
        save_llc(output, spec, policy.cpu(), obs_mean=obs_mean, obs_std=obs_std)
    report = {"latents": torch.cat(latents).numpy(), "labels": np.concatenate(labels), "label_name": "horizon"}
    return {"metrics": metrics, "history": history, "report": report,
            "param_digest": parameter_digest([policy, encoders])}
