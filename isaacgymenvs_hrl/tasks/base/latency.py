"""Action and observation latency, per env, in whole steps and (for actions) in physics substeps.

A robot's command reaches the motors some time after the measurement it was computed from, and the
measurement itself is old when it arrives. ``Latency`` delays both with batched ring buffers:

  delay_actions(actions)  -> the action of ``action_delay`` steps ago, per env     (N, A)
  delay_observations(obs) -> the observation of ``observation_delay`` steps ago    (N, O)
  reset(env_ids)          -> new episodes: re-draw their delays (``resample: episode``), clear
                             their action history and refill their observation history
  simulate(engine, ctrl_prev, ctrl_new, substeps) -> one control period in which each env keeps
                             its previous ctrl for ``substep_delay`` physics substeps, then the new one

A "step" is whatever the owner steps: control steps for a VecTask, high-level decisions for
``LatentSkillEnv`` (its own instance, from the ``high_level`` block). Delays are fixed integers or
``[min, max]`` ranges drawn uniformly per env. Everything is tensor ops over envs.

Config (``task.env.latency``; every key optional, all zero = no latency)::

    latency:
      action_delay: 0            # control steps; int or [min, max]
      observation_delay: 0       # control steps; int or [min, max]
      substep_delay: 0           # physics substeps (< sim.substeps) the new action waits; int or [min, max]
      resample: episode          # episode: ranges re-drawn per env at every reset; never: drawn once per env
      action_fill: zero          # action history at an episode start: zero | first (first action repeated)
      high_level:                # LatentSkillEnv only, in high-level decisions (every k control steps)
        action_delay: 0
        observation_delay: 0
"""
from __future__ import annotations

import torch

from ...errors import UserError

KEYS = ("action_delay", "observation_delay", "substep_delay", "resample", "action_fill", "high_level")
RESAMPLE = ("episode", "never")
FILLS = ("zero", "first")


class LatencyError(UserError, ValueError):
    pass


def _range(cfg: dict, key: str, where: str, upper: int | None = None) -> tuple[int, int]:
    value = cfg.get(key, 0)
    if value is None:
        value = 0
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise LatencyError(f"{where}.{key}: give an integer or [min, max], got {value!r}")
        lo, hi = value
    else:
        lo = hi = value
    try:
        lo_i, hi_i = int(lo), int(hi)
    except (TypeError, ValueError):
        raise LatencyError(f"{where}.{key}: delays are whole steps (integers), got {value!r}") from None
    if lo_i != lo or hi_i != hi or lo_i < 0 or hi_i < lo_i:
        raise LatencyError(f"{where}.{key}: expected integers 0 <= min <= max, got {value!r}")
    if upper is not None and hi_i > upper:
        raise LatencyError(f"{where}.{key}: at most {upper} (sim.substeps - 1) substeps, got {value!r}; a "
                           "longer delay is a whole control step: use action_delay")
    return lo_i, hi_i


