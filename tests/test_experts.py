"""The scripted stacking expert on real MuJoCo, small N (about a minute on 2 cores)."""
from __future__ import annotations

import torch

from isaacgymenvs_hrl.experts import make_expert
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack


def test_stacking_expert_stacks_red_on_blue():
    torch.manual_seed(0)
    cfg = {"name": "FrankaStack", "physics_engine": "mujoco",
           "env": {"numEnvs": 8, "episodeLength": 150},
           "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}
    task = FrankaStack(cfg, "cpu", "cpu", -1, True)
    expert = make_expert(task, noise=0.0, seed=0)
    obs = task.reset()["obs"]
    for _ in range(150):
        obs, _, _, _ = task.step(expert(obs))
    succ, eps = task.success_table()[("red_on_blue", "cubes")]
    assert eps >= 8
    # measured 8/8 here (205/206 with 32 envs x 300 steps over 3 seeds); the target is 0.9
    assert succ / eps >= 0.85
