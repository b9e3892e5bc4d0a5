"""The HRL entry point in subprocesses (``python -m isaacgymenvs_hrl.train``) with tiny settings:
a high level trained over a frozen LLC checkpoint from the command line, checkpoints swapped by
path, the discrete and mixture modes with their train configs, and clear errors.

Each subprocess spends most of its time importing torch and rl-games, so the error cases that
need no CLI-level check beyond the message run ``train.run`` in process on a Hydra-composed config;
the two the CLI must handle end to end (a train config that does not fit the mode, a missing LLC
file) run as subprocesses and also check that no traceback is printed.
"""
from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_hrl import llc_spec, write_llc

TRAIN = [sys.executable, "-m", "isaacgymenvs_hrl.train"]
HL = ["task=HumanoidLocation", "headless=True"]
# a short rollout (8 x 16 envs = 128 samples) for the runs that only have to complete
SHORT = ["num_envs=16", "max_iterations=1", "train.params.config.horizon_length=8",
         "train.params.config.minibatch_size=128"]


def hrl_train(args, cwd, timeout=300):
    # One torch intra-op thread: on a shared 2-core machine torch's default (one thread per core)
    # makes every small-MLP forward wait on a busy core (x10-x50 slower); MuJoCo's own thread pool
    # (sim.mujoco.num_threads) is not affected by this variable.
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(TRAIN + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_ok(args, cwd):
    res = hrl_train(HL + list(args), cwd, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def hl_checkpoint(cwd, experiment) -> dict:
    ckpts = sorted(glob.glob(str(Path(cwd) / "runs" / f"{experiment}_*" / "nn" / "*.pth")))
    assert ckpts, f"no high-level checkpoint under {cwd}/runs/{experiment}_*/nn"
    from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint
    return load_checkpoint(ckpts[-1])


@pytest.fixture(scope="module")
def llc_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("llcs")
    a = write_llc(d / "A.pt", llc_spec(latent_dim=4), seed=0)
    b = write_llc(d / "B.pt", llc_spec(latent_dim=6, modes=("continuous",), hidden=(32, 32)), seed=1)
    return d, a, b


@pytest.fixture(scope="module")
def run_a(llc_files):
    """The brief's run: HumanoidLocation, 32 envs, 2 iterations, over LLC A."""
    d, a, _ = llc_files
    before_hash = sha256(a)
    before = torch.load(a, weights_only=True)
    res = run_ok(["num_envs=32", "max_iterations=2", "experiment=hlA", f"task.env.llc.checkpoint={a}"], d)
    return d, a, before_hash, before, res


def _tensors(tree, prefix=""):
    """Every tensor of a nested dict of checkpoint weights, by dotted name."""
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))


def test_training_the_high_level_leaves_the_llc_checkpoint_untouched(run_a):
    d, a, before_hash, before, res = run_a
    assert "MAX EPOCHS NUM" in res.stdout
    assert sha256(a) == before_hash
    after = torch.load(a, weights_only=True)
    assert after["spec"] == before["spec"]
    old, new = dict(_tensors(before["weights"])), dict(_tensors(after["weights"]))
    assert old.keys() == new.keys() and len(old) > 0
    for name in old:
        assert torch.equal(old[name], new[name]), name
    ckpt = hl_checkpoint(d, "hlA")
    assert ckpt["epoch"] == 2
    assert not list(Path(d).glob("runs/hlA_*/nn/*.tmp*"))


def test_swapping_llc_checkpoints_changes_the_high_level_action_space(run_a, llc_files):
    d, a, b = llc_files
    run_ok(SHORT + ["experiment=hlB", f"task.env.llc.checkpoint={b}"], d)
    for experiment, latent_dim in (("hlA", 4), ("hlB", 6)):
        model = hl_checkpoint(d, experiment)["model"]
        assert model["a2c_network.mu.weight"].shape[0] == latent_dim, experiment
        assert model["a2c_network.sigma"].shape == (latent_dim,), experiment
        # the high level sees the task's full observation (proprio 52 + task 3)
        assert model["running_mean_std.running_mean"].shape == (55,), experiment


