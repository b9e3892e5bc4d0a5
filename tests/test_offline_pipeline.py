"""Collect -> dataset -> behaviour cloning -> LLC checkpoint -> LatentSkillEnv, on real files."""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.datasets import DatasetError, load_dataset, write_dataset
from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc
from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
from isaacgymenvs_hrl.tasks import HumanoidLocation

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run(module, args, cwd):
    return subprocess.run([sys.executable, "-m", module] + args, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A dataset collected from a (briefly) trained rl-games policy: actions are a function of obs."""
    cwd = tmp_path_factory.mktemp("collect")
    res = run("isaacgymenvs_hrl.train", ["task=HumanoidLocomotion", "num_envs=8", "max_iterations=1",
                                         "experiment=teacher", "train.params.config.minibatch_size=256"], cwd)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    policy = next(cwd.glob("runs/teacher_*/nn/*.pth"))
    out = cwd / "walk.hdf5"
    res = run("isaacgymenvs_hrl.collect", ["task=HumanoidLocomotion", "num_envs=8", "num_episodes=10",
                                           f"output={out}", "task.env.episodeLength=60", f"policy={policy}"], cwd)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "wrote" in res.stdout
    return out


def test_dataset_round_trip(dataset):
    data, meta = load_dataset(dataset, require_slices=["proprio", "task"])
    assert meta["policy"].endswith(".pth") and meta["commit"]
    n = len(data["actions"])
    assert n > 0 and data["observations"].shape == (n, 55) and data["actions"].shape == (n, 21)
    assert meta["obs_layout"] == [["proprio", 52], ["task", 3]]
    assert meta["control_dt"] == pytest.approx(0.02) and meta["task"] == "HumanoidLocomotion"
    np.testing.assert_array_equal(np.concatenate([data["obs"]["proprio"], data["obs"]["task"]], 1),
                                  data["observations"])
    # complete episodes only: the last step of the file ends an episode, and every episode ends once
    ends = data["terminals"] | data["timeouts"]
    assert ends[-1] and ends.sum() >= 10
    assert not (data["terminals"] & data["timeouts"]).any()
    # episodes of length 60 end by time-out; falls end by terminal
    assert data["timeouts"].any() or data["terminals"].any()
    assert not list(dataset.parent.glob("*.tmp*")), "temporary file left behind"


def test_truncated_and_corrupt_datasets_are_clear_errors(dataset, tmp_path):
    raw = dataset.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="truncated|corrupt"):
        load_dataset(cut)
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(DatasetError, match="truncated or not an HDF5"):
        load_dataset(junk)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nope.hdf5")
    lacking = tmp_path / "lacking.hdf5"
    with h5py.File(lacking, "w") as f:
        f.create_dataset("observations", data=np.zeros((3, 2)))
    with pytest.raises(DatasetError, match="lacks the D4RL arrays"):
        load_dataset(lacking)
    with pytest.raises(DatasetError, match="no observation slice"):
        load_dataset(dataset, require_slices=["objects"])


def test_write_is_atomic_and_checks_inputs(tmp_path):
    with pytest.raises(DatasetError, match="missing arrays"):
        write_dataset(tmp_path / "x.hdf5", {"observations": np.zeros((2, 3))}, {"obs_layout": [["a", 3]]})
    data = {"observations": np.full((2, 3), np.nan, np.float32), "actions": np.zeros((2, 1), np.float32),
            "rewards": np.zeros(2), "terminals": np.zeros(2, bool), "timeouts": np.array([False, True])}
    p = write_dataset(tmp_path / "nan.hdf5", data, {"obs_layout": [["a", 3]]})
    assert list(tmp_path.iterdir()) == [p]
    with pytest.raises(DatasetError, match="NaN"):
        load_dataset(p)


def test_bc_llc_fits_the_data_and_drives_the_high_level_env(dataset, tmp_path):
    data, meta = load_dataset(dataset)
    out = tmp_path / "bc.llc.pt"
    result = train_bc(data, meta, BCConfig(epochs=15, hidden=[64, 64], batch_size=256), str(out),
                      log=lambda *_: None)
    hist = result["history"]["train_loss"]
    assert hist[-1] < 0.2 * hist[0], hist        # the teacher is deterministic: BC can fit it
    llc = load_llc(out)
    assert llc.spec["provenance"]["algorithm"] == "bc" and llc.spec["latent"]["dim"] == 3
    assert llc.spec["action"]["control_type"] == "joint_position"
    task = HumanoidLocation({"name": "HumanoidLocation", "env": {"numEnvs": 4, "episodeLength": 40},
                             "sim": {"dt": 0.02, "substeps": 4}}, "cpu", "cpu", -1, True, auto_reset=False)
    env = LatentSkillEnv(task, llc, mode="continuous", steps=5)
    obs = env.reset()["obs"]
    assert obs.shape == (4, 55)
    for _ in range(3):
        obs, rew, done, extras = env.step(torch.zeros(4, 3))
        assert torch.isfinite(rew).all() and extras["executed_substeps"].shape == (4,)
