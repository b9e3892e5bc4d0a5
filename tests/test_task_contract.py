"""The task contract: TaskSpec declared once, one reset path, observations processed once per
control step, and the LLC seeing exactly what the datasets store (real MuJoCo tasks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_cfg, make_task
from isaacgymenvs_hrl.datasets.rollouts import collect
from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc, wrap_module
from isaacgymenvs_hrl.tasks import isaacgym_task_map
from isaacgymenvs_hrl.tasks.base.spec import TaskSpec
from isaacgymenvs_hrl.tasks.humanoid_location import HumanoidLocation

NOISE = {"randomize": True, "randomization_params": {
    "observations": {"range": [0.0, 0.05], "operation": "additive", "distribution": "gaussian"}}}


class CountingNoise:
    """Wraps the task's randomizer: counts observation-noise draws and the rows they cover."""

    def __init__(self, task):
        self.inner, self.rows = task.randomizer.noise_observations, []
        task.randomizer.noise_observations = self

    def __call__(self, obs):
        self.rows.append(obs.shape[0])
        return self.inner(obs)


def noisy_location(n, auto_reset):
    cfg = make_cfg(name="HumanoidLocation", env={"numEnvs": n}, task=NOISE)
    return make_task(cfg, seed=0, task_cls=HumanoidLocation, auto_reset=auto_reset)


def proprio_llc(tmp_path, task):
    """A real LLC file whose action is a fixed linear map of the proprio slice (so the test can
    recompute it from any observation)."""
    proprio = task.spec.obs_sizes()["proprio"]
    lin = torch.nn.Linear(proprio, task.num_actions)
    torch.nn.init.normal_(lin.weight, std=0.05)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, obs, z):
            return torch.tanh(self.lin(obs) + z.sum(-1, keepdim=True))
    path = wrap_module(tmp_path / "lin.llc.pt", Net(), torch.zeros(2, proprio), torch.zeros(2, 2),
                       task_family="humanoid", obs=[["proprio", proprio]],
                       action={"dim": task.num_actions, "control_type": task.spec.control_type},
                       latent={"dim": 2, "modes": ["continuous"], "normalization": "none"},
                       default_steps=3, control_dt=task.spec.control_dt)
    return load_llc(path, trust_code=True), Net()


def test_every_task_declares_its_spec():
    for name, cls in isaacgym_task_map.items():
        cfg = make_cfg(name=name, env={"numEnvs": 2})
        if name.startswith("Franka"):
            cfg["sim"] = {"dt": 0.05, "substeps": 10}
        task = make_task(cfg, task_cls=cls)
        spec = task.spec
        assert spec.name == cls.__name__ and spec.task_family in ("humanoid", "franka")
        assert spec.num_obs == task.num_obs and spec.action_dim == task.num_actions
        assert spec.control_type and spec.action_semantics and spec.reward_terms
        assert set(spec.obs_units) == set(spec.obs_sizes()), name
        assert spec.num_states == task.num_states > task.num_obs
        assert TaskSpec.from_dict(spec.to_dict()) == spec
        task.close()


def test_every_reward_term_is_real():
    """Each declared rew_<term> is logged when episodes end and the terms sum to the reward."""
    for name in ("Humanoid", "HumanoidLocation", "HumanoidLocomotion", "HumanoidHeading"):
        task = make_task(make_cfg(name=name, env={"numEnvs": 4, "episodeLength": 6}), task_cls=isaacgym_task_map[name])
        task.reset()
        total = torch.zeros(4)
        for _ in range(5):
            total += task.step(torch.rand(4, task.num_actions) * 2 - 1)[1]
        torch.testing.assert_close(task.episode_sums.sum(-1), total, atol=1e-4, rtol=1e-4)
        task.step(task.zero_actions())                          # time limit: every env ends
        episode = task.extras["episode"]
        assert {f"rew_{t}" for t in task.spec.reward_terms} <= set(episode), name
        assert any(abs(float(episode[f"rew_{t}"])) > 1e-6 for t in task.spec.reward_terms), name
        task.close()


