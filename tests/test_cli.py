"""The real entry points in subprocesses with tiny settings (CleanRL's habit): train, replay, video,
IsaacGymEnvs' own config files, and one clear message per bad input."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPAT_CFG = REPO.parent / "shared" / "compat" / "isaacgymenvs" / "cfg"
TRAIN = [sys.executable, "-m", "isaacgymenvs_hrl.train"]


def hrl_train(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(TRAIN + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny training run shared by the replay and file checks."""
    cwd = tmp_path_factory.mktemp("train")
    res = hrl_train(["task=HumanoidLocomotion", "num_envs=16", "max_iterations=3", "headless=True",
                     "experiment=cli", "train.params.config.minibatch_size=256",
                     "train.params.config.save_frequency=1"], cwd)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    runs = glob.glob(str(cwd / "runs" / "cli_*"))
    assert len(runs) == 1, runs
    return cwd, Path(runs[0]), res


def test_train_writes_checkpoint_config_and_logs(trained_run):
    cwd, run_dir, res = trained_run
    assert "MAX EPOCHS NUM" in res.stdout
    ckpts = sorted(run_dir.glob("nn/*.pth"))
    assert ckpts, list(run_dir.rglob("*"))
    assert not list(run_dir.glob("nn/*.tmp*")), "a temporary checkpoint file was left behind"
    import yaml
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["task"]["env"]["numEnvs"] == 16
    assert saved["train"]["params"]["config"]["minibatch_size"] == 256
    assert saved["physics_engine"] == "mujoco"
    assert list(run_dir.glob("summaries/events.out.tfevents*"))


def test_replay_checkpoint_prints_statistics(trained_run):
    cwd, run_dir, _ = trained_run
    ckpt = sorted(run_dir.glob("nn/*.pth"))[-1]
    res = hrl_train(["task=HumanoidLocomotion", "num_envs=8", "test=True", f"checkpoint={ckpt}",
                     "train.params.config.player.games_num=8"], cwd)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "av reward:" in res.stdout and "av steps:" in res.stdout


def test_resume_training_from_checkpoint(trained_run):
    cwd, run_dir, _ = trained_run
    ckpt = sorted(run_dir.glob("nn/last_*.pth"))[-1]
    res = hrl_train(["task=HumanoidLocomotion", "num_envs=16", "max_iterations=5", "experiment=resume",
                     "train.params.config.minibatch_size=256", f"checkpoint={ckpt}"], cwd)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    # rl-games restores the epoch counter: only epochs 4 and 5 run
    assert "epoch: 4/5" in res.stdout and "epoch: 1/5" not in res.stdout


def test_capture_video_writes_mp4(tmp_path):
    res = hrl_train(["task=HumanoidLocomotion", "num_envs=4", "max_iterations=1", "capture_video=True",
                     "capture_video_freq=1000", "capture_video_len=8", "experiment=video",
                     "train.params.config.minibatch_size=128"], tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    videos = glob.glob(str(tmp_path / "runs" / "video_*" / "videos" / "*.mp4"))
    assert videos, res.stdout[-2000:]
    import imageio.v2 as imageio
    frames = imageio.mimread(videos[0])
    assert len(frames) == 8
    assert frames[0].std() > 1.0, "blank frames"


@pytest.mark.skipif(not COMPAT_CFG.is_dir(), reason="needs ../shared/compat")
def test_isaacgymenvs_train_config_unchanged(tmp_path):
    """IsaacGymEnvs' HumanoidPPO.yaml (minibatch 32768, mixed precision) drives HumanoidLocomotion."""
    res = hrl_train([f"hydra.searchpath=[file://{COMPAT_CFG}]", "task=HumanoidLocomotion",
                     "train=HumanoidPPO", "num_envs=1024", "max_iterations=1"], tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    import yaml
    run_dir = glob.glob(str(tmp_path / "runs" / "Humanoid_*"))[0]
    saved = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    assert saved["train"]["params"]["network"]["mlp"]["units"] == [400, 200, 100]
    assert saved["train"]["params"]["config"]["minibatch_size"] == 32768
    assert glob.glob(os.path.join(run_dir, "nn", "*.pth"))


@pytest.mark.parametrize("args, expected", [
    (["task=NoSuchTask"], "NoSuchTask"),
    (["physics_engine=physx"], "Isaac Gym"),
    (["physics_engine=flex"], "physics_engine=mujoco"),
    (["physics_engine=bullet"], "unknown physics_engine"),
    (["num_envs=0"], "num_envs must be a positive integer"),
    (["num_envs=-4"], "num_envs must be a positive integer"),
    (["test=True"], "checkpoint=PATH"),
    (["checkpoint=/no/such/model.pth"], "checkpoint file not found"),
    (["multi_gpu=True"], "started by torchrun"),
    (["rl_device=cuda:0"], "no CUDA device"),
    (["no_such_key=1"], "no_such_key"),
    (["task.env.asset.assetFileName=mjcf/missing.xml"], "MJCF file not found"),
])
def test_bad_input_gives_clear_message(tmp_path, args, expected):
    res = hrl_train(["task=HumanoidLocomotion", "max_iterations=1"] + args
                    if not args[0].startswith("task=") else args, tmp_path, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert expected in out, out[-2000:]
    assert "Traceback (most recent call last)" not in out, out[-3000:]
