"""NPMP baseline: neural probabilistic motor primitives (after Merel et al., 2019).

An encoder reads the current state and the next ``lookahead`` states (the "reference" the robot is
about to follow) and proposes a latent z_t; a low-level controller pi(a | s, z) reproduces the
action. The latent sequence is regularized towards an AR(1) prior,

    p(z_0) = N(0, I),   p(z_t | z_{t-1}) = N(alpha z_{t-1}, (1 - alpha^2) I)

(z_t = alpha z_{t-1} + sqrt(1 - alpha^2) eps, whose stationary marginal is N(0, I)), so that
neighbouring latents stay close and a high level can steer the controller smoothly. Per sequence
of T steps (inside one episode; lookahead clamped at the episode's end):

    loss = mean_t [ -log N(a_t; pi(s_t, z_t), σ²) + beta * E_{q(z_{t-1})} KL(q(z_t) || p(z_t | z_{t-1})) ]

The expected KL is taken in closed form for the diagonal-Gaussian posteriors (``ar1_kl``).
Simplification against the paper: the encoder does not read z_{t-1} (posteriors are independent
given the states; the prior alone couples them in time).

The LLC is a SkillPolicy in continuous mode with normalization 'none': the high level's action
(times ``latent_scale``) is z, in the units of the prior's N(0, I) marginal.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..datasets.hdf5 import episode_ids, take_slices
from ..datasets.windows import lookahead_indices, require_windows, window_indices, window_starts
from ..errors import UserError
from ..hrl.llc import standardize
from ..hrl.networks import SkillPolicy, mlp
from .common import gaussian_log_prob, latent_reach, llc_spec, mean_std, rsample
from .trainer import LatentSkillConfig, SkillTrainer


# ============================================================================================
# Config
# ============================================================================================
@dataclass
class NPMPConfig(LatentSkillConfig):
    """policy_obs: the slices the encoder (current and future) and the controller (current) read;
    hidden: the sizes of the controller and of the encoder; an item is a sequence."""
    lookahead: int = 5
    """future states the encoder sees"""
    alpha: float = 0.95
    """AR(1) prior coefficient: 0 = independent N(0, I) latents, near 1 = slowly varying"""
    beta: float = 0.01
    """weight of the KL to the AR(1) prior"""
    action_std: float = 0.2
    """std of the Gaussian action likelihood (actions are in [-1, 1])"""
    seq_len: int = 16
    """steps per training sequence (the AR(1) KL links consecutive steps)"""
    seq_stride: int = 4
    """step between the starts of consecutive sequences of an episode"""
    batch_size: int = 64
    """sequences per gradient step"""


# ============================================================================================
# The AR(1) prior's KL
# ============================================================================================
def ar1_kl(mean: torch.Tensor, log_std: torch.Tensor, alpha: float) -> torch.Tensor:
    """E_{z_{t-1} ~ q_{t-1}} KL(q_t || N(alpha z_{t-1}, (1 - alpha^2) I)) for t > 0 and
    KL(q_0 || N(0, I)) at t = 0, for diagonal Gaussians q_t = N(mean[:, t], exp(log_std[:, t])^2).
    mean, log_std: (B, T, d) -> (B, T)."""
    var = (2 * log_std).exp()
    prior_var = torch.full_like(mean, 1.0 - alpha ** 2)
    prior_var[:, 0] = 1.0
    prior_mean = torch.zeros_like(mean)
    prior_mean[:, 1:] = alpha * mean[:, :-1]
    spread = torch.zeros_like(mean)                     # alpha^2 Var(z_{t-1}) enters the expectation
    spread[:, 1:] = alpha ** 2 * var[:, :-1]
    kl = 0.5 * (prior_var.log() - 2 * log_std) + (var + (mean - prior_mean) ** 2 + spread) / (2 * prior_var) - 0.5
    return kl.sum(-1)


# ============================================================================================
# Model and losses
# ============================================================================================
class NPMPModel(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, cfg: NPMPConfig):
        super().__init__()
        self.encoder = mlp([obs_dim * (1 + cfg.lookahead), *cfg.hidden, 2 * cfg.latent_dim], cfg.activation)
        self.policy = SkillPolicy(obs_dim, cfg.latent_dim, action_dim, tuple(cfg.hidden), cfg.activation)

    def encode(self, obs: torch.Tensor, future: torch.Tensor):
        """obs (..., S), future (..., L, S) standardized -> mean, log_std (..., d)."""
        x = torch.cat([obs, (future - obs[..., None, :]).flatten(-2)], -1)
        mean, log_std = self.encoder(x).chunk(2, -1)
        return mean, log_std.clamp(-5.0, 2.0)


def npmp_losses(model: NPMPModel, cfg: NPMPConfig, obs, future, act) -> dict:
    """obs (B, T, S), future (B, T, L, S) standardized, act (B, T, A)."""
    b, t = act.shape[:2]
    mean, log_std = model.encode(obs, future)                                          # (B, T, d)
    z = rsample(mean, log_std)
    a_mean = model.policy(obs.reshape(b * t, -1), z.reshape(b * t, -1)).clamp(-1.0, 1.0).view(b, t, -1)
    nll = -gaussian_log_prob(act, a_mean, torch.tensor(math.log(cfg.action_std))).mean()
    kl = ar1_kl(mean, log_std, cfg.alpha).mean()
    return {"loss": nll + cfg.beta * kl, "nll": nll, "kl": kl, "action_mse": ((a_mean - act) ** 2).mean(),
            "means": mean}


# ============================================================================================
# Training
# ============================================================================================
def train_npmp(data: dict, meta: dict, cfg: NPMPConfig, output: str, log=print, progress: bool = True) -> dict:
    """Fit, write the LLC checkpoint (continuous mode) to ``output``; returns metrics, loss
    history and report data."""
    if not 0.0 <= cfg.alpha < 1.0:
        raise UserError(f"skills.alpha must be in [0, 1) for a proper AR(1) prior, got {cfg.alpha}")
    if cfg.lookahead < 1 or cfg.seq_len < 1 or cfg.action_std <= 0:
        raise UserError(f"NPMP needs lookahead >= 1, seq_len >= 1 and action_std > 0 (got "
                        f"{cfg.lookahead}, {cfg.seq_len}, {cfg.action_std})")
    trainer = SkillTrainer(cfg, meta, "NPMP", cfg.policy_obs, log, progress)
    dev = trainer.device

    # ---- data: sequences with their lookahead states -----------------------------------------------
    obs_raw = take_slices(data, cfg.policy_obs)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    ep = episode_ids(data)
    starts = window_starts(ep, cfg.seq_len, cfg.seq_stride)
    require_windows(starts, cfg.seq_len, data, "NPMP", "lower skills.seq_len or collect longer episodes")
    idx = window_indices(starts, cfg.seq_len)                                          # (W, T)
    ahead = torch.from_numpy(lookahead_indices(ep, idx, cfg.lookahead))                # (W, T, L)
    idx = torch.from_numpy(idx)
    obs_mean, obs_std = mean_std(obs_raw)
    obs_n = standardize(obs_raw, obs_mean, obs_std)
    seq_obs, seq_future, seq_act = obs_n[idx].to(dev), obs_n[ahead].to(dev), act[idx].to(dev)
    train, val = trainer.split(len(idx))

    # ---- model and training ------------------------------------------------------------------
    model = NPMPModel(obs_raw.shape[1], act.shape[1], cfg).to(dev)
    history = trainer.fit(model, lambda *b: npmp_losses(model, cfg, *b),
                          lambda b: (seq_obs[b], seq_future[b], seq_act[b]), train, val,
                          ("loss", "nll", "kl", "action_mse"))

    # ---- checkpoint and report data -------------------------------------------------------------
    with torch.no_grad():
        z = model.encode(obs_n.to(dev), obs_n[torch.from_numpy(
            lookahead_indices(ep, np.arange(len(act)), cfg.lookahead))].to(dev))[0].cpu()
    metrics = trainer.metrics(
        history, sequences=int(len(idx)), samples=int(len(act)),
        latent_step_change=round((z[1:] - z[:-1]).norm(dim=-1)[ep[1:] == ep[:-1]].mean().item(), 4),
        hl_reach=latent_reach(z, cfg.latent_scale, "NPMP", log))
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, action_dim=act.shape[1], default_steps=cfg.default_steps,
        latent={"dim": cfg.latent_dim, "normalization": "none", "scale": cfg.latent_scale,
                "modes": ["continuous"], "prior": {"type": "ar1", "alpha": cfg.alpha}},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(obs_raw.shape[1]),
                                 "latent_dim": cfg.latent_dim, "action_dim": int(act.shape[1]),
                                 "hidden": list(cfg.hidden), "activation": cfg.activation}},
        algorithm="npmp", metrics=metrics, config=asdict(cfg))
    report = {"latents": z.numpy(), "labels": ep, "label_name": "episode"}
    return trainer.finish(output, spec, model, history, metrics, report, model.policy.cpu(),
                          obs_mean=obs_mean, obs_std=obs_std)
