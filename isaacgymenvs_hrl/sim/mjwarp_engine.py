"""MuJoCo Warp backend: all envs are worlds of one ``mjw.Data``; tensors are zero-copy torch views.

On CUDA, ``step(n)`` is captured once per n into a CUDA graph and replayed. On Warp's CPU device
it runs the same kernels without graphs (slow, but it is how CI checks this backend).
"""
from __future__ import annotations

import mujoco
import numpy as np
import torch

from .engine import OPTION_FIELDS, Engine, SimError, model_field


class MissingExtraError(SimError, ImportError):
    """An optional dependency group (a pip extra) that is not installed."""


def import_mjwarp():
    """(warp, mujoco_warp); they are the ``[gpu]`` extra, so a CPU install has neither."""
    try:
        import warp as wp
        import mujoco_warp as mjw
    except ImportError as exc:
        raise MissingExtraError(f"physics_engine=mjwarp needs MuJoCo Warp, which is not installed ({exc.name} is "
                                "missing): pip install 'isaacgymenvs_hrl[gpu]', or use physics_engine=mujoco") from None
    return wp, mjw


class MjwarpEngine(Engine):
    name = "mjwarp"

    def __init__(self, model: mujoco.MjModel, num_envs: int, device: str = "cpu",
                 nconmax: int | None = None, njmax: int | None = None):
        if model.opt.solver == mujoco.mjtSolver.mjSOL_PGS:
            raise SimError("MuJoCo Warp does not support the PGS solver: set solver=\"Newton\" or "
                           "\"CG\" in the MJCF <option>")
        wp, mjw = import_mjwarp()
        self._wp, self._mjw = wp, mjw
        wp.config.quiet = True
        wp.init()
        self.model = model
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.wp_device = "cpu" if self.device.type == "cpu" else f"cuda:{self.device.index or 0}"
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        # Contact/constraint buffers per world: generous for small scenes, overridable.
        nconmax = nconmax or max(64, 4 * model.ngeom)
        njmax = njmax or max(256, 6 * nconmax)
        # sim.mujoco.sleep is a C-backend setting: MuJoCo Warp's sleeping compacts the awake dofs
        # per world, which this backend's batched reset does not track, so every body stays awake
        flags = model.opt.enableflags
        model.opt.enableflags = flags & ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
        with wp.ScopedDevice(self.wp_device):
            self.m = mjw.put_model(model)
            self.d = mjw.put_data(model, data, nworld=num_envs, nconmax=nconmax, njmax=njmax)
        model.opt.enableflags = flags
        t = wp.to_torch
        self.qpos, self.qvel, self.ctrl = t(self.d.qpos), t(self.d.qvel), t(self.d.ctrl)
        self.sensordata = t(self.d.sensordata)
        self._time = t(self.d.time)
        self._act = t(self.d.act) if model.na else None
        self._warmstart = t(self.d.qacc_warmstart)
        self.unstable = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._graphs: dict[int, object] = {}

    def _step_kernels(self, nsteps: int) -> None:
        for _ in range(nsteps):
            self._mjw.step(self.m, self.d)

    def _launch(self, nsteps: int) -> None:
        wp = self._wp
        with wp.ScopedDevice(self.wp_device):
            if self.device.type == "cuda":
                graph = self._graphs.get(nsteps)
                if graph is None:
                    self._step_kernels(nsteps)           # compile every kernel before capture
                    with wp.ScopedCapture() as capture:
                        self._step_kernels(nsteps)
                    graph = self._graphs[nsteps] = capture.graph
                wp.capture_launch(graph)
            else:
                self._step_kernels(nsteps)

    def step(self, nsteps: int) -> None:
        self._launch(nsteps)
        self.unstable = ~(torch.isfinite(self.qpos).all(-1) & torch.isfinite(self.qvel).all(-1))

    def step_controls(self, ctrl_seq: torch.Tensor) -> None:
        """One graph replay per physics step, no host sync: comparing columns would need one."""
        ctrl_seq = ctrl_seq.to(self.ctrl)
        for j in range(ctrl_seq.shape[1]):
            self.ctrl.copy_(ctrl_seq[:, j])
            self._launch(1)
        self.unstable = ~(torch.isfinite(self.qpos).all(-1) & torch.isfinite(self.qvel).all(-1))

    def reset_envs(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        env_ids = env_ids.to(self.device)
        self.qpos[env_ids] = qpos.to(self.qpos)
        self.qvel[env_ids] = qvel.to(self.qvel)
        self._time[env_ids] = 0.0
        self._warmstart[env_ids] = 0.0
        if self._act is not None:
            self._act[env_ids] = 0.0

    def forward(self) -> None:
        with self._wp.ScopedDevice(self.wp_device):
            self._mjw.forward(self.m, self.d)
        t = self._wp.to_torch
        n = self.num_envs
        self.xpos, self.xquat = t(self.d.xpos), t(self.d.xquat)
        self.site_xpos = t(self.d.site_xpos)
        self.site_xmat = t(self.d.site_xmat).reshape(n, self.model.nsite, 3, 3)

    def get_param(self, field: str) -> torch.Tensor:
        self._check_field(field)
        arr = self._wp.to_torch(model_field(self.m, field)).float()
        return arr.expand(self.num_envs, *arr.shape[1:]).clone()

    def set_param(self, field: str, env_ids: torch.Tensor, values: torch.Tensor) -> None:
        self._check_field(field)
        wp = self._wp
        owner = self.m.opt if field in OPTION_FIELDS else self.m
        current = getattr(owner, field)
        if current.shape[0] != self.num_envs:   # shared (1, ...) -> one row per world
            per_env = np.repeat(current.numpy(), self.num_envs, axis=0)
            setattr(owner, field, wp.array(per_env, dtype=current.dtype, device=self.wp_device))
            self._graphs.clear()                  # graphs hold the old pointer
            current = getattr(owner, field)
        view = wp.to_torch(current)
        if values.shape[1:] != view.shape[1:]:
            raise SimError(f"set_param('{field}'): values per env must have shape "
                           f"{tuple(view.shape[1:])}, got {tuple(values.shape[1:])}")
        view[env_ids.to(self.device)] = values.to(view)
