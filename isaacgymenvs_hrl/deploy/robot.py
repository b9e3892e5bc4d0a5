"""The robot interface ``hrl-deploy`` drives: implement it once for your hardware.

    class MyRobot(RobotInterface):
        def observation_slices(self):          # optional: checked against the policy's metadata
            return [("proprio", 52), ("task", 3)]
        def read_observation(self):
            return time.monotonic(), np.array([...], dtype=np.float32)      # the task's observation
        def write_action(self, action):
            send(action)                                                    # (action_size,) float32

Contract, per control tick: ``read_observation`` returns the newest observation and the
``time.monotonic()`` second it was measured at (its age is reported), in the order and units of
the metadata's ``observation.slices``; ``write_action`` sends one action (the metadata's ``action``
block says what it means and its limits) and returns without waiting for the motion.
``episode_started`` is True on the first tick of a new episode (the policy's hold state is reset).

``SimRobot`` implements it with one env of a task: the simulator as the stand-in robot.
"""
from __future__ import annotations

import abc
import time

import numpy as np
import torch

from ..errors import UserError


class RobotInterface(abc.ABC):
    @abc.abstractmethod
    def read_observation(self) -> tuple[float, np.ndarray]:
        """(timestamp in time.monotonic() seconds, observation (obs_size,) float32)."""

    @abc.abstractmethod
    def write_action(self, action: np.ndarray) -> None:
        """Send one action (action_size,) float32."""

    def observation_slices(self) -> list | None:
        """[(name, size), ...] of the observation, when the robot knows it (checked before the loop)."""
        return None

    def action_size(self) -> int | None:
        return None

    def episode_started(self) -> bool:
        """True on the tick where a new episode begins (after read_observation)."""
        return False

    def start(self) -> None:
        """Called once before the first tick."""

    def stop(self) -> None:
        """Called once after the last tick (also on errors)."""


class SimRobot(RobotInterface):
    """One env of a task. ``write_action`` steps the simulation by one control period at once (its
    cost counts in the loop's compute time; a real robot's write returns immediately); episodes
    reset automatically and ``episode_started`` reports it."""

    def __init__(self, task, latency=None):
        if task.num_envs != 1:
            raise ValueError("SimRobot drives one env")
        self.task = task
        self.latency = latency              # a tasks.base.latency.Latency for 1 env, or None
        self._obs = None
        self._new_episode = True
        self._stamp = time.monotonic()
        self.episodes = 0
        self.episode_return = 0.0
        self.returns: list[float] = []

    def observation_slices(self):
        return [(n, s.stop - s.start) for n, s in self.task.obs_slices.items()]

    def action_size(self):
        return int(self.task.num_actions)

    def start(self):
        self.task.reset()
        self._stamp = time.monotonic()
        self._new_episode = True
        self._observe(new_episode=True)

    def _observe(self, new_episode: bool) -> None:
        obs = self.task.obs_processed
        if self.latency is not None:
            if new_episode:
                self.latency.reset([0])
            obs = self.latency.delay_observations(obs)
        self._obs = obs[0].detach().cpu().numpy().copy()

    def read_observation(self):
        return self._stamp, self._obs

    def episode_started(self) -> bool:
        started, self._new_episode = self._new_episode, False
        return started

    def write_action(self, action):
        a = torch.as_tensor(np.asarray(action, dtype=np.float32), device=self.task.device).view(1, -1)
        if self.latency is not None:
            a = self.latency.delay_actions(a)
        _, rew, done, _ = self.task.step(a)
        self._stamp = time.monotonic()          # the new state is measured now
        self.episode_return += float(rew[0])
        ended = bool(done[0])
        if ended:
            self.returns.append(self.episode_return)
            self.episode_return = 0.0
            self.episodes += 1
            self._new_episode = True
        self._observe(new_episode=ended)

    def stop(self):
        self.task.close()


def sim_robot(meta: dict, physics_engine: str = "mujoco", latency: dict | None = None,
              task_overrides: dict | None = None):
    """One env of the policy's task as the stand-in robot: the training run's config when its
    config.yaml is still beside the checkpoint, else the project's cfg/task/<task>.yaml."""
    # the stand-in needs the task stack; a hardware RobotInterface does not import it
    from ..export.run import build_task, read_run_config
    from ..learning.runs import run_config_path
    from ..tasks.base.latency import Latency
    from ..utils.task_config import load_task_config

    ckpt = meta.get("checkpoints", {}).get("policy", {}).get("path")
    if ckpt and run_config_path(ckpt).is_file():
        cfg = read_run_config(ckpt)
    else:
        cfg = {"task_name": meta["task"], "task": load_task_config(meta["task"])}
    task = build_task(cfg, num_envs=1, physics_engine=physics_engine, task_overrides=task_overrides,
                      auto_reset=True)
    lat = Latency(latency, 1, task.device, task.sim_params.substeps, where="latency") if latency else None
    if lat is not None and lat.has_substep_delay:
        raise UserError("latency.substep_delay needs the task's physics loop; the stand-in robot delays "
                        "whole control steps only (action_delay, observation_delay)")
    return SimRobot(task, lat if lat is not None and lat.enabled else None)
