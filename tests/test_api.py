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


# ---- hierarchical tasks, the same env factory as hrl-train ------------------------------------------------
def test_make_returns_the_hierarchical_env_with_the_high_levels_spaces():
    from isaacgymenvs_hrl.hrl import LatentSkillEnv
    envs = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocationHRL", num_envs=3, sim_device="cpu", rl_device="cpu")
    assert isinstance(envs, LatentSkillEnv) and not envs.task.auto_reset
    assert envs.action_space.shape == (3,) and envs.steps == 5          # humanoid/walk_bc's command, k = 5
    obs = envs.reset()["obs"]
    obs_dict, rew, done, extras = envs.step(torch.zeros(3, 3))
    assert obs.shape == obs_dict["obs"].shape == (3, envs.num_obs)
    assert int(envs.task.progress_buf[0]) == 5                           # one action = k control steps
    assert rew.shape == done.shape == extras["time_outs"].shape == (3,)


def test_make_honours_every_llc_setting_as_the_cli_does(capsys):
    envs = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocationHRL", num_envs=2, sim_device="cpu", rl_device="cpu",
                                 overrides=["task.env.llc.checkpoint=humanoid/walk_npmp", "task.env.llc.steps=3",
                                            "task.env.llc.reward=smdp", "task.env.llc.gamma=0.9",
                                            "task.env.llc.hl_obs=[task]"])
    assert envs.action_space.shape == (8,)                               # walk_npmp's latent
    assert envs.steps == 3 and envs.reward_mode == "smdp" and envs.llc_gamma == 0.9
    assert envs.hl_obs_names == ["task"] and envs.num_obs == envs.task.spec.view_sizes()["task"]
    assert "gamma^k = 0.9^3 = 0.72900" in capsys.readouterr().out


def test_auto_reset_false_gives_a_task_to_wrap_by_hand():
    from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc
    task = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocation", num_envs=2, sim_device="cpu", rl_device="cpu",
                                 auto_reset=False)
    assert not task.auto_reset
    envs = LatentSkillEnv(task, load_llc("humanoid/walk_npmp"), steps=2)
    envs.reset()
    assert envs.step(torch.zeros(2, 8))[0]["obs"].shape == (2, envs.num_obs)
    with pytest.raises(isaacgymenvs_hrl.UserError, match="auto_reset=False.*task=HumanoidLocation"):
        isaacgymenvs_hrl.make(seed=0, task="HumanoidLocationHRL", num_envs=2, sim_device="cpu", rl_device="cpu",
                              auto_reset=False)


def test_isaacgymenvs_humanoid_name_builds_the_humanoid(capsys):
    envs = isaacgymenvs_hrl.make(seed=0, task="Humanoid", num_envs=2, sim_device="cpu", rl_device="cpu")
    assert type(envs).__name__ == "Humanoid" and envs.num_actions == 21
    assert "task=Humanoid: IsaacGymEnvs' Humanoid is task=HumanoidRun here" in capsys.readouterr().out


def test_isaacgymenvs_arguments_without_effect_say_what_happens(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    envs = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=2, sim_device="cpu", rl_device="cpu",
                                 graphics_device_id=0, headless=False, force_render=True)
    out = capsys.readouterr().out
    for start in ("graphics_device_id=0: not used", "force_render=True: not used", "headless=False: no display"):
        assert sum(line.startswith(start) for line in out.splitlines()) == 1, out
    assert not envs.force_render                    # no frame is rendered at every physics step
    envs.step(torch.zeros(2, 21))


# ---- an outside PPO loop: the one docs/python_api.md shows, as a user would copy it ----------------------
def _docs_ppo_loop() -> str:
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "python_api.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "ITERATIONS" in b]
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.parametrize("task, action_dim", [("HumanoidLocation", 21), ("HumanoidLocationHRL", 3)])
def test_the_documented_ppo_loop_trains_flat_and_hierarchical_tasks(task, action_dim):
    code = _docs_ppo_loop()
    for old, new in (('"HumanoidLocationHRL", 64, 32, 150', f'"{task}", 4, 8, 3'),
                     ('rl_device="cpu")', 'rl_device="cpu", overrides=["task.env.episodeLength=10"])')):
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    before = {}
    scope = {"__name__": "ppo_example"}
    code = code.replace("agent = Agent()\n",
                        "agent = Agent()\nbefore.update({k: v.clone() for k, v in agent.state_dict().items()})\n")
    scope["before"] = before
    exec(compile(code, "docs/python_api.md", "exec"), scope)
    assert scope["act_dim"] == action_dim
    agent = scope["agent"]
    assert any(not torch.equal(before[k], v) for k, v in agent.state_dict().items()), "PPO changed nothing"
    # episodes of 10 control steps end inside 3 x 8 steps (time-outs): their returns were recorded
    assert scope["finished_returns"] and all(torch.isfinite(torch.tensor(scope["finished_returns"])))
    assert scope["b"]["dones"].sum() > 0
