"""LDSE: local dynamics skill extraction.

A skill is what a short stretch of behaviour does to the robot's state. Segments of H consecutive
steps (never crossing an episode boundary) are encoded by a bidirectional LSTM over (s_t, a_t) into
a Gaussian q(z | segment). A decoder predicts every step's state change from (s_t, a_t, z):

    loss = sum_t -log N(Δs_t; f(s_t, a_t, z), σ²) + beta * KL(q(z | segment) || N(0, I))     (per step)

with Δs_t = s_{t+1} - s_t standardized per dimension and σ either learned (one log-std per state
dimension) or fixed. The skill policy pi(a | s, z) is fitted alongside by behaviour cloning on the
same segments, with the encoder's z detached (its mean or a sample), so it learns to reproduce the
behaviour that the latent stands for without shaping the latent itself.

The LLC is a SkillPolicy in continuous mode on the proprio slice. ``latent_normalization``:
  tanh  the policy is trained on tanh(z) and the LLC applies tanh to the high-level action, so the
        high level emits z in the units of the N(0, I) prior and cannot leave (-1, 1)^d;
  none  the policy is trained on z itself; the high level's action (times ``latent_scale``) is z.
The encoder is written next to the checkpoint (``<name>.encoder.pt``) for skill matching:
``SkillMatcher.load(path)(obs_history, action_history)`` infers z from a short recent history.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..datasets.hdf5 import episode_ids
from ..errors import UserError
from ..hrl.llc import normalize_latent
from ..hrl.llc_checkpoint import save_llc
from ..hrl.networks import SkillPolicy, mlp
from .common import (SegmentEncoder, distributed, gaussian_log_prob, kl_standard_normal, latent_reach, llc_spec,
                     mean_std, minibatches, parameter_digest, require_slices, rsample, seeded, split, standardize,
                     take_slices)
from .segments import require_windows, window_indices, window_starts

ENCODER_FORMAT = "isaacgymenvs_hrl.ldse_encoder"


# ============================================================================================
# Config
# ============================================================================================
@dataclass
class LDSEConfig:
    policy_obs: list = field(default_factory=lambda: ["proprio"])
    """observation slices the encoder, the dynamics decoder and the skill policy read"""
    horizon: int = 8
    """H: steps per segment (5-10 is typical: long enough to show a motion, short enough to be one)"""
    latent_dim: int = 8
    """size of z"""
    beta: float = 0.01
    """weight of KL(q(z|segment) || N(0, I)) against the dynamics NLL"""
    decoder_variance: str = "learned"
    """'learned' (one log-std per state dimension) or 'fixed' (``fixed_std``) for the dynamics NLL"""
    fixed_std: float = 0.1
    """std of the standardized state change when decoder_variance is 'fixed'"""
    policy_latent: str = "mean"
    """z the skill policy is cloned with: the encoder's 'mean' or a 'sample' (both detached)"""
    latent_normalization: str = "tanh"
    """'tanh' or 'none': how the LLC maps the high-level action to the policy's z (module docstring)"""
    latent_scale: float = 1.0
    """high-level action multiplier before normalization (the LLC's latent.scale)"""
    hidden: list = field(default_factory=lambda: [256, 256])
    """hidden sizes of the skill policy and the dynamics decoder"""
    lstm_hidden: int = 128
    """hidden size of each direction of the segment encoder"""
    activation: str = "elu"
    """activation of the MLPs"""
    epochs: int = 30
    """passes over the training segments"""
    batch_size: int = 256
    """segments per gradient step"""
    lr: float = 1e-3
    """Adam learning rate (cosine-annealed to 0)"""
    stride: int = 1
    """step between the starts of consecutive segments of an episode"""
    val_fraction: float = 0.05
    """share of segments held out for the validation losses"""
    default_steps: int = 8
    """k stored in the checkpoint: control steps per high-level decision (H by default)"""
    device: str = "cpu"
    """torch device for training"""
    seed: int = 0
    """seeds torch and the data split"""


# ============================================================================================
# Model
# ============================================================================================
class LDSEModel(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, cfg: LDSEConfig):
        super().__init__()
        self.encoder = SegmentEncoder(obs_dim + action_dim, cfg.latent_dim, cfg.lstm_hidden)
        self.decoder = mlp([obs_dim + action_dim + cfg.latent_dim, *cfg.hidden, obs_dim], cfg.activation)
        self.decoder_log_std = nn.Parameter(torch.zeros(obs_dim), requires_grad=cfg.decoder_variance == "learned")
        if cfg.decoder_variance == "fixed":
            self.decoder_log_std.data.fill_(math.log(cfg.fixed_std))
        self.policy = SkillPolicy(obs_dim, cfg.latent_dim, action_dim, tuple(cfg.hidden), cfg.activation)


