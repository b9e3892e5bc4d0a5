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

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..datasets.hdf5 import episode_ids, take_slices
from ..datasets.windows import require_windows, window_indices, window_starts
from ..errors import UserError
from ..hrl.llc import normalize_latent, standardize
from ..hrl.networks import SkillPolicy
from ..hrl.segment_encoder import SegmentEncoder
from .common import gaussian_log_prob, kl_standard_normal, llc_spec, mean_std, minibatches, rsample
from .trainer import LatentSkillConfig, SkillTrainer


# ============================================================================================
# Config
# ============================================================================================
@dataclass
class MRSConfig(LatentSkillConfig):
    """policy_obs: the slices the encoders and the skill policy read; hidden: the sizes of the
    shared policy backbone; latent_dim: the size of z, shared by all resolutions."""
    horizons: list = field(default_factory=lambda: [4, 8, 16, 32])
    """H_r: control steps one latent lasts, one per resolution head"""
    beta: float = 0.01
    """weight of KL(q_r(z | segment) || N(0, I))"""
    action_std: float = 0.2
    """std of the Gaussian action likelihood (actions are in [-1, 1])"""
    latent_normalization: str = "tanh"
    """'tanh' or 'none' (module docstring)"""
    lstm_hidden: int = 64
    """hidden size of each direction of every segment encoder"""
    stride: int = 2
    """step between the starts of consecutive segments of an episode"""
    epochs: int = 20
    """passes over the shortest resolution's training segments"""
    batch_size: int = 128
    """segments per resolution per gradient step"""
    val_fraction: float = 0.05
    """share of segments (per resolution) held out for the validation losses"""
    default_steps: int = 8
    """k stored in the checkpoint: control steps per high-level decision"""


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
    trainer = SkillTrainer(cfg, meta, "MRS", cfg.policy_obs, log, progress)
    dist, g, dev = trainer.dist, trainer.g, trainer.device
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
        seg_split.append(trainer.split(len(starts)))
        seg_starts.append(starts)
    step_train, step_val = trainer.split(len(act))

    def draw(pool: torch.Tensor, n: int) -> torch.Tensor:
        return pool[torch.randint(len(pool), (n,), generator=g)]

    def epoch_batches():
        """A minibatch of the first resolution's segments, as many drawn from each other resolution
        and from the single steps; every batch weighs the same in the epoch's mean."""
        first_train = seg_split[0][0]
        for first in minibatches(len(first_train), cfg.batch_size, g):
            picks = [first_train[first]] + [draw(tr, len(first)) for tr, _ in seg_split[1:]]
            steps = draw(step_train, len(first))
            yield ([dist.shard(p) for p in picks], dist.shard(steps)), 1.0

    def batch(items):
        picks, steps = items
        segs = [(obs_n[seg_idx[r][p]], act[seg_idx[r][p]]) for r, p in enumerate(picks)]
        return segs, obs_n[steps], act[steps]

    # ---- model and training ------------------------------------------------------------------
    policy = SkillPolicy(obs_raw.shape[1], cfg.latent_dim, act.shape[1], tuple(cfg.hidden), cfg.activation,
                         num_heads=len(horizons) + 1, unconditional_head=True).to(dev)
    encoders = nn.ModuleList([SegmentEncoder(obs_raw.shape[1] + act.shape[1], cfg.latent_dim, cfg.lstm_hidden)
                              for _ in horizons]).to(dev)
    keys = ["loss"] + [f"{m}_h{h}" for h in horizons for m in ("nll", "kl", "mse")] + ["nll_uncond", "mse_uncond"]
    n_batches = -(-len(seg_split[0][0]) // cfg.batch_size)
    history = trainer.fit([policy, encoders], lambda *b: mrs_losses(policy, encoders, cfg, *b), batch, None,
                          ([va for _, va in seg_split], step_val), keys, epoch_batches=epoch_batches,
                          total=n_batches * dist.world_size)

    # ---- checkpoint and report data -------------------------------------------------------------
    latents, labels = [], []
    with torch.no_grad():
        for r, idx in enumerate(seg_idx):
            z = torch.cat([encoders[r](torch.cat([obs_n[i], act[i]], -1))[0] for i in idx.split(4096)]).cpu()
            latents.append(z)
            labels.append(np.full(len(z), horizons[r]))
    metrics = trainer.metrics(history, samples=int(len(act)),
                              segments={str(h): int(len(i)) for h, i in zip(horizons, seg_idx)})
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, action_dim=act.shape[1], default_steps=cfg.default_steps,
        latent={"dim": cfg.latent_dim, "normalization": cfg.latent_normalization, "scale": cfg.latent_scale,
                "modes": ["multires"], "multires": {"horizons": horizons, "unconditional": True}},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(obs_raw.shape[1]),
                                 "latent_dim": cfg.latent_dim, "action_dim": int(act.shape[1]),
                                 "hidden": list(cfg.hidden), "activation": cfg.activation,
                                 "num_heads": len(horizons) + 1, "unconditional_head": True}},
        algorithm="mrs", metrics=metrics, config=asdict(cfg))
    report = {"latents": torch.cat(latents).numpy(), "labels": np.concatenate(labels), "label_name": "horizon"}
    return trainer.finish(output, spec, [policy, encoders], history, metrics, report, policy.cpu(),
                          obs_mean=obs_mean, obs_std=obs_std)
