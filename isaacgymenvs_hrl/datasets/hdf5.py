"""Offline datasets: HDF5 with D4RL's keys plus named observation slices and metadata.

    /observations (T, num_obs) float32   /actions (T, A)   /rewards (T,)   /terminals (T,) bool
    /timeouts (T,) bool                  /obs/<slice name> (T, size) for every slice of the layout
    /infos.qpos (T, nq), /infos.qvel (T, nv): simulator state behind each observation (hrl-collect)
    attrs: metadata as JSON (task, obs_layout [[name, size], ...], control_dt, seed, code version, ...)

Steps are stored env-major: each env's episodes follow one another, and an episode ends at a step
whose terminal or timeout flag is set. Files are written to a temporary name, then renamed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from ..errors import UserError

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


class DatasetError(UserError, ValueError):
    pass


def write_dataset(path: str | os.PathLike, data: dict, metadata: dict) -> Path:
    """Write ``data`` (D4RL keys + optional extra arrays) and the named slices of observations."""
    missing = [k for k in D4RL_KEYS if k not in data]
    if missing:
        raise DatasetError(f"cannot write dataset: missing arrays {missing}")
    layout = metadata.get("obs_layout")
    if not layout:
        raise DatasetError("cannot write dataset: metadata needs 'obs_layout' [[name, size], ...]")
    if len(np.asarray(data["observations"])) == 0:
        raise DatasetError(f"cannot write dataset {path}: no complete episode was collected (0 rows); "
                           "raise num_episodes or the task's episode length")
    from ..utils.atomic import commit, remove_stale_tmp, tmp_path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent)
    tmp = tmp_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in data.items():
                f.create_dataset(key, data=np.asarray(value), compression="gzip", compression_opts=1)
            start = 0
            for name, size in layout:
                f.create_dataset(f"obs/{name}", data=np.asarray(data["observations"])[:, start:start + size],
                                 compression="gzip", compression_opts=1)
                start += size
            f.attrs["metadata"] = json.dumps(metadata)
        with h5py.File(tmp, "r") as f:       # the new file must read back before it replaces anything
            rows = {k: len(f[k]) for k in D4RL_KEYS}
        if len(set(rows.values())) != 1:
            raise DatasetError(f"cannot write dataset {path}: the arrays have different lengths {rows}")
        commit(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_dataset(path: str | os.PathLike, require_slices=()) -> tuple[dict, dict]:
    """Read and check a dataset; returns (arrays, metadata). Slices named in ``require_slices`` must exist."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"dataset {path} is truncated or not an HDF5 file ({exc}); collect it again "
                           "with hrl-collect") from None
    with f:
        missing = [k for k in D4RL_KEYS if k not in f]
        if missing:
            raise DatasetError(f"dataset {path} lacks the D4RL arrays {missing}")
        try:
            meta = json.loads(f.attrs["metadata"])
        except (KeyError, ValueError):
            raise DatasetError(f"dataset {path} has no readable 'metadata' attribute") from None
        try:
            data = {k: f[k][()] for k in f.keys() if k != "obs"}
            data["obs"] = {k: f["obs"][k][()] for k in f["obs"].keys()} if "obs" in f else {}
        except OSError as exc:
            raise DatasetError(f"dataset {path} is corrupt: {exc}") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"dataset {path}: the 'metadata' attribute is not a JSON object")
    for key, ndim in (("observations", 2), ("actions", 2), ("rewards", 1), ("terminals", 1), ("timeouts", 1)):
        if np.ndim(data[key]) != ndim:
            raise DatasetError(f"dataset {path}: /{key} has shape {np.shape(data[key])}, expected {ndim} "
                               f"dimension{'s' if ndim > 1 else ''} (steps{', width' if ndim > 1 else ''})")
    n = len(data["observations"])
    for k in [k for k in data if k != "obs"]:
        if len(data[k]) != n:
            raise DatasetError(f"dataset {path}: '{k}' has {len(data[k])} rows, observations have {n}")
    layout = meta.get("obs_layout", [])
    views = dataset_views(meta)
    if sum(s for _, s in layout) != data["observations"].shape[1]:
        raise DatasetError(f"dataset {path}: metadata obs_layout {layout} does not add up to the "
                           f"observation width {data['observations'].shape[1]}")
    have = set(views)
    lacking = [s for s in require_slices if s not in have]
    if lacking:
        raise DatasetError(f"dataset {path} has no observation slice(s) {lacking} (it has {sorted(have)}); "
                           "collect it from a task whose layout includes them")
    if n == 0:
        raise DatasetError(f"dataset {path} has 0 rows; collect it again with hrl-collect (num_episodes >= 1)")
    check_arrays(data, f"dataset {path}")
    for name, values in data["obs"].items():
        if len(values) != n:
            raise DatasetError(f"dataset {path}: '/obs/{name}' has {len(values)} rows, observations have {n}")
        if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            raise DatasetError(f"dataset {path} contains NaN or infinite values in /obs/{name}; an "
                               "algorithm reading that slice would learn NaN weights. Collect it again")
        if name in views and not np.array_equal(values, data["observations"][:, views[name]]):
            raise DatasetError(f"dataset {path}: /obs/{name} differs from its columns {views[name].start}:"
                               f"{views[name].stop} of /observations (obs_layout); the file was edited. "
                               "Write it again with write_dataset")
    for view, sl in views.items():      # "slice.field" views of the stored slices
        base = view.split(".", 1)[0]
        if base != view and base in data["obs"]:
            at = views[base].start
            data["obs"][view] = data["obs"][base][:, sl.start - at:sl.stop - at]
    return data, meta


