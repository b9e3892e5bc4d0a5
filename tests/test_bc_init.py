"""bc_init: flat PPO fine-tuning a behaviour-cloned actor (the "BC fine-tuning" baseline of the
study), from a real hrl-collect dataset through a real hrl-train run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint

ENV = dict(os.environ, OMP_NUM_THREADS="1")
TRAIN = [sys.executable, "-m", "isaacgymenvs_hrl.train", "num_envs=4", "train.params.config.horizon_length=8",
         "train.params.config.minibatch_size=32", "headless=True"]


@pytest.fixture(scope="module")
def stack_data(tmp_path_factory):
    work = tmp_path_factory.mktemp("bc")
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", "task=FrankaStack", "policy=expert",
                          "num_envs=4", "num_episodes=4", "seed=1", "output=data.hdf5"],
                         cwd=work, capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-1500:]
    return work


def test_bc_init_fits_the_flat_actor_before_ppo(stack_data):
    """The log reports the fit; the first checkpoint's normalizer holds the dataset's statistics
    (set by the fit, then moved only by one epoch of rollouts)."""
    res = subprocess.run([*TRAIN, "task=FrankaStack", "bc_init=data.hdf5", "bc_epochs=5", "max_iterations=2", "bc_warmup=1",
                          "experiment=bc", "eval_summary=True", "task.env.episodeLength=20"],
                         cwd=stack_data, capture_output=True, text=True, timeout=600, env=ENV)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "actor frozen for 1 epochs" in out and "epoch 1: actor unfrozen" in out, out[-2000:]
    line = next(ln for ln in out.splitlines() if "behaviour cloning: actor fitted to" in ln)
    mse, var = float(line.split("MSE ")[1].split()[0]), float(line.split("target variance ")[1].rstrip(")"))
    assert mse < 0.5 * var, line                       # the actor learned the demonstrations' actions
    run = next((stack_data / "runs").glob("bc*"))
    ckpt = load_checkpoint(next(run.glob("nn/bc.pth")))
    assert torch.isfinite(ckpt["model"]["running_mean_std.running_mean"]).all()
    # the fitted start is kept, and eval_summary's "untrained" column is that network, not a random one
    start = load_checkpoint(run / "start_weights.pth")["model"]
    data_mean = torch.from_numpy(load_dataset(stack_data / "data.hdf5")[0]["observations"]).double().mean(0)
    torch.testing.assert_close(start["running_mean_std.running_mean"], data_mean)
    summary = json.loads((run / "eval_summary.json").read_text())
    assert summary["untrained_from"] == "start_weights.pth"
    # and hrl-eval reads it like any checkpoint of the run
    ev = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.evaluate", str(run / "start_weights.pth"),
                         "--episodes", "4", "--num-envs", "4", "--override", "task.env.episodeLength=20"],
                        cwd=stack_data, capture_output=True, text=True, timeout=600, env=ENV)
    assert ev.returncode == 0 and "4 episodes of FrankaStack: success" in ev.stdout, ev.stderr[-1500:]


@pytest.mark.parametrize("extra, message", [
    (["bc_init=missing.hdf5"], "bc_init: dataset not found: missing.hdf5"),
    (["bc_init=data.hdf5", "task=FrankaStackHRL"], "bc_init starts a flat actor from demonstrations"),
    (["bc_init=data.hdf5", "task=HumanoidLocomotion"], "give a dataset collected on this task"),
    (["bc_init=data.hdf5", "bc_epochs=0"], "bc_epochs"),
    (["bc_init=data.hdf5", "bc_warmup=-1"], "bc_warmup"),
])
def test_bc_init_refuses_what_cannot_work_in_one_line(stack_data, extra, message):
    args = [*TRAIN, "task=FrankaStack", "max_iterations=1", *extra]
    res = subprocess.run(args, cwd=stack_data, capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
