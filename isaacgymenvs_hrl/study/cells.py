"""One cell of a study sweep: an arm (a method: flat PPO, a high level over some LLC) in a setting
(peg shape and clearance, object set), at one seed, trained for a budget of environment (control)
steps that is the same for every arm, then evaluated.

A cell is one ``hrl-train`` process started in the cell's folder, so that a sweep cell runs exactly
what a user types. When it ends, its raw result (``result.json``: the end-of-run evaluation and the
learning curve's scalars) is written beside its TensorBoard log, in the run folder. A cell that
already has a result is skipped; a cell that was interrupted left a run folder without one, which
stays as it is: the rerun trains in a new run folder (hrl-train never reuses one).
"""
from __future__ import annotations

import json
import math
import os
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError
from ..utils.atomic import write_text

RESULT = "result.json"
FORMAT = "isaacgymenvs_hrl.study_result/1"
# learning-curve scalars kept from the TensorBoard log: {name in result.json: tag}
# hrl-train's module (python -m): the same entry point as the console script, without relying on PATH
TRAIN_MODULE = "isaacgymenvs_hrl.cli.train"
CURVE_TAGS = {"success": "Episode/success", "return": "rewards/iter", "episode_length": "episode_lengths/iter"}


def cell_name(study: str, arm: str, setting: str, seed: int) -> str:
    """The run's experiment name: Hydra's override grammar and run folders take [A-Za-z0-9_.-]."""
    return f"{study}_{arm}_{setting}_s{seed}"


def flatten(tree: dict, prefix: str = "") -> list:
    """``{"task": {"env": {"clearance": 0.001}}}`` -> ``["task.env.clearance=0.001"]``: a study's
    ``hrl_train`` block (set from the command line as ``+hrl_train.task.env.episodeLength=40``)."""
    out = []
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            out += flatten(value, f"{prefix}{key}.")
        elif isinstance(value, (list, tuple)):
            out.append(f"{prefix}{key}=[{','.join(str(v) for v in value)}]")
        else:
            out.append(f"{prefix}{key}={value}")
    return out


def plan(study: str, arm: str, setting: str, seed: int, arms: dict, settings: dict, env_steps: int, num_envs: int,
         horizon: int, max_time: float | None = None, extra: list | None = None) -> dict:
    """The cell's hrl-train overrides and its budget: ``max_iterations`` epochs of ``num_envs x
    horizon`` high-level steps of ``k`` control steps each, the fewest that reach ``env_steps``."""
    if arm not in arms:
        raise UserError(f"arm={arm} is not an arm of study {study}: choose one of {', '.join(arms)}")
    if setting not in settings:
        raise UserError(f"setting={setting} is not a setting of study {study}: choose one of {', '.join(settings)}")
    a, s = arms[arm] or {}, settings[setting] or {}
    k = int(a.get("k", 1))
    if k < 1 or env_steps < 1 or num_envs < 1 or horizon < 1:
        raise UserError(f"study {study}: k ({k}), budget.env_steps ({env_steps}), budget.num_envs ({num_envs}) "
                        f"and budget.horizon ({horizon}) must be positive integers")
    per_epoch = num_envs * horizon * k
    epochs = max(1, math.ceil(env_steps / per_epoch))
    args = [*a.get("train", []), *s.get("train", [])]
    if k > 1:
        args.append(f"task.env.llc.steps={k}")
    args += [f"num_envs={num_envs}", f"train.params.config.horizon_length={horizon}", f"max_iterations={epochs}",
             f"seed={seed}", f"experiment={cell_name(study, arm, setting, seed)}", "eval_summary=True",
             "headless=True", *(extra or [])]
    if max_time:
        args.append(f"max_time={max_time:g}")
    return {"args": [str(x) for x in args], "k": k, "epochs": epochs, "env_steps_per_epoch": per_epoch,
            "env_steps": epochs * per_epoch, "num_envs": num_envs, "horizon": horizon,
            "arm_label": a.get("label", arm), "setting_label": s.get("label", setting)}


