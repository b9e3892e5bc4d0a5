"""The LLC checkpoint: one file holding the weights and everything needed to rebuild and check them.

    {"format": "isaacgymenvs_hrl.llc", "format_version": 1,
     "spec": {
        "task_family": "humanoid",                        # which robot/tasks it drives
        "obs": {"policy": [["proprio", 52]],              # named task observation slices it reads
                "mid": [["proprio", 52], ["objects", 21]],    # discrete/mixture mid level only
                "latent_prior": [["proprio", 52], ["objects", 21]]},   # fitted latent prior only
        "action": {"dim": 21, "control_type": "torque", "scale": 1.0, "squash": "clip"|"tanh"},
        "latent": {"dim": 8, "normalization": "sphere"|"tanh"|"clip"|"none", "scale": 1.0,
                   "modes": ["continuous", ...],
                   "discrete": {"k": K}, "mixture": {"k": K, "prior_mean": KxD, "prior_std": KxD},
                   "multires": {"horizons": [4, 8, 16, 32], "unconditional": true}},
        "default_steps": 5, "control_dt": 0.02,           # k, and the control period it was trained at
        "architecture": {"policy": {"type": "skill_policy", ...kwargs} | {"type": "torchscript"},
                         "mid": {"type": "component_encoder", ...},
                         "skill_prior": {"type": "skill_prior", ...},     # HeLMS, optional: p(y_t | y_{t-1}, x_t) on obs.mid
                         "latent_prior": {"type": "latent_prior", ...}},  # optional, continuous: p(z | x) on obs.latent_prior
        "provenance": {"algorithm", "dataset", "seed", "commit", "metrics", ...,
                       "latent_prior": {how the prior was fitted, its held-out NLL}}},
     "weights": {"policy": state_dict | TorchScript bytes, "mid": state_dict, "skill_prior": state_dict,
                 "latent_prior": state_dict (with its observation normalizer),
                 "obs_mean", "obs_std", "mid_obs_mean", "mid_obs_std": tensors or None}}

Loading validates the structure, rebuilds the modules and returns a frozen LowLevelController;
``validate_llc_for_task`` checks it against a task. Every problem is an ``LLCError`` that names
the field, the expected and the found value.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .library import resolve
from .llc import MODES, LowLevelController
from .networks import ARCHITECTURES, build

FORMAT = "isaacgymenvs_hrl.llc"
FORMAT_VERSION = 1
NORMALIZATIONS = ("sphere", "tanh", "clip", "none")
SQUASHES = ("clip", "tanh")


class LLCError(UserError, ValueError):
    pass


def _require(spec: dict, path: str):
    node = spec
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise LLCError(f"LLC checkpoint spec lacks the field '{path}'")
        node = node[key]
    return node


def check_spec(spec: dict) -> None:
    """Structural checks that need no task."""
    for path in ("task_family", "obs.policy", "action.dim", "action.control_type", "latent.dim",
                 "latent.modes", "default_steps", "control_dt", "architecture.policy.type"):
        _require(spec, path)
    modes = spec["latent"]["modes"]
    bad = [m for m in modes if m not in MODES]
    if not modes or bad:
        raise LLCError(f"latent.modes: expected a non-empty subset of {list(MODES)}, found {modes}")
    norm = spec["latent"].get("normalization", "none")
    if norm not in NORMALIZATIONS:
        raise LLCError(f"latent.normalization: expected one of {list(NORMALIZATIONS)}, found '{norm}'")
    if ("discrete" in modes or "mixture" in modes):
        key = "discrete" if "discrete" in modes else "mixture"
        k = _require(spec, f"latent.{key}.k")
        if int(k) < 2:
            raise LLCError(f"latent.{key}.k: expected >= 2 skills, found {k}")
    if "discrete" in modes:
        _require(spec, "architecture.mid.type")
        _require(spec, "obs.mid")
    if "mixture" in modes:
        k, d = spec["latent"]["mixture"]["k"], spec["latent"]["dim"]
        mean = torch.as_tensor(_require(spec, "latent.mixture.prior_mean"))
        std = torch.as_tensor(_require(spec, "latent.mixture.prior_std"))
        if tuple(mean.shape) != (k, d) or tuple(std.shape) != (k, d):
            raise LLCError(f"latent.mixture.prior_mean/prior_std: expected shape ({k}, {d}), found "
                           f"{tuple(mean.shape)} and {tuple(std.shape)}")
    if "multires" in modes and not _require(spec, "latent.multires.horizons"):
        raise LLCError("latent.multires.horizons: expected a list of horizons, found an empty one")
    if "latent_prior" in spec["architecture"] or "latent_prior" in spec["obs"]:
        _check_latent_prior_spec(spec)
    for part, arch in spec["architecture"].items():
        allowed = sorted(ARCHITECTURES) + (["torchscript"] if part == "policy" else [])
        if not isinstance(arch, dict) or arch.get("type") not in allowed:
            raise LLCError(f"architecture.{part}.type: expected one of {allowed}, found "
                           f"{arch.get('type') if isinstance(arch, dict) else arch!r}")
    _check_values(spec)


def _check_latent_prior_spec(spec: dict) -> None:
    """A fitted latent prior belongs to a continuous latent, reads obs.latent_prior and matches both sizes."""
    arch, slices = _require(spec, "architecture.latent_prior"), _require(spec, "obs.latent_prior")
    if "continuous" not in spec["latent"]["modes"]:
        raise LLCError(f"architecture.latent_prior: a latent prior anchors mode continuous, which latent.modes "
                       f"{spec['latent']['modes']} lacks; drop the prior or fit it on a continuous LLC")
    if not isinstance(arch, dict) or not isinstance(slices, list):
        return                                      # the type and slice checks below name them
    d = spec["latent"]["dim"]
    if arch.get("latent_dim") != d:
        raise LLCError(f"architecture.latent_prior.latent_dim is {arch.get('latent_dim')!r} but latent.dim is {d}; "
                       "fit the prior again on this LLC (hrl-skills-prior)")
    try:
        size = sum(int(n) for _, n in slices)
    except (TypeError, ValueError):
        return
    if arch.get("obs_dim") != size:
        raise LLCError(f"architecture.latent_prior.obs_dim is {arch.get('obs_dim')!r} but obs.latent_prior "
                       f"sums to {size}; fit the prior again on this LLC (hrl-skills-prior)")


def _number(spec: dict, path: str, low: float, integer: bool = False, low_open: bool = False):
    """The spec field at ``path``: a number (an integer) above ``low``, or one LLCError naming it."""
    value = _require(spec, path)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer()) and (value > low if low_open else value >= low)
    if not ok:
        want = "an integer" if integer else "a number"
        raise LLCError(f"{path}: expected {want} {'>' if low_open else '>='} {low:g}, found {value!r}")
    return value


def _check_values(spec: dict) -> None:
    """Types and ranges of the fields every reader uses (a bad one would fail or mislead later)."""
    _number(spec, "default_steps", 1, integer=True)
    _number(spec, "control_dt", 0, low_open=True)
    _number(spec, "action.dim", 1, integer=True)
    _number(spec, "latent.dim", 0, integer=True)
    for path in ("action.scale", "latent.scale"):
        if _field(spec, path) is not None:
            _number(spec, path, 0, low_open=True)
    squash = spec["action"].get("squash", "clip")
    if squash not in SQUASHES:
        raise LLCError(f"action.squash: expected one of {list(SQUASHES)}, found {squash!r}")
    for part, slices in spec["obs"].items():
        if not isinstance(slices, list) or not all(isinstance(e, (list, tuple)) and len(e) == 2 and isinstance(e[0], str)
                                                   and isinstance(e[1], int) and e[1] > 0 for e in slices):
            raise LLCError(f"obs.{part}: expected [[slice name, positive size], ...], found {slices!r}")
    meaning = spec["latent"].get("meaning") or {}
    if not isinstance(meaning, dict):
        raise LLCError(f"latent.meaning: expected {{'slices', 'center', 'half_range'}}, found {meaning!r}")
    d = int(spec["latent"]["dim"])
    for key in ("center", "half_range"):
        if key in meaning:
            values = meaning[key]
            ok = isinstance(values, list) and len(values) == d and all(
                isinstance(v, (int, float)) and math.isfinite(v) and (key == "center" or v > 0) for v in values)
            if not ok:
                want = "positive numbers" if key == "half_range" else "finite numbers"
                raise LLCError(f"latent.meaning.{key}: expected {d} {want}, found {values!r}")


def _field(spec: dict, path: str):
    """The value at ``path``, or None where a part is missing (for optional fields)."""
    node = spec
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _module_to_bytes(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    return buf.getvalue()


def save_llc(path: str | os.PathLike, spec: dict, policy: nn.Module, mid: nn.Module | None = None,
             obs_mean=None, obs_std=None, mid_obs_mean=None, mid_obs_std=None,
             skill_prior: nn.Module | None = None, latent_prior: nn.Module | None = None) -> Path:
    """Write an LLC checkpoint atomically (temporary file, then rename)."""
    spec = dict(spec)
    check_spec(spec)
    if spec["architecture"]["policy"]["type"] == "torchscript":
        policy_weights = _module_to_bytes(policy)
    else:
        policy_weights = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    weights = {"policy": policy_weights,
               "mid": None if mid is None else {k: v.detach().cpu() for k, v in mid.state_dict().items()}}
    for part, module in (("skill_prior", skill_prior), ("latent_prior", latent_prior)):
        if module is not None:
            weights[part] = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    for name, t in (("obs_mean", obs_mean), ("obs_std", obs_std),
                    ("mid_obs_mean", mid_obs_mean), ("mid_obs_std", mid_obs_std)):
        weights[name] = None if t is None else torch.as_tensor(t, dtype=torch.float32).cpu()
    for part in ("policy", "mid", "skill_prior", "latent_prior"):
        if isinstance(weights.get(part), dict):
            _check_finite(weights[part], f"weights.{part}")
    _check_normalizers(weights)
    return _write(path, spec, weights)


def _write(path, spec: dict, weights: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..utils.atomic import commit, tmp_path
    tmp = tmp_path(path)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "spec": spec, "weights": weights}, tmp)
    commit(tmp, path)           # fsynced, then renamed: a good file is only ever replaced by a complete one
    return path


def with_latent_prior(source, output, prior: nn.Module, obs_slices: list, fit: dict, trust_code: bool = False) -> Path:
    """Write ``output``: the LLC at ``source`` (a path or library name) plus a fitted latent prior
    reading ``obs_slices``, with how it was fitted (``fit``) in spec.provenance.latent_prior. The
    source's weights are copied as stored; the new file is loaded back before this returns."""
    src = resolve(source, kind="llc")
    load_llc(src, trust_code=trust_code)                         # the source itself must be sound
    blob = torch.load(src, map_location="cpu", weights_only=True)
    spec, weights = dict(blob["spec"]), dict(blob["weights"])
    spec["obs"] = {**spec["obs"], "latent_prior": [[str(n), int(k)] for n, k in obs_slices]}
    spec["architecture"] = {**spec["architecture"], "latent_prior": {"type": "latent_prior", **prior.config}}
    spec["provenance"] = {**spec.get("provenance", {}), "latent_prior": fit}
    check_spec(spec)
    weights["latent_prior"] = {k: v.detach().cpu() for k, v in prior.state_dict().items()}
    _check_finite(weights["latent_prior"], "weights.latent_prior")
    path = _write(output, spec, weights)
    load_llc(path, trust_code=trust_code)
    return path


