"""IsaacGymEnvs' ``randomization_params`` on MuJoCo: noise on actions/observations and per-env
model parameters, with IsaacGymEnvs' schedules (linear ramp, constant after N steps), frequency and
``setup_only``.

Mapping of IsaacGymEnvs' actor properties to MuJoCo model fields (per env):
  rigid_body_properties.mass   -> body_mass (scaling also scales body_inertia)
  rigid_shape_properties.friction -> geom_friction[:, 0] (sliding)
  dof_properties.damping       -> dof_damping
  dof_properties.stiffness     -> jnt_stiffness (passive joint spring)
  dof_properties.armature      -> dof_armature
  dof_properties.friction      -> dof_frictionloss
Entries that have no MuJoCo counterpart here (restitution, tendon properties, joint limits,
gravity, colour) are listed once in a warning and skipped, never silently.
"""
from __future__ import annotations

import logging
import math

import torch

from ...errors import UserError

log = logging.getLogger(__name__)

_ACTOR_FIELDS = {
    ("rigid_body_properties", "mass"): ("body_mass", "body"),
    ("rigid_shape_properties", "friction"): ("geom_friction", "geom"),
    ("dof_properties", "damping"): ("dof_damping", "dof"),
    ("dof_properties", "stiffness"): ("jnt_stiffness", "joint"),
    ("dof_properties", "armature"): ("dof_armature", "dof"),
    ("dof_properties", "friction"): ("dof_frictionloss", "dof"),
}
_OPERATIONS = ("additive", "scaling")
_DISTRIBUTIONS = ("gaussian", "uniform", "loguniform")


class RandomizationError(UserError, ValueError):
    pass


def _check_entry(where: str, p: dict) -> None:
    if "range" not in p or len(p["range"]) != 2:
        raise RandomizationError(f"randomization_params.{where}: needs 'range: [a, b]'")
    if p.get("operation", "additive") not in _OPERATIONS:
        raise RandomizationError(f"randomization_params.{where}.operation must be one of {_OPERATIONS}, "
                                 f"got {p.get('operation')!r}")
    if p.get("distribution", "gaussian") not in _DISTRIBUTIONS:
        raise RandomizationError(f"randomization_params.{where}.distribution must be one of "
                                 f"{_DISTRIBUTIONS}, got {p.get('distribution')!r}")


def sample(p: dict, shape, device, scale: float = 1.0) -> torch.Tensor:
    """Sample IsaacGymEnvs-style: gaussian range = [mean, std]; uniform range = [low, high].

    IsaacGymEnvs' docs call the gaussian's second value the variance, but its code draws
    ``mu + range[1] * randn`` (``np.random.normal(mu, var)``), i.e. uses it as the standard
    deviation; we do the same so that its config files give the same noise.
    """
    a, b = float(p["range"][0]), float(p["range"][1])
    dist = p.get("distribution", "gaussian")
    if dist == "gaussian":
        x = a + max(b, 0.0) * torch.randn(shape, device=device)
    elif dist == "uniform":
        x = a + (b - a) * torch.rand(shape, device=device)
    else:
        x = torch.exp(math.log(a) + (math.log(b) - math.log(a)) * torch.rand(shape, device=device))
    neutral = 1.0 if p.get("operation", "additive") == "scaling" else 0.0
    return neutral + (x - neutral) * scale


def _apply(base: torch.Tensor, p: dict, sample_: torch.Tensor) -> torch.Tensor:
    return base * sample_ if p.get("operation", "additive") == "scaling" else base + sample_


