"""IsaacGymEnvs' ``VecTask`` contract on MuJoCo engines.

The base class owns the order of a step, so every task steps the same way:

    actions -> NaN guard -> action noise -> clip -> pre_physics_step (task writes engine.ctrl)
    -> controlFrequencyInv x engine.step(substeps) -> progress += 1
    -> post_physics_step (task: rew_buf, reset_buf = terminations, extras terms)
    -> time limits, NaN/unstable envs -> reset(done envs) -> compute_observations, compute_states
    -> observation noise -> clip -> (obs_dict, rew, reset, extras)

Done envs are reset inside the same ``step`` (``auto_reset=True``, the default), so the returned
observation of a done env is the first observation of its next episode (IsaacGymEnvs' auto-reset).
With ``auto_reset=False`` (``LatentSkillEnv``'s tasks) done envs keep stepping until the owner calls
``reset(env_ids)``. ``extras["time_outs"]`` marks envs cut by the episode length, not by failure,
for value bootstrapping.

Two views of the observation, one rule:
  ``obs_buf``        raw: what the task computed (rewards, experts and diagnostics read it)
  ``obs_processed``  noised once per control step and clipped: what every policy sees, the high
                     level, the LLC and the datasets alike (``obs_dict["obs"]`` is it on rl_device)
Each task declares its ``TaskSpec`` (``spec``): named observation slices (``obs_slices``), action
size and meaning, control type and rate, reward terms and the privileged ``states`` layout.
"""
from __future__ import annotations

import abc
import functools
import math
from collections import OrderedDict

import numpy as np
import torch
from ...utils import spaces

from ...errors import UserError
from ...sim import Engine, SimError, SimParams, create_engine
from .markers import draw_markers
from .spec import TaskSpec, view_ranges


class TaskConfigError(UserError, ValueError):
    """A task config value is missing or wrong; the message names the key and the fix."""


def body_group(model, body_ids, device) -> dict:
    """Index tensors of the bodies, their geoms, joints and dofs."""
    import numpy as np
    bodies = np.asarray(sorted(body_ids), dtype=np.int64)
    pick = lambda owner: torch.as_tensor(np.nonzero(np.isin(owner, bodies))[0], device=device)
    return {"body": torch.as_tensor(bodies, device=device), "geom": pick(model.geom_bodyid),
            "joint": pick(model.jnt_bodyid), "dof": pick(model.dof_bodyid)}


def named_slices(layout) -> tuple["OrderedDict[str, slice]", int]:
    """{name: slice} of a layout {name: size} laid end to end, and the total size."""
    slices = view_ranges(layout.items())
    return slices, sum(int(size) for size in layout.values())


def _get(cfg: dict, path: str, default=None, required: bool = False):
    node = cfg
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            if required:
                raise TaskConfigError(f"task config is missing '{path}'")
            return default
        node = node[key]
    return node


def _checked_reset_idx(fn):
    """A task's ``reset_idx`` behind the env-id check: ``reset_idx(-1)`` would otherwise reset the
    last env, and a float id would be truncated. Ids are checked once per outside call: not again
    in a subclass's ``super().reset_idx``, nor for the ids the base class itself hands in."""
    @functools.wraps(fn)
    def reset_idx(self, env_ids):
        if self._ids_checked:
            return fn(self, env_ids)
        self._ids_checked = True
        try:
            return fn(self, self.check_env_ids(env_ids))
        finally:
            self._ids_checked = False
    reset_idx.checked = True
    return reset_idx


