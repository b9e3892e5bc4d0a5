"""rl-games glue: the ``rlgpu`` vecenv over a VecTask, and agents and players that read checkpoints
without running code (``checkpoints.load_checkpoint``) and write them atomically."""
from __future__ import annotations

import os

from rl_games.algos_torch import a2c_continuous, a2c_discrete, players, sac_agent
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
        if getattr(self.env, "num_states", 0) > 0:      # privileged critic input (central_value_config)
            info["state_space"] = self.env.state_space
        # what a high-level agent needs to know about its action (LatentSkillEnv, mixture mode)
        info["hl_action_info"] = getattr(self.env, "hl_action_info", None)
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


from .checkpoints import (CheckpointError, atomic_torch_save, check_fits, load_checkpoint,  # noqa: E402,F401
                          require_parts)
from .distributed import DataParallel, SACDataParallel  # noqa: E402  (multi_gpu=True under torchrun)


class _AtomicSave:
    """rl-games' ``save`` through atomic_torch_save: checked, fsynced, renamed."""

    def save(self, fn):
        path = fn if fn.endswith(".pth") else fn + ".pth"
        print(f"=> saving checkpoint '{path}'")
        atomic_torch_save(self.get_full_state_weights(), path)


class _PPOCheckpoints(_AtomicSave):
    """Atomic, validated saves and weights-only restores for rl-games' PPO agents."""

    def restore(self, fn, set_epoch=True):
        state = load_checkpoint(fn)
        require_parts(state, ("model", "optimizer", "epoch", "frame"), fn)
        check_fits(self.model, state["model"], fn, "model")
        if getattr(self, "has_central_value", False):
            require_parts(state, ("assymetric_vf_nets",), fn)
            check_fits(self.central_value_net, state["assymetric_vf_nets"], fn, "assymetric_vf_nets",
                       hint="; the critic's privileged states differ")
        print(f"=> loading checkpoint '{fn}' (weights only)")
        self.set_full_state_weights(state, set_epoch=set_epoch)

    def restore_central_value_function(self, fn):
        state = load_checkpoint(fn)
        require_parts(state, ("assymetric_vf_nets",), fn)
        check_fits(self.central_value_net, state["assymetric_vf_nets"], fn, "assymetric_vf_nets")
        self.set_central_value_function_weights(state)


class ContinuousAgent(DataParallel, _PPOCheckpoints, a2c_continuous.A2CAgent):
    pass


class DiscreteAgent(DataParallel, _PPOCheckpoints, a2c_discrete.DiscreteA2CAgent):
    pass


class SACAgent(SACDataParallel, _AtomicSave, sac_agent.SACAgent):
    """rl-games SAC with our checkpoints, and ``max_epochs`` honoured even before an episode ends
    (rl-games checks it only after one has, so a short run on long episodes never stopped)."""

    class _EpochLimit(Exception):
        pass

    def restore(self, fn, set_epoch=True):
        state = load_checkpoint(fn)
        require_parts(state, ("actor", "critic", "critic_target", "actor_optimizer", "critic_optimizer",
                              "log_alpha_optimizer", "epoch", "frame"), fn)
        net = self.model.sac_network
        for part in ("actor", "critic", "critic_target"):
            check_fits(getattr(net, part), state[part], fn, part)
        print(f"=> loading checkpoint '{fn}' (weights only)")
        self.set_full_state_weights(state, set_epoch=set_epoch)

    def train_epoch(self):
        if self.max_epochs != -1 and self.epoch_num > self.max_epochs:
            raise self._EpochLimit
        return super().train_epoch()

    def train(self):
        try:
            return super().train()
        except self._EpochLimit:
            self.epoch_num -= 1
            self.save(os.path.join(self.nn_dir, f"last_{self.config['name']}_ep_{self.epoch_num}"))
            print("MAX EPOCHS NUM! (no episode had ended yet)")
            return self.last_mean_rewards, self.epoch_num


class _PlayerSummary:
    """Keeps the env's NaN-action / unstable-env counters of a test=True run for the summary."""

    last_extras = None

    def env_step(self, env, actions):
        obs, rewards, dones, infos = super().env_step(env, actions)
        if isinstance(infos, dict):
            self.last_extras = infos
        return obs, rewards, dones, infos

    def run(self):
        super().run()
        from .observer import _count
        extras = self.last_extras or {}
        nan, unstable = _count(extras.get("nan_actions")), _count(extras.get("unstable_envs"))
        print(f"summary: test=True, {self.games_num} games requested; NaN actions: {nan or 0}, "
              f"unstable envs reset: {unstable or 0}")

    def _restore_a2c(self, fn):
        state = load_checkpoint(fn)
        require_parts(state, ("model",), fn)
        check_fits(self.model, state["model"], fn, "model")
        print(f"=> loading checkpoint '{fn}' (weights only)")
        self.model.load_state_dict(state["model"])
        env_state = state.get("env_state")
        if self.env is not None and env_state is not None:
            self.env.set_env_state(env_state)


class PpoPlayerContinuous(_PlayerSummary, players.PpoPlayerContinuous):
    def restore(self, fn):
        self._restore_a2c(fn)


class PpoPlayerDiscrete(_PlayerSummary, players.PpoPlayerDiscrete):
    def restore(self, fn):
        self._restore_a2c(fn)


class SACPlayer(_PlayerSummary, players.SACPlayer):
    def restore(self, fn):
        state = load_checkpoint(fn)
        require_parts(state, ("actor", "critic", "critic_target"), fn)
        net = self.model.sac_network
        for part in ("actor", "critic", "critic_target"):
            check_fits(getattr(net, part), state[part], fn, part)
        print(f"=> loading checkpoint '{fn}' (weights only)")
        for part in ("actor", "critic", "critic_target"):
            getattr(net, part).load_state_dict(state[part])
        if self.normalize_input and "running_mean_std" in state:
            self.model.running_mean_std.load_state_dict(state["running_mean_std"])
