"""IsaacGymEnvs' VecTask contract on the humanoid tasks, C MuJoCo backend, a few envs.

Shapes and dtypes of what ``step`` returns, the named observation layout, clipping, the control
decimation, time limits versus failures, auto-reset, NaN actions, the IsaacGymEnvs ``Humanoid``
config file, and seeding.
"""
from __future__ import annotations

import math

import gymnasium
import mujoco
import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.errors import UserError

from conftest import load_ige_task_cfg, make_cfg, make_task
from isaacgymenvs_hrl.sim import SimError
from isaacgymenvs_hrl.tasks import Humanoid, HumanoidLocomotion
from isaacgymenvs_hrl.tasks.base.vec_task import TaskConfigError

N = 8
HEIGHT = 0          # column of the torso height in the observation (first entry of "proprio")


def _knock_down(task, env_ids):
    """Put ``env_ids`` on the floor, lying on their side with the torso at 0.5 m (< terminationHeight)."""
    n = len(env_ids)
    qpos = task.default_qpos.repeat(n, 1)
    qpos[:, 2] = 0.5
    qpos[:, 3:7] = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0])
    task.engine.reset_envs(torch.as_tensor(env_ids), qpos, torch.zeros(n, task.engine.model.nv))


def _random_actions(n, num_actions, seed, steps):
    gen = torch.Generator().manual_seed(seed)
    return [0.3 * torch.randn(n, num_actions, generator=gen) for _ in range(steps)]


# ---- the step's outputs -------------------------------------------------------------------
def test_step_returns_the_isaacgymenvs_contract():
    task = make_task(make_cfg(env={"numEnvs": N}))
    assert task.num_envs == N and task.num_actions == 21
    obs_dict = task.reset()
    assert set(obs_dict) == {"obs", "states"}          # states: the asymmetric critic's input
    assert obs_dict["obs"].shape == (N, task.num_obs) and obs_dict["obs"].dtype == torch.float32
    assert obs_dict["states"].shape == (N, task.num_states) == (N, task.spec.num_states)
    raw = obs_dict["states"][:, task.state_slices["obs_raw"]]
    torch.testing.assert_close(raw, task.obs_buf.clamp(-task.clip_obs, task.clip_obs))

    obs_dict, rew, reset, extras = task.step(task.zero_actions())
    obs = obs_dict["obs"]
    assert obs.shape == (N, task.num_obs) and obs.dtype == torch.float32
    assert torch.isfinite(obs).all()
    assert rew.shape == (N,) and rew.dtype == torch.float32 and torch.isfinite(rew).all()
    assert reset.shape == (N,) and reset.dtype == torch.long
    assert extras["time_outs"].shape == (N,)
    assert set(extras["time_outs"].unique().tolist()) <= {0, 1}
    for key in ("nan_actions", "unstable_envs"):
        assert key in extras

    assert isinstance(task.observation_space, gymnasium.spaces.Box)
    assert isinstance(task.action_space, gymnasium.spaces.Box)
    assert task.observation_space.shape == (task.num_obs,)
    assert task.action_space.shape == (task.num_actions,)
    assert task.observation_space.dtype == np.float32 and task.action_space.dtype == np.float32
    np.testing.assert_array_equal(task.action_space.low, -1.0)
    np.testing.assert_array_equal(task.action_space.high, 1.0)
    assert task.get_number_of_agents() == 1

    with pytest.raises(ValueError, match=r"actions must have shape \(8, 21\)"):
        task.step(torch.zeros(N, 20))
    for bad in (torch.zeros(N, 21, dtype=torch.bool), np.zeros((N, 21), dtype=complex)):
        with pytest.raises(UserError, match="actions must be real numbers"):
            task.step(bad)
    task.close()


