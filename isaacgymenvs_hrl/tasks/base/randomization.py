"""IsaacGymEnvs' ``randomization_params`` on MuJoCo: noise on actions/observations and per-env
model parameters, with IsaacGymEnvs' schedules (linear ramp, constant after N steps), frequency and
``setup_only``. Every model parameter is drawn per env (IsaacGym draws ``sim_params`` once per sim).

Mapping of IsaacGymEnvs' properties to MuJoCo model fields (per env, both backends):
  sim_params.gravity                       -> opt.gravity (3,)
  rigid_body_properties.mass               -> body_mass (scaling also scales body_inertia)
  rigid_shape_properties.friction          -> geom_friction[:, 0] (sliding); torsion_friction [:, 1],
                                              rolling_friction [:, 2]
  rigid_shape_properties.restitution       -> geom_solref[:, 1] (damping ratio) of the soft contact:
                                              restitution e <-> ratio z by the damped-spring bounce
                                              e = exp(-z pi / sqrt(1 - z^2)) (z >= 1: e = 0); MuJoCo mixes
                                              the two geoms' solref per contact, so it is approximate
  dof_properties.stiffness / damping       -> the PD gains kp, kv of a position servo on the dof
                                              (actuator_gainprm[:, 0] = kp = -actuator_biasprm[:, 1],
                                              kv = -actuator_biasprm[:, 2]), as IsaacGym's drive gains;
                                              a dof without a servo: the passive jnt_stiffness / dof_damping
  dof_properties.effort                    -> actuator_forcerange (+-) of the dof's force-limited actuators
  dof_properties.lower / upper             -> jnt_range[:, 0] / [:, 1] of the actor's limited joints
  dof_properties.armature / friction       -> dof_armature / dof_frictionloss
  actuator_properties.gain (this project)  -> servo kp (as stiffness) or a motor's gainprm[:, 0]
``observations`` / ``actions`` take ``range_correlated`` (additive): a per-env offset drawn when
the env is (re)randomized, plus the white noise of ``range`` every step.

Names: ``actor_params`` keys are the task's actors (``actor_groups()``: ``robot``, the task name,
task-specific ones). A file written for another task maps its names with the project's extra key
``actor_names: {hand: robot, object: null}`` (null: this task has no such actor; skipped, warned).
Properties IsaacGymEnvs has but MuJoCo does not (colour, scale, tendon properties without tendons,
compliance, velocity limits, ...) are listed once in a warning and skipped, never silently; a name
IsaacGymEnvs does not have either is an error that lists the valid names.
"""
from __future__ import annotations

import logging
import math

import torch

from ...errors import UserError

log = logging.getLogger(__name__)

# (group, property) -> (kind of ids, handler): see the module docstring for the MuJoCo fields
_ACTOR_FIELDS = {
    ("rigid_body_properties", "mass"): ("body", "mass"),
    ("rigid_shape_properties", "friction"): ("geom", "friction0"),
    ("rigid_shape_properties", "torsion_friction"): ("geom", "friction1"),
    ("rigid_shape_properties", "rolling_friction"): ("geom", "friction2"),
    ("rigid_shape_properties", "restitution"): ("geom", "restitution"),
    ("dof_properties", "stiffness"): ("dof", "stiffness"),
    ("dof_properties", "damping"): ("dof", "damping"),
    ("dof_properties", "effort"): ("dof", "effort"),
    ("dof_properties", "lower"): ("dof", "lower"),
    ("dof_properties", "upper"): ("dof", "upper"),
    ("dof_properties", "armature"): ("dof", "armature"),
    ("dof_properties", "friction"): ("dof", "frictionloss"),
    ("actuator_properties", "gain"): ("dof", "gain"),
}
# IsaacGymEnvs' names without a MuJoCo counterpart here: warned and skipped
_NO_COUNTERPART = {
    "rigid_body_properties": ("com", "inertia", "invMass", "invInertia", "flags"),
    "rigid_shape_properties": ("compliance", "thickness", "contact_offset", "rest_offset", "filter"),
    "dof_properties": ("hasLimits", "driveMode", "velocity"),
    "tendon_properties": ("stiffness", "damping", "limit_stiffness", "fixed_spring_rest_length",
                          "fixed_target_position", "fixed_target_velocity", "lower_limit", "upper_limit"),
    "actuator_properties": (),
}
_ACTOR_KEYS = ("color", "scale", *_NO_COUNTERPART)
_TOP_KEYS = ("frequency", "observations", "actions", "sim_params", "actor_params", "actor_names")
_SIM_PARAMS = ("gravity",)
_NONNEGATIVE = ("mass", "friction0", "friction1", "friction2", "armature", "frictionloss")
_OPERATIONS = ("additive", "scaling")
_DISTRIBUTIONS = ("gaussian", "uniform", "loguniform")


