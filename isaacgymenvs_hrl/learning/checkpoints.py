"""rl-games checkpoints read without running code, checked against the network, written atomically.

rl-games' own loader (``torch_ext.load_checkpoint``) unpickles with ``weights_only=False``: a
checkpoint from elsewhere can run any code it carries. Here every checkpoint goes through
``torch.load(weights_only=True)``; the only non-tensor globals allowed are numpy's scalar and
dtype, which rl-games writes for ``last_mean_rewards`` (a numpy float32 after a best-reward save).
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..utils.atomic import commit, remove_stale_tmp, tmp_path


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong."""


def _numpy_globals() -> list:
    """numpy scalar/dtype reconstructors under both the numpy 1.x and 2.x module names."""
    multiarray = getattr(np, "_core", None)
    multiarray = multiarray.multiarray if multiarray is not None else np.core.multiarray
    allowed = [np.dtype, multiarray.scalar, (multiarray.scalar, "numpy.core.multiarray.scalar"),
               (multiarray.scalar, "numpy._core.multiarray.scalar")]
    for name in ("Float32DType", "Float64DType", "Float16DType", "Int64DType", "Int32DType", "BoolDType"):
        cls = getattr(getattr(np, "dtypes", None), name, None)
        if cls is not None:
            allowed.append(cls)
    return allowed


def load_checkpoint(path: str | os.PathLike, key: str = "checkpoint") -> dict:
    """Load an rl-games checkpoint as plain data; every failure is one ``CheckpointError`` line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{key}={path}: file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{key}={path} is empty (0 bytes): a save was interrupted; use another "
                              "checkpoint from the run's nn/ folder")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL " in text or "global" in text.split("WeightsUnpickler")[-1]:
            found = _unsupported_global(text)
            raise CheckpointError(
                f"{key}={path} holds Python objects{f' ({found})' if found else ''} that loading would "
                "execute; refused: only tensors and plain values are read. Use a checkpoint written by "
                "hrl-train (rl-games)") from None
        detail = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
        raise CheckpointError(f"{key}={path} is truncated or not a torch checkpoint (unpickling failed: "
                              f"{detail[0][:80] if detail else 'unreadable'})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, AttributeError,
            UnicodeDecodeError) as exc:
        raise CheckpointError(f"{key}={path} is truncated or not a torch checkpoint "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{key}={path} holds a {type(state).__name__}, not an rl-games checkpoint "
                              "(a dict with 'model' or 'actor')")
    return strip_compile_prefix(state)


def _first_line(exc: Exception) -> str:
    """The first sentence of an exception's text, for a one-line message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0].split(". ")[0] if lines else type(exc).__name__
    return first[:120]


def _unsupported_global(text: str) -> str:
    for line in text.splitlines():
        if "Unsupported global" in line or "GLOBAL" in line:
            return line.strip().split(":", 1)[-1].strip().split(" was not")[0][:120]
    return ""


def strip_compile_prefix(state: dict) -> dict:
    """torch.compile saves parameters as ``_orig_mod.<name>``; the plain module reads ``<name>``."""
    for part in ("model", "actor", "critic", "critic_target"):
        if isinstance(state.get(part), dict):
            state[part] = {k.replace("_orig_mod.", "", 1): v for k, v in state[part].items()}
    return state


def require_parts(state: dict, parts, path, key: str = "checkpoint") -> None:
    missing = [p for p in parts if p not in state]
    if missing:
        raise CheckpointError(f"{key}={path} has no {missing} (it has {sorted(map(str, state))[:8]}): "
                              "not a checkpoint of this algorithm; use one written by hrl-train with the "
                              "same train config")


def check_fits(module: torch.nn.Module, weights, path, part: str, key: str = "checkpoint",
               hint: str = "") -> None:
    """Compare a state dict with ``module`` layer by layer before loading it; say which layer differs."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{key}={path}: '{part}' is a {type(weights).__name__}, not a state dict")
    expected = module.state_dict()
    for name, tensor in expected.items():
        if name not in weights:
            raise CheckpointError(f"{key}={path} does not fit this network: layer {part}.{name} is missing "
                                  f"(the checkpoint has another architecture){hint}")
        got = weights[name]
        if not isinstance(got, torch.Tensor):
            raise CheckpointError(f"{key}={path}: {part}.{name} is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{key}={path} does not fit the network built for this task: layer {part}.{name} is "
                f"{tuple(got.shape)} in the checkpoint but {tuple(tensor.shape)} here"
                f"{_shape_hint(name, got.shape, tensor.shape)}{hint}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{key}={path}: layer {part}.{name} holds NaN or infinite values; the "
                                  "run that wrote it diverged; use an earlier checkpoint")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise CheckpointError(f"{key}={path} does not fit this network: it has layers this network lacks "
                              f"({', '.join(extra[:4])}{'...' if len(extra) > 4 else ''}){hint}")


def _shape_hint(name: str, got, want) -> str:
    """Put a size mismatch in the task's words: observation or action count."""
    if "running_mean" in name or "running_var" in name:
        return f" ({got[0] if len(got) else '?'} observations in the checkpoint, {want[0]} in this task)"
    if (name.endswith("mlp.0.weight") or ".0.weight" in name) and len(got) == 2 and got[0] == want[0]:
        return f" ({got[1]} inputs in the checkpoint, {want[1]} observations in this task)"
    if name.endswith(("mu.weight", "mu.bias", "sigma", "logits.weight", "logits.bias")):
        return f" ({got[0]} actions in the checkpoint, {want[0]} in this task)"
    return ""