class VecTask(abc.ABC):
    """Base of every task. Subclasses set ``mjcf_path`` and fill the hooks below."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("reset_idx")
        if fn is not None and not getattr(fn, "checked", False):
            cls.reset_idx = _checked_reset_idx(fn)

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}
    _ids_checked = False             # inside a reset_idx whose env ids were checked (see above)
    default_ctrl_ramp_chunks = 1     # env.ctrlRampChunks: see _simulate

    # ---- the task's declaration (TaskSpec) ------------------------------------------------
    task_family: str = ""            # robot family: LLCs of another family are refused
    control_type: str = ""           # set per instance when it depends on the config
    action_semantics: str = ""
    obs_units: dict = {}
    obs_fields: dict = {}            # slice -> ((field, size), ...): parts a low level may read alone
    reward_terms: tuple = ()         # every rew_<term> the task logs per episode

    # ---- hooks for tasks ----------------------------------------------------------------
    @abc.abstractmethod
    def mjcf_path(self) -> str:
        """Absolute path of the task's MJCF scene."""

    @abc.abstractmethod
    def obs_layout(self) -> "OrderedDict[str, int]":
        """Named observation slices in order, e.g. {"proprio": 52, "task": 3}."""

    def state_layout(self) -> "OrderedDict[str, int]":
        """Privileged critic input (``states``) for asymmetric actor-critic: by default the raw,
        unnoised observation and every generalized velocity (objects' included)."""
        return OrderedDict(obs_raw=self.num_obs, qvel=self.engine.model.nv)

    def compute_states(self) -> None:
        """Fill ``states_buf`` (N, num_states) in the order of ``state_layout``."""
        torch.cat([self.obs_buf, self.engine.qvel.to(self.obs_buf)], dim=-1, out=self.states_buf)

    def configure_model(self, model) -> None:
        """Edit the compiled MjModel before the engine copies it (default: nothing)."""

    def num_actions_from_model(self) -> int:
        return self.engine.model.nu

    def actor_groups(self) -> dict:
        """Actor names of ``randomization_params.actor_params`` -> body/geom/joint/dof ids.

        Default: one actor, ``robot`` (alias: the task's ``name``), holding every body but the world.
        """
        group = body_group(self.engine.model, range(1, self.engine.model.nbody), self.device)
        return {"robot": group, self.cfg.get("name", "robot"): group}

    @abc.abstractmethod
    def pre_physics_step(self, actions: torch.Tensor) -> None:
        """Turn clipped actions (N, num_actions) into ``self.engine.ctrl``."""

    @abc.abstractmethod
    def post_physics_step(self) -> None:
        """Fill ``rew_buf`` and ``reset_buf`` (terminations only; time limits are the base's)."""

    @abc.abstractmethod
    def reset_idx(self, env_ids: torch.Tensor) -> None:
        """Start new episodes for ``env_ids``: engine.reset_envs(...) and task state."""

    @abc.abstractmethod
    def compute_observations(self) -> None:
        """Fill ``obs_buf`` (N, num_obs) in the order of ``obs_layout``."""

    # ---- construction -------------------------------------------------------------------
    def __init__(self, config: dict, rl_device: str, sim_device: str, graphics_device_id: int,
                 headless: bool, virtual_screen_capture: bool = False, force_render: bool = False,
                 auto_reset: bool = True):
        self.cfg = config
        # False hands resets to the owner (LatentSkillEnv resets once per high-level step)
        self.auto_reset = bool(auto_reset)
        self.rl_device = rl_device
        self.sim_device = sim_device
        self.device = sim_device if not str(sim_device).startswith("cuda") or \
            config.get("physics_engine", "mujoco") == "mjwarp" else "cpu"
        self.graphics_device_id = graphics_device_id
        self.headless = headless
        self.virtual_screen_capture = virtual_screen_capture
        self.force_render = force_render

        num_envs = _get(config, "env.numEnvs", required=True)
        try:
            self.num_envs = int(num_envs)
        except (TypeError, ValueError):
            raise TaskConfigError(f"num_envs must be a positive integer, got {num_envs!r}") from None
        if self.num_envs <= 0:
            raise TaskConfigError(f"num_envs must be a positive integer, got {self.num_envs}")
        self.max_episode_length = int(_get(config, "env.episodeLength", 1000))
        self.control_freq_inv = int(_get(config, "env.controlFrequencyInv", 1))
        self.clip_obs = float(_get(config, "env.clipObservations", math.inf))
        self.clip_actions = float(_get(config, "env.clipActions", math.inf))
        self.ctrl_ramp_chunks = int(_get(config, "env.ctrlRampChunks", self.default_ctrl_ramp_chunks))
        self.num_agents = int(_get(config, "env.numAgents", 1))

        sim_cfg = config.get("sim", {})
        physx = sim_cfg.get("physx", {}) or {}
        mj = sim_cfg.get("mujoco", {}) or {}
        threads = mj.get("num_threads", physx.get("num_threads", 0))
        self.sim_params = SimParams(
            dt=float(sim_cfg.get("dt", 0.02)), substeps=int(sim_cfg.get("substeps", 1)),
            gravity=tuple(sim_cfg.get("gravity", (0.0, 0.0, -9.81))),
            num_threads=int(threads or 0),
            solver={k: v for k, v in mj.items() if k != "num_threads" and v is not None})
        self.physics_engine = config.get("physics_engine", "mujoco")
        self.dt = self.sim_params.dt * self.control_freq_inv     # control period, seconds
        self.engine: Engine = create_engine(self.physics_engine, self.mjcf_path(), self.num_envs,
                                            self.sim_params, sim_device=self.device,
                                            configure_model=self.configure_model)
        # share of the way from the old to the new servo targets at each physics step of the ramp
        # (None: no ramp); piece i covers substeps // chunks steps, the first substeps % chunks one more
        n, chunks = self.sim_params.substeps, min(self.ctrl_ramp_chunks, self.sim_params.substeps)
        self.ramp_fraction = None
        if chunks > 1:
            piece = torch.repeat_interleave(torch.arange(chunks),
                                            torch.tensor([n // chunks + (i < n % chunks) for i in range(chunks)]))
            self.ramp_fraction = ((piece + 1).float() / chunks)[None, :, None].to(self.device)   # (1, n, 1)

        self.obs_slices, self.num_obs = named_slices(self.obs_layout())
        self.num_actions = self.num_actions_from_model()
        # numStates comes from the task; an IsaacGymEnvs config's own value is ignored
        self.state_slices, self.num_states = named_slices(self.state_layout())
        self.spec = TaskSpec(
            name=type(self).__name__, task_family=self.task_family, control_type=self.control_type,
            control_dt=float(self.dt), action_dim=int(self.num_actions),
            action_semantics=self.action_semantics, obs_units=dict(self.obs_units),
            obs_layout=tuple((n, s.stop - s.start) for n, s in self.obs_slices.items()),
            reward_terms=tuple(self.reward_terms),
            state_layout=tuple((n, s.stop - s.start) for n, s in self.state_slices.items()),
            obs_fields={k: tuple(tuple(f) for f in v) for k, v in self.obs_fields.items()})
        self.obs_views = self.spec.obs_views()      # obs_slices plus "slice.field" views

        self.obs_space = spaces.Box(-np.inf, np.inf, (self.num_obs,), dtype=np.float32)
        self.state_space = spaces.Box(-np.inf, np.inf, (self.num_states,), dtype=np.float32)
        self.act_space = spaces.Box(-1.0, 1.0, (self.num_actions,), dtype=np.float32)
        self.allocate_buffers()

        from .randomization import Randomizer
        self.randomize = bool(_get(config, "task.randomize", False))
        self.randomizer = Randomizer(_get(config, "task.randomization_params", {}) or {}, self) \
            if self.randomize else None
        from .latency import Latency
        # task.env.latency: action / observation delays (control steps), substep action delay
        self.latency = Latency.from_task_config(config, self.num_envs, self.device, self.sim_params.substeps)
        if self.latency is not None and self.latency.has_substep_delay and self.ctrl_ramp_chunks > 1:
            raise TaskConfigError(f"task.env.latency.substep_delay holds the previous controls for part of the "
                                  f"period, which replaces the control ramp (ctrlRampChunks={self.ctrl_ramp_chunks}); "
                                  "set task.env.ctrlRampChunks=1 to use it")
        self.obs_dict = {}
        self.extras = {}

    def allocate_buffers(self) -> None:
        n, dev = self.num_envs, self.device
        self.obs_buf = torch.zeros(n, self.num_obs, device=dev)           # (N, num_obs) raw
        self.obs_processed = torch.zeros(n, self.num_obs, device=dev)     # (N, num_obs) noised, clipped
        self.states_buf = torch.zeros(n, self.num_states, device=dev)     # (N, num_states)
        self.rew_buf = torch.zeros(n, device=dev)
        self.reset_buf = torch.ones(n, device=dev, dtype=torch.long)
        self.timeout_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.progress_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.randomize_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.nan_action_count = torch.zeros((), device=dev, dtype=torch.long)
        self.unstable_count = torch.zeros((), device=dev, dtype=torch.long)

    # ---- gym-style properties as in IsaacGymEnvs ----------------------------------------
    @property
    def observation_space(self):
        return self.obs_space

    @property
    def action_space(self):
        return self.act_space

    def get_number_of_agents(self) -> int:
        return self.num_agents

    # ---- the step -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if getattr(self, "_closed", False):
            raise TaskConfigError(f"{type(self).__name__} was closed (close()); its simulator is gone, build a new task")

    def check_env_ids(self, env_ids) -> torch.Tensor:
        """``env_ids`` as a long tensor on the task's device; floats, negative ids and ids past the
        last env are refused."""
        try:
            ids = env_ids if torch.is_tensor(env_ids) else torch.as_tensor(np.asarray(env_ids))
        except (TypeError, ValueError, RuntimeError):
            ids = None
        if ids is None or ids.device.type == "meta" or (ids.numel() and (ids.dtype == torch.bool or ids.is_floating_point()
                                                                        or ids.is_complex())):
            raise TaskConfigError(f"env ids must be integers in [0, {self.num_envs - 1}], got {env_ids!r}")
        ids = ids.to(self.device, torch.long).view(-1)
        if ids.numel() and bool(((ids < 0) | (ids >= self.num_envs)).any()):
            bad = ids[(ids < 0) | (ids >= self.num_envs)].tolist()
            raise TaskConfigError(f"env ids must lie in [0, {self.num_envs - 1}] ({self.num_envs} envs), got {bad[:5]}")
        return ids

    def step(self, actions: torch.Tensor):
        self._check_open()
        if torch.is_tensor(actions) and actions.device.type == "meta":
            raise TaskConfigError("actions are on the meta device, which holds no values; pass a tensor "
                                  f"with values (on {self.rl_device})")
        kind = actions.dtype if torch.is_tensor(actions) else np.asarray(actions).dtype
        if kind in (torch.bool, torch.complex64, torch.complex128) or getattr(kind, "kind", None) in ("b", "c"):
            raise TaskConfigError(f"actions must be real numbers (float), got dtype {kind}; convert them, "
                                  "e.g. actions.float()")
        # Detached: physics is not differentiable here, and a client such as rl-games' SAC player
        # hands over actions that still carry grad.
        actions = torch.as_tensor(actions, device=self.device, dtype=torch.float32).detach()
        if actions.shape != (self.num_envs, self.num_actions):
            raise TaskConfigError(f"actions must have shape ({self.num_envs}, {self.num_actions}), "
                                  f"got {tuple(actions.shape)}")
        # One reduction decides: the sum is finite unless an action is NaN or +-inf (or the sum
        # overflows, which only sends it down the exact per-row check below)
        bad_action = None
        if not math.isfinite(actions.sum().item()):
            bad_action = (actions - actions).ne(0.0).any(-1)            # (N,) x - x is NaN for NaN and +-inf
            actions = actions.masked_fill(bad_action[:, None], 0.0)
        if self.latency is not None:
            actions = self.latency.delay_actions(actions)
        if self.randomizer is not None:
            actions = self.randomizer.noise_actions(actions)
        actions = torch.clamp(actions, -self.clip_actions, self.clip_actions)

        substep_delay = self.latency is not None and self.latency.has_substep_delay
        ctrl_from = self.engine.ctrl.clone() if self.ctrl_ramp_chunks > 1 or substep_delay else None
        self.pre_physics_step(actions)
        for i in range(self.control_freq_inv):
            if self.force_render:
                self.render()
            self._simulate(ctrl_from if i == 0 else None)
        self.progress_buf += 1
        self.randomize_buf += 1             # IsaacGymEnvs counts it every step, randomizing or not

        self.post_physics_step()
        unstable = self.engine.unstable
        terminated = torch.logical_or(self.reset_buf, unstable)
        if bad_action is not None:
            terminated |= bad_action
            self.nan_action_count += bad_action.sum()
        truncated = self.progress_buf >= self.max_episode_length
        # new tensors every step (callers may keep last step's): truncated & ~terminated, and done
        n, long_ = self.num_envs, dict(dtype=torch.long, device=self.device)
        self.timeout_buf = torch.gt(truncated, terminated, out=torch.empty(n, **long_))
        self.reset_buf = torch.logical_or(terminated, truncated, out=torch.empty(n, **long_))
        self.unstable_count += unstable.sum()
        self.extras["time_outs"] = self.timeout_buf.to(self.rl_device)
        self.extras["nan_actions"] = self.nan_action_count.to(self.rl_device)
        self.extras["unstable_envs"] = self.unstable_count.to(self.rl_device)

        if self.randomizer is not None:
            self.randomizer.on_step()
        if self.auto_reset:
            done_ids = self.reset_buf.nonzero(as_tuple=False).squeeze(-1)
            if len(done_ids) > 0:
                self._start_episodes(done_ids)
        self._observe()
        return self.obs_dict, self.rew_buf.to(self.rl_device), \
            self.reset_buf.to(self.rl_device), self.extras

    def _simulate(self, ctrl_from: torch.Tensor | None) -> None:
        """One simulate(): ``substeps`` physics steps. With ``ctrlRampChunks`` > 1 the controls ramp
        from ``ctrl_from`` to the new ones in that many pieces, as a robot's trajectory interpolator
        does: a step change of servo targets every control period shakes grasped objects loose."""
        n = self.sim_params.substeps
        if ctrl_from is not None and self.latency is not None and self.latency.has_substep_delay:
            self.latency.simulate(self.engine, ctrl_from, self.engine.ctrl.clone(), n)
            return
        if ctrl_from is None or self.ramp_fraction is None:
            self.engine.step(n)
            return
        ctrl_to = self.engine.ctrl
        self.engine.step_controls(ctrl_from[:, None] + self.ramp_fraction * (ctrl_to - ctrl_from)[:, None])

    def _start_episodes(self, env_ids: torch.Tensor) -> None:
        """New episodes for ``env_ids``: re-randomize those due, then the task's reset_idx."""
        if self.randomizer is not None:
            self.randomizer.on_reset(env_ids)
        if self.latency is not None:
            self.latency.reset(env_ids)
        self._ids_checked = True          # from reset() (checked) or from reset_buf (valid by construction)
        try:
            self.reset_idx(env_ids)
        finally:
            self._ids_checked = False

    def _observe(self, env_ids: torch.Tensor | None = None) -> None:
        """Observations and states from the current state; noise and clipping applied once, to the
        rows of ``env_ids`` (all rows when None)."""
        self.compute_observations()
        if self.num_states > 0:
            self.compute_states()
        rows = self.obs_buf if env_ids is None else self.obs_buf[env_ids]
        if self.randomizer is not None:
            rows = self.randomizer.noise_observations(rows)
        rows = torch.clamp(rows, -self.clip_obs, self.clip_obs)
        if self.latency is not None:
            rows = self.latency.delay_observations(rows, env_ids)
        # a new tensor every time, never written in place: callers keep last step's observation
        if env_ids is None:
            self.obs_processed = rows
        else:
            self.obs_processed = self.obs_processed.clone()
            self.obs_processed[env_ids] = rows
        self.obs_dict["obs"] = self.obs_processed.to(self.rl_device)
        if self.num_states > 0:
            self.obs_dict["states"] = self.get_state()

    def get_state(self) -> torch.Tensor:
        return torch.clamp(self.states_buf, -self.clip_obs, self.clip_obs).to(self.rl_device)

    def reset(self, env_ids=None) -> dict:
        """Start new episodes for ``env_ids`` (every env when None) and return the observations:
        the only reset path. Only the reset envs' rows get new observation noise."""
        self._check_open()
        if env_ids is None:
            self._start_episodes(torch.arange(self.num_envs, device=self.device))
            self._observe()
        else:
            env_ids = self.check_env_ids(env_ids)
            if len(env_ids) > 0:
                self._start_episodes(env_ids)
                self._observe(env_ids)
        return self.obs_dict

    def reset_done(self):
        """IsaacGymEnvs' ``reset_done``: with auto-reset the done envs were already reset in ``step``
        and nothing is pending; otherwise reset the envs whose episodes ended."""
        if self.auto_reset:
            return self.obs_dict, torch.zeros(0, dtype=torch.long, device=self.device)
        done_ids = self.reset_buf.nonzero(as_tuple=False).squeeze(-1)
        return self.reset(done_ids), done_ids

    def log_episode_terms(self, env_ids: torch.Tensor, sums: torch.Tensor, names) -> torch.Tensor:
        """Per-step mean of each reward term (``sums`` (N, terms), in ``names`` order) over the episodes
        of ``env_ids`` that just ended, into ``extras["episode"]["rew_<name>"]``; clears those rows.
        Returns the episode lengths (len(env_ids), 1)."""
        length = self.progress_buf[env_ids].clamp_min(1).float()[:, None]
        means = (sums[env_ids] / length).mean(0)
        episode = self.extras.setdefault("episode", {})
        for k, mean in zip(names, means.unbind(0)):
            episode[f"rew_{k}"] = mean
        sums.index_fill_(0, env_ids, 0.0)
        return length

    def zero_actions(self) -> torch.Tensor:
        return torch.zeros(self.num_envs, self.num_actions, device=self.rl_device)

    def obs_slice(self, obs: torch.Tensor, names) -> torch.Tensor:
        """The named observation slices or fields of ``obs`` (..., num_obs), concatenated in ``names`` order."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.obs_views]
        if unknown:
            raise TaskConfigError(f"unknown observation slice(s) {unknown}; {type(self).__name__} has {list(self.obs_views)}")
        return torch.cat([obs[..., self.obs_views[n]] for n in names], dim=-1)

    # ---- rendering ----------------------------------------------------------------------
    def render(self, mode: str = "rgb_array", env_id: int = 0):
        """RGB frame of one env from MuJoCo's offscreen renderer (EGL or OSMesa when headless)."""
        self._check_open()
        from ...utils.render import render_env
        return render_env(self, env_id)

    def visual_markers(self, env_id: int) -> list:
        """What the task asks of ``env_id`` (a target, a heading), as ``markers.Marker``s in world
        coordinates for rendered frames; default none."""
        return []

    def draw_markers(self, scene, env_id: int = 0) -> int:
        """Add ``env_id``'s visual markers to an updated ``mujoco.MjvScene`` (renderers, the viewer);
        the model, physics and observations never see them."""
        return draw_markers(scene, self.visual_markers(env_id))

    def set_train_info(self, env_frames, *args, **kwargs):
        pass

    def get_env_state(self):
        return None

    def set_env_state(self, env_state):
        pass

    def close(self) -> None:
        if not getattr(self, "_closed", False):
            self.engine.close()
        self._closed = True