def restitution_from_dampratio(z: torch.Tensor) -> torch.Tensor:
    """Bounce of a damped spring contact with damping ratio z (0 for z >= 1)."""
    zc = z.clamp(1e-6, 1.0 - 1e-6)
    e = torch.exp(-zc * math.pi / torch.sqrt(1.0 - zc ** 2))
    return torch.where(z >= 1.0, torch.zeros_like(z), e)


def dampratio_from_restitution(e: torch.Tensor) -> torch.Tensor:
    """Inverse of ``restitution_from_dampratio``; e in [0, 1) -> z in (0, 1]."""
    e = e.clamp(0.0, 0.99)
    log_e = torch.log(e.clamp_min(1e-12))
    return torch.where(e <= 1e-12, torch.ones_like(e), -log_e / torch.sqrt(math.pi ** 2 + log_e ** 2))


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


class _Term:
    """One randomized property on a set of ids; keeps each env's last draw (for ``setup_only``)."""

    def __init__(self, name: str, handler: str, idx: torch.Tensor, p: dict, num_envs: int, device,
                 extra: dict | None = None):
        self.name, self.handler, self.idx, self.p = name, handler, idx, p
        self.extra = extra or {}
        self.width = 3 if handler == "gravity" else len(idx)
        neutral = 1.0 if p.get("operation", "additive") == "scaling" else 0.0
        self.draw = torch.full((num_envs, self.width), neutral, device=device)     # (N, width)


