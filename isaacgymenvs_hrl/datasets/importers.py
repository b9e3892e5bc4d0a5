"""Import offline datasets from other tools into this project's HDF5 format (``datasets.hdf5``); the
``hrl-import-dataset`` command is ``cli/import_dataset.py``.

Two sources:

D4RL-style files
    one HDF5 file with /observations (T, O), /actions (T, A), /rewards (T,), /terminals (T,) and
    usually /timeouts (T,) (older files lack it: all False), optionally /infos/* per-step arrays,
    /next_observations and /metadata/* scalars; an episode ends at a step whose terminal or
    timeout flag is set.

Minari dataset directories
    ``<dataset>/data/main_data.hdf5`` with one group per episode ``episode_<id>`` holding
    observations (T+1 rows: the final observation is included), actions (T), rewards (T),
    terminations (T), truncations (T) and infos; dataset metadata in ``<dataset>/data/metadata.json``
    (Minari >= 0.5) or as attributes of main_data.hdf5 (older releases). Dict observations are
    groups of arrays (Tuple observations: groups of ``_index_<i>``); they are flattened, in the
    stored order, into one observation vector whose named slices are the dict keys (nested keys
    joined with '.'). The final observation of every episode is dropped; the last step of an
    episode is its terminal (terminations) or time-out (truncations, or when neither flag is set).

The observation layout (named slices) is, by priority: ``obs_layout=[[name, size], ...]``, the
layout of ``task=<project task>`` (which also fills control_dt, control_type, task_family and the
task config, so that hrl-skills' rollout videos can run), the layout stored in a file written by
this project, the Minari dict keys, or a single slice ``obs``. hrl-skills needs control_dt and
control_type: give them (or ``task=``) when the source does not record them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..utils.config import as_float
from .hdf5 import D4RL_KEYS, DatasetError, check_arrays, write_dataset

MINARI_MAIN = "main_data.hdf5"
MINARI_META = "metadata.json"
_EPISODE = re.compile(r"^episode_(\d+)$")


# ============================================================================================
# Format detection
# ============================================================================================
def minari_main_file(source: Path) -> Path | None:
    """main_data.hdf5 of a Minari dataset directory (``<dir>/data/`` or ``<dir>/`` itself), or None."""
    for candidate in (source / "data" / MINARI_MAIN, source / MINARI_MAIN):
        if candidate.is_file():
            return candidate
    return None


def detect_format(source: str | Path) -> str:
    """'minari' or 'd4rl' for a source path; a clear error for anything else."""
    source = Path(source).expanduser()
    if source.is_dir():
        if minari_main_file(source) is None:
            raise DatasetError(
                f"{source} is a directory but not a Minari dataset: it has no data/{MINARI_MAIN} (a Minari "
                f"dataset directory holds data/{MINARI_MAIN} and data/{MINARI_META}); for a D4RL-style "
                "dataset pass the .hdf5 file itself")
        return "minari"
    if not source.is_file():
        raise DatasetError(f"dataset source not found: {source}")
    with _open(source) as f:
        if any(_EPISODE.match(k) for k in f.keys()):
            return "minari"
        if "observations" in f:
            return "d4rl"
        raise DatasetError(f"{source} is neither a D4RL-style file (no /observations) nor a Minari "
                           f"{MINARI_MAIN} (no episode_<id> groups); it has {sorted(f.keys())[:10]}")


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is truncated or not an HDF5 file ({exc})") from None


# ============================================================================================
# D4RL-style files
# ============================================================================================
def _scalar(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"array{value.shape}"
    return value


def read_d4rl(path: str | Path, include_infos: bool = False) -> tuple[dict, dict]:
    """(arrays with the D4RL keys, partial metadata) of a D4RL-style HDF5 file."""
    path = Path(path).expanduser()
    with _open(path) as f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
        if missing:
            raise DatasetError(f"D4RL-style file {path} lacks {missing} (needs observations, actions, rewards, "
                               "terminals and, optionally, timeouts)")
        try:
            data = {k: f[k][()] for k in D4RL_KEYS if k in f}
        except (OSError, TypeError) as exc:
            raise DatasetError(f"D4RL-style file {path} is corrupt or has groups where arrays belong: {exc}") from None
        source = {"format": "d4rl", "path": str(path)}
        if "metadata" in f.attrs:                            # written by this project
            try:
                source["project_metadata"] = json.loads(f.attrs["metadata"])
            except (TypeError, ValueError):
                pass
        if isinstance(f.get("metadata"), h5py.Group):       # D4RL's metadata/* scalars
            found = {}
            f["metadata"].visititems(lambda name, node: found.__setitem__(name, _scalar(node[()]))
                                     if isinstance(node, h5py.Dataset) and node.size <= 16 else None)
            source["metadata"] = found
        infos = {}
        if isinstance(f.get("infos"), h5py.Group):
            def take(name, node):
                if isinstance(node, h5py.Dataset) and node.dtype.kind in "biuf" and node.ndim >= 1:
                    infos[name.replace("/", ".")] = node
            f["infos"].visititems(take)
            source["infos"] = sorted(infos)
            if include_infos:
                for name, node in infos.items():
                    data[f"infos.{name}"] = node[()]
    n = len(data["observations"]) if np.ndim(data["observations"]) else 0
    for k, v in data.items():
        if np.ndim(v) == 0 or len(v) != n:
            raise DatasetError(f"D4RL-style file {path}: '{k}' has shape {np.shape(v)}, observations have {n} rows")
    if "timeouts" not in data:
        data["timeouts"] = np.zeros(n, bool)
        source["timeouts"] = "absent in the source: all False"
    return data, {"source": source}


# ============================================================================================
# Minari directories
# ============================================================================================
def _flatten_obs(node, name: str, steps: int, where: str) -> list[tuple[str, np.ndarray]]:
    """[(slice name, (steps, size) float32)] for an observation dataset or (nested) group."""
    if isinstance(node, h5py.Dataset):
        if node.dtype.kind not in "biuf":
            raise DatasetError(f"{where}: observation '{name or 'observations'}' is not numeric ({node.dtype}); "
                               "only Box / Dict / Tuple observation spaces of numbers can be imported")
        x = node[()]
        if x.ndim == 0 or len(x) != steps:
            raise DatasetError(f"{where}: observation '{name or 'observations'}' has "
                               f"{0 if x.ndim == 0 else len(x)} rows, expected {steps} (steps + 1)")
        return [(name or "obs", x.reshape(steps, -1).astype(np.float32))]
    keys = list(node.keys())
    if keys and all(re.fullmatch(r"_index_\d+", k) for k in keys):      # Tuple space
        keys.sort(key=lambda k: int(k.rsplit("_", 1)[1]))
    out = []
    for key in keys:
        child = key[len("_index_"):] if key.startswith("_index_") else key
        out += _flatten_obs(node[key], f"{name}.{child}" if name else child, steps, where)
    if not out:
        raise DatasetError(f"{where}: observation group '{name or 'observations'}' is empty")
    return out


def _minari_metadata(main: Path, f: h5py.File) -> dict:
    for candidate in (main.parent / MINARI_META, main.parent.parent / MINARI_META):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except ValueError as exc:
                raise DatasetError(f"Minari metadata {candidate} is not valid JSON ({exc})") from None
    return {k: _scalar(v) for k, v in f.attrs.items()}             # Minari < 0.5: root attributes


def read_minari(path: str | Path) -> tuple[dict, dict]:
    """(arrays with the D4RL keys + per-slice observations, partial metadata) of a Minari dataset
    directory (or its data/ folder or main_data.hdf5)."""
    path = Path(path).expanduser()
    main = path if path.is_file() else minari_main_file(path)
    if main is None:
        raise DatasetError(f"{path} is not a Minari dataset directory: data/{MINARI_MAIN} is missing")
    with _open(main) as f:
        mmeta = _minari_metadata(main, f)
        ids = sorted((int(m.group(1)), k) for k in f.keys() if (m := _EPISODE.match(k)))
        if not ids:
            raise DatasetError(f"Minari file {main} holds no episode_<id> groups (found {sorted(f.keys())[:10]})")
        names, parts = None, {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
        slices: dict[str, list] = {}
        forced_ends = 0
        for ep_id, key in ids:
            ep, where = f[key], f"Minari {main.name} episode {ep_id}"
            missing = [k for k in ("observations", "actions", "rewards", "terminations", "truncations") if k not in ep]
            if missing:
                raise DatasetError(f"{where} lacks {missing}")
            if isinstance(ep["actions"], h5py.Group):
                raise DatasetError(f"{where}: Dict/Tuple action spaces cannot be imported (actions must be one array)")
            act = ep["actions"][()]
            steps = len(act)
            if steps == 0:
                continue
            arrays = {k: ep[k][()] for k in ("rewards", "terminations", "truncations")}
            for k, v in arrays.items():
                if v.ndim != 1 or len(v) != steps:
                    raise DatasetError(f"{where}: '{k}' has shape {v.shape}, the episode has {steps} actions "
                                       f"(expected ({steps},))")
            obs = _flatten_obs(ep["observations"], "", steps + 1, where)
            ep_names = [(n, x.shape[1]) for n, x in obs]
            if names is None:
                names = ep_names
            elif ep_names != names:
                raise DatasetError(f"{where}: observation layout {ep_names} differs from the first episode's {names}")
            term, trunc = arrays["terminations"].astype(bool), arrays["truncations"].astype(bool)
            if (term[:-1] | trunc[:-1]).any():
                t = int(np.nonzero(term[:-1] | trunc[:-1])[0][0])
                raise DatasetError(f"{where}: the episode ends (termination/truncation) at step {t} of {steps}; "
                                   "a Minari episode may only end at its last step")
            trunc = trunc & ~term
            if not (term[-1] or trunc[-1]):
                trunc[-1] = True
                forced_ends += 1
            for n, x in obs:
                slices.setdefault(n, []).append(x[:-1])
            parts["actions"].append(act.reshape(steps, -1).astype(np.float32))
            parts["rewards"].append(arrays["rewards"].astype(np.float32))
            parts["terminals"].append(term)
            parts["timeouts"].append(trunc)
    if names is None:
        raise DatasetError(f"Minari file {main}: every episode is empty")
    obs_slices = {n: np.concatenate(v) for n, v in slices.items()}
    data = {k: np.concatenate(v) for k, v in parts.items() if k != "observations"}
    data["observations"] = np.concatenate([obs_slices[n] for n, _ in names], 1)
    env_spec = mmeta.get("env_spec")
    env_id = None
    if isinstance(env_spec, str):
        try:
            env_id = json.loads(env_spec).get("id")
        except ValueError:
            pass
    keep = ("dataset_id", "algorithm_name", "author", "code_permalink", "minari_version", "total_episodes",
            "total_steps", "data_format", "description")
    source = {"format": "minari", "path": str(path), "episodes": len(ids), "env_id": env_id,
              **{k: _scalar(mmeta[k]) for k in keep if k in mmeta}}
    if forced_ends:
        source["episodes_without_end_flag"] = forced_ends
    layout = [[n, int(s)] for n, s in names]
    return data, {"source": source, "obs_layout": layout if len(layout) > 1 or layout[0][0] != "obs" else None}


# ============================================================================================
# Conversion
# ============================================================================================
def task_metadata(task_name: str, seed: int = 0) -> dict:
    """A project task's TaskSpec (layout, rate, control type, family) and config (built once, 1 env)."""
    from ..hrl.env_factory import build_task
    from ..utils.seeding import set_seed
    from ..utils.task_config import load_task_config

    cfg = load_task_config(task_name)
    cfg["env"]["numEnvs"] = 1
    set_seed(seed)
    task = build_task(cfg)
    try:
        return {**task.spec.dataset_meta(), "task": task_name, "task_config": task.cfg}
    finally:
        task.close()