def test_obs_slices_partition_the_observation():
    task = make_task(make_cfg(env={"numEnvs": N, "clipObservations": 100.0}))
    assert list(task.obs_slices) == ["proprio", "task"]
    sizes = {k: s.stop - s.start for k, s in task.obs_slices.items()}
    assert sizes == {"proprio": 52, "task": 3}
    # Contiguous, in order, covering [0, num_obs) with no gap or overlap.
    edges = [0] + [s.stop for s in task.obs_slices.values()]
    assert [s.start for s in task.obs_slices.values()] == edges[:-1]
    assert edges[-1] == task.num_obs == 55 == task.observation_space.shape[0]

    obs = task.reset()["obs"]
    obs, *_ = task.step(task.zero_actions())
    obs = obs["obs"]
    torch.testing.assert_close(task.obs_slice(obs, ["task"]), task.commands)
    torch.testing.assert_close(obs[:, task.obs_slices["proprio"]][:, HEIGHT], task.engine.qpos[:, 2])
    torch.testing.assert_close(task.obs_slice(obs, ["proprio", "task"]), obs)
    swapped = task.obs_slice(obs, ["task", "proprio"])
    torch.testing.assert_close(swapped[:, :3], task.commands)
    task.close()


# ---- clipping ---------------------------------------------------------------------------------
def test_clip_observations():
    task = make_task(make_cfg(env={"numEnvs": N, "clipObservations": 0.5}))
    obs = task.reset()["obs"]
    assert obs.abs().max() <= 0.5
    for actions in _random_actions(N, task.num_actions, seed=0, steps=5):
        obs = task.step(actions)[0]["obs"]
        assert obs.abs().max() <= 0.5
    # The clip did act (the torso height alone is ~1.2 m), and only where needed.
    assert task.obs_buf.abs().max() > 0.5
    torch.testing.assert_close(obs, task.obs_buf.clamp(-0.5, 0.5))
    task.close()


def test_clip_actions():
    """clipActions=0.5: actions of +-100 step exactly like actions of +-0.5, unlike +-1 (the motors'
    own ctrlrange is [-1, 1], so only a clip below 1 shows the task's own clipping)."""
    cfg = make_cfg(env={"numEnvs": N, "clipActions": 0.5})
    signs = torch.sign(torch.randn(N, 21, generator=torch.Generator().manual_seed(2)))
    results = {}
    for scale in (100.0, 0.5, 1.0):
        task = make_task(cfg, seed=4)
        task.reset()
        obs = task.step(scale * signs)[0]["obs"].clone()
        torch.testing.assert_close(task.actions, 0.5 * signs)          # what the task used
        results[scale] = (obs, task.engine.qpos.clone())
        task.close()
    assert torch.equal(results[100.0][1], results[0.5][1])
    assert torch.equal(results[100.0][0], results[0.5][0])
    assert torch.equal(results[1.0][1], results[0.5][1])    # +-1 is clipped to +-0.5 too
    # Without the task's clip, +-1 and +-0.5 would differ: check with clipActions=1.
    task = make_task(make_cfg(env={"numEnvs": N, "clipActions": 1.0}), seed=4)
    task.reset()
    task.step(1.0 * signs)
    assert not torch.allclose(task.engine.qpos, results[0.5][1], atol=1e-4)
    task.close()


# ---- control decimation --------------------------------------------------------------------
def test_control_frequency_inv_steps_the_physics_that_many_times():
    actions = _random_actions(N, 21, seed=5, steps=2)
    # Seed, build and reset one task after the other: they share torch's global generator.
    twice = make_task(make_cfg(env={"numEnvs": N, "controlFrequencyInv": 2}), seed=9)
    twice.reset()
    once = make_task(make_cfg(env={"numEnvs": N, "controlFrequencyInv": 1}), seed=9)
    once.reset()
    assert twice.dt == pytest.approx(0.04) and once.dt == pytest.approx(0.02)
    assert torch.equal(twice.engine.qpos, once.engine.qpos)

    twice.step(actions[0])                   # 2 x 4 physics steps with actions[0] held
    once.step(actions[0])                    # 4 physics steps
    assert not torch.allclose(twice.engine.qpos, once.engine.qpos, atol=1e-4)
    once.step(actions[0])                    # 4 more with the same actions
    torch.testing.assert_close(twice.engine.qpos, once.engine.qpos, rtol=0, atol=1e-6)
    torch.testing.assert_close(twice.engine.qvel, once.engine.qvel, rtol=0, atol=1e-5)
    assert twice.progress_buf.tolist() == [1] * N and once.progress_buf.tolist() == [2] * N
    twice.close()
    once.close()


