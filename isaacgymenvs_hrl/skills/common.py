"""Pieces shared by the skill-learning algorithms (BC, LDSE, HeLMS, MRS, NPMP).

Small pure functions (dataset checks, Gaussian log-densities and KLs, PCA) plus the things several
algorithms use: the LLC spec skeleton and data-parallel training (``Distributed``, driven by
``trainer.SkillTrainer`` under ``torchrun``). Each algorithm's own file stays readable top to bottom;
only generic parts live here.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..datasets.hdf5 import DatasetError, dataset_views
from ..utils.provenance import provenance

LOG_2PI = math.log(2 * math.pi)


# ---- data ------------------------------------------------------------------------------------------
def require_slices(meta: dict, names, algorithm: str) -> None:
    """Every slice (or ``slice.field``) in ``names`` must be in the dataset's obs_layout."""
    have = list(dataset_views(meta))
    lacking = [n for n in names if n not in have]
    if lacking:
        raise DatasetError(f"{algorithm}: the dataset has no observation slice(s) {lacking} (it has "
                           f"{have}); collect it from a task whose layout includes them or change "
                           "the slices in the skills config")


def require_control(meta: dict) -> None:
    """The dataset must say at which rate and through which controller its actions were taken."""
    if meta.get("control_dt") is None or meta.get("control_type") is None:
        raise DatasetError("the dataset metadata lacks control_dt or control_type; an LLC is rate- and "
                           "control-specific, so collect the dataset again with hrl-collect (or import "
                           "it with hrl-import-dataset control_dt=... control_type=... or task=...)")


def mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std (floored at 1e-3, as the LLC stores them)."""
    return x.mean(0), x.std(0).clamp_min(1e-3)


def seeded(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def minibatches(n: int, batch_size: int, g: torch.Generator):
    """Shuffled index batches covering range(n) once."""
    order = torch.randperm(n, generator=g)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def split(n: int, val_fraction: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) index tensors; at least one validation item."""
    perm = torch.randperm(n, generator=g)
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise DatasetError(f"only {n} training items; a validation split needs at least 2 (collect "
                           "more episodes or use shorter windows)")
    return perm[n_val:], perm[:n_val]


# ---- data-parallel training (torchrun) -------------------------------------------------------------
@dataclass
class Distributed:
    """Data-parallel training across the processes ``torchrun`` starts (one per CPU/GPU).

    Every rank holds the whole dataset and an identical copy of the model; all ranks draw the same
    shuffled minibatches (same seeded generator) and each trains on its share of every minibatch
    (``shard``); after ``backward`` the gradients are averaged over the ranks (``sync_grads``), so
    every optimizer step is the same on all ranks and the weights stay identical. The global batch
    size and the number of steps per epoch are those of a 1-process run. Only rank 0 writes files.
    Without torchrun (``WORLD_SIZE`` unset or 1) every method is a no-op.
    """
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str = "cpu") -> torch.device:
        """The torch device of this rank: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` under torchrun."""
        dev = torch.device(requested)
        if self.enabled and dev.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return dev

    def prepare(self, modules, seed: int) -> None:
        """Copy rank 0's parameters and buffers to every rank, then give each rank its own torch
        random stream (seed + rank) for the reparameterization noise of its shard."""
        if not self.enabled:
            return
        import torch.distributed as dist
        for module in _as_list(modules):
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)
        torch.manual_seed(int(seed) + 1009 * self.rank)

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's share of a minibatch of indices (every rank gets at least one item)."""
        if not self.enabled:
            return batch
        part = batch[self.rank::self.world_size]
        return part if len(part) else batch[self.rank % len(batch):][:1]

    def sync_grads(self, params) -> None:
        """Average the gradients of ``params`` over the ranks (call between backward and step)."""
        if not self.enabled:
            return
        import torch.distributed as dist
        params = [p for p in params if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world_size
        start = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[start:start + n].view_as(p.grad))
            start += n

    def reduce(self, values: dict) -> dict:
        """Sum a dict of Python floats over the ranks, e.g. an epoch's loss sums."""
        if not self.enabled or not values:
            return values
        import torch.distributed as dist
        t = torch.tensor([float(values[k]) for k in values], dtype=torch.float64)
        if self.backend == "nccl":
            t = t.to(self.device("cuda"))
        dist.all_reduce(t)
        return dict(zip(values, t.cpu().tolist()))

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()


_DIST: Distributed | None = None