def finished(cell_dir: str | os.PathLike) -> Path | None:
    """The result of a cell that ran to the end, or None."""
    done = sorted(Path(cell_dir).glob(f"runs/*/{RESULT}"))
    return done[0] if done else None


def run_cell(cell_dir: str | os.PathLike, study: str, arm: str, setting: str, seed: int, p: dict,
             overrides: list, log=None) -> dict:
    """Train and evaluate one cell in ``cell_dir`` (skipped when its result exists); returns the result."""
    log = log or (lambda line: print(line, flush=True))     # a sweep's log file shows each cell as it goes
    cell_dir = Path(cell_dir)
    done = finished(cell_dir)
    if done is not None:
        result = json.loads(done.read_text())
        if result.get("train_command") != "hrl-train " + shlex.join(p["args"]):
            raise UserError(f"{cell_dir} holds a result of another command ({result.get('train_command')}); "
                            f"this sweep would run hrl-train {shlex.join(p['args'])}: give the sweep another "
                            "out=FOLDER (a cell's folder does not name its budget)")
        log(f"{cell_dir}: done already ({done}), skipped")
        return result
    cell_dir.mkdir(parents=True, exist_ok=True)
    before = {p_.name for p_ in (cell_dir / "runs").glob("*")}
    cmd = [sys.executable, "-m", TRAIN_MODULE, *p["args"]]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    log_path = cell_dir / f"train_{stamp}_{os.getpid()}.log"
    log(f"{cell_dir}: hrl-train {shlex.join(p['args'])}  (log: {log_path.name})")
    t0 = time.time()
    with open(log_path, "x") as out:               # a new file: never over an earlier attempt's log
        rc = subprocess.run(cmd, cwd=cell_dir, stdout=out, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))).returncode
    wall = time.time() - t0
    new = sorted(d for d in (cell_dir / "runs").glob("*") if d.name not in before and (d / "summaries").is_dir())
    if rc != 0 or not new or not (new[-1] / "eval_summary.json").is_file():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        raise UserError(f"cell {cell_dir} failed (hrl-train exit status {rc}); its log {log_path} ends: "
                        + " | ".join(tail))
    run_dir = new[-1]
    import yaml
    llc = ((yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("task", {}).get("env", {})
           .get("llc") or {})
    # a high level's reward with llc.reward=mean is the mean over its k control steps: x k puts its
    # returns on the control-step scale of a flat run (the report compares them)
    scale = p["k"] if llc.get("checkpoint") and llc.get("reward", "mean") == "mean" else 1
    result = {
        "format": FORMAT, "study": study, "arm": arm, "setting": setting, "seed": int(seed),
        "arm_label": p["arm_label"], "setting_label": p["setting_label"],
        "overrides": list(overrides), "train_command": "hrl-train " + shlex.join(p["args"]),
        "budget": {key: p[key] for key in ("env_steps", "epochs", "env_steps_per_epoch", "num_envs", "horizon", "k")},
        "return_scale": scale, "wall_s": round(wall, 1), "host": socket.gethostname(), "cpus": os.cpu_count(),
        "eval": json.loads((run_dir / "eval_summary.json").read_text()),
        "curve": curve(run_dir, p["env_steps_per_epoch"], t0),
        "run_dir": run_dir.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(run_dir / RESULT, json.dumps(result, indent=1))
    log(f"{cell_dir}: wrote {run_dir / RESULT} ({wall:.0f} s)")
    return result


def curve(run_dir: Path, steps_per_epoch: int, t0: float) -> dict:
    """The learning curve's scalars, each as parallel lists: epoch, env (control) steps, seconds
    since the cell started (env building included), value."""
    from ..tools.plot import read_scalars

    scalars = read_scalars([run_dir])
    out = {}
    for name, tag in CURVE_TAGS.items():
        points = scalars.get(tag, [])
        out[name] = {"epoch": [int(e) for e, _, _ in points],
                     "env_steps": [int(e) * steps_per_epoch for e, _, _ in points],
                     "wall_s": [round(w - t0, 2) for _, w, _ in points],
                     "value": [float(v) for _, _, v in points]}
    return out
