"""FrankaStack episodes restarted from demonstration states: hrl-collect stores the simulator state
behind each observation, the task restores it, and such episodes stay out of the success rates."""
from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack

from test_franka_tasks import stack_cfg


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "stack.hdf5"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", "task=FrankaStack", "num_envs=4",
                          "num_episodes=4", "policy=expert", "task.env.episodeLength=70", f"output={out}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return out


def demo_task(path, fraction=1.0, **env):
    torch.manual_seed(0)
    return FrankaStack(stack_cfg(episodeLength=40, demoResets={"path": str(path), "fraction": fraction}, **env),
                       "cpu", "cpu", -1, True)


def test_collect_stores_states_that_reset_restores(demos):
    data, _ = load_dataset(demos)
    n = len(data["observations"])
    task = demo_task(demos)
    assert data["infos.qpos"].shape == (n, task.engine.model.nq)
    assert data["infos.qvel"].shape == (n, task.engine.model.nv)
    obs = task.reset()["obs"]
    assert task.demo_start.all()
    # every new episode starts in the state behind some recorded observation, and observes it
    recorded = torch.as_tensor(data["observations"])
    best = torch.cdist(obs, recorded, compute_mode="donot_use_mm_for_euclid_dist").argmin(1)
    assert (obs - recorded[best]).abs().max() < 1e-4
    np.testing.assert_allclose(task.engine.qpos.numpy(), data["infos.qpos"][best.numpy()], atol=1e-5)
    # the expert's demonstrations lift the cube: some recorded states hold it off the table
    assert (data["obs"]["objects"][:, 2] > 0.05).any()


def test_fraction_mixes_standard_and_demo_starts(demos):
    task = demo_task(demos, fraction=0.5, numEnvs=64)
    task.reset()
    share = task.demo_start.float().mean().item()
    assert 0.25 < share < 0.75, share
    home = task.home_q
    standard = ~task.demo_start
    assert (task.arm_q()[standard] - home).abs().max() <= task.arm_reset_noise + 1e-6


def test_demo_started_episodes_stay_out_of_the_success_rates(demos):
    task = demo_task(demos)
    task.reset()
    task.episode_success[:] = True
    task.progress_buf[:] = 7
    task.reset_idx(torch.arange(task.num_envs))
    assert task.success_table() == {}
    assert task.extras["episode"]["success_demo_start"] == 1.0
    assert "success" not in task.extras["episode"]


def test_wrong_demo_files_are_clear_errors(demos, tmp_path):
    with pytest.raises(Exception, match="needs demoResets.path"):
        FrankaStack(stack_cfg(demoResets={"path": "", "fraction": 0.5}), "cpu", "cpu", -1, True)
    with pytest.raises(Exception, match="another scene"):
        demo_task(demos, objectSets=["cubes", "cylinders"])
    with pytest.raises(Exception, match="does not sample"):
        demo_task(demos, variants=["green_on_red"])
    stateless = tmp_path / "stateless.hdf5"
    stateless.write_bytes(demos.read_bytes())
    with h5py.File(stateless, "a") as f:
        del f["infos.qpos"]
    with pytest.raises(Exception, match="collect it again"):
        demo_task(stateless)
    other = tmp_path / "other.hdf5"
    other.write_bytes(demos.read_bytes())
    with h5py.File(other, "a") as f:
        f.attrs["metadata"] = f.attrs["metadata"].replace('"task": "FrankaStack"', '"task": "FrankaPegInHole"')
    with pytest.raises(Exception, match="holds FrankaPegInHole data"):
        demo_task(other)