def test_noise_is_drawn_once_per_control_step_in_a_macro_step(tmp_path):
    """LatentSkillEnv on a task with observation noise: one draw over all envs per control step,
    plus one draw over exactly the rows of the envs it resets; the LLC acts on that processed view."""
    task = noisy_location(4, auto_reset=False)
    llc, net = proprio_llc(tmp_path, task)
    env = LatentSkillEnv(task, llc, mode="continuous", steps=3, reward="sum")
    env.reset()
    counter = CountingNoise(task)
    seen = []
    original_step = task.step

    def spy_step(actions):
        seen.append((task.obs_processed.clone(), actions.clone()))
        return original_step(actions)
    task.step = spy_step
    env.step(torch.zeros(4, 2))
    assert counter.rows == [4, 4, 4]                            # nobody ended: 3 control steps, 3 draws
    for obs, actions in seen:                                   # the LLC read the processed view
        proprio = task.obs_slice(obs, ["proprio"])
        torch.testing.assert_close(actions, net(proprio, torch.zeros(4, 2)).clamp(-1, 1))
    assert not torch.equal(seen[-1][0], task.obs_buf)           # and that view is not the raw one
    # one env falls: the next macro step resets it once, with new noise on its row only
    qpos, qvel = task.engine.qpos[[1]].clone(), task.engine.qvel[[1]].clone()
    qpos[:, 2] = 0.7                                            # lying, below terminationHeight
    qpos[:, 3:7] = torch.tensor([0.5 ** 0.5, 0.5 ** 0.5, 0.0, 0.0])
    task.engine.reset_envs(torch.tensor([1]), qpos, qvel)
    counter.rows.clear()
    _, _, done, _ = env.step(torch.zeros(4, 2))
    assert done.tolist() == [0, 1, 0, 0]
    assert counter.rows[:3] == [4, 4, 4] and counter.rows[3:] == [1]


def test_collected_observations_are_what_the_llc_sees(tmp_path):
    """hrl-collect's dataset stores the processed observation each action was taken on: the same
    rows the LLC would read at that state."""
    task = noisy_location(3, auto_reset=True)
    llc, _ = proprio_llc(tmp_path, task)
    seen = []

    def policy(obs):
        seen.append((obs.clone(), task.obs_processed.clone(), task.obs_buf.clone()))
        return torch.zeros(3, task.num_actions)
    data = collect(task, policy, num_episodes=3, progress=False)
    obs, processed, raw = seen[0]
    assert torch.equal(obs, processed) and not torch.equal(processed, raw)
    first = torch.as_tensor(data["observations"][0])          # the first kept episode's first row
    assert any(torch.equal(first, row) for row in processed)
    assert not any(torch.equal(first, row) for row in raw.clamp(-task.clip_obs, task.clip_obs))


def test_public_reset_is_the_only_reset_path():
    task = make_task(make_cfg(env={"numEnvs": 4}), auto_reset=False)
    task.reset()
    for _ in range(3):
        task.step(task.zero_actions())
    before = task.obs_processed.clone()
    obs = task.reset([2])["obs"]
    assert task.progress_buf.tolist() == [3, 3, 0, 3]
    assert torch.equal(obs[[0, 1, 3]], before[[0, 1, 3]]) and not torch.equal(obs[2], before[2])
    # with auto_reset=False, done envs wait for their owner; reset_done resets exactly those
    task.reset_buf[:] = torch.tensor([0, 1, 0, 1])
    _, ids = task.reset_done()
    assert ids.tolist() == [1, 3] and task.progress_buf.tolist() == [3, 0, 0, 0]
    auto = make_task(make_cfg(env={"numEnvs": 2, "episodeLength": 2}))
    auto.reset()
    auto.step(auto.zero_actions())
    _, _, done, _ = auto.step(auto.zero_actions())
    assert done.tolist() == [1, 1] and auto.progress_buf.tolist() == [0, 0]
    assert auto.reset_done()[1].numel() == 0                  # already reset inside step


