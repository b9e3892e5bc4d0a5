"""FrankaStack's grasp sensor (both fingers touching one object) on real MuJoCo, 4 envs."""
from __future__ import annotations

import torch

from isaacgymenvs_hrl.experts import make_expert
from isaacgymenvs_hrl.experts.stacking import APPROACH, CARRY, LIFT
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack


def _task(engine="mujoco"):
    cfg = {"name": "FrankaStack", "physics_engine": engine, "env": {"numEnvs": 4, "episodeLength": 150},
           "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}
    return FrankaStack(cfg, "cpu", "cpu", -1, True)


def test_expert_carry_is_a_grasp_and_open_hand_is_not():
    torch.manual_seed(0)
    task = _task()
    expert = make_expert(task, noise=0.0, seed=0)
    obs = task.reset()["obs"]
    assert not task.grasp().any()                       # fresh episode: stale sensors masked
    phase, grasp, colour, pick = [], [], [], []
    for _ in range(110):
        obs, _, _, extras = task.step(expert(obs))
        phase.append(expert.phase.clone())
        grasp.append(extras["grasp"].clone())
        colour.append(task.grasped_colour())
        pick.append(expert.pick.clone())
    phase, grasp, colour, pick = map(torch.stack, (phase, grasp, colour, pick))
    carry = (phase == CARRY) | (phase == LIFT)
    assert carry.sum() > 40 and (phase == APPROACH).sum() > 40
    assert grasp[carry].float().mean() > 0.95           # measured 1.0
    assert (colour[carry] == pick[carry]).float().mean() > 0.95   # the carried object is the one sensed
    assert not grasp[phase == APPROACH].any()           # open hand moving in free space
    # the exploration feature is the same signal (its mean over steps is the grasp coverage)
    assert torch.equal(task.exploration_features()["grasped"][:, 0], task.grasp().float())
    task.close()


def test_fingers_closed_on_nothing_is_not_a_grasp():
    task = _task()
    task.reset()
    close = torch.zeros(task.num_envs, task.num_actions)
    close[:, -1] = -1.0                                  # gripper fully shut, arm still at home
    for _ in range(8):
        task.step(close)
    assert (task.finger_opening() < 0.003).all()         # the fingers really closed (on each other)
    assert not task.grasp().any()
    task.close()


def test_mjwarp_reports_the_same_grasp_as_mujoco():
    """The contact sensors compile into MuJoCo Warp (Warp's CPU device) and, from the same state
    mid-carry, report the grasp C MuJoCo reports."""
    import pytest
    pytest.importorskip("mujoco_warp")
    torch.manual_seed(0)
    task = _task()
    expert = make_expert(task, noise=0.0, seed=0)
    obs = task.reset()["obs"]
    for _ in range(150):
        obs, _, _, extras = task.step(expert(obs))
        if (expert.phase == CARRY).any() and extras["grasp"].any() and not extras["grasp"].all():
            break
    assert extras["grasp"].any()
    torch.manual_seed(0)
    warp = _task("mjwarp")
    warp.reset()
    assert torch.equal(warp.active_body, task.active_body)          # same objects, same sensors
    ids = torch.arange(4)
    warp.engine.reset_envs(ids, task.engine.qpos.clone(), task.engine.qvel.clone())
    warp.engine.ctrl[:] = task.engine.ctrl
    for engine in (task.engine, warp.engine):
        engine.step(1)
    warp.progress_buf[:] = task.progress_buf
    assert torch.equal(warp.grasp(), task.grasp()) and task.grasp().any() and not task.grasp().all()
    task.close()
    warp.close()
