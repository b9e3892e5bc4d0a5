"""The one physics interface every task talks to.

An engine holds N copies of one MJCF scene and shows their state as batched torch tensors on
``device``. Two implementations share it: C MuJoCo stepped by a thread pool (``mujoco``) and
MuJoCo Warp (``mjwarp``). Tasks step and read state only through this interface; they use
``mujoco`` itself only to build and edit their scenes (``MjSpec``, ``configure_model``).

Timing conventions (same on both backends, they come from MuJoCo itself):
- ``step(n)`` advances every env by n physics steps of ``model.opt.timestep`` with ``ctrl`` held;
  ``step_controls(seq)`` does the same with a control per physics step (ramps, delays).
- ``qpos``/``qvel`` are the state after the last step.
- ``sensordata`` is what MuJoCo computed inside the last ``mj_step``, i.e. before its
  integration: one physics step older than ``qpos``. After ``reset_envs`` it stays stale for the
  reset envs until the next ``step`` or ``forward``.
- ``forward()`` recomputes sensors and body/site poses from the current state for all envs.
Quaternions are MuJoCo's (w, x, y, z).
"""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch

from ..errors import UserError


class SimError(UserError, RuntimeError):
    """A configuration or state problem in the physics layer, with its fix in the message."""


# Per-env model parameters that tasks and domain randomization may change, with their
# MjModel field names. Each is stored as (N, *field_shape) per env.
RANDOMIZABLE_FIELDS = (
    "geom_friction",      # (ngeom, 3) sliding, torsional, rolling
    "body_mass",          # (nbody,)
    "body_inertia",       # (nbody, 3)
    "dof_damping",        # (nv,)
    "dof_armature",       # (nv,)
    "dof_frictionloss",   # (nv,)
    "jnt_stiffness",      # (njnt,)
    "actuator_gainprm",   # (nu, 10) gain parameters; [:, 0] is kp / gear scale
    "actuator_biasprm",   # (nu, 10)
    "geom_solref",        # (ngeom, 2) contact time constant, damping ratio
    "geom_solimp",        # (ngeom, 5)
    "actuator_forcerange",  # (nu, 2) effort limits (used where actuator_forcelimited)
    "actuator_ctrlrange",   # (nu, 2)
    "jnt_range",          # (njnt, 2) joint limits (used where jnt_limited)
    "gravity",            # (3,) model.opt.gravity
)
OPTION_FIELDS = ("gravity",)   # RANDOMIZABLE_FIELDS that live in model.opt
# MjModel.opt fields a task config may set under sim.mujoco (with their types); cone by name
SOLVER_OPTIONS = {"iterations": int, "ls_iterations": int, "tolerance": float, "ls_tolerance": float,
                  "impratio": float, "noslip_iterations": int, "cone": str, "sleep": bool,
                  "sleep_tolerance": float}


@dataclass(frozen=True)
class SimParams:
    """Physics settings read from a task's ``sim`` config block."""

    dt: float               # seconds per ``simulate()``; IsaacGymEnvs' sim.dt
    substeps: int           # MuJoCo steps per ``simulate()``: timestep = dt / substeps
    gravity: tuple = (0.0, 0.0, -9.81)
    num_threads: int = 0    # CPU threads of the mujoco backend; 0 = all cores
    # MuJoCo <option> overrides from ``sim.mujoco`` (None keeps the MJCF's value): a scene's solver
    # budget is a per-task choice of speed against accuracy, so it lives in the task config
    solver: dict = field(default_factory=dict)

    @property
    def timestep(self) -> float:
        return self.dt / self.substeps