def check_arrays(data: dict, where: str) -> None:
    """What every reader relies on: numeric arrays, finite values, actions in the tasks' box
    [-1, 1], at least two steps and at least one episode end."""
    n = len(data["observations"])
    for key in D4RL_KEYS:
        kind = np.asarray(data[key]).dtype.kind
        if kind not in ("b" if key in ("terminals", "timeouts") else "") + "biuf":
            raise DatasetError(f"{where}: /{key} holds {np.asarray(data[key]).dtype} values, numbers are "
                               "needed; convert the source arrays")
    for key in ("observations", "actions", "rewards"):
        if not np.isfinite(np.asarray(data[key], dtype=np.float64)).all():
            raise DatasetError(f"{where} contains NaN or infinite values in /{key}")
    if n < 2:
        raise DatasetError(f"{where} has {n} step; at least 2 are needed (training and validation rows)")
    worst = float(np.abs(np.asarray(data["actions"], np.float64)).max())
    if worst > 1.0 + 1e-3:
        raise DatasetError(f"{where}: /actions reach {worst:g}, the tasks' actions lie in [-1, 1]; rescale "
                           "them to that box (an LLC squashes its actions into it)")
    if not np.logical_or(data["terminals"], data["timeouts"]).any():
        raise DatasetError(f"{where}: no step ends an episode (/terminals and /timeouts are all False); set "
                           "the flag at the last step of every episode")


def dataset_views(meta: dict) -> dict:
    """{name: slice} of the dataset's observation slices and their ``slice.field`` parts."""
    from ..tasks.base.spec import view_ranges
    layout = meta.get("obs_layout") or []
    entry_ok = lambda e: (isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str)
                          and isinstance(e[1], (int, np.integer)) and not isinstance(e[1], bool) and e[1] > 0)
    if not isinstance(layout, (list, tuple)) or not all(map(entry_ok, layout)):
        raise DatasetError(f"dataset metadata: obs_layout must be [[name, size], ...] with positive integer "
                           f"sizes, got {layout!r}")
    try:
        return view_ranges(layout, meta.get("obs_fields"))
    except ValueError as exc:
        raise DatasetError(f"dataset metadata: {exc}") from None


def episode_ids(data: dict) -> np.ndarray:
    """Episode index of every step (an episode ends where terminals or timeouts is set)."""
    ends = np.logical_or(data["terminals"], data["timeouts"]).astype(np.int64)
    return np.concatenate([[0], np.cumsum(ends)[:-1]])


def take_slices(data: dict, names) -> torch.Tensor:
    """Named observation slices of a loaded dataset joined along the last axis, (T, sum of sizes) float32."""
    if not names:
        return torch.zeros(len(data["actions"]), 0)
    return torch.from_numpy(np.concatenate([data["obs"][n] for n in names], axis=-1).astype(np.float32))