def _check_layout(layout, width: int, what: str) -> list:
    try:
        layout = [[str(n), int(s)] for n, s in layout]
    except (TypeError, ValueError):
        raise DatasetError(f"{what}: expected [[name, size], ...], got {layout!r}") from None
    if sum(s for _, s in layout) != width or any(s <= 0 for _, s in layout):
        raise DatasetError(f"{what} {layout} adds up to {sum(s for _, s in layout)}, the observations have "
                           f"{width} columns")
    if len({n for n, _ in layout}) != len(layout):
        raise DatasetError(f"{what} {layout} repeats a slice name")
    return layout


def convert(data: dict, found: dict, *, task: str | None = None, obs_layout=None, control_dt=None,
            control_type=None, task_family=None) -> tuple[dict, dict]:
    """Arrays and metadata in this project's format from what a reader found."""
    from ..utils.provenance import provenance

    for key in D4RL_KEYS:                  # numbers only: bytes or strings are refused, not parsed
        if np.asarray(data[key]).dtype.kind not in "biuf":
            raise DatasetError(f"the source's /{key} holds {np.asarray(data[key]).dtype} values, numbers are needed")
    obs = np.asarray(data["observations"], dtype=np.float32)
    if obs.ndim == 1:
        obs = obs[:, None]
    obs = obs.reshape(len(obs), -1)
    act = np.asarray(data["actions"], dtype=np.float32).reshape(len(obs), -1)
    n = len(obs)
    if n == 0:
        raise DatasetError("the source dataset has no steps")
    terminals = np.asarray(data["terminals"]).astype(bool).reshape(n)
    timeouts = np.asarray(data["timeouts"]).astype(bool).reshape(n) & ~terminals
    source = dict(found.get("source", {}))
    if not (terminals[-1] or timeouts[-1]):         # the trailing (unfinished) episode ends by time-out
        timeouts[-1] = True
        source["last_step_marked_timeout"] = True
    out = {"observations": obs, "actions": act, "rewards": np.asarray(data["rewards"], np.float32).reshape(n),
           "terminals": terminals, "timeouts": timeouts}
    out.update({k: v for k, v in data.items() if k.startswith("infos.")})

    prior = source.pop("project_metadata", None)
    prior = prior if isinstance(prior, dict) else {}
    meta = {k: prior[k] for k in ("task", "obs_layout", "control_dt", "control_type", "task_family",
                                  "task_config") if prior.get(k) is not None}
    if found.get("obs_layout"):
        meta["obs_layout"] = found["obs_layout"]
    if task:
        tm = task_metadata(task)
        if obs.shape[1] != sum(s for _, s in tm["obs_layout"]) or act.shape[1] != tm["num_actions"]:
            raise DatasetError(f"task={task} has {sum(s for _, s in tm['obs_layout'])} observations and "
                               f"{tm['num_actions']} actions; the dataset has {obs.shape[1]} and {act.shape[1]}")
        tm.pop("num_actions")
        meta.update(tm)
    if obs_layout:
        meta["obs_layout"] = obs_layout
    meta["obs_layout"] = _check_layout(meta.get("obs_layout") or [["obs", obs.shape[1]]], obs.shape[1],
                                       "obs_layout")
    for key, value in (("control_dt", control_dt), ("control_type", control_type), ("task_family", task_family)):
        if value is not None and value != "":
            meta[key] = as_float(value, key, low=0.0, low_open=True, hint=" (seconds per control step)") \
                if key == "control_dt" else str(value)
    meta["num_actions"] = int(act.shape[1])
    check_arrays(out, "the source dataset")
    meta.update(provenance(source=source))
    return out, meta


def import_dataset(source: str | Path, output: str | Path, *, fmt: str = "auto", task: str | None = None,
                   obs_layout=None, control_dt=None, control_type=None, task_family=None,
                   include_infos: bool = False) -> tuple[Path, dict]:
    """Read a D4RL-style file or a Minari directory and write it in this project's format.
    Returns (written path, metadata)."""
    from ..utils.atomic import check_not_input, check_writable
    check_writable(output, "output", example="data.hdf5")
    check_not_input(output, {"source": Path(source).expanduser()})
    fmt = detect_format(source) if fmt in ("auto", "", None) else fmt
    if fmt == "d4rl":
        data, found = read_d4rl(source, include_infos)
    elif fmt == "minari":
        data, found = read_minari(source)
    else:
        raise DatasetError(f"format must be auto, d4rl or minari, got '{fmt}'")
    data, meta = convert(data, found, task=task, obs_layout=obs_layout, control_dt=control_dt,
                         control_type=control_type, task_family=task_family)
    return write_dataset(output, data, meta), meta


# ============================================================================================
# CLI
# ============================================================================================
