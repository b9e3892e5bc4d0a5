"""FrankaPegInHole and its scripted insertion expert on real MuJoCo (and MuJoCo Warp on CPU), small N.

About a minute on two cores once MuJoCo Warp's kernels are cached in ~/.cache/warp (the first run in
a fresh environment compiles them, about a minute more).
"""
from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.experts import make_expert
from isaacgymenvs_hrl.tasks import isaacgym_task_map
from isaacgymenvs_hrl.tasks.base.vec_task import TaskConfigError
from isaacgymenvs_hrl.tasks.franka_peg_in_hole import (ROUND_HOLE_WALLS, SHAPE_NAMES, FrankaPegInHole,
                                                       peg_in_hole_reward, peg_in_hole_success)
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack

NAME = "FrankaPegInHole"


def peg_cfg(engine="mujoco", **env):
    return {"name": NAME, "physics_engine": engine,
            "env": {"numEnvs": 4, "episodeLength": 250, **env},
            "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}


def make(engine="mujoco", seed=0, **env):
    torch.manual_seed(seed)
    return FrankaPegInHole(peg_cfg(engine, **env), "cpu", "cpu", -1, True)


def test_registered_and_obs_layout_is_the_same_for_every_shape():
    assert isaacgym_task_map[NAME] is FrankaPegInHole
    a = make(numEnvs=2, pegShapes="round")
    b = make(numEnvs=2, pegShapes=["square", "ngon5"], pegStart=["hand", "table"])
    assert a.obs_layout() == b.obs_layout()
    assert list(a.obs_slices) == ["proprio", "peg", "hole", "ft", "task"]
    assert a.obs_slices["proprio"] == slice(0, 22) and a.num_obs == b.num_obs == 22 + 19 + 9 + 6 + 13
    assert a.num_actions == b.num_actions == 5
    obs = b.reset()["obs"]
    assert obs.shape == (2, b.num_obs) and torch.isfinite(obs).all()
    # the shape one-hot indexes the fixed SHAPE_NAMES, whatever the config lists
    onehot = obs[:, b.obs_slices["task"]][:, :len(SHAPE_NAMES)]
    assert set(onehot.argmax(-1).tolist()) <= {SHAPE_NAMES.index("square"), SHAPE_NAMES.index("ngon5")}


def test_success_predicate_on_constructed_states():
    top = torch.tensor([[0.5, 0.1, 0.04]]).repeat(5, 1)
    tip = torch.tensor([[0.5005, 0.1, 0.018],     # inserted 22 mm, 0.5 mm off the axis
                        [0.5, 0.1, 0.025],        # in the hole but only 15 mm deep
                        [0.5, 0.1, 0.06],         # above the hole
                        [0.54, 0.1, 0.0],         # beside the fixture, on the table (low enough, outside)
                        [0.5, 0.1, 0.02]])        # exactly insertDepth
    ok = peg_in_hole_success(tip, top, 0.013, 0.02)
    assert ok.tolist() == [True, False, False, False, True]
    # rewards: success pays, the inserted peg earns the full insert term, beside the hole earns none
    ee = tip + torch.tensor([0.0, 0.0, 0.06])
    scales = torch.tensor([0.1, 0.2, 0.2, 0.3, 0.5, 5.0])
    for kind in ("dense", "staged", "sparse"):
        rew, terms = peg_in_hole_reward(ee, ee, torch.full((5,), 0.012), torch.full((5,), 0.012), tip, top, 0.013,
                                        0.02, 0.015, ok, torch.zeros(5, dtype=torch.bool), scales, kind)
        assert terms.shape == (5, 6)
        assert (terms[:, 5] == 5.0 * ok.float()).all()
        assert (terms[:, 0:3] == 0).all(), "reach/grasp/lift count for the table start only"
        assert rew[0] > rew[1] > rew[3] or kind == "sparse"
        if kind != "sparse":
            assert terms[0, 4] == pytest.approx(0.5) and terms[3, 4] == 0


def _min_wall_distance(m, d, peg_geom, walls):
    fromto = np.zeros(6)
    return min(mujoco.mj_geomDistance(m, d, peg_geom, g, 0.01, fromto) for g in walls)


@pytest.mark.parametrize("clearance", [0.0003, 0.0007])
def test_scene_walls_give_exactly_the_clearance(clearance):
    shapes = ["round", "square", "ngon3", "ngon6"]
    task = make(numEnvs=1, pegShapes=shapes, clearance=clearance)
    m = task.engine.model
    d = mujoco.MjData(m)
    for shape in shapes:
        walls = [g for g in range(m.ngeom) if m.geom(g).name.startswith(f"hole_{shape}_wall")]
        n = ROUND_HOLE_WALLS if shape == "round" else {"square": 4, "ngon3": 3, "ngon6": 6}[shape]
        assert len(walls) == n
        # inner faces: every wall's inner face is at the hole apothem from the axis (MJCF text keeps ~7 digits)
        inner = [np.linalg.norm(m.geom_pos[g][:2]) - m.geom_size[g][0] for g in walls]
        np.testing.assert_allclose(inner, task.peg_radius + clearance, atol=2e-7, rtol=0)
        # the peg standing coaxially in the hole (yaw aligned) is ``clearance`` from the nearest wall
        hole_adr = m.jnt_qposadr[m.joint(f"hole_{shape}_joint").id]
        peg_adr = m.jnt_qposadr[m.joint(f"peg_{shape}_joint").id]
        d.qpos[hole_adr:hole_adr + 7] = [0.5, 0.0, 0.0, 1, 0, 0, 0]
        d.qpos[peg_adr:peg_adr + 7] = [0.5, 0.0, task.hole_top_local + 0.01, 1, 0, 0, 0]
        mujoco.mj_forward(m, d)
        gap = _min_wall_distance(m, d, m.geom(f"peg_{shape}_geom").id, walls)
        if shape == "round":      # 32-gon peg inscribed in r, 24-wall hole circumscribing r + c
            assert clearance - 1e-6 <= gap <= clearance + 0.0002
        else:
            assert gap == pytest.approx(clearance, abs=2e-6)


def test_wrist_ft_reads_the_held_peg_and_contact():
    task = make(numEnvs=2, pegShapes="round", pegStart="hand", armResetNoise=0.0, pegInHandOffset=0.0,
                pegInHandTilt=0.0, holePosX=[0.6, 0.6])
    task.reset()
    act = torch.zeros(2, 5)
    act[:, -1] = -1.0
    for _ in range(4):
        task.step(act)
    w = task.wrist_wrench()
    weight = task.peg_mass * 9.81
    # tared: only the held peg's weight is left (pulling down), no torque about the flange
    torch.testing.assert_close(w[:, 2], torch.full((2,), -weight), atol=0.1, rtol=0)
    assert w[:, 0:2].abs().max() < 0.1 and w[:, 3:6].abs().max() < 0.02
    obs = task.obs_buf[:, task.obs_slices["ft"]]
    torch.testing.assert_close(obs[:, 2], w[:, 2] * task.ft_scale[0])
    # press the peg onto the table: an upward contact force of several N
    act[:, 2] = -1.0
    for _ in range(60):
        task.step(act)
        if task.peg_points()[0][:, 2].max() < 0.002:
            break
    for _ in range(3):
        task.step(act)
    tip, _, _ = task.peg_points()
    assert tip[:, 2].max() < 0.002, "the peg tip should be on the table"
    assert task.wrist_wrench()[:, 2].min() > 5.0


def test_insertion_expert_round_and_square_both_starts():
    """8 envs, one episode each (hand start ~75 steps, table start ~130): measured 8/8; the issue's
    target is 0.9 (32 envs x 2 episodes per shape and start: 96-100 %, see the task's report)."""
    task = make(numEnvs=8, seed=1, pegShapes=["round", "square"], pegStart=["hand", "table"])
    expert = make_expert(task, noise=0.0, seed=0)
    obs = task.reset()["obs"]
    finished = torch.zeros(8, dtype=torch.bool)
    for _ in range(250):
        obs, _, done, extras = task.step(expert(obs))
        finished |= done.bool()
        if finished.all():
            break
    table = task.success_table()
    assert {v for v, _ in table} == {"hand", "table"} and {g for _, g in table} == {"round", "square"}
    succ = sum(s for s, _ in table.values())
    eps = sum(e for _, e in table.values())
    assert eps >= 8 and succ / eps >= 0.85, table
    ep = extras["episode"]
    assert {"success", "rew_insert", "rew_success"} <= set(ep)


def test_bad_config_names_the_key_and_the_fix():
    with pytest.raises(TaskConfigError, match="pegShapes.*hexagon.*ngon<N>"):
        make(pegShapes=["round", "hexagon"])
    with pytest.raises(TaskConfigError, match="pegShapes.*ngon13.*3..12"):
        make(pegShapes="ngon13")
    with pytest.raises(TaskConfigError, match=r"clearance=0.0001 .*0.0003"):
        make(clearance=0.0001)
    with pytest.raises(TaskConfigError, match="clearance=0.02"):
        make(clearance=0.02)
    with pytest.raises(TaskConfigError, match="pegStart"):
        make(pegStart="floor")
    with pytest.raises(TaskConfigError, match="insertDepth"):
        make(insertDepth=0.05, holeDepth=0.03)
    with pytest.raises(TaskConfigError, match="pegLength"):
        make(pegLength=0.04)
    assert make(numEnvs=1, pegShapes="ngon4").shapes == ["square"]


def _backend_pair(cls, cfg_fn, steps, actions_fn):
    out = {}
    for engine in ("mujoco", "mjwarp"):
        torch.manual_seed(0)
        task = cls(cfg_fn(engine), "cpu", "cpu", -1, True)
        task.reset()
        for k in range(steps):
            task.step(actions_fn(task, k))
        out[engine] = task
    return out["mujoco"], out["mjwarp"]


def test_mjwarp_loads_and_steps_the_peg_and_stack_scenes_like_mujoco():
    def peg(engine):
        return peg_cfg(engine, numEnvs=2, pegShapes=["round", "square"], pegStart=["hand"])

    def stack(engine):
        return {"name": "FrankaStack", "physics_engine": engine, "env": {"numEnvs": 2, "episodeLength": 50},
                "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}

    def act(task, k):
        a = torch.zeros(task.num_envs, task.num_actions)
        a[:, 0] = 0.3           # move the hand (and the held peg) in +x
        a[:, -1] = -1.0 if isinstance(task, FrankaPegInHole) else 1.0
        return a

    for cls, cfg in ((FrankaPegInHole, peg), (FrankaStack, stack)):
        a, b = _backend_pair(cls, cfg, 3, act)
        assert not a.engine.unstable.any() and not b.engine.unstable.any()
        # measured: the states agree to ~3e-6 after 3 control steps (75 physics steps)
        assert (a.ee_pose()[0][:, 0] > 0.31).all(), "the hand should have moved in +x"
        dq = (a.engine.qpos - b.engine.qpos).abs()
        assert dq.max() < 1e-4, f"{cls.__name__}: qpos differs by {dq.max():.2e}"
        torch.testing.assert_close(a.obs_buf, b.obs_buf, atol=1e-3, rtol=0)
        if cls is FrankaPegInHole:
            # the held peg followed the hand on both; the wrist F/T (sensordata) agrees too
            assert (a.peg_pose()[:, 0] - a.ee_pose()[0][:, 0]).abs().max() < 0.01
            torch.testing.assert_close(a.wrist_wrench(), b.wrist_wrench(), atol=0.02, rtol=0)