def _check_finite(state: dict, where: str) -> None:
    for k, v in state.items():
        if torch.is_tensor(v) and torch.is_floating_point(v) and not torch.isfinite(v).all():
            raise LLCError(f"{where}.{k} contains NaN or infinite values; the training that produced it "
                           "diverged, so it is not written or loaded")


def _check_normalizers(weights: dict, obs_dims: dict | None = None) -> None:
    """Observation normalizers must be finite, with a positive std, and sized like the slices they
    normalize (``obs_dims``: {"obs": policy obs size, "mid_obs": mid obs size}, when known)."""
    for prefix in ("obs", "mid_obs"):
        mean, std = weights.get(f"{prefix}_mean"), weights.get(f"{prefix}_std")
        for name, t in ((f"{prefix}_mean", mean), (f"{prefix}_std", std)):
            if t is None:
                continue
            if not torch.is_tensor(t) or not torch.isfinite(t).all():
                raise LLCError(f"weights.{name} is not a finite tensor; the normalizer is broken "
                               "(recompute it from the dataset and save the LLC again)")
            size = (obs_dims or {}).get(prefix)
            if size is not None and tuple(t.shape) != (size,):
                raise LLCError(f"weights.{name} has shape {tuple(t.shape)}, expected ({size},): the "
                               f"observation slices in spec.obs sum to {size}")
        if std is not None and (std <= 0).any():
            raise LLCError(f"weights.{prefix}_std has {int((std <= 0).sum())} zero or negative entries; "
                           "a std must be positive (clamp it, e.g. std.clamp_min(1e-3), and save again)")


