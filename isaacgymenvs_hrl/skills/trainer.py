"""The one training loop of the offline skill-learning algorithms (BC, LDSE, HeLMS, MRS, NPMP).

An algorithm cuts its dataset into training items (steps, segments, sequences), builds its networks
and writes its loss; the rest is here, the same for all five: the settings they share, the checks
on the dataset, seeding and the train/validation split, shuffled minibatches, Adam with a
cosine-annealed learning rate and gradient clipping, the validation loss after every epoch,
progress (a tqdm bar and a log line per epoch), data-parallel training under torchrun (every rank
trains on its share of each minibatch, ``common.Distributed``), and the result each algorithm
returns. Only rank 0 writes the LLC.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from ..hrl.llc_checkpoint import save_llc
from .common import distributed, minibatches, parameter_digest, require_control, require_slices, seeded, split


# ============================================================================================
# Settings every algorithm shares
# ============================================================================================
@dataclass
class SkillConfig:
    """Settings of every algorithm; each algorithm's config adds its own and may change a default."""
    policy_obs: list = field(default_factory=lambda: ["proprio"])
    """observation slices the skill policy reads"""
    hidden: list = field(default_factory=lambda: [256, 256])
    """hidden sizes of the skill policy"""
    activation: str = "elu"
    """activation of the MLPs"""
    epochs: int = 30
    """passes over the training items"""
    batch_size: int = 256
    """training items per gradient step"""
    lr: float = 1e-3
    """Adam learning rate (cosine-annealed to 0)"""
    val_fraction: float = 0.05
    """share of the items held out for the validation losses"""
    default_steps: int = 5
    """k stored in the checkpoint: control steps per high-level decision"""
    device: str = "cpu"
    """torch device for training"""
    seed: int = 0
    """seeds torch and the data split"""


@dataclass
class LatentSkillConfig(SkillConfig):
    """Settings of the algorithms that learn their own latent space (LDSE, HeLMS, MRS, NPMP)."""
    latent_dim: int = 8
    """size of z"""
    latent_scale: float = 1.0
    """high-level action multiplier before the latent normalization (the LLC's latent.scale)"""


# ============================================================================================
# The loop
# ============================================================================================
class SkillTrainer:
    """One algorithm's training run: ``fit`` runs the epochs, ``finish`` writes the LLC and returns
    the result every trainer returns ({"metrics", "history", "report", "param_digest"}).

    ``g`` is the seeded generator of the split and the minibatches, ``device`` this rank's torch
    device; constructing the trainer checks the dataset's slices and control metadata and seeds torch.
    """

    def __init__(self, cfg: SkillConfig, meta: dict, name: str, slices, log=print, progress: bool = True):
        require_slices(meta, slices, name)
        require_control(meta)
        self.cfg, self.name, self.log, self.progress = cfg, name, log, progress
        self.dist = distributed(cfg.device)
        self.g = seeded(cfg.seed)
        self.device = self.dist.device(cfg.device)
        self.t0 = time.time()

    def split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val) index tensors over ``n`` items."""
        return split(n, self.cfg.val_fraction, self.g)

    def minibatches(self, train: torch.Tensor):
        """This rank's share of each shuffled minibatch of ``train``, on the device, with its size."""
        for b in minibatches(len(train), self.cfg.batch_size, self.g):
            b = self.dist.shard(train[b]).to(self.device)
            yield b, len(b)

    def fit(self, modules, losses, batch, train, val, keys, *, epoch_batches=None, total=None,
            clip: float | None = 10.0, weight_decay: float = 0.0) -> dict:
        """Train the parameters of ``modules`` for ``cfg.epochs``; returns the loss history
        {train_<key>: [...], val_<key>: [...]}.

        ``losses(*batch(items))`` is a dict of scalar tensors: "loss" (minimized) and ``keys``
        (logged). An epoch goes through ``epoch_batches()`` as (items, weight) pairs, by default
        ``minibatches(train)``; its train_<key> is the weighted sum over the batches and the ranks
        divided by ``total`` (default: len(train)). val_<key> is the loss on ``batch(val)``.
        """
        cfg, dist = self.cfg, self.dist
        modules = list(modules) if isinstance(modules, (list, tuple)) else [modules]
        dist.prepare(modules, cfg.seed)
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
        epoch_batches = epoch_batches or (lambda: self.minibatches(train))
        total = len(train) if total is None else total
        val = val.to(self.device) if isinstance(val, torch.Tensor) else val
        history = {f"train_{k}": [] for k in keys} | {f"val_{k}": [] for k in keys}
        self.t0 = time.time()
        bar = tqdm(range(cfg.epochs), desc=self.name.lower(), disable=not self.progress)
        for epoch in bar:
            for m in modules:
                m.train()
            sums = dict.fromkeys(keys, 0.0)
            for items, weight in epoch_batches():
                out = losses(*batch(items))
                opt.zero_grad()
                out["loss"].backward()
                dist.sync_grads(params)
                if clip:
                    nn.utils.clip_grad_norm_(params, clip)
                opt.step()
                for k in keys:
                    sums[k] += out[k].item() * weight
            sums = dist.reduce(sums)
            sched.step()
            for m in modules:
                m.eval()
            with torch.no_grad():
                v = losses(*batch(val))
            for k in keys:
                history[f"train_{k}"].append(sums[k] / total)
                history[f"val_{k}"].append(v[k].item())
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{history['val_loss'][-1]:.3f}")
            self.log(f"epoch {epoch + 1}/{cfg.epochs}  " + "  ".join(f"{k} {history['train_' + k][-1]:.4f}"
                                                                     for k in keys)
                     + f"  | val loss {history['val_loss'][-1]:.4f}")
        return history

    def metrics(self, history: dict, **extra) -> dict:
        """The last epoch's losses (6 decimals), the training time and ``extra``."""
        return {k: round(v[-1], 6) for k, v in history.items()} | {
            "train_seconds": round(time.time() - self.t0, 1)} | extra

    def finish(self, output: str, spec: dict, modules, history: dict, metrics: dict, report: dict,
               *networks, **normalizers) -> dict:
        """Write the LLC (``save_llc(output, spec, *networks, **normalizers)``, rank 0 only) and
        return the result; ``param_digest`` hashes ``modules`` (equal on all ranks when in sync)."""
        if self.dist.is_main:
            save_llc(output, spec, *networks, **normalizers)
        return {"metrics": metrics, "history": history, "report": report, "param_digest": parameter_digest(modules)}