def all_finite(state) -> bool:
    """True if every floating tensor (and float) in a nested checkpoint is finite."""
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(v) for v in state)
    return True


def _plain(value):
    """numpy scalars -> Python numbers, so our checkpoints need no allow-listed globals at all."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def atomic_torch_save(state, path: str | os.PathLike) -> None:
    """Write beside ``path``, check it reloads (weights-only) with finite weights, fsync, rename.

    A crash never leaves half a file, and a diverged (NaN) network never replaces a good checkpoint."""
    path = Path(path)
    remove_stale_tmp(path.parent)
    state = _plain(state)
    for part in ("model", "actor", "critic"):
        if part in state and not all_finite(state[part]):
            raise CheckpointError(f"not saving {path}: the network's weights hold NaN or infinite values "
                                  "(training diverged); the previous checkpoints are kept. Lower "
                                  "train.params.config.learning_rate or check the task's rewards")
    tmp = tmp_path(path)
    try:
        torch.save(state, tmp)
        torch.load(tmp, map_location="cpu", weights_only=True)       # loadable by our own loader
        commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()



# ---- run names and the files a run leaves ------------------------------------------------------------
def run_names(train_name: str, task_class: str, llc_checkpoint: str, experiment: str, stamp: str) -> tuple[str, str]:
    """(checkpoint name, run folder name) of an ``hrl-train`` run.

    A flat run keeps the train config's name (``${task}PPO`` files are named after their task, as in
    IsaacGymEnvs). A hierarchical run is named ``<Task>HRL`` whatever train config drives it (the
    generic discrete / mixture files would otherwise name it ``HRLDiscrete``), and its folder also
    names the LLC, so that runs over different skills sit apart: ``HumanoidLocationHRL_walk_npmp_<date>``.
    ``experiment=NAME`` names both, as in IsaacGymEnvs."""
    if experiment:
        return train_name, f"{train_name}_{stamp}"
    if llc_checkpoint:
        from ..hrl.env_factory import llc_label
        name = f"{task_class}HRL"
        return name, f"{name}_{llc_label(llc_checkpoint)}_{stamp}"
    return train_name, f"{train_name}_{stamp}"


_DOUBLED = re.compile(r"last_(?P<name>.+)_ep_(?P<epoch>\d+)_rew__(?P<reward>.*)_\.pth")


def finish_checkpoints(nn_dir: str | os.PathLike, name: str) -> tuple[Path, Path] | None:
    """Make a finished run's ``nn/`` hold ``<name>.pth`` and one file per saved epoch; returns
    (``<name>.pth``, the final network's file), or None where training saved nothing.

    rl-games writes ``<name>.pth`` only when a mean reward beats the best so far after
    ``save_best_after`` epochs, so a short run had none; and at ``max_epochs`` it saves
    ``last_<name>_ep_<E>_rew__<r>_.pth`` even where ``save_frequency`` saved the same epoch's
    weights a moment earlier as ``last_<name>_ep_<E>_rew_<r>.pth``. Here the doubled file is dropped
    (or renamed to the single form), and ``<name>.pth`` becomes the final network unless rl-games
    recorded a best one."""
    nn_dir = Path(nn_dir)
    saved = sorted(nn_dir.glob(f"last_{glob_escape(name)}_*.pth"), key=lambda p: p.stat().st_mtime)
    if not saved:
        return None
    final = saved[-1]
    m = _DOUBLED.fullmatch(final.name)
    if m and m["name"] == name:
        single = nn_dir / f"last_{name}_ep_{m['epoch']}_rew_{m['reward']}.pth"
        twins = [p for p in saved[:-1] if p.name.startswith(f"last_{name}_ep_{m['epoch']}_rew_")]
        if twins:                        # the same epoch's weights, saved twice by rl-games
            final.unlink()
            final = twins[-1]
        else:
            os.replace(final, single)
            final = single
    best = nn_dir / f"{name}.pth"
    if not best.is_file():
        tmp = tmp_path(best)
        try:
            shutil.copyfile(final, tmp)
            commit(tmp, best)
        finally:
            if tmp.exists():
                tmp.unlink()
    return best, final


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