def wrap_module(path, module: nn.Module, example_obs: torch.Tensor, example_latent: torch.Tensor, *,
                task_family: str, obs: list, action: dict, latent: dict, default_steps: int,
                control_dt: float, provenance: dict | None = None, obs_mean=None, obs_std=None) -> Path:
    """Wrap an LLC trained elsewhere (any ``module(obs, z) -> action``, or a TorchScript file path)
    into this format. The module is traced to TorchScript so it loads without its source code."""
    if isinstance(module, (str, os.PathLike)):
        module = torch.jit.load(str(module), map_location="cpu")
    elif not isinstance(module, torch.jit.ScriptModule):
        module = torch.jit.trace(module.eval().cpu(), (example_obs.cpu(), example_latent.cpu()))
    spec = {"task_family": task_family, "obs": {"policy": [list(x) for x in obs]}, "action": dict(action),
            "latent": dict(latent), "default_steps": int(default_steps), "control_dt": float(control_dt),
            "architecture": {"policy": {"type": "torchscript"}},
            "provenance": provenance or {"algorithm": "external"}}
    return save_llc(path, spec, module, obs_mean=obs_mean, obs_std=obs_std)


def _load_weights(module: nn.Module, state: dict, part: str) -> None:
    if not isinstance(state, dict):
        raise LLCError(f"weights.{part}: expected a state dict, found {type(state).__name__}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise LLCError(f"weights.{part} do not fit architecture.{part} ({' '.join(first)}); the checkpoint "
                       "was edited or written by another version") from None


