"""Config handling at the edge: IsaacGymEnvs' OmegaConf resolvers, dict conversion, and the value
checks shared by ``hrl-train`` and ``make()`` (each bad value: one line naming key, value and fix)."""
from __future__ import annotations

import math
import re

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..errors import UserError


def register_resolvers() -> None:
    """The four resolvers IsaacGymEnvs registers, so its YAML files resolve unchanged."""
    resolvers = {
        "eq": lambda x, y: str(x).lower() == str(y).lower(),
        "contains": lambda x, y: str(x).lower() in str(y).lower(),
        "if": lambda pred, a, b: a if pred else b,
        # '' means "not given on the command line": fall back to the file's default
        "resolve_default": lambda default, arg: default if arg == "" else arg,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def to_dict(cfg) -> dict:
    """Resolved plain dict/list tree of an OmegaConf node (what library code receives)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def resolve(cfg, what: str = "config"):
    """Resolved plain tree; a broken ``${...}`` becomes one line naming the key."""
    from omegaconf.errors import OmegaConfBaseException
    try:
        return to_dict(cfg)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or ""
        msg = str(exc).splitlines()[0]
        missing = re.search(r"Interpolation key '([^']+)' not found", msg)
        if missing:
            raise UserError(f"{missing.group(1)} is missing (needed by {key or 'the config'}); restore it, or "
                            f"drop the ~{missing.group(1)} override") from None
        raise UserError(f"{what}: cannot resolve {key or 'a value'}: {msg}") from None


# ---- value checks -----------------------------------------------------------------------------------
def _missing(key: str):
    raise UserError(f"{key} is missing; restore it in the config (or drop the ~{key} override)")


def as_int(value, key: str, low: int | None = None, allow_empty: bool = False, hint: str = ""):
    """An integer setting (bools and '1.5' refused); ``allow_empty`` lets '' mean "not set"."""
    if allow_empty and value in ("", None):
        return None
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and isinstance(value, str) and re.fullmatch(r"[+-]?\d+(_\d+)*", value.strip()):
        value, ok = int(value), True                          # YAML 1.1 text such as '10_000'
    if not ok and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True                          # 1e6 in a YAML file
    if not ok or (low is not None and value < low):
        want = "a positive integer" if low == 1 else f"an integer >= {low}" if low is not None else "an integer"
        raise UserError(f"{key} must be {want}, got {value!r}{hint}")
    return int(value)


def as_float(value, key: str, low: float | None = None, high: float | None = None, low_open: bool = False,
             allow_inf: bool = False, hint: str = "", high_open: bool = False):
    """A real-valued setting; numeric strings such as '3e-4' (YAML 1.1 reads them as text) are accepted."""
    num = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        num = float(value)
    elif isinstance(value, str):
        try:
            num = float(value)
        except ValueError:
            num = None
    bad = num is None or math.isnan(num) or (math.isinf(num) and not allow_inf)
    if not bad and low is not None:
        bad = num <= low if low_open else num < low
    if not bad and high is not None:
        bad = num >= high if high_open else num > high
    if bad:
        rng = []
        if low is not None:
            rng.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            rng.append(f"{'<' if high_open else '<='} {high:g}")
        want = "a number" + (f" {' and '.join(rng)}" if rng else "")
        raise UserError(f"{key} must be {want}, got {value!r}{hint}")
    return num


def as_bool(value, key: str):
    if isinstance(value, bool):
        return value
    raise UserError(f"{key} must be True or False, got {value!r}")


_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def check_device(value, key: str) -> str:
    """cpu or cuda[:N] with that GPU present (the same rule for the CLI and make())."""
    value = str(value)
    if not _DEVICE.fullmatch(value):
        raise UserError(f"{key}={value} is not a device this project runs on; use {key}=cpu or {key}=cuda:N")
    if value.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise UserError(f"{key}={value} but no CUDA device is available; use {key}=cpu")
        index = int(value.split(":")[1]) if ":" in value else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"{key}={value} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                            f"use {key}=cuda:0")
    return value


def check_seed(value, key: str = "seed") -> int:
    return as_int(value, key, low=-1, hint=" (-1 picks a random seed)")


def check_run_name(value, key: str) -> str:
    """A name that becomes one folder under the runs folder: a single plain part, never a path."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+=,-]*", text) or len(text) > 120:
        raise UserError(f"{key}={text[:60] + '...' if len(text) > 60 else text!r} must be a plain folder name: "
                        f"letters, digits and _ . + = , - (no '/', no '..'), at most 120 characters "
                        f"(it has {len(text)})")
    return text


def check_task_cfg(task: dict, prefix: str = "task") -> None:
    """Types and ranges of the settings every task reads (``VecTask`` and the LLC / demo-reset options).

    Run before a task is built, so that a typo is one line instead of a traceback from deep inside."""
    env = task.get("env")
    if not isinstance(env, dict):
        _missing(f"{prefix}.env")
    if "numEnvs" not in env:
        _missing(f"{prefix}.env.numEnvs")
    as_int(env["numEnvs"], "num_envs" if prefix == "task" else f"{prefix}.env.numEnvs", low=1,
           hint=f" ({prefix}.env.numEnvs)")
    for key, low in (("episodeLength", 1), ("controlFrequencyInv", 1), ("ctrlRampChunks", 1),
                     ("numAgents", 1)):
        if key in env:
            as_int(env[key], f"{prefix}.env.{key}", low=low)
    for key in ("clipActions", "clipObservations"):
        if key in env:
            as_float(env[key], f"{prefix}.env.{key}", low=0.0, low_open=True, allow_inf=True)
    sim = task.get("sim")
    if not isinstance(sim, dict):
        raise UserError(f"{prefix}.sim is missing: every task needs sim.dt and sim.substeps (the MuJoCo "
                        "timestep is dt / substeps); restore the sim block of the task config")
    for key in ("dt", "substeps"):
        if key not in sim:
            raise UserError(f"{prefix}.sim.{key} is missing; the MuJoCo timestep is sim.dt / sim.substeps, "
                            "so both must be set")
    as_float(sim["dt"], f"{prefix}.sim.dt", low=0.0, low_open=True)
    as_int(sim["substeps"], f"{prefix}.sim.substeps", low=1)
    llc = env.get("llc") or {}
    if isinstance(llc, dict):
        if llc.get("steps") not in (None, ""):       # its range is LatentSkillEnv's to check
            as_int(llc["steps"], f"{prefix}.env.llc.steps", hint=" ('' = the checkpoint's default)")
        if "gamma" in llc:
            as_float(llc["gamma"], f"{prefix}.env.llc.gamma", low=0.0, high=1.0)
        if "trust_code" in llc:                  # True lets a TorchScript LLC (code) load
            as_bool(llc["trust_code"], f"{prefix}.env.llc.trust_code")
    demo = env.get("demoResets") or {}
    if isinstance(demo, dict) and "fraction" in demo:
        as_float(demo["fraction"], f"{prefix}.env.demoResets.fraction", low=0.0, high=1.0,
                 hint=" (the share of episodes started from demonstration states)")
    if "numStates" in env and env["numStates"] not in ("", None):
        as_int(env["numStates"], f"{prefix}.env.numStates", low=0)


register_resolvers()
