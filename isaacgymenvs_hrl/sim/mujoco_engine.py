"""C MuJoCo backend: one MjData-sized state row per env, stepped by ``mujoco.rollout``'s thread pool.

The whole batch of N envs x n steps runs inside one C++ call that releases the GIL, so the only
Python work per control step is a few array copies. Each env's full physics state lives in one
float64 row of ``_state``; the float32 torch tensors the tasks read are refreshed from it after
every step. Per-env model parameters (randomization) switch the rollout to a list of per-env
MjModel copies on first use.
"""
from __future__ import annotations

import copy
import math
import os
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
import torch
from mujoco import rollout

from .engine import Engine, SimError, model_field

_FULL = mujoco.mjtState.mjSTATE_FULLPHYSICS.value


def _state_offset(model: mujoco.MjModel, bit: int) -> int:
    """Offset of one state component inside an mjSTATE_FULLPHYSICS vector."""
    return mujoco.mj_stateSize(model, _FULL & (bit - 1))


def _as_float_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a numpy array that numpy casts to float64 exactly on assignment (float32 and
    float64 as they are; other dtypes through torch's float64)."""
    t = t.detach().cpu()
    return t.numpy() if t.dtype in (torch.float32, torch.float64) else t.double().numpy()


class MujocoEngine(Engine):
    name = "mujoco"

    def __init__(self, model: mujoco.MjModel, num_envs: int, device: str = "cpu", num_threads: int = 0):
        self.model = model
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.num_threads = num_threads if num_threads > 0 else (os.cpu_count() or 1)
        # nthread=1 would still hand work to a pool thread; 0 runs on the caller, which is cheaper.
        self._pool = rollout.Rollout(nthread=0 if self.num_threads == 1 else self.num_threads)
        self._datas = [mujoco.MjData(model) for _ in range(max(1, self.num_threads))]
        self._models = [model] * num_envs
        self._env_models: list[mujoco.MjModel] | None = None   # per-env copies, made on demand
        # Sleeping (sim.mujoco.sleep) keeps its state in MjData, outside the state vector, so a
        # data shared by the envs of one thread would carry one env's sleeping bodies into the
        # next: each env then keeps its own data (about 0.5 MB resident on the Franka scenes),
        # stepped by one rollout call per env.
        self._env_datas: list[mujoco.MjData] | None = None
        self._step_pool: ThreadPoolExecutor | None = None
        if model.opt.enableflags & mujoco.mjtEnableBit.mjENBL_SLEEP:
            self._env_datas = [mujoco.MjData(model) for _ in range(num_envs)]
            self._env_rollouts = [rollout.Rollout(nthread=0) for _ in self._datas]
            self._env_chunks = np.array_split(np.arange(num_envs), len(self._datas))
            if len(self._datas) > 1:
                self._step_pool = ThreadPoolExecutor(max_workers=len(self._datas))

        nstate = mujoco.mj_stateSize(model, _FULL)
        t = mujoco.mjtState
        self._sl_time = _state_offset(model, t.mjSTATE_TIME.value)
        q0 = _state_offset(model, t.mjSTATE_QPOS.value)
        v0 = _state_offset(model, t.mjSTATE_QVEL.value)
        a0 = _state_offset(model, t.mjSTATE_ACT.value)
        self._sl_qpos = slice(q0, q0 + model.nq)
        self._sl_qvel = slice(v0, v0 + model.nv)
        self._sl_act = slice(a0, a0 + model.na)

        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        row = np.empty(nstate)
        mujoco.mj_getState(model, data, row, _FULL)
        self._state = np.tile(row, (num_envs, 1))                      # (N, nstate) float64
        self._state_t = torch.from_numpy(self._state)                    # the same memory
        self._qpos_t, self._qvel_t = self._state_t[:, self._sl_qpos], self._state_t[:, self._sl_qvel]
        self._nstep_alloc = 0
        self._ctrl64 = self._state_out = self._sens_out = None

        f32 = dict(dtype=torch.float32, device=self.device)
        self.qpos = torch.zeros(num_envs, model.nq, **f32)
        self.qvel = torch.zeros(num_envs, model.nv, **f32)
        self.ctrl = torch.zeros(num_envs, model.nu, **f32)
        self.sensordata = torch.tensor(np.tile(data.sensordata, (num_envs, 1)), **f32)
        self.unstable = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._forward_pool: ThreadPoolExecutor | None = None
        self._refresh()

    # ---- stepping -----------------------------------------------------------------------
    def _alloc(self, nstep: int) -> None:
        n, m = self.num_envs, self.model
        self._ctrl64 = np.zeros((n, nstep, m.nu))
        self._state_out = np.empty((n, nstep, self._state.shape[1]))
        self._sens_out = np.empty((n, nstep, m.nsensordata))
        self._nstep_alloc = nstep
        # torch views of the same memory: after the physics the few copies below run as torch ops,
        # whose code the task's own work is about to use, instead of numpy's
        self._ctrl64_t = torch.from_numpy(self._ctrl64)
        self._end_state_t = torch.from_numpy(self._state_out)[:, -1]
        self._end_time_t = self._end_state_t[:, self._sl_time]
        self._end_sens_t = torch.from_numpy(self._sens_out)[:, -1]

    def step(self, nsteps: int) -> None:
        if nsteps != self._nstep_alloc:
            self._alloc(nsteps)
        self._ctrl64_t.copy_(self.ctrl.detach().unsqueeze(1))
        self._rollout(nsteps)

    def step_controls(self, ctrl_seq: torch.Tensor) -> None:
        """One rollout call for the whole sequence: the thread pool is woken once per control step."""
        nsteps = ctrl_seq.shape[1]
        if nsteps != self._nstep_alloc:
            self._alloc(nsteps)
        self._ctrl64_t.copy_(ctrl_seq.detach())
        self.ctrl[:] = ctrl_seq[:, -1]
        self._rollout(nsteps)

    def _rollout(self, nsteps: int) -> None:
        if self._env_datas is None:
            self._pool.rollout(self._models, self._datas, self._state, self._ctrl64, skip_checks=True,
                               nstep=nsteps, state=self._state_out, sensordata=self._sens_out)
        elif self._step_pool is None:
            self._rollout_own_data(0, nsteps)
        else:
            chunks = range(len(self._env_chunks))
            list(self._step_pool.map(self._rollout_own_data, chunks, [nsteps] * len(chunks)))
        # MuJoCo resets an env's data when it diverges (bad qacc), which restarts its clock.
        elapsed = self._end_time_t - self._state_t.select(1, self._sl_time)
        diverged = elapsed < (nsteps - 0.5) * self.model.opt.timestep
        self._state_t.copy_(self._end_state_t)
        self._refresh(self._end_sens_t)
        if self.device.type == "cpu":
            # MuJoCo resets NaN/inf states itself at the next step's checks: this catches the last one
            if not math.isfinite(self.qvel.sum().item()):
                diverged |= ~torch.isfinite(self.qvel).all(-1)
            self.unstable = diverged
        else:
            self.unstable = diverged.to(self.device) | ~torch.isfinite(self.qvel).all(-1)

    def _rollout_own_data(self, k: int, nsteps: int) -> None:
        """Step the envs of chunk ``k``, each on its own MjData (the rollout releases the GIL)."""
        roll = self._env_rollouts[k]
        for i in self._env_chunks[k]:
            one = slice(i, i + 1)
            roll.rollout([self._models[i]], [self._env_datas[i]], self._state[one], self._ctrl64[one],
                         skip_checks=True, nstep=nsteps, state=self._state_out[one], sensordata=self._sens_out[one])

    def _refresh(self, sensordata: torch.Tensor | None = None) -> None:
        self.qpos.copy_(self._qpos_t)
        self.qvel.copy_(self._qvel_t)
        if sensordata is not None and self.model.nsensordata:
            self.sensordata.copy_(sensordata)

    def reset_envs(self, env_ids: torch.Tensor, qpos: torch.Tensor, qvel: torch.Tensor) -> None:
        ids = env_ids.detach().cpu().numpy()
        if self._env_datas is not None:
            for i in ids:                       # wakes every body: the new state is not at rest
                mujoco.mj_resetData(self._models[i], self._env_datas[i])
        self._state[ids, self._sl_time] = 0.0
        self._state[ids, self._sl_qpos] = _as_float_numpy(qpos)
        self._state[ids, self._sl_qvel] = _as_float_numpy(qvel)
        if self.model.na:
            self._state[ids, self._sl_act] = 0.0
        self.qpos[env_ids] = qpos.to(self.qpos)
        self.qvel[env_ids] = qvel.to(self.qvel)

    # ---- derived quantities on demand ---------------------------------------------------
    def forward(self) -> None:
        n, m = self.num_envs, self.model
        if self._forward_pool is None:        # first call: buffers and the pool, kept for later calls
            self._xpos64 = np.empty((n, m.nbody, 3))
            self._xquat64 = np.empty((n, m.nbody, 4))
            self._site_xpos64 = np.empty((n, m.nsite, 3))
            self._site_xmat64 = np.empty((n, m.nsite, 9))
            self._sens64 = np.empty((n, m.nsensordata))
            self._forward_pool = ThreadPoolExecutor(max_workers=len(self._datas))
        models = self._env_models or self._models
        chunks = np.array_split(np.arange(n), len(self._datas))

        def work(k: int) -> None:
            d = self._datas[k]
            for i in chunks[k]:
                mujoco.mj_setState(models[i], d, self._state[i], _FULL)
                mujoco.mj_forward(models[i], d)       # releases the GIL
                self._xpos64[i] = d.xpos
                self._xquat64[i] = d.xquat
                self._site_xpos64[i] = d.site_xpos
                self._site_xmat64[i] = d.site_xmat
                self._sens64[i] = d.sensordata

        list(self._forward_pool.map(work, range(len(chunks))))
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)
        self.xpos, self.xquat = as_t(self._xpos64), as_t(self._xquat64)
        self.site_xpos = as_t(self._site_xpos64)
        self.site_xmat = as_t(self._site_xmat64).reshape(n, m.nsite, 3, 3)
        if m.nsensordata:
            self.sensordata.copy_(as_t(self._sens64))

    # ---- per-env model parameters -------------------------------------------------------
    def get_param(self, field: str) -> torch.Tensor:
        self._check_field(field)
        if self._env_models is None:
            one = np.asarray(model_field(self.model, field), dtype=np.float32)
            return torch.as_tensor(one, device=self.device).expand(self.num_envs, *one.shape).clone()
        return torch.as_tensor(np.stack([model_field(mm, field) for mm in self._env_models]),
                               dtype=torch.float32, device=self.device)

    def set_param(self, field: str, env_ids: torch.Tensor, values: torch.Tensor) -> None:
        self._check_field(field)
        if self._env_models is None:
            self._env_models = [copy.copy(self.model) for _ in range(self.num_envs)]
            self._models = self._env_models
        vals = values.detach().cpu().double().numpy()
        expected = np.asarray(model_field(self.model, field)).shape
        if vals.shape[1:] != expected:
            raise SimError(f"set_param('{field}'): values per env must have shape {expected}, "
                           f"got {vals.shape[1:]}")
        for row, i in zip(vals, env_ids.detach().cpu().tolist()):   # randomization events only
            model_field(self._env_models[i], field)[:] = row

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        for pool in (self._forward_pool, self._step_pool):
            if pool is not None:
                pool.shutdown()
        self._forward_pool = self._step_pool = None
