"""Behaviour cloning into a latent-conditioned LLC.

pi(a | s, z) is fitted by mean-squared error to the dataset's actions. The latent z is a named
observation slice of the dataset (``condition_on``, e.g. the locomotion teacher's velocity command),
rescaled to [-1, 1] per dimension from its range in the data; the resulting LLC runs in continuous
mode with ``clip`` normalization, so a high-level policy's action in [-1, 1]^d maps onto the range of
commands the teacher was trained on. With ``condition_on: []`` it is a plain BC policy (latent dim 0).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..datasets.hdf5 import DatasetError, dataset_views, episode_ids
from ..hrl.llc_checkpoint import save_llc
from ..hrl.networks import SkillPolicy
from ..utils.provenance import provenance
from .common import distributed, parameter_digest, take_slices


@dataclass
class BCConfig:
    policy_obs: list = field(default_factory=lambda: ["proprio"])  # slices the skill policy reads
    condition_on: list = field(default_factory=lambda: ["task"])   # slices that become the latent
    hidden: list = field(default_factory=lambda: [256, 256])
    activation: str = "elu"
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.05
    default_steps: int = 5         # k stored in the checkpoint for HRL use
    seed: int = 0


def train_bc(data: dict, meta: dict, cfg: BCConfig, output: str, log=print) -> dict:
    """Fit, write the LLC checkpoint to ``output``; returns metrics and the loss history.

    Under torchrun every rank trains on its share of each minibatch and only rank 0 writes."""
    if meta.get("control_dt") is None or meta.get("control_type") is None:
        raise DatasetError("the dataset metadata lacks control_dt or control_type; an LLC is rate- and "
                           "control-specific, so collect the dataset with hrl-collect or import it with "
                           "hrl-import-dataset control_dt=... control_type=... (or task=...)")
    dist = distributed()
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    obs = take_slices(data, cfg.policy_obs)
    cond = take_slices(data, cfg.condition_on)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    obs_mean, obs_std = obs.mean(0), obs.std(0).clamp_min(1e-3)
    # the central 99% of each latent dimension spans [-1, 1]: a hindsight-relabelled command has
    # outliers (falls) that would otherwise squeeze the useful range into a sliver of the latent
    lo, hi = (torch.from_numpy(np.quantile(cond.numpy(), [0.005, 0.995], axis=0)).float()
              if cond.shape[1] else (cond[0], cond[0]))
    center, half = (hi + lo) / 2, ((hi - lo) / 2).clamp_min(1e-3)
    z = ((cond - center) / half).clamp(-1, 1)

    perm = torch.randperm(len(act), generator=g)
    n_val = max(1, int(len(act) * cfg.val_fraction))
    val, train = perm[:n_val], perm[n_val:]
    policy = SkillPolicy(obs.shape[1], z.shape[1], act.shape[1], tuple(cfg.hidden), cfg.activation)
    dist.prepare(policy, cfg.seed)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    norm = lambda x: ((x - obs_mean) / obs_std).clamp(-5, 5)
    history = {"train_loss": [], "val_loss": []}
    t0 = time.time()
    for epoch in range(cfg.epochs):
        policy.train()
        order = train[torch.randperm(len(train), generator=g)]
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            b = dist.shard(order[i:i + cfg.batch_size])
            loss = nn.functional.mse_loss(policy(norm(obs[b]), z[b]).clamp(-1.0, 1.0), act[b])
            opt.zero_grad()
            loss.backward()
            dist.sync_grads(policy.parameters())
            opt.step()
            total += loss.item() * len(b)
        total = dist.reduce({"total": total})["total"]
        sched.step()
        policy.eval()
        with torch.no_grad():
            val_loss = nn.functional.mse_loss(policy(norm(obs[val]), z[val]).clamp(-1.0, 1.0), act[val]).item()
        history["train_loss"].append(total / len(train))
        history["val_loss"].append(val_loss)
        log(f"epoch {epoch + 1}/{cfg.epochs}  train mse {history['train_loss'][-1]:.5f}  val mse {val_loss:.5f}")

    layout = {n: v.stop - v.start for n, v in dataset_views(meta).items()}
    metrics = {"train_mse": history["train_loss"][-1], "val_mse": history["val_loss"][-1],
               "train_seconds": round(time.time() - t0, 1), "samples": int(len(act))}
    spec = {
        "task_family": meta.get("task_family"),
        "obs": {"policy": [[n, int(layout[n])] for n in cfg.policy_obs]},
        "action": {"dim": int(act.shape[1]), "control_type": meta.get("control_type"), "scale": 1.0,
                   "squash": "clip"},
        "latent": {"dim": int(z.shape[1]), "normalization": "clip", "scale": 1.0, "modes": ["continuous"],
                   "meaning": {"slices": list(cfg.condition_on), "center": center.tolist(),
                               "half_range": half.tolist()}},
        "default_steps": int(cfg.default_steps), "control_dt": float(meta["control_dt"]),
        "architecture": {"policy": {"type": "skill_policy", "obs_dim": int(obs.shape[1]),
                                    "latent_dim": int(z.shape[1]), "action_dim": int(act.shape[1]),
                                    "hidden": list(cfg.hidden), "activation": cfg.activation}},
        "provenance": provenance(algorithm="bc", dataset=meta.get("path"), dataset_commit=meta.get("commit"),
                                 seed=cfg.seed, metrics=metrics, config=cfg.__dict__),
    }
    if dist.is_main:
        save_llc(output, spec, policy, obs_mean=obs_mean, obs_std=obs_std)
    report = {"latents": z.numpy(), "labels": episode_ids(data), "label_name": "episode"} if z.shape[1] else {}
    return {"metrics": metrics, "history": history, "report": report, "param_digest": parameter_digest(policy)}
