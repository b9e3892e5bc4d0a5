"""Mirrored and hindsight-relabelled humanoid data (hrl-collect mirror=True hindsight_steps=N)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.datasets.rollouts import relabel_command, with_mirror
from conftest import make_cfg, make_task

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def mirror(x: torch.Tensor, maps: dict, key: str) -> torch.Tensor:
    idx, sign = maps[key]
    return x[:, idx] * sign


def test_a_mirrored_humanoid_moves_as_the_mirror_image():
    """Env 1 starts as the reflection of env 0 and gets the reflected actions: its observations stay
    the reflection of env 0's, step after step, while the two envs differ (the map is not identity)."""
    task = make_task(make_cfg(env={"numEnvs": 2, "episodeLength": 500}))
    maps = task.mirror_maps()
    task.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        task.step(torch.rand(2, 21, generator=g) * 2 - 1)
    qpos, qvel = task.engine.qpos.clone(), task.engine.qvel.clone()
    qpos[1], qvel[1] = mirror(qpos, maps, "qpos")[0], mirror(qvel, maps, "qvel")[0]
    task.engine.reset_envs(torch.arange(2), qpos, qvel)
    task.commands[1] = task.commands[0] * torch.tensor([1.0, -1.0, -1.0])
    task.compute_observations()
    torch.testing.assert_close(mirror(task.obs_buf, maps, "obs")[0], task.obs_buf[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(task.achieved_command(qpos, qvel)[1],
                               task.achieved_command(qpos, qvel)[0] * torch.tensor([1.0, -1.0, -1.0]))
    for _ in range(20):
        actions = torch.rand(2, 21, generator=g) * 2 - 1
        actions[1] = mirror(actions, maps, "actions")[0]
        obs, rew, done, _ = task.step(actions)
        assert not done.any()
        o = obs["obs"]           # the commands may be resampled independently: compare proprio only
        torch.testing.assert_close(mirror(o, maps, "obs")[0, :52], o[1, :52], atol=1e-4, rtol=0)
        torch.testing.assert_close(rew[0], rew[1], atol=1e-4, rtol=0)
    assert (o[0, :52] - o[1, :52]).abs().max() > 0.05        # the two humanoids are not in the same state


def test_hindsight_relabel_averages_within_each_episode_only():
    # two episodes of 4 and 3 steps; the command slice is columns 1..3 of 4
    achieved = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    data = {"observations": np.zeros((7, 4), np.float32), "actions": np.zeros((7, 1), np.float32),
            "terminals": np.array([0, 0, 0, 1, 0, 0, 0], bool), "timeouts": np.array([0, 0, 0, 0, 0, 0, 1], bool)}
    out = relabel_command(data, achieved, start=1, steps=2)
    expected = np.stack([achieved[[0, 1]].mean(0), achieved[[1, 2]].mean(0), achieved[[2, 3]].mean(0),
                         achieved[3], achieved[[4, 5]].mean(0), achieved[[5, 6]].mean(0), achieved[6]])
    np.testing.assert_allclose(out["observations"][:, 1:], expected)
    assert (out["observations"][:, 0] == 0).all() and (data["observations"] == 0).all()   # input untouched


def test_with_mirror_appends_whole_reflected_episodes():
    task = make_task(make_cfg(env={"numEnvs": 1}))
    maps = task.mirror_maps()
    rng = np.random.default_rng(0)
    n = 5
    data = {"observations": rng.normal(size=(n, 55)).astype(np.float32),
            "actions": rng.normal(size=(n, 21)).astype(np.float32), "rewards": rng.normal(size=n).astype(np.float32),
            "terminals": np.array([0, 0, 0, 0, 1], bool), "timeouts": np.zeros(n, bool),
            "infos.qpos": rng.normal(size=(n, 28)).astype(np.float32),
            "infos.qvel": rng.normal(size=(n, 27)).astype(np.float32)}
    out = with_mirror(data, maps)
    assert all(len(v) == 2 * n for v in out.values())
    np.testing.assert_array_equal(out["terminals"][n:], data["terminals"])
    np.testing.assert_array_equal(out["rewards"][n:], data["rewards"])
    # reflecting twice is the identity; the yaw-rate command and the lateral velocity change sign
    twice = with_mirror({k: v[n:] for k, v in out.items()}, maps)
    for key in ("observations", "actions", "infos.qpos", "infos.qvel"):
        np.testing.assert_allclose(twice[key][n:], data[key])
    np.testing.assert_allclose(out["observations"][n:, 54], -data["observations"][:, 54])
    np.testing.assert_allclose(out["observations"][n:, 5], -data["observations"][:, 5])


def test_collect_refuses_mirror_and_hindsight_where_they_do_not_apply(tmp_path):
    """A bad hindsight_steps and a task without a 3-wide command slice get one clear line each,
    before any rollout and without writing a file."""
    import subprocess
    import sys
    for args, needle in ((["task=HumanoidHeading", "mirror=True"], "command-tracking humanoid task"),
                         (["task=HumanoidLocomotion", "hindsight_steps=-3"], "hindsight_steps must be")):
        res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", *args, "num_envs=2",
                              "num_episodes=1", f"output={tmp_path / 'd.hdf5'}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
        assert needle in res.stderr and "Traceback" not in res.stderr, res.stderr[-2000:]
        assert not (tmp_path / "d.hdf5").exists()