def test_discrete_mode_with_its_train_config(llc_files):
    d, a, _ = llc_files
    res = run_ok(SHORT + ["train=HRLDiscretePPO", "task.env.llc.mode=discrete", "experiment=hlD",
                          f"task.env.llc.checkpoint={a}"], d)
    assert "MAX EPOCHS NUM" in res.stdout
    model = hl_checkpoint(d, "hlD")["model"]
    assert model["a2c_network.logits.weight"].shape[0] == 3          # K = 3 skills


def test_mixture_mode_with_its_train_config(llc_files):
    d, a, _ = llc_files
    res = run_ok(SHORT + ["train=HRLMixturePPO", "task.env.llc.mode=mixture", "experiment=hlM",
                          f"task.env.llc.checkpoint={a}", "task.env.llc.reward=smdp"], d)
    assert "MAX EPOCHS NUM" in res.stdout
    assert "high-level gamma = 0.99^5" in res.stdout
    model = hl_checkpoint(d, "hlM")["model"]
    assert model["a2c_network.mu.weight"].shape[0] == 3 + 3 * 4     # K scores + K latents


@pytest.mark.parametrize("args, expected", [
    (lambda d, a: ["task.env.llc.mode=discrete", f"task.env.llc.checkpoint={a}"],
     ["task.env.llc.mode=discrete needs train.params.algo.name=a2c_discrete", "train=HRLDiscretePPO"]),
    (lambda d, a: [f"task.env.llc.checkpoint={d}/no_such_llc.pt"], ["LLC checkpoint not found", "no_such_llc.pt"]),
], ids=["discrete-without-its-train-config", "missing-file"])
def test_bad_llc_settings_give_a_clear_error(llc_files, tmp_path, args, expected):
    d, a, _ = llc_files
    res = hrl_train(HL + SHORT + args(tmp_path, a), tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out[-3000:]
    for needle in expected:
        assert needle in out, (needle, out[-2000:])
    assert "Traceback (most recent call last)" not in out, out[-3000:]


# ---- more bad settings, in process: the same train.run, without the import cost -----------------
def _corrupt(d):
    p = Path(d) / "corrupt.pt"
    p.write_bytes(b"\x00not a checkpoint" * 64)
    return p


def _franka(d):
    spec = llc_spec(modes=("continuous",))
    spec["task_family"] = "franka"
    return write_llc(Path(d) / "franka.pt", spec)


@pytest.mark.parametrize("args, expected", [
    (lambda d, a: ["task.env.llc.mode=options", f"task.env.llc.checkpoint={a}"], ["task.env.llc.mode must be"]),
    (lambda d, a: [f"task.env.llc.checkpoint={_corrupt(d)}"], ["truncated or corrupt"]),
    (lambda d, a: [f"task.env.llc.checkpoint={_franka(d)}"], ["task_family", "'humanoid'", "'franka'"]),
    (lambda d, a: ["task.env.llc.reward=max", f"task.env.llc.checkpoint={a}"], ["task.env.llc.reward"]),
    (lambda d, a: ["task.env.llc.steps=-2", f"task.env.llc.checkpoint={a}", "task.env.llc.mode=multires"],
     ["task.env.llc.steps must be >= 1, got -2"]),
], ids=["unknown-mode", "corrupt-file", "wrong-task-family", "unknown-reward", "negative-steps"])
def test_bad_llc_settings_in_process(llc_files, tmp_path, monkeypatch, args, expected):
    from hydra import compose, initialize_config_dir

    import isaacgymenvs_hrl.train as train
    from isaacgymenvs_hrl.errors import UserError
    from isaacgymenvs_hrl.paths import CFG_DIR

    d, a, _ = llc_files
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", ""))   # set_seed writes it
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
        cfg = compose(config_name="config", overrides=HL + SHORT + args(tmp_path, a))
    with pytest.raises(UserError) as info:
        train.run(cfg)
    for needle in expected:
        assert needle in str(info.value), (needle, str(info.value))
