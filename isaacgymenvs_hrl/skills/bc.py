"""Behaviour cloning into a latent-conditioned LLC.

pi(a | s, z) is fitted by mean-squared error to the dataset's actions. The latent z is a named
observation slice of the dataset (``condition_on``, e.g. the locomotion teacher's velocity command),
rescaled to [-1, 1] per dimension from its range in the data; the resulting LLC runs in continuous
mode with ``clip`` normalization, so a high-level policy's action in [-1, 1]^d maps onto the range of
commands the teacher was trained on. With ``condition_on: []`` it is a plain BC policy (latent dim 0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..datasets.hdf5 import episode_ids, take_slices
from ..hrl.llc import standardize
from ..hrl.networks import SkillPolicy
from .common import llc_spec, mean_std
from .trainer import SkillConfig, SkillTrainer


@dataclass
class BCConfig(SkillConfig):
    """An item is one step of the dataset."""
    condition_on: list = field(default_factory=lambda: ["task"])
    """slices that become the latent (e.g. the teacher's command); [] = plain BC"""
    weight_decay: float = 0.0
    """Adam weight decay"""
    batch_size: int = 2048
    """steps per gradient step"""


def train_bc(data: dict, meta: dict, cfg: BCConfig, output: str, log=print, progress: bool = True) -> dict:
    """Fit, write the LLC checkpoint to ``output``; returns metrics, the loss history and report data."""
    trainer = SkillTrainer(cfg, meta, "BC", list(cfg.policy_obs) + list(cfg.condition_on), log, progress)
    dev = trainer.device
    obs = take_slices(data, cfg.policy_obs)
    cond = take_slices(data, cfg.condition_on)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    obs_mean, obs_std = mean_std(obs)
    # the central 99% of each latent dimension spans [-1, 1]: a hindsight-relabelled command has
    # outliers (falls) that would otherwise squeeze the useful range into a sliver of the latent
    lo, hi = (torch.from_numpy(np.quantile(cond.numpy(), [0.005, 0.995], axis=0)).float()
              if cond.shape[1] else (cond[0], cond[0]))
    center, half = (hi + lo) / 2, ((hi - lo) / 2).clamp_min(1e-3)
    z = ((cond - center) / half).clamp(-1, 1)
    obs_n, z_dev, act_dev = standardize(obs, obs_mean, obs_std).to(dev), z.to(dev), act.to(dev)
    # BC holds out floor(n * val_fraction) steps (the other trainers round): its LLCs stay reproducible
    perm = torch.randperm(len(act), generator=trainer.g)
    n_val = max(1, int(len(act) * cfg.val_fraction))
    val, train = perm[:n_val], perm[n_val:]

    policy = SkillPolicy(obs.shape[1], z.shape[1], act.shape[1], tuple(cfg.hidden), cfg.activation).to(dev)
    mse = lambda o, c, a: {"loss": nn.functional.mse_loss(policy(o, c).clamp(-1.0, 1.0), a)}
    history = trainer.fit(policy, mse, lambda b: (obs_n[b], z_dev[b], act_dev[b]), train, val, ("loss",),
                          clip=None, weight_decay=cfg.weight_decay)

    metrics = {"train_mse": history["train_loss"][-1], "val_mse": history["val_loss"][-1]} | trainer.metrics(
        {}, samples=int(len(act)))
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, action_dim=act.shape[1], default_steps=cfg.default_steps,
        latent={"dim": int(z.shape[1]), "normalization": "clip", "scale": 1.0, "modes": ["continuous"],
                "meaning": {"slices": list(cfg.condition_on), "center": center.tolist(),
                            "half_range": half.tolist()}},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(obs.shape[1]),
                                 "latent_dim": int(z.shape[1]), "action_dim": int(act.shape[1]),
                                 "hidden": list(cfg.hidden), "activation": cfg.activation}},
        algorithm="bc", metrics=metrics, config=asdict(cfg))
    report = {"latents": z.numpy(), "labels": episode_ids(data), "label_name": "episode"} if z.shape[1] else {}
    return trainer.finish(output, spec, policy, history, metrics, report, policy.cpu(),
                          obs_mean=obs_mean, obs_std=obs_std)
