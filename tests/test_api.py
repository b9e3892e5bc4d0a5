"""``isaacgymenvs_hrl.make`` behaves like ``isaacgymenvs.make`` for scripts written against it."""
import pytest
import torch

import isaacgymenvs_hrl


def test_make_composes_config_and_builds_the_task():
    envs = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=6, sim_device="cpu",
                                 rl_device="cpu", graphics_device_id=-1, headless=True)
    assert type(envs).__name__ == "HumanoidLocomotion"
    assert envs.num_envs == 6 and envs.num_obs == 55 and envs.num_actions == 21
    assert envs.observation_space.shape == (55,) and envs.action_space.shape == (21,)


def test_cleanrl_style_loop():
    """The shape of CleanRL's Isaac Gym PPO loop: reset() -> obs_dict, step -> (obs_dict, rew, done, info)."""
    envs = isaacgymenvs_hrl.make(seed=1, task="HumanoidLocomotion", num_envs=4, sim_device="cpu", rl_device="cpu")
    next_obs = envs.reset()["obs"]
    returns = torch.zeros(4)
    for _ in range(20):
        action = torch.clamp(torch.randn(4, envs.num_actions), -1, 1)
        obs_dict, reward, done, info = envs.step(action)
        next_obs = obs_dict["obs"]
        returns += reward
        assert next_obs.shape == (4, 55) and reward.dtype == torch.float32 and done.shape == (4,)
        assert "time_outs" in info
    assert torch.isfinite(returns).all()


def test_make_is_seeded():
    def rollout():
        envs = isaacgymenvs_hrl.make(seed=3, task="HumanoidLocomotion", num_envs=3, sim_device="cpu", rl_device="cpu")
        obs = envs.reset()["obs"]
        g = torch.Generator().manual_seed(0)
        for _ in range(10):
            obs = envs.step(torch.rand(3, 21, generator=g) * 2 - 1)[0]["obs"].clone()
        return obs
    assert torch.equal(rollout(), rollout())


def test_unknown_task_is_a_clear_error():
    with pytest.raises(Exception, match="NoSuchTask"):
        isaacgymenvs_hrl.make(seed=0, task="NoSuchTask", num_envs=2, sim_device="cpu", rl_device="cpu")


def test_task_map_lists_the_tasks():
    assert {"HumanoidLocomotion", "Humanoid", "HumanoidLocation"} <= set(isaacgymenvs_hrl.isaacgym_task_map)