class Randomizer:
    """Owned by a VecTask when ``task.randomize`` is true."""

    def __init__(self, params: dict, task):
        self.task = task
        self.params = params
        self.frequency = int(params.get("frequency", 1))
        self.step_count = 0
        self.obs_p = params.get("observations")
        self.act_p = params.get("actions")
        for name, p in (("observations", self.obs_p), ("actions", self.act_p)):
            if p is not None:
                _check_entry(name, p)
        skipped = [f"sim_params.{k}" for k in (params.get("sim_params") or {})]
        groups = task.actor_groups()
        self.actor_terms = []   # (field, index tensor, entry, name, column)
        for actor, props in (params.get("actor_params") or {}).items():
            if actor not in groups:
                raise RandomizationError(
                    f"randomization_params.actor_params.{actor}: no actor of that name in this task; "
                    f"actors are {sorted(groups)}")
            for prop_group, entries in props.items():
                if not isinstance(entries, dict):
                    if prop_group != "color":
                        skipped.append(f"actor_params.{actor}.{prop_group}")
                    continue
                for prop, p in entries.items():
                    key = (prop_group, prop)
                    if key not in _ACTOR_FIELDS:
                        skipped.append(f"actor_params.{actor}.{prop_group}.{prop}")
                        continue
                    _check_entry(f"actor_params.{actor}.{prop_group}.{prop}", p)
                    field, kind = _ACTOR_FIELDS[key]
                    self.actor_terms.append((field, groups[actor][kind], p))
        if skipped:
            log.warning("randomization_params entries without a MuJoCo counterpart are skipped: %s",
                        ", ".join(skipped))
        self.skipped = skipped
        self.defaults = {f: task.engine.get_param(f).clone() for f, _, _ in self.actor_terms}
        if "body_mass" in self.defaults:
            self.defaults["body_inertia"] = task.engine.get_param("body_inertia").clone()
        self.randomize_actors(torch.arange(task.num_envs, device=task.device), setup=True)

    def _scale(self, p: dict) -> float:
        sched, steps = p.get("schedule"), int(p.get("schedule_steps", 0) or 0)
        if sched == "linear" and steps > 0:
            return min(self.step_count, steps) / steps
        if sched == "constant" and steps > 0:
            return float(self.step_count >= steps)
        return 1.0

    def noise_actions(self, actions: torch.Tensor) -> torch.Tensor:
        if self.act_p is None:
            return actions
        return _apply(actions, self.act_p, sample(self.act_p, actions.shape, actions.device,
                                                  self._scale(self.act_p)))

    def noise_observations(self, obs: torch.Tensor) -> torch.Tensor:
        if self.obs_p is None:
            return obs
        return _apply(obs, self.obs_p, sample(self.obs_p, obs.shape, obs.device, self._scale(self.obs_p)))

    def on_step(self) -> None:
        """Once per control step: advances the schedules."""
        self.step_count += 1

    def on_reset(self, env_ids: torch.Tensor) -> None:
        """Before ``env_ids`` start new episodes: re-randomize those that waited ``frequency`` steps.
        Called from the task's reset path only, so an env that ended mid macro step is re-drawn when
        its owner resets it, not before."""
        task = self.task
        due = env_ids[task.randomize_buf[env_ids] >= self.frequency]
        if len(due):
            self.randomize_actors(due, setup=False)
            task.randomize_buf[due] = 0

    def randomize_actors(self, env_ids: torch.Tensor, setup: bool) -> None:
        eng = self.task.engine
        for field, idx, p in self.actor_terms:
            if p.get("setup_only", False) and not setup:
                continue
            values = self.defaults[field][env_ids].clone()
            shape = (len(env_ids), len(idx))
            s = sample(p, shape, values.device, self._scale(p))
            if field == "geom_friction":
                values[:, idx, 0] = _apply(values[:, idx, 0], p, s)
            else:
                values[:, idx] = _apply(values[:, idx], p, s)
                if field == "body_mass" and p.get("operation") == "scaling":
                    inertia = self.defaults["body_inertia"][env_ids].clone()
                    inertia[:, idx] = inertia[:, idx] * s[..., None]
                    eng.set_param("body_inertia", env_ids, inertia)
            eng.set_param(field, env_ids, values.clamp_min(0.0))
