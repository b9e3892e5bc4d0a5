"""Data-parallel training under torchrun (``multi_gpu=True``) for every rl-games agent of hrl-train.

rl-games 1.6.5 has data-parallel PPO (gradients and the KL averaged over the ranks, the learning rate
and the stop decision taken from rank 0, parameters broadcast at the start, rank 0 alone writing),
but it sets it up for NCCL on ``cuda:<LOCAL_RANK>`` only, lets each rank's running normalizers drift
apart, and has none of it for SAC. Here:

- ``check_launch`` (in ``train.validate``) turns a wrong launch into one line; ``start`` (in
  ``train.run``) forms the process group from torchrun's variables, with the backend that fits the
  device (gloo for CPU ranks, NCCL for CUDA ones), and checks that every rank resolved the same config.
- ``DataParallel`` (mixed into every agent ``registry.register_agents`` registers) lets rl-games
  build the agent as a single process, then switches rl-games' own multi-GPU code on and adds what
  it lacks: the normalizers merged over the ranks after every epoch, nothing written by ranks other
  than 0, and for SAC (``SACDataParallel``) averaged gradients, a common start, frames of all ranks,
  and rank 0's episode returns deciding saves and stops, as in rl-games' PPO.

``HRL_RANK_DIGESTS=<folder>`` makes every rank append, after each epoch, a hash of its weights and
one of its normalizer statistics to ``<folder>/rank<N>.txt``: equal lines mean the replicas agree.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch

from ..errors import UserError

# A rank waiting longer than this in a collective stops with an error instead of hanging (across
# machines; on one machine torchrun already stops every rank as soon as one fails).
TIMEOUT = timedelta(minutes=10)
BACKENDS = ("gloo", "nccl", "mpi", "ucc")
RUN_COMMAND = "torchrun --standalone --nproc_per_node=N -m isaacgymenvs_hrl.train multi_gpu=True ..."


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""            # '' = no process group: one process

    @property
    def active(self) -> bool:
        return bool(self.backend)

    @property
    def main(self) -> bool:
        return self.rank == 0


_RANKS = Ranks()


def current() -> Ranks:
    return _RANKS


# ---- launch -------------------------------------------------------------------------------------------
def check_launch(multi_gpu: bool, test: bool, rl_device: str, sim_device: str, backend: str = "") -> str:
    """The one-line errors of a wrong launch, before anything is built. Returns the backend ('' without
    multi_gpu)."""
    world = os.environ.get("WORLD_SIZE")
    if not multi_gpu:
        if world is not None and int(world) > 1:
            raise UserError(f"this is one of {world} processes started by torchrun, but multi_gpu=False: each "
                            "would train alone; add multi_gpu=True, or run hrl-train without torchrun")
        return ""
    if world is None:
        raise UserError("multi_gpu=True runs one process per rank, started by torchrun: "
                        f"{RUN_COMMAND} (drop multi_gpu=True to train in one process)")
    if test:
        raise UserError("test=True plays a policy in one process; drop multi_gpu=True and run it without torchrun")
    if any(str(d).startswith("cuda") for d in (rl_device, sim_device)):
        local, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", world)), torch.cuda.device_count()
        if local > gpus:
            raise UserError(f"torchrun starts {local} processes on this machine, which has {gpus} CUDA GPU(s), "
                            f"one per process: use --nproc_per_node={gpus} (or rl_device=cpu sim_device=cpu "
                            "for CPU ranks)")
    return pick_backend(rl_device, backend)


def pick_backend(rl_device: str, asked: str = "") -> str:
    """The collective backend: ``asked``, or the one that fits the tensors on ``rl_device``."""
    import torch.distributed as dist
    if not dist.is_available():
        raise UserError("multi_gpu=True needs torch.distributed, which this torch build lacks; install a "
                        "torch build with it (the Linux wheels have it) or drop multi_gpu=True")
    cuda = str(rl_device).startswith("cuda")
    backend = str(asked or ("nccl" if cuda else "gloo")).lower()
    if backend not in BACKENDS or not dist.is_backend_available(backend):
        have = ", ".join(b for b in BACKENDS if dist.is_backend_available(b)) or "none"
        what = f"dist_backend={backend}" if asked else f"rl_device={rl_device} needs the {backend} backend, which"
        fix = ("leave dist_backend empty (it follows rl_device)" if asked else
               "set dist_backend=gloo (slower) or install a torch build with NCCL")
        raise UserError(f"{what} is not available in this torch build (available: {have}); {fix}")
    if backend == "nccl" and not cuda:
        raise UserError(f"dist_backend=nccl reduces CUDA tensors only, but rl_device={rl_device}; set "
                        "rl_device=cuda:0 (each rank then uses cuda:<LOCAL_RANK>) or leave dist_backend empty")
    return backend


def start(config: dict) -> Ranks:
    """Join torchrun's process group (hrl-train's resolved ``config``, checked by ``check_launch``)
    and check that every rank resolved the same config."""
    global _RANKS
    import torch.distributed as dist
    backend = pick_backend(config["rl_device"], config.get("dist_backend") or "")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=TIMEOUT)
    _RANKS = Ranks(rank, world, local_rank, backend)
    _check_same_config(config)
    if _RANKS.main:
        print(f"multi_gpu: {world} ranks ({backend}), rl_device {rank_device(config['rl_device'])} on each; "
              "each rank steps its own envs, rank 0 writes the run")
    return _RANKS


def stop() -> None:
    """Leave the process group (the end of a run; a failed run just exits)."""
    global _RANKS
    import torch.distributed as dist
    if _RANKS.active and dist.is_initialized():
        dist.destroy_process_group()
    _RANKS = Ranks()


def rank_device(device: str, ranks: Ranks | None = None) -> str:
    """One GPU per rank: ``cuda[:N]`` becomes ``cuda:<LOCAL_RANK>`` in a multi-rank run; cpu stays cpu."""
    ranks = ranks or _RANKS
    return f"cuda:{ranks.local_rank}" if ranks.active and str(device).startswith("cuda") else device


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: repr(tree)}


def _check_same_config(config: dict) -> None:
    """Ranks started with different arguments or files would train different things in lock-step;
    compare a hash of each rank's resolved config, and on a mismatch name the first key that differs."""
    import torch.distributed as dist
    flat = _flat(config)
    digest = hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:12]
    digests = [None] * _RANKS.world_size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) == 1:
        return
    configs = [None] * _RANKS.world_size
    dist.all_gather_object(configs, flat)
    other = next(r for r, d in enumerate(digests) if d != digests[0])
    key = next(k for k in sorted(set(configs[0]) | set(configs[other])) if configs[0].get(k) != configs[other].get(k))
    raise UserError(f"ranks disagree on the config: rank {other} has {key}={configs[other].get(key, '(absent)')} "
                    f"where rank 0 has {configs[0].get(key, '(absent)')} (config hash {digests[other]} vs "
                    f"{digests[0]}); start every rank with the same arguments, files and environment")


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if _RANKS.backend == "nccl" else torch.device("cpu")