# ---- episode ends -----------------------------------------------------------------------------
def test_time_limit_resets_every_env_as_a_time_out():
    task = make_task(make_cfg(env={"numEnvs": N, "episodeLength": 5}))
    task.reset()
    for i in range(1, 5):
        obs, rew, reset, extras = task.step(task.zero_actions())
        assert reset.sum() == 0 and extras["time_outs"].sum() == 0, f"step {i}"
        assert task.progress_buf.tolist() == [i] * N
    assert torch.all(task.engine.qpos[:, 2] > 1.0)            # still standing after 4 steps
    _knock_down(task, [0])            # env 0 fails in the last step: a failure, not a time-out
    obs, rew, reset, extras = task.step(task.zero_actions())
    assert reset.tolist() == [1] * N
    assert extras["time_outs"].tolist() == [0] + [1] * (N - 1)
    assert task.progress_buf.tolist() == [0] * N
    torch.testing.assert_close(obs["obs"][:, HEIGHT], torch.full((N,), 1.3))     # new episodes
    obs, rew, reset, extras = task.step(task.zero_actions())
    assert reset.sum() == 0 and extras["time_outs"].sum() == 0
    assert task.progress_buf.tolist() == [1] * N
    task.close()


def test_fallen_env_is_reset_as_a_failure_and_returns_a_fresh_observation():
    task = make_task(make_cfg(env={"numEnvs": N, "episodeLength": 100, "clipObservations": 100.0}))
    task.reset()
    for _ in range(3):
        task.step(task.zero_actions())
    _knock_down(task, [3])
    obs, rew, reset, extras = task.step(task.zero_actions())
    others = torch.tensor([i for i in range(N) if i != 3])
    assert reset[3] == 1 and reset[others].sum() == 0
    assert extras["time_outs"].sum() == 0                       # a failure, not a time-out
    assert rew[3] < rew[others].min()                           # the death cost
    # The returned observation is the first one of the next episode: standing, clock at 0.
    assert obs["obs"][3, HEIGHT] == pytest.approx(1.3, abs=1e-6)
    assert task.engine.qpos[3, 2] == pytest.approx(1.3, abs=1e-6)
    assert task.progress_buf[3] == 0 and torch.all(task.progress_buf[others] == 4)
    assert torch.all(obs["obs"][others, HEIGHT] > 1.0)
    assert "rew_death" in extras["episode"]
    task.close()


def test_nan_actions_reset_only_their_envs():
    actions = _random_actions(N, 21, seed=6, steps=2)
    bad = actions[0].clone()
    bad[2, 4] = float("nan")
    bad[5, :] = float("inf")
    fixed = actions[0].clone()
    fixed[[2, 5]] = 0.0                         # what the task substitutes for the bad rows
    task = make_task(make_cfg(env={"numEnvs": N}), seed=1)
    task.reset()
    twin = make_task(make_cfg(env={"numEnvs": N}), seed=1)
    twin.reset()
    assert torch.equal(task.engine.qpos, twin.engine.qpos)

    obs, rew, reset, extras = task.step(bad)
    t_obs, t_rew, t_reset, _ = twin.step(fixed)
    others = torch.tensor([0, 1, 3, 4, 6, 7])
    assert reset[[2, 5]].tolist() == [1, 1] and reset[others].sum() == 0
    assert extras["time_outs"].sum() == 0
    assert int(extras["nan_actions"]) == 2
    assert torch.isfinite(obs["obs"]).all() and torch.isfinite(rew).all()
    assert torch.isfinite(task.engine.qpos).all() and torch.isfinite(task.engine.qvel).all()
    # Other envs are unaffected: they match a twin that never saw a NaN.
    assert torch.equal(obs["obs"][others], t_obs["obs"][others])
    assert torch.equal(rew[others], t_rew[others])
    assert t_reset.sum() == 0

    obs, rew, reset, extras = task.step(actions[1])
    t_obs, *_ = twin.step(actions[1])
    assert torch.equal(obs["obs"][others], t_obs["obs"][others])
    assert int(extras["nan_actions"]) == 2                 # a running count, not per step
    assert reset.sum() == 0
    task.close()
    twin.close()