class Randomizer:
    """Owned by a VecTask when ``task.randomize`` is true."""

    def __init__(self, params: dict, task):
        self.task = task
        self.params = params
        unknown = sorted(set(params) - set(_TOP_KEYS))
        if unknown:
            raise RandomizationError(f"randomization_params: unknown key(s) {unknown}; the keys are "
                                     f"{list(_TOP_KEYS)}")
        self.frequency = int(params.get("frequency", 1))
        self.step_count = 0
        self.obs_p = params.get("observations")
        self.act_p = params.get("actions")
        for name, p in (("observations", self.obs_p), ("actions", self.act_p)):
            if p is not None:
                _check_entry(name, p)
                if "range_correlated" in p:
                    if len(p["range_correlated"]) != 2:
                        raise RandomizationError(f"randomization_params.{name}.range_correlated: needs [a, b]")
                    if p.get("operation", "additive") != "additive":
                        raise RandomizationError(f"randomization_params.{name}.range_correlated works with "
                                                 "operation: additive only")
        self._corr = {"observations": None, "actions": None}      # (N, dim) per-env offsets
        n, dev = task.num_envs, task.device
        self.terms: list[_Term] = []
        skipped = []
        for key, p in (params.get("sim_params") or {}).items():
            if key not in _SIM_PARAMS:
                raise RandomizationError(f"randomization_params.sim_params.{key}: not a randomizable sim "
                                         f"parameter; the ones that exist are {list(_SIM_PARAMS)}")
            _check_entry(f"sim_params.{key}", p)
            self.terms.append(_Term(f"sim_params.{key}", "gravity", torch.arange(3, device=dev), p, n, dev))
        self._model_ids = _ModelIds(task.engine.model, dev)
        groups = task.actor_groups()
        names = dict(params.get("actor_names") or {})
        for actor, props in (params.get("actor_params") or {}).items():
            where = f"actor_params.{actor}"
            target = names.get(actor, actor)
            if target is None:
                skipped.append(f"{where} (actor_names: this task has no such actor)")
                continue
            if target not in groups:
                raise RandomizationError(
                    f"randomization_params.{where}: no actor '{target}' in this task; actors are "
                    f"{sorted(groups)} (map other names with randomization_params.actor_names, "
                    f"e.g. actor_names: {{{actor}: robot}})")
            group = groups[target]
            for prop_group, entries in (props or {}).items():
                if prop_group not in _ACTOR_KEYS:
                    raise RandomizationError(f"randomization_params.{where}.{prop_group}: unknown property "
                                             f"group; the groups are {list(_ACTOR_KEYS)}")
                if prop_group in ("color", "scale"):
                    if prop_group == "scale" or entries:
                        skipped.append(f"{where}.{prop_group}")
                    continue
                for prop, p in (entries or {}).items():
                    key = (prop_group, prop)
                    if key not in _ACTOR_FIELDS:
                        if prop in _NO_COUNTERPART.get(prop_group, ()):
                            skipped.append(f"{where}.{prop_group}.{prop}")
                            continue
                        known = [q for g, q in _ACTOR_FIELDS if g == prop_group] + list(_NO_COUNTERPART[prop_group])
                        raise RandomizationError(f"randomization_params.{where}.{prop_group}.{prop}: unknown "
                                                 f"property; {prop_group} has {known}")
                    _check_entry(f"{where}.{prop_group}.{prop}", p)
                    kind, handler = _ACTOR_FIELDS[key]
                    for term, why in self._terms_for(f"{where}.{prop_group}.{prop}", handler, group, p):
                        if term is None:
                            skipped.append(why)
                        else:
                            self.terms.append(term)
        if skipped:
            log.warning("randomization_params entries without a MuJoCo counterpart are skipped: %s",
                        ", ".join(skipped))
        self.skipped = skipped
        eng = task.engine
        self.defaults = {f: eng.get_param(f).clone() for f in self._fields()}
        self.randomize_actors(torch.arange(n, device=dev), setup=True)

    # ---- building the terms ---------------------------------------------------------------------
    def _terms_for(self, name: str, handler: str, group: dict, p: dict):
        """[(term, None)] or [(None, reason skipped)] for one property of one actor."""
        ids, n, dev = self._model_ids, self.task.num_envs, self.task.device
        mk = lambda h, idx, **extra: (_Term(name, h, idx, p, n, dev, extra), None)
        if handler in ("mass", "friction0", "friction1", "friction2"):
            return [mk(handler, group["body" if handler == "mass" else "geom"])]
        if handler == "restitution":
            geoms = group["geom"][ids.geom_solref_standard[group["geom"]]]
            return [mk(handler, geoms)] if len(geoms) else [(None, f"{name} (no geom with a standard solref)")]
        if handler in ("armature", "frictionloss"):
            return [mk(handler, group["dof"])]
        dofs = group["dof"]
        servo_act = ids.servo_actuator_of_dof[dofs]                  # -1: no position servo
        if handler in ("stiffness", "damping"):
            out = []
            passive = dofs[servo_act < 0]
            if handler == "stiffness":
                joints = torch.unique(ids.dof_jnt[passive]) if len(passive) else passive
                joints = joints[ids.jnt_is_1dof[joints]] if len(joints) else joints
                if len(joints):
                    out.append(mk("jnt_stiffness", joints))
            elif len(passive):
                out.append(mk("dof_damping", passive))
            servo = servo_act[servo_act >= 0]
            if len(servo):
                out.append(mk("servo_kp" if handler == "stiffness" else "servo_kv", servo))
            return out or [(None, f"{name} (no dofs)")]
        if handler == "gain":
            acts = ids.actuators_of_dofs(dofs)
            servo = acts[ids.act_is_servo[acts]]
            motor = acts[~ids.act_is_servo[acts]]
            out = ([mk("servo_kp", servo)] if len(servo) else []) + ([mk("gain", motor)] if len(motor) else [])
            return out or [(None, f"{name} (no actuators on this actor)")]
        if handler == "effort":
            acts = ids.actuators_of_dofs(dofs)
            limited = acts[ids.act_forcelimited[acts]]
            if not len(limited):
                return [(None, f"{name} (its actuators have no force limit: set forcerange in the MJCF)")]
            return [mk("effort", limited)]
        if handler in ("lower", "upper"):
            joints = torch.unique(ids.dof_jnt[dofs])
            joints = joints[ids.jnt_limited[joints] & ids.jnt_is_1dof[joints]] if len(joints) else joints
            if not len(joints):
                return [(None, f"{name} (no limited hinge/slide joints)")]
            return [mk(handler, joints)]
        raise AssertionError(handler)

    def _fields(self) -> set:
        use = {"mass": ["body_mass", "body_inertia"], "friction0": ["geom_friction"],
               "friction1": ["geom_friction"], "friction2": ["geom_friction"], "restitution": ["geom_solref"],
               "jnt_stiffness": ["jnt_stiffness"], "dof_damping": ["dof_damping"],
               "armature": ["dof_armature"], "frictionloss": ["dof_frictionloss"],
               "servo_kp": ["actuator_gainprm", "actuator_biasprm"], "servo_kv": ["actuator_biasprm"],
               "gain": ["actuator_gainprm"], "effort": ["actuator_forcerange"], "lower": ["jnt_range"],
               "upper": ["jnt_range"], "gravity": ["gravity"]}
        return {f for t in self.terms for f in use[t.handler]}

    def _scale(self, p: dict) -> float:
        sched, steps = p.get("schedule"), int(p.get("schedule_steps", 0) or 0)
        if sched == "linear" and steps > 0:
            return min(self.step_count, steps) / steps
        if sched == "constant" and steps > 0:
            return float(self.step_count >= steps)
        return 1.0

    # ---- noise --------------------------------------------------------------------------------
    def _noise(self, x: torch.Tensor, p: dict, key: str) -> torch.Tensor:
        scale = self._scale(p)
        s = sample(p, x.shape, x.device, scale)
        if "range_correlated" in p:
            corr = self._corr[key]
            if corr is None or corr.shape != x.shape:
                # first use: one draw per env; re-drawn for an env when it is re-randomized
                corr = self._corr[key] = self._draw_corr(p, x.shape, x.device)
            s = s + corr * scale
        return _apply(x, p, s)

    @staticmethod
    def _draw_corr(p: dict, shape, device) -> torch.Tensor:
        return sample({**p, "range": p["range_correlated"]}, shape, device)

    def noise_actions(self, actions: torch.Tensor) -> torch.Tensor:
        if self.act_p is None:
            return actions
        return self._noise(actions, self.act_p, "actions")

    def noise_observations(self, obs: torch.Tensor) -> torch.Tensor:
        if self.obs_p is None:
            return obs
        if obs.shape[0] != self.task.num_envs and "range_correlated" in self.obs_p:
            # rows of a partial reset (their env ids are not known here): white noise only this once
            return _apply(obs, self.obs_p, sample(self.obs_p, obs.shape, obs.device, self._scale(self.obs_p)))
        return self._noise(obs, self.obs_p, "observations")

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
            for key, p in (("observations", self.obs_p), ("actions", self.act_p)):
                corr = self._corr[key]
                if corr is not None:
                    corr[due] = self._draw_corr(p, (len(due), *corr.shape[1:]), corr.device)

    # ---- model parameters -----------------------------------------------------------------------
    def randomize_actors(self, env_ids: torch.Tensor, setup: bool) -> None:
        """Draw every term for ``env_ids`` (``setup_only`` terms keep their setup draw) and write
        each touched model field once: defaults combined with all terms."""
        if not self.terms:
            return
        eng = self.task.engine
        k = len(env_ids)
        for t in self.terms:
            if setup or not t.p.get("setup_only", False):
                t.draw[env_ids] = sample(t.p, (k, t.width), t.draw.device, self._scale(t.p))
        values = {f: d[env_ids].clone() for f, d in self.defaults.items()}
        for t in self.terms:
            self._apply_term(t, values, t.draw[env_ids])
        if "jnt_range" in values:                     # keep lower <= upper after independent draws
            r = values["jnt_range"]
            r[..., 0] = torch.minimum(r[..., 0], r[..., 1])
        for f, v in values.items():
            eng.set_param(f, env_ids, v)

    def _apply_term(self, t: _Term, values: dict, s: torch.Tensor) -> None:
        p, idx, h = t.p, t.idx, t.handler
        op = lambda base: _apply(base, p, s)
        if h == "gravity":
            values["gravity"] = op(values["gravity"])
        elif h == "mass":
            values["body_mass"][:, idx] = op(values["body_mass"][:, idx]).clamp_min(0.0)
            if p.get("operation") == "scaling":
                values["body_inertia"][:, idx] = values["body_inertia"][:, idx] * s[..., None].clamp_min(0.0)
        elif h.startswith("friction"):
            c = int(h[-1])
            values["geom_friction"][:, idx, c] = op(values["geom_friction"][:, idx, c]).clamp_min(0.0)
        elif h == "restitution":
            e = restitution_from_dampratio(values["geom_solref"][:, idx, 1])
            values["geom_solref"][:, idx, 1] = dampratio_from_restitution(op(e))
        elif h == "jnt_stiffness":
            values["jnt_stiffness"][:, idx] = op(values["jnt_stiffness"][:, idx]).clamp_min(0.0)
        elif h == "dof_damping":
            values["dof_damping"][:, idx] = op(values["dof_damping"][:, idx]).clamp_min(0.0)
        elif h in ("armature", "frictionloss"):
            f = "dof_armature" if h == "armature" else "dof_frictionloss"
            values[f][:, idx] = op(values[f][:, idx]).clamp_min(0.0)
        elif h == "servo_kp":
            kp = op(values["actuator_gainprm"][:, idx, 0]).clamp_min(0.0)
            values["actuator_gainprm"][:, idx, 0] = kp
            values["actuator_biasprm"][:, idx, 1] = -kp
        elif h == "servo_kv":
            values["actuator_biasprm"][:, idx, 2] = -op(-values["actuator_biasprm"][:, idx, 2]).clamp_min(0.0)
        elif h == "gain":
            values["actuator_gainprm"][:, idx, 0] = op(values["actuator_gainprm"][:, idx, 0])
        elif h == "effort":
            fr = values["actuator_forcerange"]
            fr[:, idx, 1] = op(fr[:, idx, 1]).clamp_min(0.0)
            fr[:, idx, 0] = -op(-fr[:, idx, 0]).clamp_min(0.0)
        elif h in ("lower", "upper"):
            c = 0 if h == "lower" else 1
            values["jnt_range"][:, idx, c] = op(values["jnt_range"][:, idx, c])