def ldse_losses(model: LDSEModel, cfg: LDSEConfig, obs: torch.Tensor, act: torch.Tensor,
                delta: torch.Tensor) -> dict:
    """Per-step losses for a batch of segments: obs (B, H, S) standardized, act (B, H, A),
    delta (B, H, S) standardized state changes."""
    h = obs.shape[1]
    z_mean, z_log_std = model.encoder(torch.cat([obs, act], -1))                    # (B, d)
    z = rsample(z_mean, z_log_std)
    z_steps = z[:, None].expand(-1, h, -1)
    pred = model.decoder(torch.cat([obs, act, z_steps], -1))                         # (B, H, S)
    log_std = model.decoder_log_std.clamp(-5.0, 2.0)
    nll = -gaussian_log_prob(delta, pred, log_std).mean()                            # per step
    kl = kl_standard_normal(z_mean, z_log_std).mean() / h                            # per step
    z_pol = (z_mean if cfg.policy_latent == "mean" else z).detach()
    z_pol = normalize_latent(z_pol, cfg.latent_normalization)[:, None].expand(-1, h, -1)
    bc = nn.functional.mse_loss(model.policy(obs.reshape(-1, obs.shape[-1]), z_pol.reshape(-1, z.shape[-1]))
                                .clamp(-1.0, 1.0), act.reshape(-1, act.shape[-1]))
    return {"loss": nll + cfg.beta * kl + bc, "dyn_nll": nll, "kl": kl, "bc_mse": bc,
            "dyn_mse": ((pred - delta) ** 2).mean()}


# ============================================================================================
# Skill matching
# ============================================================================================
class SkillMatcher:
    """Infers a skill latent from a short recent history with the trained LDSE encoder.

    ``matcher(obs, actions)`` takes raw observations (B, h, S) of the LLC's policy slices and the
    actions (B, h, A) taken at them (any h >= 1; the encoder saw h = horizon in training) and
    returns the posterior mean z (B, d). In continuous mode the LLC computes normalize(hl * scale),
    and the policy was cloned on normalize(z), so the high-level action that asks the LLC to
    continue the matched behaviour is z / latent_scale (z itself with the default scale 1).
    """

    def __init__(self, encoder: SegmentEncoder, obs_mean: torch.Tensor, obs_std: torch.Tensor, horizon: int):
        self.encoder, self.obs_mean, self.obs_std, self.horizon = encoder.eval(), obs_mean, obs_std, horizon

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if obs.ndim != 3 or actions.ndim != 3 or obs.shape[:2] != actions.shape[:2]:
            raise UserError(f"skill matching expects obs (B, h, {len(self.obs_mean)}) and actions (B, h, A) "
                            f"with the same B and h, got {tuple(obs.shape)} and {tuple(actions.shape)}")
        if obs.shape[-1] != len(self.obs_mean):
            raise UserError(f"skill matching: observations have {obs.shape[-1]} features, the encoder "
                            f"was trained on {len(self.obs_mean)}; pass the LLC's policy slices")
        x = torch.cat([standardize(obs.float(), self.obs_mean, self.obs_std), actions.float()], -1)
        return self.encoder(x)[0]

    @classmethod
    def load(cls, path) -> "SkillMatcher":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != ENCODER_FORMAT:
            raise UserError(f"{path} is not an LDSE encoder file (written as <llc name>.encoder.pt by "
                            "hrl-skills algo=ldse)")
        a = blob["architecture"]
        encoder = SegmentEncoder(a["input_dim"], a["latent_dim"], a["hidden"])
        encoder.load_state_dict(blob["encoder"])
        return cls(encoder, blob["obs_mean"], blob["obs_std"], int(blob["horizon"]))


def encoder_path(output) -> Path:
    """``walk.llc.pt`` -> ``walk.encoder.pt``."""
    p = Path(output)
    stem = p.name[:-len(".llc.pt")] if p.name.endswith(".llc.pt") else p.stem
    return p.with_name(stem + ".encoder.pt")


