"""The skill-learning algorithms by name, and their settings checked into their config dataclass.

Every algorithm is ``train(data, meta, cfg, output, log=print, progress=True) -> result`` over a
dataclass config (``trainer.SkillConfig`` and its own fields); ``hrl-skills algo=<name>`` picks one.
Modules are imported on first use, so naming the registry loads no training code.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import fields

from ..errors import UserError
from ..utils.config import as_bool, as_float, as_int, check_device

# name -> (module, config dataclass, train function)
ALGORITHMS = {
    "bc": ("isaacgymenvs_hrl.skills.bc", "BCConfig", "train_bc"),
    "ldse": ("isaacgymenvs_hrl.skills.ldse", "LDSEConfig", "train_ldse"),
    "helms": ("isaacgymenvs_hrl.skills.helms", "HeLMSConfig", "train_helms"),
    "mrs": ("isaacgymenvs_hrl.skills.mrs", "MRSConfig", "train_mrs"),
    "npmp": ("isaacgymenvs_hrl.skills.npmp", "NPMPConfig", "train_npmp"),
}


def algorithm(name: str):
    """(config dataclass, train function) of the algorithm ``name``."""
    if name not in ALGORITHMS:
        raise UserError(f"skills algorithm '{name}' is not implemented; available: {list(ALGORITHMS)}")
    module, cls_name, fn_name = ALGORITHMS[name]
    module = importlib.import_module(module)
    return getattr(module, cls_name), getattr(module, fn_name)


def make_config(cls, params: dict):
    """The algorithm's config dataclass, each value checked against its field's type and range."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        near = {u: difflib.get_close_matches(u, sorted(known), n=1) for u in unknown}
        hint = "; ".join(f"skills.{u}: did you mean skills.{m[0]}?" for u, m in near.items() if m)
        raise UserError(f"skills config: unknown field(s) {unknown} for {cls.__name__}"
                        + (f" ({hint})" if hint else f"; known fields: {sorted(known)}"))
    for name, value in params.items():
        _check_field(name, value, str(known[name].type))
    return cls(**params)


# float settings with a range: (low, high, low excluded, high excluded); others are finite numbers >= 0
_FLOAT_RANGES = {"lr": (0.0, 1.0, True, False), "learning_rate": (0.0, 1.0, True, False),
                 "val_fraction": (0.0, 1.0, False, True), "alpha": (0.0, 1.0, False, False),
                 "prior_stay": (0.0, 1.0, False, True), "fixed_std": (0.0, None, True, False),
                 "action_std": (0.0, None, True, False), "latent_scale": (0.0, None, True, False)}


def _check_field(name: str, value, annotation: str) -> None:
    """One ``skills.<name>`` value against its type and range (sizes and counts are >= 1)."""
    key = f"skills.{name}"
    kind = annotation.replace("typing.", "").split("[")[0].strip()
    if kind == "int":
        as_int(value, key, low={"seed": None, "num_skills": 2}.get(name, 1))
    elif kind == "float":
        low, high, low_open, high_open = _FLOAT_RANGES.get(name, (0.0, None, False, False))
        as_float(value, key, low=low, high=high, low_open=low_open, high_open=high_open)
    elif kind == "bool":
        as_bool(value, key)
    elif kind in ("list", "tuple", "List", "Tuple", "Sequence"):
        if not isinstance(value, (list, tuple)) or (not value and name != "condition_on"):   # [] = plain BC
            raise UserError(f"{key} must be a non-empty list, e.g. {key}=[64,64], got {value!r}")
        if name.endswith("_obs") or name == "condition_on":
            bad = [v for v in value if not isinstance(v, str)]
            if bad:
                raise UserError(f"{key} must list observation slice names, got {value!r}")
        else:                                   # layer widths, horizons
            for i, v in enumerate(value):
                as_int(v, f"{key}[{i}]", low=1)
    elif name == "device":
        check_device(value, key)
