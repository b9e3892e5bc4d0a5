"""``multi_gpu=True`` under torchrun with two CPU ranks (gloo), end to end (issue 36).

Each run is a real ``torchrun --standalone --nproc_per_node=2`` of hrl-train with tiny settings. With
``HRL_RANK_DIGESTS`` set, every rank appends after each epoch a hash of its weights and one of its
normalizer statistics (``learning.distributed``); equal files mean the replicas never drifted apart.
The checkpoint then shows that rank 0 counted both ranks' frames and that the normalizers hold both
ranks' samples (not rank 0's copied over). Rank 1 steps other envs (seed + 1): without the gradient
average and the normalizer merge the hashes differ from the first epoch on.
"""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint

RANKS, ENVS, HORIZON = 2, 8, 8
TINY = [f"num_envs={ENVS}", f"train.params.config.horizon_length={HORIZON}",
        f"train.params.config.minibatch_size={ENVS * HORIZON}", "num_threads=1", "headless=True"]


def torchrun(args, cwd: Path, nproc: int = RANKS, entry=None, timeout: int = 900):
    """``torchrun --standalone`` of hrl-train in ``cwd``; rank digests go to cwd/digests, temp files
    to cwd/tmp (where rank 1 makes, and must remove, a scratch folder for rl-games' outputs)."""
    # the timeouts only catch a hang: each launch needs 5-15 CPU-seconds, but on a shared 2-core
    # machine under nice a launch that failed after 7 CPU-seconds took 2 minutes of wall clock
    (cwd / "tmp").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TMPDIR=str(cwd / "tmp"),
               HRL_RANK_DIGESTS=str(cwd / "digests"))
    entry = entry or ["-m", "isaacgymenvs_hrl.train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *entry, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def digests(cwd: Path) -> list[list[str]]:
    return [(cwd / "digests" / f"rank{r}.txt").read_text().splitlines() for r in range(RANKS)]


def check_run(res, cwd: Path, epochs: list[int]) -> dict:
    """Both ranks agreed after every epoch, and rank 0 alone wrote one run; returns its last checkpoint."""
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    rank0, rank1 = digests(cwd)
    assert [line.split()[0] for line in rank0] == [f"epoch={e}" for e in epochs], rank0
    assert rank0 == rank1, "the ranks' weights or normalizers differ:\n" + "\n".join(
        f"{a}\n{b}" for a, b in zip(rank0, rank1))
    runs = sorted((cwd / "runs").iterdir())
    assert len(runs) == 1, runs
    assert (runs[0] / "config.yaml").is_file()
    assert len(list((runs[0] / "summaries").iterdir())) == 1, "more than one TensorBoard file"
    assert not list((cwd / "tmp").glob("hrl_rank*")), "rank 1 left its scratch folder behind"
    assert res.stdout.count("fps step:") == len(epochs), "ranks other than 0 printed epoch stats"
    assert res.stdout.count("\nsummary:") == 1
    newest = max(glob.glob(str(runs[0] / "nn" / "*.pth")), key=os.path.getmtime)
    return load_checkpoint(newest)


def check_counts(state: dict, epochs: int, steps_per_epoch: int = ENVS * HORIZON) -> None:
    """frame counts both ranks' env steps; the value normalizer took in every rank's values and
    returns (two per sample: count - 1 = 2 * frame), the input normalizer a whole number of passes."""
    frame = RANKS * epochs * steps_per_epoch
    assert state["frame"] == frame
    assert float(state["model"]["value_mean_std.count"]) - 1 == 2 * frame
    passes = (float(state["model"]["running_mean_std.count"]) - 1) / frame
    assert passes >= 1 and passes == int(passes), passes


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("flat")
    res = torchrun(["multi_gpu=True", "task=HumanoidLocomotion", "max_iterations=2", *TINY], cwd)
    return cwd, res


def test_flat_task_trains_as_one_model_on_two_ranks(flat_run):
    cwd, res = flat_run
    state = check_run(res, cwd, epochs=[1, 2])
    check_counts(state, epochs=2)
    assert state["epoch"] == 2
    assert "multi_gpu: 2 ranks (gloo)" in res.stdout


def test_resume_and_max_time_under_torchrun(flat_run, tmp_path):
    """Resumed from the flat run's checkpoint, with a max_time that is over after one epoch: both ranks
    start from epoch 2 and stop together after epoch 3 (of max_iterations=5)."""
    src, _ = flat_run
    ckpt = max(glob.glob(str(src / "runs" / "*" / "nn" / "last_*.pth")), key=os.path.getmtime)
    res = torchrun(["multi_gpu=True", "task=HumanoidLocomotion", "max_iterations=5", "max_time=0.001",
                    f"checkpoint={ckpt}", *TINY], tmp_path)
    state = check_run(res, tmp_path, epochs=[3])
    assert state["epoch"] == 3
    check_counts(state, epochs=3)
    assert "max_time:" in res.stdout


def test_hierarchical_task_through_hrl_train(tmp_path):
    """The high level over the shipped walk_bc LLC, started as ``torchrun --no-python hrl-train``: each
    rank loads (and hash-checks) the LLC itself and leaves the file as it was."""
    from isaacgymenvs_hrl.hrl.library import resolve
    llc = resolve("humanoid/walk_bc", kind="llc")
    before = hashlib.sha256(llc.read_bytes()).hexdigest()
    hrl_train = shutil.which("hrl-train")
    entry = ["--no-python", hrl_train] if hrl_train else None
    res = torchrun(["multi_gpu=True", "task=HumanoidLocationHRL", "max_iterations=2", *TINY], tmp_path, entry=entry)
    state = check_run(res, tmp_path, epochs=[1, 2])
    check_counts(state, epochs=2)
    assert hashlib.sha256(llc.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("args, nproc, expected", [
    (["multi_gpu=True", "seed=${oc.env:RANK}"], 2, "ranks disagree on the config: rank 1 has seed="),
    (["multi_gpu=True", "dist_backend=nccl"], 1, "dist_backend=nccl is not available in this torch build"),
    (["multi_gpu=False"], 2, "but multi_gpu=False"),
])
def test_bad_launch_gives_one_line(tmp_path, args, nproc, expected):
    res = torchrun(["task=HumanoidLocomotion", "max_iterations=1", *TINY, *args], tmp_path, nproc=nproc, timeout=600)
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("error: ")]
    assert res.returncode != 0
    assert lines and all(expected in line for line in lines), (res.stdout + res.stderr)[-3000:]
    assert not (tmp_path / "runs").exists()