def sum_over_ranks(values: list) -> list:
    """Sum a few numbers over the ranks (every rank gets the sums); unchanged in one process."""
    if not _RANKS.active:
        return list(values)
    import torch.distributed as dist
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def from_rank0(value):
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not _RANKS.active:
        return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---- the agents ----------------------------------------------------------------------------------------
class _NullWriter:
    """The TensorBoard writer of ranks other than 0: rank 0 logs for the job."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _normalizers(modules) -> list:
    """The running mean / var / count modules (rl-games' RunningMeanStd, TorchScript included) under
    ``modules``, each once: the input, value and central-value normalizers."""
    found, seen = [], set()
    for root in modules:
        for module in root.modules():
            buffers = dict(module.named_buffers(recurse=False))
            if {"running_mean", "running_var", "count"} <= buffers.keys() and id(module) not in seen:
                seen.add(id(module))
                found.append(module)
    return found


def _stats(module) -> tuple:
    b = dict(module.named_buffers(recurse=False))
    return b["running_mean"], b["running_var"], b["count"]


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class DataParallel:
    """Multi-rank training for rl-games' PPO agents (continuous, discrete and those built on them).

    rl-games' own multi_gpu setup in ``A2CBase.__init__`` starts NCCL and moves the agent to
    ``cuda:<LOCAL_RANK>``; here the process group already exists (``start``), so the agent is built
    as one process on its own device, and rl-games' multi-GPU code paths (gradient and KL all-reduce,
    learning-rate and stop broadcasts, parameter broadcast in ``train``, rank-0-only stats and saves)
    are switched on afterwards."""

    def __init__(self, base_name, params):
        ranks, config = current(), params["config"]
        scratch = None
        if ranks.active:
            config["multi_gpu"] = False
            if not ranks.main:
                # rl-games makes its run folders and a TensorBoard file on every rank: not in the run
                scratch = tempfile.mkdtemp(prefix=f"hrl_rank{ranks.rank}_")
                config["train_dir"] = scratch
        try:
            super().__init__(base_name, params)
            if ranks.active:
                self._join(ranks)
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

    def _join(self, ranks: Ranks) -> None:
        self.multi_gpu = True
        self.global_rank, self.world_size = ranks.rank, ranks.world_size
        # rl-games' train() calls torch.cuda.set_device(self.local_rank) under multi_gpu; -1 is torch's
        # documented no-op, which is what a CPU rank needs
        self.local_rank = ranks.local_rank if str(self.ppo_device).startswith("cuda") else -1
        if not ranks.main:
            self.print_stats = False
            old, self.writer = self.writer, _NullWriter()
            if hasattr(old, "close"):
                old.close()
            if getattr(self.algo_observer, "writer", None) is old:
                self.algo_observer.writer = self.writer
        cv = getattr(self, "central_value_net", None)
        if cv is not None:                # the asymmetric critic: its own gradient all-reduce and lr broadcast
            cv.multi_gpu, cv.global_rank, cv.world_size, cv.local_rank = True, ranks.rank, ranks.world_size, self.local_rank
            if not ranks.main:
                cv.writter = None

    def _networks(self) -> list:
        cv = getattr(self, "central_value_net", None)
        return [self.model] + ([cv] if cv is not None else [])

    def train_epoch(self):
        ranks = current()
        before = [tuple(t.clone() for t in _stats(m)) for m in _normalizers(self._networks())] if ranks.active else []
        result = super().train_epoch()
        if ranks.active:
            self._merge_normalizers(before)
        after_epoch = getattr(self.algo_observer, "after_train_epoch", None)
        if after_epoch is not None:            # on every rank (rl-games calls the stats hooks on rank 0 only)
            after_epoch(self.epoch_num)
        if os.environ.get("HRL_RANK_DIGESTS"):
            self._write_digest(Path(os.environ["HRL_RANK_DIGESTS"]))
        return result

    def _merge_normalizers(self, before: list) -> None:
        """Each rank's normalizers took in its own samples this epoch, from a common start. Sum the
        samples' counts, sums and sums of squares over the ranks and rebuild every rank's statistics
        from them: the running mean and variance of all ranks' samples, equal on every rank."""
        import torch.distributed as dist
        modules = _normalizers(self._networks())
        if not modules:
            return
        parts = []
        for (mean0, var0, n0), module in zip(before, modules):
            mean, var, n = _stats(module)
            parts += [n * mean - n0 * mean0, n * (var + mean ** 2) - n0 * (var0 + mean0 ** 2), (n - n0).reshape(1)]
        flat = torch.cat([p.reshape(-1) for p in parts])
        dist.all_reduce(flat)
        offset = 0
        for (mean0, var0, n0), module in zip(before, modules):
            mean, var, n = _stats(module)
            size = mean.numel()
            total, squares = flat[offset:offset + size].view_as(mean), flat[offset + size:offset + 2 * size].view_as(var)
            count = n0 + flat[offset + 2 * size]
            offset += 2 * size + 1
            new_mean = (n0 * mean0 + total) / count
            var.copy_(((n0 * (var0 + mean0 ** 2) + squares) / count - new_mean ** 2).clamp_min(0.0))
            mean.copy_(new_mean)
            n.copy_(count)

    def _weights(self) -> list:
        return [t for net in self._networks() for t in net.state_dict().values()]

    def _write_digest(self, folder: Path) -> None:
        norms = [t for m in _normalizers(self._networks()) for t in _stats(m)]
        counts = ",".join(f"{float(_stats(m)[2]):.0f}" for m in _normalizers(self._networks()))
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"rank{current().rank}.txt", "a") as f:
            f.write(f"epoch={self.epoch_num} weights={_digest(self._weights())} norms={_digest(norms)} "
                    f"counts={counts}\n")

    def save(self, fn):
        if current().active and not current().main:
            return
        super().save(fn)

    def rank0_decides(self, flag: bool) -> bool:
        """A stop decision taken in the stats hooks (HealthObserver's max_time). rl-games' PPO runs
        those hooks on rank 0 only and broadcasts rank 0's stop itself, so nothing to do here."""
        return flag