def distributed(device: str = "cpu") -> Distributed:
    """The process group of this run, set up once from torchrun's environment variables
    (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): gloo on CPU, nccl when ``device``
    is CUDA. A plain run (no WORLD_SIZE, or 1) gets the 1-process no-op context."""
    global _DIST
    import torch.distributed as dist
    if _DIST is not None and (not _DIST.enabled or dist.is_initialized()):
        return _DIST
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        _DIST = Distributed()
        return _DIST
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if torch.device(device).type == "cuda" and torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    _DIST = Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                        backend=dist.get_backend())
    return _DIST


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down (end of a torchrun job)."""
    global _DIST
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if _DIST is not None:
            _DIST.barrier()
        dist.destroy_process_group()
    _DIST = None


def _as_list(modules) -> list:
    return list(modules) if isinstance(modules, (list, tuple)) else [modules]


def parameter_digest(modules) -> str:
    """sha256 (first 16 hex digits) of the parameters and buffers of ``modules``: equal on every
    rank of a data-parallel run when the replicas are in sync."""
    h = hashlib.sha256()
    for module in _as_list(modules):
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ---- Gaussians -------------------------------------------------------------------------------------
def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, diag(exp(log_std))^2) summed over the last axis."""
    log_std = torch.as_tensor(log_std, dtype=mean.dtype).expand_as(mean)
    return (-0.5 * ((x - mean) / log_std.exp()) ** 2 - log_std - 0.5 * LOG_2PI).sum(-1)


def kl_standard_normal(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_std)^2) || N(0, I)) summed over the last axis."""
    return (0.5 * (mean ** 2 + (2 * log_std).exp() - 1.0) - log_std).sum(-1)


def kl_gaussians(mean_q, log_std_q, mean_p, log_std_p) -> torch.Tensor:
    """KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)) for diagonal Gaussians, summed over the last axis."""
    var_q, var_p = (2 * log_std_q).exp(), (2 * log_std_p).exp()
    return (log_std_p - log_std_q + (var_q + (mean_q - mean_p) ** 2) / (2 * var_p) - 0.5).sum(-1)


def rsample(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return mean + log_std.exp() * torch.randn_like(mean)


# ---- checkpoint and report helpers -----------------------------------------------------------------
def llc_spec(meta: dict, *, policy_obs, action_dim: int, latent: dict, architecture: dict,
             default_steps: int, algorithm: str, metrics: dict, config: dict, mid_obs=None, **extra) -> dict:
    """The LLC spec every algorithm writes (fields documented in ``hrl.llc_checkpoint``)."""
    layout = {n: v.stop - v.start for n, v in dataset_views(meta).items()}
    require_control(meta)
    spec = {
        "task_family": meta.get("task_family"),
        "obs": {"policy": [[n, int(layout[n])] for n in policy_obs]},
        "action": {"dim": int(action_dim), "control_type": meta["control_type"], "scale": 1.0,
                   "squash": "clip"},
        "latent": latent,
        "default_steps": int(default_steps), "control_dt": float(meta["control_dt"]),
        "architecture": architecture,
        "provenance": provenance(algorithm=algorithm, dataset=meta.get("path"),
                                 dataset_commit=meta.get("commit"), seed=config.get("seed"),
                                 metrics=metrics, config=config, **extra),
    }
    if mid_obs:
        spec["obs"]["mid"] = [[n, int(layout[n])] for n in mid_obs]
    return spec


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Project rows of ``x`` (N, d) onto their first two principal components, (N, 2)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0, keepdims=True)
    if x.shape[1] < 2:
        return np.concatenate([x, np.zeros((len(x), 2 - x.shape[1]))], 1)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def latent_reach(z: torch.Tensor, scale: float, name: str, log=print) -> float:
    """Share of the fitted latents ``z`` (N, d) that a high level can ask for: its action lies in
    [-1, 1] and the LLC multiplies it by ``scale``, so only latents with |z| <= scale in every
    dimension are reachable. Warns, with the scale that would reach most, when under a quarter are."""
    reach = float((z.abs() <= scale).all(-1).float().mean())
    if reach < 0.25:
        q = float(z.abs().flatten().quantile(0.975))
        log(f"warning: the high level reaches {reach:.0%} of the latents {name} fitted (|z| <= "
            f"latent_scale {scale:g} in every dimension); skills.latent_scale={q:.1f} (the 97.5th "
            f"percentile of |z|) widens its reach")
    return round(reach, 4)
