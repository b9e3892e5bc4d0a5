"""rl-games glue: the ``rlgpu`` vecenv over a VecTask, and agents that save checkpoints atomically."""
from __future__ import annotations

import os

import torch
from rl_games.algos_torch import a2c_continuous, a2c_discrete
from rl_games.common import env_configurations, vecenv
from rl_games.common.ivecenv import IVecEnv


class RLGPUEnv(IVecEnv):
    """rl-games' view of a VecTask (IsaacGymEnvs' RLGPUEnv contract)."""

    def __init__(self, config_name, num_actors, **kwargs):
        self.env = env_configurations.configurations[config_name]["env_creator"](**kwargs)

    def step(self, actions):
        return self.env.step(actions)

    def reset(self):
        return self.env.reset()

    def reset_done(self):
        return self.env.reset_done()

    def get_number_of_agents(self):
        return self.env.get_number_of_agents()

    def get_env_info(self):
        info = {"action_space": self.env.action_space, "observation_space": self.env.observation_space}
        if self.env.num_states > 0:
            info["state_space"] = self.env.state_space
        return info

    def set_train_info(self, env_frames, *args, **kwargs):
        self.env.set_train_info(env_frames, *args, **kwargs)

    def get_env_state(self):
        return self.env.get_env_state()

    def set_env_state(self, env_state):
        self.env.set_env_state(env_state)


def register_env(env_creator) -> None:
    """Register the ``rlgpu`` env name and vecenv type with rl-games."""
    vecenv.register("RLGPU", lambda config_name, num_actors, **kwargs: RLGPUEnv(config_name, num_actors, **kwargs))
    env_configurations.register("rlgpu", {"vecenv_type": "RLGPU", "env_creator": env_creator})


def atomic_torch_save(state, path: str) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


class _AtomicSave:
    def save(self, fn):
        path = fn if fn.endswith(".pth") else fn + ".pth"
        print(f"=> saving checkpoint '{path}'")
        atomic_torch_save(self.get_full_state_weights(), path)


class ContinuousAgent(_AtomicSave, a2c_continuous.A2CAgent):
    pass


class DiscreteAgent(_AtomicSave, a2c_discrete.DiscreteA2CAgent):
    pass


def register_agents(runner) -> None:
    from rl_games.algos_torch import players

    from ..hrl.mixture_agent import MixtureAgent
    runner.algo_factory.register_builder("a2c_continuous", lambda **kw: ContinuousAgent(**kw))
    runner.algo_factory.register_builder("a2c_discrete", lambda **kw: DiscreteAgent(**kw))
    runner.algo_factory.register_builder("hrl_mixture", lambda **kw: MixtureAgent(**kw))
    runner.player_factory.register_builder("hrl_mixture", lambda **kw: players.PpoPlayerContinuous(**kw))
