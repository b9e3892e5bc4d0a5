"""Write one self-contained policy file (ONNX or TorchScript) and its metadata JSON beside it.

    export_policy(run, "policy.onnx", fmt="onnx", part="full")  ->  policy.onnx, policy.onnx.json

Parts: ``full`` (flat run: the actor; hierarchical run: high level + frozen LLC + hold), ``hl``
(the high-level actor alone, on the high level's observation) and ``llc`` (the LLC with the hold;
the high-level action is an input). Inputs and outputs are named and listed in the metadata.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from pathlib import Path

import torch

from ..utils.atomic import write_bytes
from .modules import HierarchicalPolicy, HighLevelActor, SkillExecutor
from .run import ExportError, TrainedRun

FORMATS = ("onnx", "torchscript")
PARTS = ("full", "hl", "llc")
METADATA_FORMAT = "isaacgymenvs_hrl.exported_policy"
METADATA_VERSION = 1
OPSET = 17


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def metadata_path(policy_path: str | os.PathLike) -> Path:
    return Path(str(policy_path) + ".json")


# ---- building the module of one part --------------------------------------------------------------
def _index(task, names) -> torch.Tensor:
    return torch.cat([torch.arange(task.obs_views[n].start, task.obs_views[n].stop) for n in names])


def build_part(run: TrainedRun, part: str):
    """(module, input specs, output specs); a spec is (name, dtype, shape with 'batch')."""
    if part not in PARTS:
        raise ExportError(f"part={part}: choose one of {', '.join(PARTS)}")
    task, env = run.task, run.env
    clip = float(task.clip_obs)
    n_obs = int(task.num_obs)
    hl_names = list(env.obs_slices) if run.hierarchical else list(task.obs_slices)
    hl_dim = 1 if run.discrete else int(env.action_space.shape[0])
    hl_spec = ("hl_action", "int64", ["batch"]) if run.discrete else ("hl_action", "float32", ["batch", hl_dim])
    if part == "llc" and not run.hierarchical:
        raise ExportError(f"part=llc: checkpoint={run.checkpoint} is a flat policy (its run has no "
                          "task.env.llc.checkpoint); export part=full or part=hl")
    if part == "hl" or not run.hierarchical:
        if part == "hl":       # the high level on its own observation (what rl-games fed it)
            actor = HighLevelActor(run.net, run.discrete, torch.arange(int(env.num_obs)), clip)
            return actor, [("obs", "float32", ["batch", int(env.num_obs)])], [hl_spec]
        actor = HighLevelActor(run.net, run.discrete, _index(task, hl_names), clip)
        out = ("action", "int64", ["batch"]) if run.discrete else ("action", "float32", ["batch", task.num_actions])
        return actor, [("obs", "float32", ["batch", n_obs])], [out]
    llc = run.llc
    mid = _index(task, llc.mid_obs_names) if llc.mid_obs_names else None
    from ..hrl.networks import SkillPolicy
    pass_head = isinstance(llc.policy, SkillPolicy) and llc.policy.num_heads > 1
    executor = SkillExecutor(llc, run.mode, run.steps, _index(task, llc.obs_names), mid, clip, pass_head)
    state_in = [("latent", "float32", ["batch", llc.latent_dim]), ("skill", "int64", ["batch"]),
                ("step", "int64", ["batch"])]
    state_out = [("latent_out", "float32", ["batch", llc.latent_dim]), ("skill_out", "int64", ["batch"]),
                 ("step_out", "int64", ["batch"])]
    action = ("action", "float32", ["batch", task.num_actions])
    obs = ("obs", "float32", ["batch", n_obs])
    if part == "llc":
        return executor, [obs, hl_spec] + state_in, [action] + state_out
    actor = HighLevelActor(run.net, run.discrete, _index(task, hl_names), clip)
    return HierarchicalPolicy(actor, executor), [obs] + state_in, [action] + state_out + [hl_spec]


def example_inputs(specs, batch: int = 2, seed: int = 0, hl_high: int = 2) -> tuple:
    """Inputs of the given specs; step starts at 0 (a decision), ints within range."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for name, dtype, shape in specs:
        shape = [batch if s == "batch" else int(s) for s in shape]
        if dtype == "int64":
            out.append(torch.randint(0, hl_high if name == "hl_action" else 1, shape, generator=gen))
        else:
            out.append(torch.randn(shape, generator=gen))
    return tuple(out)


# ---- writing ----------------------------------------------------------------------------------------
def _export_bytes(module, inputs, in_specs, out_specs, fmt: str) -> bytes:
    module.eval()
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")          # tracer / legacy-exporter deprecation chatter
        traced = torch.jit.trace(module, inputs, check_trace=False)
        if fmt == "torchscript":
            torch.jit.save(traced, buf)
        else:
            # the ONNX exporter's own tracing refuses calls into embedded TorchScript modules (an LLC
            # made by wrap_module): those graphs are exported from the TorchScript trace instead (which
            # loses the shape information some ops need, so only then)
            embedded = any(isinstance(m, torch.jit.ScriptModule) for m in module.modules())
            axes = {name: {0: "batch"} for name, _, _ in list(in_specs) + list(out_specs)}
            try:
                torch.onnx.export(traced if embedded else module, inputs, buf, dynamo=False, opset_version=OPSET,
                                  input_names=[s[0] for s in in_specs],
                                  output_names=[s[0] for s in out_specs], dynamic_axes=axes)
            except ImportError as exc:
                raise ExportError(f"format=onnx needs the onnx package ({exc}): pip install "
                                  "'isaacgymenvs_hrl[export]'") from None
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, data)