# ---- the IsaacGymEnvs Humanoid config file ----------------------------------------------------
def test_humanoid_runs_with_isaacgymenvs_humanoid_yaml():
    cfg = load_ige_task_cfg("Humanoid", num_envs=N)
    assert cfg["name"] == "Humanoid" and cfg["physics_engine"] == "mujoco"
    assert cfg["env"]["asset"]["assetFileName"] == "mjcf/nv_humanoid.xml"   # aliased to ours
    torch.manual_seed(0)
    task = Humanoid(cfg, "cpu", "cpu", -1, True)
    assert task.num_envs == N and task.max_episode_length == 1000
    assert task.sim_params.dt == pytest.approx(0.0166) and task.sim_params.substeps == 2
    assert task.sim_params.num_threads == 2                   # sim.physx.num_threads
    assert task.engine.model.opt.timestep == pytest.approx(0.0083)
    assert task.death_cost == -1.0 and task.heading_weight == 0.5 and task.randomizer is None

    obs = task.reset()["obs"]
    assert obs.shape == (N, 55)
    torch.testing.assert_close(task.obs_slice(obs, ["task"]), torch.zeros(N, 3))  # no commands
    # Zero actions: IsaacGymEnvs' terms with the file's weights, recomputed here with MuJoCo's
    # own quaternion rotation: progress + alive 2 + 0.5 heading + 0.1 up - 0.25 joints at limit.
    obs, rew, reset, extras = task.step(task.zero_actions())
    assert reset.sum() == 0
    m = task.engine.model
    qpos, qvel = task.engine.qpos.double().numpy(), task.engine.qvel.double().numpy()
    for i in range(N):
        fwd, up = np.zeros(3), np.zeros(3)
        mujoco.mju_rotVecQuat(fwd, np.array([1.0, 0, 0]), qpos[i, 3:7])
        mujoco.mju_rotVecQuat(up, np.array([0, 0, 1.0]), qpos[i, 3:7])
        heading = 1.0 if fwd[0] > 0.8 else fwd[0] / 0.8
        frac = np.abs(2 * (qpos[i, 7:] - m.jnt_range[1:, 0]) / np.ptp(m.jnt_range[1:], axis=1) - 1)
        at_limit = np.sum(np.where(frac > 0.98, (frac - 0.98) / 0.02, 0.0))
        expected = qvel[i, 0] + 2.0 + 0.5 * heading + 0.1 * float(up[2] > 0.93) - 0.25 * at_limit
        assert rew[i].item() == pytest.approx(expected, abs=1e-4), f"env {i}"
    for actions in _random_actions(N, task.num_actions, seed=7, steps=10):
        obs, rew, reset, extras = task.step(actions)
        assert torch.isfinite(obs["obs"]).all() and torch.isfinite(rew).all()
    assert reset.sum() == 0

    _knock_down(task, [1])
    obs, rew, reset, extras = task.step(task.zero_actions())
    assert rew[1] == pytest.approx(-1.0)                        # deathCost replaces the reward
    assert reset[1] == 1 and extras["time_outs"][1] == 0
    task.close()


# ---- seeding and bad configs -----------------------------------------------------------------
def test_same_seed_same_observations():
    actions = _random_actions(N, 21, seed=8, steps=10)
    runs = []
    for seed in (123, 123, 124):
        task = make_task(make_cfg(env={"numEnvs": N}), seed=seed)
        trace = [task.reset()["obs"].clone()]
        for a in actions:
            obs, rew, reset, _ = task.step(a)
            trace += [obs["obs"].clone(), rew.clone(), reset.float()]
        runs.append(trace)
        task.close()
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not torch.allclose(runs[0][0], runs[2][0])          # another seed, other episodes


@pytest.mark.parametrize("num_envs", [0, -1, "many"])
def test_bad_num_envs(num_envs):
    with pytest.raises(TaskConfigError, match="num_envs must be a positive integer"):
        make_task(make_cfg(env={"numEnvs": num_envs}))


def test_missing_num_envs():
    cfg = make_cfg()
    del cfg["env"]["numEnvs"]
    with pytest.raises(TaskConfigError, match="env.numEnvs"):
        make_task(cfg)


def test_isaac_gym_physics_engine_in_task_config():
    with pytest.raises(SimError, match="Isaac Gym"):
        make_task(make_cfg(physics_engine="physx"))