class _ModelIds:
    """Index maps of a compiled MjModel that the terms need, as tensors."""

    def __init__(self, m, device):
        import mujoco
        import numpy as np
        t = lambda a, dtype=torch.long: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)
        self.dof_jnt = t(m.dof_jntid)
        jt = np.asarray(m.jnt_type)
        self.jnt_is_1dof = t((jt == mujoco.mjtJoint.mjJNT_HINGE) | (jt == mujoco.mjtJoint.mjJNT_SLIDE), torch.bool)
        self.jnt_limited = t(np.asarray(m.jnt_limited).astype(bool), torch.bool)
        self.geom_solref_standard = t(np.asarray(m.geom_solref)[:, 0] > 0, torch.bool)
        nu = m.nu
        on_joint = np.asarray(m.actuator_trntype) == mujoco.mjtTrn.mjTRN_JOINT
        act_dof = np.where(on_joint, np.asarray(m.jnt_dofadr)[np.asarray(m.actuator_trnid)[:, 0]], -1)
        self.act_dof = t(act_dof)                                                          # (nu,)
        # a position servo: fixed gain kp, affine bias (0, -kp, -kv): IsaacGym's position drive
        gain, bias = np.asarray(m.actuator_gainprm), np.asarray(m.actuator_biasprm)
        servo = ((np.asarray(m.actuator_gaintype) == mujoco.mjtGain.mjGAIN_FIXED)
                 & (np.asarray(m.actuator_biastype) == mujoco.mjtBias.mjBIAS_AFFINE)
                 & np.isclose(gain[:, 0], -bias[:, 1]) & (gain[:, 0] > 0) & on_joint) if nu else np.zeros(0, bool)
        self.act_is_servo = t(servo, torch.bool)
        self.act_forcelimited = t(np.asarray(m.actuator_forcelimited).astype(bool), torch.bool)
        servo_of = -np.ones(m.nv, dtype=np.int64)
        for a in np.nonzero(servo)[0]:
            servo_of[act_dof[a]] = a
        self.servo_actuator_of_dof = t(servo_of)                                           # (nv,)

    def actuators_of_dofs(self, dofs: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(torch.isin(self.act_dof, dofs)).view(-1)