def export_policy(run: TrainedRun, output: str | os.PathLike, fmt: str = "onnx", part: str = "full") -> tuple[Path, Path]:
    """Export ``part`` of ``run`` to ``output`` in ``fmt``; returns (policy path, metadata path)."""
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt}: choose one of {', '.join(FORMATS)}")
    module, in_specs, out_specs = build_part(run, part)
    hl_high = int(getattr(run.env.action_space, "n", 2) or 2)
    inputs = example_inputs(in_specs, hl_high=hl_high)
    data = _export_bytes(module, inputs, in_specs, out_specs, fmt)
    output = Path(output)
    if fmt == "onnx":
        _check_onnx(data, output)
    _write_atomic(output, data)
    meta = build_metadata(run, output, fmt, part, in_specs, out_specs)
    meta_path = metadata_path(output)
    _write_atomic(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
    return output, meta_path


def _check_onnx(data: bytes, output: Path) -> None:
    try:
        import onnx
    except ImportError:
        return
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except Exception as exc:     # the checker raises its own ValidationError types
        raise ExportError(f"the ONNX graph for {output} does not validate ({str(exc).splitlines()[0]}); "
                          "export format=torchscript instead") from None


# ---- metadata -----------------------------------------------------------------------------------------
def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _slices(task, names=None, units=None) -> list:
    units = units or {}
    out, start = [], 0
    for name in names or list(task.obs_slices):
        sl = task.obs_slices[name]
        size = sl.stop - sl.start
        out.append({"name": name, "start": start, "size": size, "units": units.get(name)})
        start += size
    return out


def action_info(task) -> dict:
    """What one action vector means on the robot, with the model's limits where it has them."""
    m = task.engine.model
    names = [m.actuator(i).name for i in range(m.nu)]
    info = {"size": int(task.num_actions), "low": -float(task.clip_actions) if math.isfinite(task.clip_actions) else None,
            "high": float(task.clip_actions) if math.isfinite(task.clip_actions) else None,
            "control_type": getattr(task, "control_type", None),
            "semantics": getattr(task, "action_semantics", None) or None}
    if int(task.num_actions) == m.nu:
        info["actuators"] = names
        info["actuator_ctrlrange"] = [[float(a), float(b)] for a, b in m.actuator_ctrlrange]
        info["actuator_forcerange"] = [[float(a), float(b)] if lim else None
                                       for (a, b), lim in zip(m.actuator_forcerange, m.actuator_forcelimited)]
    for key in ("action_scale", "power_scale"):
        if hasattr(task, key):
            info[key] = float(getattr(task, key))
    return info


def build_metadata(run: TrainedRun, output: Path, fmt: str, part: str, in_specs, out_specs) -> dict:
    from ..utils.provenance import provenance

    task, env = run.task, run.env
    units = dict(getattr(task, "obs_units", {}) or {})
    if part == "hl":
        obs_slices = _slices(task, list(env.obs_slices) if run.hierarchical else None, units)
    else:
        obs_slices = _slices(task, None, units)
    meta = {
        "format": METADATA_FORMAT, "format_version": METADATA_VERSION,
        "file": output.name, "file_format": fmt, "file_sha256": sha256(output), "part": part,
        "task": run.config["task_name"], "task_family": getattr(task, "task_family", None),
        "physics_engine": run.config["task"].get("physics_engine", "mujoco"),
        "inputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in in_specs],
        "outputs": [{"name": n, "dtype": d, "shape": s} for n, d, s in out_specs],
        "observation": {"size": sum(s["size"] for s in obs_slices), "slices": obs_slices,
                        "clip": _jsonable(float(task.clip_obs)),
                        "note": "the task's observation (obs_processed in simulation); the policy clips it "
                                "to +-clip itself"},
        "control": {"dt": float(task.dt), "rate_hz": 1.0 / float(task.dt),
                    "physics_dt": float(task.sim_params.timestep), "substeps": int(task.sim_params.substeps),
                    "control_frequency_inv": int(task.control_freq_inv)},
        "action": action_info(task),
        "deterministic": True,
        "checkpoints": {"policy": {"path": str(run.checkpoint), "sha256": sha256(run.checkpoint),
                                   "epoch": run.extra.get("epoch")}},
        "provenance": provenance(),
    }
    if run.hierarchical:
        llc = run.llc
        space = env.action_space
        meta["hierarchy"] = {
            "mode": run.mode, "k": int(run.steps), "latent_dim": int(llc.latent_dim),
            "hl_obs": list(env.obs_slices), "llc_obs": list(llc.obs_names), "mid_obs": list(llc.mid_obs_names),
            "hl_rate_hz": 1.0 / (float(task.dt) * run.steps),
            "hl_action": ({"dtype": "int64", "num_skills": int(space.n)} if run.discrete else
                          {"dtype": "float32", "size": int(space.shape[0]), "low": -1.0, "high": 1.0}),
            "state": {"latent": "held latent (float32, latent_dim; discrete mode: the held skill's "
                                "latent, decoded again every step); zeros at an episode start",
                      "skill": "held skill / head index (int64); 0 at an episode start",
                      "step": "control steps since the last high-level decision (int64); 0 = decide "
                              "now; feed step_out back, set 0 at an episode start"},
        }
        meta["checkpoints"]["llc"] = {"path": str(run.llc_path), "sha256": sha256(run.llc_path),
                                      "algorithm": llc.spec.get("provenance", {}).get("algorithm")}
        if part == "hl":
            meta["action"] = {"size": meta["hierarchy"]["hl_action"].get("size", 1),
                              "semantics": f"high-level action of mode {run.mode}", "low": -1.0, "high": 1.0}
    return meta
