"""``hrl-eval`` on runs laid out as hrl-train leaves them (config.yaml beside nn/): exactly N episodes,
counted in episode-index order, the task's own success measure, flat and hierarchical."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_train_config
from isaacgymenvs_hrl.learning.evaluation import evaluate_episodes
from isaacgymenvs_hrl.learning.runs import build_network


def write_run(root: Path, args: list, num_obs: int, num_actions: int) -> Path:
    """runs/<name>/config.yaml + nn/<name>.pth of a freshly initialised network."""
    cfg = OmegaConf.to_container(compose_train_config(args), resolve=True)
    run = root / "runs" / "run"
    (run / "nn").mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    torch.manual_seed(0)
    net = build_network(cfg["train"]["params"], num_obs, num_actions)
    path = run / "nn" / "run.pth"
    torch.save({"model": net.state_dict(), "epoch": 1}, path)
    return path


def test_hrl_eval_counts_exactly_n_episodes_with_the_tasks_success(tmp_path, capsys):
    from isaacgymenvs_hrl.cli.evaluate import evaluate
    ckpt = write_run(tmp_path, ["task=FrankaStack"], *_sizes("FrankaStack"))
    out = tmp_path / "eval.json"
    result = evaluate([str(ckpt), "--episodes", "3", "--num-envs", "2", "--override", "task.env.episodeLength=4",
                       "--json", str(out)])
    assert result["episodes"] == 3 and 0.0 <= result["success"] <= 1.0
    assert [(r["episode"], r["env"]) for r in result["records"]] == [(0, 0), (0, 1), (1, 0)]
    assert all(r["length"] == 4 for r in result["records"])            # time-outs at episodeLength
    assert result["failed"] == 0.0
    assert json.loads(out.read_text())["episodes"] == 3
    assert "3 episodes of FrankaStack: success" in capsys.readouterr().out


def _sizes(task: str) -> tuple[int, int]:
    """(observations, actions) of the env make() builds for ``task``."""
    import isaacgymenvs_hrl
    env = isaacgymenvs_hrl.make(seed=0, task=task, num_envs=1, sim_device="cpu", rl_device="cpu")
    sizes = int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    env.close()
    return sizes


def test_hrl_eval_runs_a_hierarchical_policy_through_its_llc(tmp_path):
    ckpt = write_run(tmp_path, ["task=HumanoidLocationHRL"], *_sizes("HumanoidLocationHRL"))
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.evaluate", str(ckpt), "--episodes", "4",
                          "--num-envs", "2", "--override", "task.env.episodeLength=10", "--json", "e.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["episodes"] == 4 and "targets_reached" in result
    # 10 control steps at k = 5: a time-out after 2 high-level steps, unless the humanoid fell first
    assert all(r["length"] == 2 or r["failed"] == 1.0 for r in result["records"])
    assert "4 episodes of HumanoidLocation (LLC humanoid/walk_bc)" in res.stdout


def test_evaluate_episodes_needs_the_reset_in_the_callers_hands():
    import isaacgymenvs_hrl
    task = isaacgymenvs_hrl.make(seed=0, task="HumanoidLocomotion", num_envs=1, sim_device="cpu", rl_device="cpu")
    with pytest.raises(ValueError, match="auto_reset=False"):
        evaluate_episodes(task, lambda obs: torch.zeros(1, 21), 1)