# ============================================================================================
# Training
# ============================================================================================
def train_ldse(data: dict, meta: dict, cfg: LDSEConfig, output: str, log=print, progress: bool = True) -> dict:
    """Fit, write the LLC checkpoint to ``output`` and the encoder next to it; returns metrics,
    loss history and report data."""
    if cfg.decoder_variance not in ("learned", "fixed"):
        raise UserError(f"skills.decoder_variance must be 'learned' or 'fixed', got '{cfg.decoder_variance}'")
    if cfg.policy_latent not in ("mean", "sample"):
        raise UserError(f"skills.policy_latent must be 'mean' or 'sample', got '{cfg.policy_latent}'")
    if cfg.latent_normalization not in ("tanh", "none"):
        raise UserError(f"skills.latent_normalization must be 'tanh' or 'none', got '{cfg.latent_normalization}'")
    if cfg.horizon < 2:
        raise UserError(f"skills.horizon must be >= 2 steps, got {cfg.horizon}")
    require_slices(meta, cfg.policy_obs, "LDSE")
    dist = distributed(cfg.device)
    g = seeded(cfg.seed)
    dev = dist.device(cfg.device)

    # ---- data: segments of H steps plus the state after the last one ----------------------
    obs_raw = take_slices(data, cfg.policy_obs)                                  # (T, S)
    act = torch.from_numpy(data["actions"].astype(np.float32))                   # (T, A)
    ep = episode_ids(data)
    starts = window_starts(ep, cfg.horizon + 1, cfg.stride)
    require_windows(starts, cfg.horizon + 1, data, "LDSE", "lower skills.horizon or collect longer episodes")
    idx = torch.from_numpy(window_indices(starts, cfg.horizon + 1))             # (W, H+1)
    obs_mean, obs_std = mean_std(obs_raw)
    obs_n = standardize(obs_raw, obs_mean, obs_std)
    seg_delta_raw = obs_raw[idx[:, 1:]] - obs_raw[idx[:, :-1]]                   # (W, H, S)
    d_mean, d_std = mean_std(seg_delta_raw.reshape(-1, obs_raw.shape[1]))
    seg_obs = obs_n[idx[:, :-1]].to(dev)                                         # (W, H, S)
    seg_act = act[idx[:, :-1]].to(dev)                                           # (W, H, A)
    seg_delta = ((seg_delta_raw - d_mean) / d_std).to(dev)
    train, val = split(len(idx), cfg.val_fraction, g)

    # ---- model and optimizer -------------------------------------------------------------------
    model = LDSEModel(obs_raw.shape[1], act.shape[1], cfg).to(dev)
    dist.prepare(model, cfg.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    keys = ("loss", "dyn_nll", "kl", "bc_mse", "dyn_mse")
    history = {f"train_{k}": [] for k in keys} | {f"val_{k}": [] for k in keys}

    # ---- loop ----------------------------------------------------------------------------------
    t0 = time.time()
    bar = tqdm(range(cfg.epochs), desc="ldse", disable=not progress)
    for epoch in bar:
        model.train()
        sums = dict.fromkeys(keys, 0.0)
        for b in minibatches(len(train), cfg.batch_size, g):
            b = dist.shard(train[b]).to(dev)
            out = ldse_losses(model, cfg, seg_obs[b], seg_act[b], seg_delta[b])
            opt.zero_grad()
            out["loss"].backward()
            dist.sync_grads(model.parameters())
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            for k in keys:
                sums[k] += out[k].item() * len(b)
        sums = dist.reduce(sums)
        sched.step()
        model.eval()
        with torch.no_grad():
            vb = val.to(dev)
            v = ldse_losses(model, cfg, seg_obs[vb], seg_act[vb], seg_delta[vb])
        for k in keys:
            history[f"train_{k}"].append(sums[k] / len(train))
            history[f"val_{k}"].append(v[k].item())
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{history['val_loss'][-1]:.3f}")
        log(f"epoch {epoch + 1}/{cfg.epochs}  " + "  ".join(f"{k} {history['train_' + k][-1]:.4f}" for k in keys)
            + f"  | val loss {history['val_loss'][-1]:.4f}")

    # ---- checkpoint, encoder and report data ---------------------------------------------------
    model.eval()
    with torch.no_grad():
        z_all = torch.cat([model.encoder(torch.cat([seg_obs[b], seg_act[b]], -1))[0]
                           for b in torch.arange(len(idx), device=dev).split(4096)]).cpu()
    metrics = {k: round(history[k][-1], 6) for k in history} | {
        "train_seconds": round(time.time() - t0, 1), "segments": int(len(idx)), "samples": int(len(act)),
        "latent_mean_abs": round(z_all.abs().mean().item(), 4), "latent_std": round(z_all.std(0).mean().item(), 4),
        "hl_reach": latent_reach(z_all, cfg.latent_scale, "LDSE", log)}
    enc_file = encoder_path(output)
    pol = model.policy.cpu()
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, action_dim=act.shape[1], default_steps=cfg.default_steps,
        latent={"dim": cfg.latent_dim, "normalization": cfg.latent_normalization, "scale": cfg.latent_scale,
                "modes": ["continuous"], "prior": "N(0, I)"},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(obs_raw.shape[1]),
                                 "latent_dim": cfg.latent_dim, "action_dim": int(act.shape[1]),
                                 "hidden": list(cfg.hidden), "activation": cfg.activation}},
        algorithm="ldse", metrics=metrics, config=asdict(cfg), encoder=str(enc_file))
    digest = parameter_digest(model)
    if not dist.is_main:
        return {"metrics": metrics, "history": history, "report": {}, "param_digest": digest}
    save_llc(output, spec, pol, obs_mean=obs_mean, obs_std=obs_std)
    tmp = enc_file.with_name(enc_file.name + f".tmp.{os.getpid()}")
    torch.save({"format": ENCODER_FORMAT, "horizon": cfg.horizon,
                "architecture": {"input_dim": int(obs_raw.shape[1] + act.shape[1]),
                                 "latent_dim": cfg.latent_dim, "hidden": cfg.lstm_hidden},
                "encoder": {k: v.cpu() for k, v in model.encoder.state_dict().items()},
                "obs_mean": obs_mean, "obs_std": obs_std, "obs_names": list(cfg.policy_obs)}, tmp)
    os.replace(tmp, enc_file)
    report = {"latents": z_all.numpy(), "labels": ep[starts], "label_name": "episode"}
    return {"metrics": metrics, "history": history, "report": report, "param_digest": digest}