def test_heading_targets_are_resampled_and_errors_logged():
    """HumanoidHeading draws new direction / speed / facing targets every headingResampleTime and
    logs the episode's mean heading, speed and facing errors."""
    cfg = make_cfg(name="HumanoidHeading", env={"numEnvs": 3, "episodeLength": 30, "headingResampleTime": 0.2})
    task = make_task(cfg, task_cls=isaacgym_task_map["HumanoidHeading"])
    task.reset()
    first = task.target_angle.clone()
    for _ in range(task.heading_steps):
        task.step(task.zero_actions())
    assert not torch.equal(first, task.target_angle)
    rel = task.obs_slice(task.obs_buf, ["task"])
    assert rel.shape == (3, 5) and torch.allclose(rel[:, 0] ** 2 + rel[:, 1] ** 2, torch.ones(3))
    for _ in range(30):
        task.step(task.zero_actions())
    ep = task.extras["episode"]
    assert 0 <= float(ep["heading_error"]) <= 3.1416 and float(ep["speed_error"]) > 0


def test_a_low_level_can_read_one_field_of_a_slice(tmp_path):
    """``proprio.joint_pos`` names the same columns in the task, in a collected dataset and in an
    LLC: a low level trained on joint positions alone reads exactly those in the task."""
    from isaacgymenvs_hrl.datasets import load_dataset, write_dataset
    from isaacgymenvs_hrl.hrl import LLCError, validate_llc_for_task
    from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
    from isaacgymenvs_hrl.tasks import FrankaStack
    from isaacgymenvs_hrl.tasks.base.spec import view_ranges

    cfg = make_cfg(name="FrankaStack", env={"numEnvs": 2, "episodeLength": 6})
    cfg["sim"] = {"dt": 0.05, "substeps": 10}
    task = make_task(cfg, task_cls=FrankaStack, auto_reset=True)
    assert task.obs_views["proprio.joint_pos"] == slice(0, 7)
    assert task.obs_views["proprio.ee_quat"] == slice(18, 22)
    assert list(task.obs_slices) == ["proprio", "objects", "task", "grasp_yaw"]   # fields do not add slices
    obs = task.reset()["obs"]
    assert torch.equal(task.obs_slice(obs, ["proprio.joint_pos", "proprio.gripper"]), obs[:, [0, 1, 2, 3, 4, 5, 6, 14]])
    data = collect(task, lambda o: torch.rand(2, task.num_actions) * 2 - 1, num_episodes=2, progress=False)
    path = write_dataset(tmp_path / "d.hdf5", data, task.spec.dataset_meta())
    data, meta = load_dataset(path, require_slices=["proprio.joint_pos"])
    assert np.array_equal(data["obs"]["proprio.joint_pos"], data["observations"][:, 0:7])
    out = tmp_path / "q.llc.pt"
    train_bc(data, meta, BCConfig(policy_obs=["proprio.joint_pos"], condition_on=[], hidden=[8], epochs=1),
             str(out), log=lambda *a: None)
    llc = load_llc(out)
    assert llc.spec["obs"]["policy"] == [["proprio.joint_pos", 7]]
    validate_llc_for_task(llc, task, "continuous")
    llc.spec["obs"]["policy"] = [["proprio.joint_vel", 9]]
    with pytest.raises(LLCError, match="proprio.joint_vel: expected size 7"):
        validate_llc_for_task(llc, task, "continuous")
    task.close()
    with pytest.raises(ValueError, match="add up to 5, the slice has 6"):
        view_ranges([["a", 6]], {"a": [["x", 2], ["y", 3]]})


@pytest.mark.parametrize("name", ["HumanoidLocomotion", "FrankaStack"])
def test_actions_that_carry_grad_step_the_task(name):
    """rl-games' SAC player hands its actor's output, grad and all, to env.step."""
    task = make_task(make_cfg(name=name, env={"numEnvs": 2}), seed=0, task_cls=isaacgym_task_map[name])
    task.reset()
    actor = torch.nn.Linear(task.num_obs, task.num_actions)
    actions = torch.tanh(actor(task.obs_buf))
    assert actions.requires_grad
    obs, reward, _, _ = task.step(actions)
    assert torch.isfinite(reward).all() and not obs["obs"].requires_grad
