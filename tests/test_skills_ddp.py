"""Data-parallel skill training: ``torchrun --nproc_per_node=2`` on CPU (gloo) through the real CLI.

The dataset is a real short HumanoidLocomotion rollout written by ``hrl-collect``. Each rank prints a
hash of its final parameters; both must agree (the replicas stayed in sync), rank 0 alone writes the
checkpoint and the report, and for BC (no sampling noise, minibatches that split evenly) the
2-process weights equal a 1-process run with the same seed up to float rounding.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.hrl import load_llc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ddp")
    out = cwd / "walk.hdf5"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", "task=HumanoidLocomotion", "num_envs=4",
                          "num_episodes=4", "task.env.episodeLength=40", f"output={out}"],
                         cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return out


def torchrun(cwd, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "isaacgymenvs_hrl.cli.skills", *args, "report.videos=false"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def rank_digests(res) -> dict:
    found = dict(re.findall(r"rank (\d)/2: parameters sha256 ([0-9a-f]{16})", res.stdout + res.stderr))
    assert sorted(found) == ["0", "1"], res.stdout[-3000:] + res.stderr[-3000:]
    return found


def test_two_cpu_ranks_train_bc_like_one_process(dataset, tmp_path):
    out = tmp_path / "bc.llc.pt"
    # 160 steps - 8 validation = 152 = 4 minibatches of 38: every rank gets 19 per step
    res = torchrun(tmp_path, "algo=bc", f"dataset={dataset}", f"output={out}", "skills.epochs=3",
                   "skills.hidden=[32]", "skills.batch_size=38")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    digests = rank_digests(res)
    assert digests["0"] == digests["1"]
    assert res.stdout.count("wrote ") == 1                       # rank 0 only
    assert (tmp_path / "bc.llc_report" / "index.md").is_file() and (tmp_path / "bc.llc_report" / "losses.png").is_file()
    assert not list(tmp_path.glob("*.tmp*"))
    llc = load_llc(out)
    assert llc.spec["provenance"]["algorithm"] == "bc" and llc.spec["latent"]["dim"] == 3

    from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
    data, meta = load_dataset(dataset)
    assert len(data["actions"]) == 160
    train_bc(data, meta, BCConfig(epochs=3, hidden=[32], batch_size=38), str(tmp_path / "one.llc.pt"),
             log=lambda *_: None)
    one = load_llc(tmp_path / "one.llc.pt")
    for (name, a), (_, b) in zip(llc.state_dict().items(), one.state_dict().items()):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)


def test_two_cpu_ranks_train_helms_in_sync(dataset, tmp_path):
    """HeLMS: sampled latents, a mid level and a learned transition prior; the replicas stay equal."""
    out = tmp_path / "helms.llc.pt"
    res = torchrun(tmp_path, "algo=helms", f"dataset={dataset}", f"output={out}", "skills.epochs=2",
                   "skills.hidden=[16]", "skills.mid_hidden=[16]", "skills.num_skills=3", "skills.latent_dim=3",
                   "skills.seq_len=12", "skills.batch_size=5", "skills.mid_obs=[proprio,task]")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    digests = rank_digests(res)
    assert digests["0"] == digests["1"]
    llc = load_llc(out)
    assert llc.spec["provenance"]["algorithm"] == "helms" and llc.num_skills == 3
    assert (tmp_path / "helms.llc_report" / "transitions.png").is_file()
