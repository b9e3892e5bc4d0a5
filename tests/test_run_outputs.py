"""What an hrl-train run leaves and says (issue 37): run names after the task (and the LLC),
``nn/<name>.pth`` at the end of every run, a replay over another LLC refused naming both, the
minibatch fitted to the rollout, one line per IsaacGymEnvs key without effect, multirun outputs in
./runs without Hydra warnings, exactly the episodes hrl-collect was asked for, and optional
packages (wandb, MuJoCo Warp) named by their extra before anything is built."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import train_in_process
from isaacgymenvs_hrl.learning.checkpoints import run_names
from isaacgymenvs_hrl.learning.compat import fit_minibatch

ENV = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def _one(pattern, root: Path) -> Path:
    found = sorted(root.glob(pattern))
    assert len(found) == 1, (pattern, sorted(p.name for p in root.rglob("*")))
    return found[0]


def test_run_names_follow_the_task_and_the_llc():
    assert run_names("HRLDiscrete", "FrankaStack", "franka/stack_helms", "", "D") == \
        ("FrankaStackHRL", "FrankaStackHRL_stack_helms_D")
    assert run_names("HRLMixture", "HumanoidLocation", "llcs/walk_mix.llc.pt", "", "D") == \
        ("HumanoidLocationHRL", "HumanoidLocationHRL_walk_mix_D")
    assert run_names("HumanoidRun", "Humanoid", "", "", "D") == ("HumanoidRun", "HumanoidRun_D")
    assert run_names("mine", "FrankaStack", "franka/stack_helms", "mine", "D") == ("mine", "mine_D")


def test_hierarchical_run_is_named_after_task_and_llc_and_refuses_another_llc(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = train_in_process(
        ["task=FrankaStackHRL", "task.env.llc.prior=False", "train=HRLDiscretePPO", "num_envs=4", "max_iterations=2",
         "task.env.episodeLength=10", "train.params.config.horizon_length=4",
         "train.params.config.save_frequency=2"], capsys)
    assert status == 0, out[-3000:]
    run = _one("runs/FrankaStackHRL_stack_helms_*", tmp_path)
    names = sorted(p.name for p in (run / "nn").iterdir())
    assert "FrankaStackHRL.pth" in names, names
    last = [n for n in names if n.startswith("last_")]
    assert len(last) == 1 and "rew__" not in last[0], names          # rl-games' double save is folded
    assert f"checkpoint: runs/{run.name}/nn/FrankaStackHRL.pth" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["task"]["env"]["llc"]["checkpoint"] == "franka/stack_helms"

    ckpt = run / "nn" / "FrankaStackHRL.pth"
    for other, named in ((["task.env.llc.checkpoint=franka/stack_mrs"], "the LLC franka/stack_mrs"),
                         (["task=FrankaStack"], "no LLC (the flat task)")):
        status, out, err = train_in_process(["task=FrankaStackHRL", "task.env.llc.prior=False", "train=HRLDiscretePPO",
                                             "num_envs=2", "test=True", f"checkpoint={ckpt}", *other], capsys)
        assert status == 2, out[-2000:]
        assert "was trained over the LLC franka/stack_helms" in err and named in err, err
        assert "task.env.llc.checkpoint=franka/stack_helms" in err


@pytest.mark.parametrize("batch, configured, seq, expected", [
    (320, 1024, 1, 320), (320, 128, 1, 80), (192, 1024, 1, 192), (100, 32, 1, 25), (96, 40, 4, 32), (7, 4, 1, 1),
    (512, 512, 1, 512)])
def test_fit_minibatch_takes_the_largest_divisor_not_above_the_configured_size(batch, configured, seq, expected):
    assert fit_minibatch(batch, configured, seq) == expected


def test_flat_run_fits_the_minibatch_says_ignored_keys_and_ends_with_name_pth(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    status, out, _ = train_in_process(
        ["task=HumanoidLocomotion", "num_envs=10", "max_iterations=1", "task.env.episodeLength=8",
         "train.params.config.save_frequency=1", "pipeline=gpu", "graphics_device_id=1", "force_render=False",
         "headless=False"], capsys)
    assert status == 0, out[-3000:]
    lines = out.splitlines()
    for start in ("train.params.config.minibatch_size 1024 -> 320: num_envs * horizon_length (10 * 32 = 320)",
                  "pipeline=gpu: ", "graphics_device_id=1: not used", "force_render=False: not used",
                  "headless=False: no display"):
        assert sum(line.startswith(start) for line in lines) == 1, (start, out[-3000:])
    run = _one("runs/HumanoidLocomotion_*", tmp_path)
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["params"]["config"]["minibatch_size"] == 320
    names = sorted(p.name for p in (run / "nn").iterdir())
    assert "HumanoidLocomotion.pth" in names and len([n for n in names if n.startswith("last_")]) == 1, names
    assert not any("rew__" in n for n in names), names


def test_multirun_writes_to_runs_without_hydra_warnings(tmp_path):
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.train", "-m", "task=HumanoidLocomotion", "num_envs=2",
                          "max_iterations=1", "seed=1,2"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and runs[0].endswith("_0") and runs[1].endswith("_1"), runs
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()
    assert "Warning" not in res.stderr and "warn" not in res.stderr.lower(), res.stderr[-2000:]


def test_collect_writes_exactly_the_episodes_asked_for(tmp_path):
    h5py = pytest.importorskip("h5py")
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", "task=HumanoidLocomotion", "num_envs=4",
                          "num_episodes=2", "task.env.episodeLength=6", f"output={tmp_path / 'd.hdf5'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600, env=ENV)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    with h5py.File(tmp_path / "d.hdf5", "r") as f:
        ends = int(f["terminals"][:].sum() + f["timeouts"][:].sum())
        steps = len(f["actions"])
    assert ends == 2 and steps == 12                      # all 4 envs end at step 6; 2 episodes are kept
    assert "2 episodes" in res.stdout


def test_wandb_without_the_package_fails_before_anything_is_built(tmp_path, monkeypatch, capsys):
    import importlib.util
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    monkeypatch.chdir(tmp_path)
    status, out, err = train_in_process(["task=HumanoidLocomotion", "num_envs=2", "wandb_activate=True"], capsys)
    assert status == 2
    assert "wandb_activate=True needs the wandb package" in err and "isaacgymenvs_hrl[track]" in err
    assert "Setting seed" not in out and not (tmp_path / "runs").exists()


def test_mjwarp_without_the_gpu_extra_is_one_line(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "mujoco_warp.py").write_text('raise ImportError("not installed", name="mujoco_warp")\n')
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.train", "task=HumanoidLocomotion", "num_envs=2",
                          "max_iterations=1", "physics_engine=mjwarp"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env=dict(ENV, PYTHONPATH=str(blocker)))
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    assert "physics_engine=mjwarp needs MuJoCo Warp" in res.stderr
    assert "pip install 'isaacgymenvs_hrl[gpu]'" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "runs").exists()
