"""hrl-train eval_summary=True: the untrained and the trained policy rolled out deterministically in
the task's own terms, printed as a table and written to eval_summary.json (real training, real LLC)."""
from __future__ import annotations

import json

from conftest import train_in_process


def test_hierarchical_run_prints_what_the_policy_does(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, err = train_in_process(
        ["task=HumanoidLocationHRL", "num_envs=4", "max_iterations=2", "task.env.episodeLength=40",
         "train.params.config.horizon_length=8", "train.params.config.minibatch_size=32", "eval_summary=True"],
        capsys)
    assert status == 0, out[-3000:]
    assert "What the policy does" in out and "targets_reached_per_episode" in out
    (summary,) = tmp_path.glob("runs/HumanoidLocationHRL_*/eval_summary.json")
    result = json.loads(summary.read_text())
    assert result["steps"] == 8                                 # 40 control steps / k = 5
    for side in ("untrained", "trained"):
        stats = result[side]
        assert stats["episodes"] >= 4                           # every env ends at the time limit
        assert 0.0 <= stats["falls_per_episode"] <= 1.0 and "targets_reached_per_episode" in stats
    assert result["checkpoint"].endswith(".pth")
    # the run's LLC is a skill library name: hrl-export resolves and bundles its verified file
    from isaacgymenvs_hrl.export import export_policy, load_run
    from isaacgymenvs_hrl.hrl import library
    run = load_run(result["checkpoint"])
    assert run.llc_path == library.verify("humanoid/walk_bc")
    policy, meta = export_policy(run, tmp_path / "hl.onnx", "onnx", "full")
    assert policy.is_file() and json.loads(meta.read_text())["hierarchy"]["k"] == 5


def test_max_time_ends_training_with_a_checkpoint(tmp_path, monkeypatch, capsys):
    """max_time=1 stops a 10,000-epoch run after about a second of training, with rl-games' final
    checkpoint written; a bad value is one clear error."""
    monkeypatch.chdir(tmp_path)
    status, out, _ = train_in_process(["task=HumanoidLocomotion", "num_envs=8", "max_iterations=10000",
                                       "max_time=1", "experiment=timed", "headless=True",
                                       "train.params.config.horizon_length=16",
                                       "train.params.config.minibatch_size=128"], capsys)
    assert status == 0, out[-3000:]
    assert "max_time: " in out and "MAX EPOCHS NUM!" in out
    stopped = int(out.split("reached at epoch ")[1].split(";")[0])
    assert 1 <= stopped < 10000
    assert list(tmp_path.glob(f"runs/timed_*/nn/last_*_ep_{stopped}_*.pth"))
    status, out, err = train_in_process(["task=HumanoidLocomotion", "max_time=-5"], capsys)
    assert status == 2 and "max_time" in err and "Traceback" not in out


def test_discrete_high_level_run_is_summarized(tmp_path, monkeypatch, capsys):
    """FrankaStackHRL's default, a discrete high level anchored to HeLMS' skill prior (rl-games'
    discrete actor returns logits, not mus), is evaluated too."""
    monkeypatch.chdir(tmp_path)
    status, out, err = train_in_process(
        ["task=FrankaStackHRL", "num_envs=4", "max_iterations=1", "task.env.episodeLength=20",
         "train.params.config.horizon_length=8", "train.params.config.minibatch_size=32", "eval_summary=True"],
        capsys)
    assert status == 0, out[-3000:]
    (summary,) = tmp_path.glob("runs/*/eval_summary.json")
    result = json.loads(summary.read_text())
    assert result["steps"] == 4 and result["trained"]["episodes"] >= 4 and "success_per_episode" in result["trained"]