class SACDataParallel(DataParallel):
    """Multi-rank SAC, which rl-games 1.6.5 lacks: every rank steps its own envs into its own replay
    buffer; the actor, critic and temperature gradients are averaged before each optimizer step (the
    critic's are clipped on each rank first), so the networks stay equal. Every rank runs SAC's stats
    hooks, so its stop and save decisions are made equal: rank 0's episode returns decide."""

    def _join(self, ranks: Ranks) -> None:
        super()._join(ranks)
        self.num_frames_per_epoch *= ranks.world_size         # frame and fps count every rank's steps
        for optimizer in (self.actor_optimizer, self.critic_optimizer, self.log_alpha_optimizer):
            optimizer.register_step_pre_hook(_average_gradients)

    def _weights(self) -> list:
        return super()._weights() + [self.log_alpha.detach()]

    def train(self):
        if current().active:                 # rl-games' PPO broadcasts its parameters in train(); SAC does not
            import torch.distributed as dist
            for t in self._weights():
                dist.broadcast(t.data, src=0)
        return super().train()

    def train_epoch(self):
        result = super().train_epoch()
        if current().active:
            import torch.distributed as dist
            for meter in (self.game_rewards, self.game_lengths):
                size = torch.tensor([float(meter.current_size)], device=meter.mean.device)
                dist.broadcast(meter.mean, src=0)
                dist.broadcast(size, src=0)
                meter.current_size = int(size.item())
        return result

    def rank0_decides(self, flag: bool) -> bool:
        if not current().active:
            return flag
        import torch.distributed as dist
        t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
        dist.broadcast(t, src=0)
        return bool(t.item())


def _average_gradients(optimizer, args, kwargs) -> None:
    """Optimizer step pre-hook: replace each gradient by its mean over the ranks (one all-reduce)."""
    import torch.distributed as dist
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _RANKS.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