class Latency:
    """Per-env delays with ring buffers; see the module docstring for the config keys."""

    def __init__(self, cfg: dict | None, num_envs: int, device, substeps: int = 1,
                 where: str = "task.env.latency", generator: torch.Generator | None = None):
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(KEYS))
        if unknown:
            raise LatencyError(f"{where}: unknown key(s) {unknown}; the keys are {list(KEYS)}")
        self.where, self.num_envs, self.device = where, int(num_envs), torch.device(device)
        self.generator = generator
        self.action_range = _range(cfg, "action_delay", where)
        self.obs_range = _range(cfg, "observation_delay", where)
        self.substep_range = _range(cfg, "substep_delay", where, upper=max(int(substeps) - 1, 0))
        self.resample = cfg.get("resample", "episode")
        if self.resample not in RESAMPLE:
            raise LatencyError(f"{where}.resample must be one of {list(RESAMPLE)}, got {self.resample!r}")
        self.action_fill = cfg.get("action_fill", "zero")
        if self.action_fill not in FILLS:
            raise LatencyError(f"{where}.action_fill must be one of {list(FILLS)}, got {self.action_fill!r}")
        self.high_level = cfg.get("high_level") or {}
        n, dev = self.num_envs, self.device
        self.action_delay = torch.zeros(n, dtype=torch.long, device=dev)     # (N,) steps
        self.obs_delay = torch.zeros(n, dtype=torch.long, device=dev)        # (N,) steps
        self.substep_delay = torch.zeros(n, dtype=torch.long, device=dev)    # (N,) physics substeps
        self._env_index = torch.arange(n, device=dev)
        # ring buffers, allocated on first use with the data's trailing shape and dtype
        self._act_buf = self._obs_buf = None
        self._act_head = self._obs_head = 0
        self._act_fresh = torch.ones(n, dtype=torch.bool, device=dev)       # history to (re)fill
        self._obs_fresh = torch.ones(n, dtype=torch.bool, device=dev)
        self._draw(self._env_index)

    @classmethod
    def from_task_config(cls, task_cfg: dict, num_envs: int, device, substeps: int) -> "Latency | None":
        """The low-level instance from ``task.env.latency``, or None when it delays nothing."""
        lat = Latency((task_cfg.get("env") or {}).get("latency"), num_envs, device, substeps)
        return lat if lat.enabled else None

    @classmethod
    def high_level_from_task_config(cls, task_cfg: dict, num_envs: int, device) -> "Latency | None":
        """``LatentSkillEnv``'s instance from ``task.env.latency.high_level`` (delays in decisions)."""
        low = (task_cfg.get("env") or {}).get("latency") or {}
        hl = dict(low.get("high_level") or {})
        unknown = sorted(set(hl) - {"action_delay", "observation_delay", "resample", "action_fill"})
        if unknown:
            raise LatencyError(f"task.env.latency.high_level: unknown key(s) {unknown}; the keys are "
                               "['action_delay', 'observation_delay', 'resample', 'action_fill']")
        hl.setdefault("resample", low.get("resample", "episode"))
        lat = Latency(hl, num_envs, device, 1, where="task.env.latency.high_level")
        return lat if lat.enabled else None

    # ---- delays ---------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return max(self.action_range[1], self.obs_range[1], self.substep_range[1]) > 0

    @property
    def has_substep_delay(self) -> bool:
        return self.substep_range[1] > 0

    def _randint(self, lo: int, hi: int, count: int) -> torch.Tensor:
        if lo == hi:
            return torch.full((count,), lo, dtype=torch.long, device=self.device)
        r = torch.rand(count, generator=self.generator, device=self.device if self.generator is None else "cpu")
        return (lo + (r * (hi - lo + 1)).long().clamp_max(hi - lo)).to(self.device)

    def _draw(self, env_ids: torch.Tensor) -> None:
        k = len(env_ids)
        self.action_delay[env_ids] = self._randint(*self.action_range, k)
        self.obs_delay[env_ids] = self._randint(*self.obs_range, k)
        self.substep_delay[env_ids] = self._randint(*self.substep_range, k)

    def reset(self, env_ids) -> None:
        """New episodes for ``env_ids``: re-draw their delays (resample: episode), forget their
        actions, and fill their observation history with the next observation they get."""
        env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device).view(-1)
        if len(env_ids) == 0:
            return
        if self.resample == "episode":
            self._draw(env_ids)
        self._act_fresh[env_ids] = True
        self._obs_fresh[env_ids] = True

    # ---- ring buffers ---------------------------------------------------------------------------
    @staticmethod
    def _rows(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(N,) env mask -> (1, N, 1, ...) to select whole rows of a (L, N, ...) buffer."""
        return mask.view(1, -1, *([1] * (x.dim() - 1))).to(x.device)

    @staticmethod
    def _alloc(length: int, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros((length, *x.shape), dtype=x.dtype, device=x.device)

    def delay_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Push this step's actions (N, ...) and return each env's action of ``action_delay`` steps
        ago; before an env has that much history: zeros (``action_fill: zero``) or its first action."""
        if self.action_range[1] == 0:
            return actions
        length = self.action_range[1] + 1
        if self._act_buf is None:
            self._act_buf = self._alloc(length, actions)
        self._act_head = (self._act_head + 1) % length
        # envs that started an episode get a full history (no host sync: a select over the buffer)
        fill = actions if self.action_fill == "first" else torch.zeros_like(actions)
        self._act_buf.copy_(torch.where(self._rows(self._act_fresh, actions), fill.unsqueeze(0), self._act_buf))
        self._act_fresh.zero_()
        self._act_buf[self._act_head] = actions
        idx = (self._act_head - self.action_delay) % length                   # (N,)
        return self._act_buf[idx, self._env_index]

    def delay_observations(self, obs: torch.Tensor, env_ids=None) -> torch.Tensor:
        """With ``env_ids`` None: one new step for every env; push ``obs`` (N, ...) and return each
        env's observation of ``observation_delay`` steps ago. With ``env_ids``: ``obs`` are the rows
        of envs that just started an episode; their whole history becomes that observation (no
        push for the others) and the rows are returned unchanged."""
        if self.obs_range[1] == 0:
            return obs
        length = self.obs_range[1] + 1
        if env_ids is not None:
            env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device).view(-1)
            if self._obs_buf is None:
                self._obs_buf = torch.zeros((length, self.num_envs, *obs.shape[1:]), dtype=obs.dtype,
                                            device=obs.device)
            self._obs_buf[:, env_ids] = obs.to(self._obs_buf.dtype)
            self._obs_fresh[env_ids] = False
            return obs
        if self._obs_buf is None:
            self._obs_buf = self._alloc(length, obs)
        self._obs_head = (self._obs_head + 1) % length
        self._obs_buf.copy_(torch.where(self._rows(self._obs_fresh, obs), obs.unsqueeze(0), self._obs_buf))
        self._obs_fresh.zero_()
        self._obs_buf[self._obs_head] = obs
        idx = (self._obs_head - self.obs_delay) % length
        return self._obs_buf[idx, self._env_index]

    # ---- sub-control-period action delay --------------------------------------------------------
    def simulate(self, engine, ctrl_prev: torch.Tensor, ctrl_new: torch.Tensor, substeps: int) -> None:
        """Step ``engine`` one control period (``substeps`` physics steps) with the substep delay."""
        step = torch.arange(substeps, device=self.substep_delay.device)
        switched = (step[None, :] >= self.substep_delay[:, None]).to(ctrl_new.device)     # (N, substeps)
        engine.step_controls(torch.where(switched[..., None], ctrl_new[:, None], ctrl_prev[:, None]))