def load_llc(path: str | os.PathLike, device: str = "cpu", trust_code: bool = False) -> LowLevelController:
    """Load, check and freeze an LLC (eval mode, no gradients, on ``device``). ``path`` may be a
    skill library name (``humanoid/walk_bc``): its shipped file is verified against the manifest.
    A TorchScript policy is code, run at every control step: it loads only with ``trust_code=True``."""
    path = resolve(path, kind="llc")
    if not path.is_file():
        raise LLCError(f"LLC checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise LLCError(f"LLC checkpoint {path} is truncated or corrupt and cannot be read "
                       f"({type(exc).__name__}); write it again with save_llc or hrl-skills") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        found = sorted(blob)[:6] if isinstance(blob, dict) else type(blob).__name__
        raise LLCError(f"{path} is not an isaacgymenvs_hrl LLC checkpoint: expected format '{FORMAT}', "
                       f"found keys {found}. An rl-games or plain torch policy can be converted with "
                       "isaacgymenvs_hrl.hrl.wrap_module")
    version = blob.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise LLCError(f"format_version: expected 1..{FORMAT_VERSION}, found {version!r}; upgrade "
                       "isaacgymenvs_hrl to read this checkpoint")
    spec, weights = blob.get("spec"), blob.get("weights")
    if not isinstance(spec, dict) or not isinstance(weights, dict):
        raise LLCError(f"{path}: 'spec' and 'weights' must both be dicts")
    check_spec(spec)

    arch = spec["architecture"]
    if arch["policy"]["type"] == "torchscript":
        if not trust_code:
            raise LLCError(f"{path} holds a TorchScript policy, which is code that runs at every control step; "
                           "it is refused unless you trust the file's source: task.env.llc.trust_code=True "
                           "(load_llc(..., trust_code=True))")
        try:
            policy = torch.jit.load(io.BytesIO(weights["policy"]), map_location="cpu")
        except Exception as exc:
            raise LLCError(f"weights.policy: the TorchScript module cannot be loaded ({type(exc).__name__})") from None
    else:
        try:
            policy = build(arch["policy"])
        except TypeError as exc:
            raise LLCError(f"architecture.policy: bad arguments for {arch['policy']['type']} ({exc})") from None
        _load_weights(policy, weights.get("policy"), "policy")
    mid = skill_prior = latent_prior = None
    if "mid" in arch:
        mid = build(arch["mid"])
        _load_weights(mid, weights.get("mid"), "mid")
    if "skill_prior" in arch:
        if "mid" not in arch:
            raise LLCError("architecture.skill_prior needs architecture.mid: the skill prior reads the "
                           "mid level's observation (obs.mid)")
        skill_prior = build(arch["skill_prior"])
        _load_weights(skill_prior, weights.get("skill_prior"), "skill_prior")
    if "latent_prior" in arch:
        try:
            latent_prior = build(arch["latent_prior"])
        except (TypeError, ValueError) as exc:
            raise LLCError(f"architecture.latent_prior: bad arguments for latent_prior ({exc})") from None
        _load_weights(latent_prior, weights.get("latent_prior"), "latent_prior")
    for name, module in (("policy", policy), ("mid", mid), ("skill_prior", skill_prior), ("latent_prior", latent_prior)):
        if module is not None and not all(torch.isfinite(p).all() for p in module.state_dict().values()
                                          if torch.is_floating_point(p)):
            raise LLCError(f"weights.{name} contain NaN or infinite values; the training that wrote "
                           "this checkpoint diverged")
    if latent_prior is not None and (latent_prior.obs_std <= 0).any():
        raise LLCError("weights.latent_prior.obs_std has zero or negative entries; a std must be positive "
                       "(fit the prior again with hrl-skills-prior)")
    obs_dims = {"obs": sum(int(n) for _, n in spec["obs"]["policy"]),
                "mid_obs": sum(int(n) for _, n in spec["obs"].get("mid", [])) or None}
    _check_normalizers(weights, obs_dims)
    if arch["policy"]["type"] != "torchscript":
        for key, want in (("obs_dim", obs_dims["obs"]), ("latent_dim", int(spec["latent"]["dim"])),
                          ("action_dim", int(spec["action"]["dim"]))):
            have = arch["policy"].get(key)
            if have is not None and int(have) != want:
                raise LLCError(f"architecture.policy.{key} is {have} but the spec says {want} "
                               f"({'obs slices' if key == 'obs_dim' else key.replace('_dim', '.dim')}); "
                               "the checkpoint was edited or written by another version")
    llc = LowLevelController(spec, policy, mid, weights.get("obs_mean"), weights.get("obs_std"),
                             weights.get("mid_obs_mean"), weights.get("mid_obs_std"), skill_prior, latent_prior)
    llc = llc.to(device).eval()
    for p in llc.parameters():
        p.requires_grad_(False)
    llc.path = str(path)
    return llc