def load_mjcf(path: str, params: SimParams) -> mujoco.MjModel:
    """Compile an MJCF file and apply the config's timestep and gravity to it."""
    # MuJoCo reports a missing file as a ValueError ("Error opening file"), so check first.
    if not os.path.isfile(path):
        raise SimError(f"MJCF file not found: {path}. Check the task's asset path "
                       "(task.env.asset.assetFileName) or the assets/ folder of the install.")
    try:
        model = mujoco.MjModel.from_xml_path(str(path))
    except ValueError as exc:
        raise SimError(f"MuJoCo could not compile {path}: {exc}") from exc
    if params.dt <= 0 or params.substeps < 1:
        raise SimError(f"sim.dt must be > 0 and sim.substeps >= 1, got dt={params.dt}, "
                       f"substeps={params.substeps}")
    model.opt.timestep = params.timestep
    model.opt.gravity[:] = params.gravity
    for key, value in params.solver.items():
        if key not in SOLVER_OPTIONS:
            raise SimError(f"sim.mujoco.{key} is not a solver option this project sets; choose from "
                           f"{', '.join(SOLVER_OPTIONS)}")
        if key == "cone":
            cones = {"pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL, "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC}
            if value not in cones:
                raise SimError(f"sim.mujoco.cone must be pyramidal or elliptic, got {value!r}")
            model.opt.cone = cones[value]
            continue
        if key == "sleep":
            # MuJoCo's sleeping islands: bodies at rest (a cube on the table) are skipped until an
            # awake body touches them; trees with actuators never sleep
            if not isinstance(value, bool):
                raise SimError(f"sim.mujoco.sleep must be true or false, got {value!r}")
            if value:
                model.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP
            else:
                model.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
            continue
        kind = SOLVER_OPTIONS[key]
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise SimError(f"sim.mujoco.{key} must be a number, got {value!r}") from None
        if number < 0 or (key in ("iterations", "ls_iterations") and number < 1):
            raise SimError(f"sim.mujoco.{key} must be {'>= 1' if kind is int else '>= 0'}, got {value!r}")
        setattr(model.opt, key, number)
    return model


class Engine(abc.ABC):
    """Batched MuJoCo state as torch tensors; see the module docstring for timing."""

    name: str
    model: mujoco.MjModel      # host model, the same for every env unless a per-env field is set
    num_envs: int
    device: torch.device

    qpos: torch.Tensor         # (N, nq) float32
    qvel: torch.Tensor         # (N, nv) float32
    ctrl: torch.Tensor         # (N, nu) float32, written by the task before ``step``
    sensordata: torch.Tensor   # (N, nsensordata) float32

    @abc.abstractmethod
    def step(self, nsteps: int) -> None:
        """Advance all envs by ``nsteps`` physics steps with ``ctrl`` held."""

    @abc.abstractmethod
    def step_controls(self, ctrl_seq: torch.Tensor) -> None:
        """Advance all envs by ``ctrl_seq.shape[1]`` physics steps, step j with controls
        ``ctrl_seq[:, j]`` (N, nsteps, nu); ``ctrl`` holds the last ones afterwards."""

    @abc.abstractmethod
    def reset_envs(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        """Set the state of ``env_ids`` (actuator state and warm start cleared, time 0)."""

    @abc.abstractmethod
    def forward(self) -> None:
        """Recompute sensors and the pose tensors below from the current state (all envs)."""

    # Filled by ``forward``: (N, nbody, 3), (N, nbody, 4) wxyz, (N, nsite, 3), (N, nsite, 3, 3)
    xpos: torch.Tensor
    xquat: torch.Tensor
    site_xpos: torch.Tensor
    site_xmat: torch.Tensor

    @abc.abstractmethod
    def get_param(self, field: str) -> torch.Tensor:
        """Per-env model parameter, (N, *shape) float32 on ``device``."""

    @abc.abstractmethod
    def set_param(self, field: str, env_ids: torch.Tensor, values: torch.Tensor) -> None:
        """Write a per-env model parameter for ``env_ids``; values (len(env_ids), *shape)."""

    def close(self) -> None:
        """Release threads or device memory."""

    # ---- helpers shared by the backends -------------------------------------------------
    def _check_field(self, field: str) -> None:
        if field not in RANDOMIZABLE_FIELDS:
            raise SimError(f"model field '{field}' is not randomizable; choose one of "
                           f"{', '.join(RANDOMIZABLE_FIELDS)}")

    def default_field(self, field: str) -> np.ndarray:
        self._check_field(field)
        return np.asarray(model_field(self.model, field))


def model_field(model, field: str):
    """``model.<field>``, or ``model.opt.<field>`` for the option fields (gravity)."""
    return getattr(model.opt if field in OPTION_FIELDS else model, field)
