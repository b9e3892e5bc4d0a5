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
``hrl.segment_encoder.SkillMatcher.load(path)(obs_history, action_history)`` infers z from a short recent history.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..datasets.hdf5 import episode_ids, take_slices
from ..datasets.windows import require_windows, window_indices, window_starts
from ..errors import UserError
from ..hrl.llc import normalize_latent, standardize
from ..hrl.networks import SkillPolicy, mlp
from ..hrl.segment_encoder import SegmentEncoder, encoder_path, save_encoder
from .common import gaussian_log_prob, kl_standard_normal, latent_reach, llc_spec, mean_std, rsample
from .trainer import LatentSkillConfig, SkillTrainer


# ============================================================================================
# Config
# ============================================================================================
@dataclass
class LDSEConfig(LatentSkillConfig):
    """policy_obs: the slices the encoder, the dynamics decoder and the skill policy read; hidden:
    the sizes of the skill policy and of the dynamics decoder; an item is a segment."""
    horizon: int = 8
    """H: steps per segment (5-10 is typical: long enough to show a motion, short enough to be one)"""
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
    lstm_hidden: int = 128
    """hidden size of each direction of the segment encoder"""
    stride: int = 1
    """step between the starts of consecutive segments of an episode"""
    default_steps: int = 8
    """k stored in the checkpoint: control steps per high-level decision (H by default)"""


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
    trainer = SkillTrainer(cfg, meta, "LDSE", cfg.policy_obs, log, progress)
    dev = trainer.device

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
    train, val = trainer.split(len(idx))

    # ---- model and training --------------------------------------------------------------------
    model = LDSEModel(obs_raw.shape[1], act.shape[1], cfg).to(dev)
    history = trainer.fit(model, lambda *b: ldse_losses(model, cfg, *b),
                          lambda b: (seg_obs[b], seg_act[b], seg_delta[b]), train, val,
                          ("loss", "dyn_nll", "kl", "bc_mse", "dyn_mse"))

    # ---- checkpoint, encoder and report data ---------------------------------------------------
    with torch.no_grad():
        z_all = torch.cat([model.encoder(torch.cat([seg_obs[b], seg_act[b]], -1))[0]
                           for b in torch.arange(len(idx), device=dev).split(4096)]).cpu()
    metrics = trainer.metrics(
        history, segments=int(len(idx)), samples=int(len(act)),
        latent_mean_abs=round(z_all.abs().mean().item(), 4), latent_std=round(z_all.std(0).mean().item(), 4),
        hl_reach=latent_reach(z_all, cfg.latent_scale, "LDSE", log))
    enc_file = encoder_path(output)
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, action_dim=act.shape[1], default_steps=cfg.default_steps,
        latent={"dim": cfg.latent_dim, "normalization": cfg.latent_normalization, "scale": cfg.latent_scale,
                "modes": ["continuous"], "prior": "N(0, I)"},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(obs_raw.shape[1]),
                                 "latent_dim": cfg.latent_dim, "action_dim": int(act.shape[1]),
                                 "hidden": list(cfg.hidden), "activation": cfg.activation}},
        algorithm="ldse", metrics=metrics, config=asdict(cfg), encoder=str(enc_file))
    report = {"latents": z_all.numpy(), "labels": ep[starts], "label_name": "episode"}
    result = trainer.finish(output, spec, model, history, metrics, report, model.policy.cpu(),
                            obs_mean=obs_mean, obs_std=obs_std)
    if trainer.dist.is_main:
        save_encoder(enc_file, model.encoder, cfg.horizon, obs_mean, obs_std, cfg.policy_obs)
    return result