def validate_llc_for_task(llc: LowLevelController, task, mode: str, hl_obs_names=None) -> None:
    """Check an LLC against a task's ``TaskSpec``: family, observation slices, action size, control
    type and rate, and the high level's slices."""
    spec, task_spec = llc.spec, task.spec
    name, sizes = task_spec.name, task_spec.view_sizes()
    if spec["task_family"] != task_spec.task_family:
        raise LLCError(f"task_family: task {name} expects an LLC for '{task_spec.task_family}', "
                       f"the checkpoint is for '{spec['task_family']}'")
    for part in ("policy", "mid", "latent_prior"):
        for slice_name, size in spec["obs"].get(part, []):
            if slice_name not in sizes:
                raise LLCError(f"obs.{part}: the LLC reads observation slice '{slice_name}', which task "
                               f"{name} does not have (it has {list(sizes)})")
            if sizes[slice_name] != int(size):
                raise LLCError(f"obs.{part}.{slice_name}: expected size {sizes[slice_name]} (task "
                               f"{name}), found {size} in the checkpoint")
    if int(spec["action"]["dim"]) != task_spec.action_dim:
        raise LLCError(f"action.dim: expected {task_spec.action_dim} (task {name}), "
                       f"found {spec['action']['dim']}")
    if spec["action"]["control_type"] != task_spec.control_type:
        raise LLCError(f"action.control_type: expected '{task_spec.control_type}' (task {name}), "
                       f"found '{spec['action']['control_type']}'")
    if mode not in spec["latent"]["modes"]:
        raise LLCError(f"mode: task.env.llc.mode={mode} but the checkpoint supports "
                       f"{spec['latent']['modes']}; pick one of those")
    if not math.isclose(float(spec["control_dt"]), float(task_spec.control_dt), rel_tol=1e-6):
        raise LLCError(f"control_dt: expected {task_spec.control_dt} s (task sim.dt * controlFrequencyInv), "
                       f"found {spec['control_dt']} s; skills are rate-specific, so run the task at the "
                       "LLC's rate")
    for slice_name in hl_obs_names or []:
        if slice_name not in sizes:
            raise LLCError(f"task.env.llc.hl_obs: unknown observation slice '{slice_name}'; task has "
                           f"{list(sizes)}")
