"""Franka controllers and FrankaStack on real MuJoCo: batched FK/Jacobian, IK, success predicates."""
from __future__ import annotations

import mujoco
import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.controllers import ChainKinematics, solve_ik
from isaacgymenvs_hrl.controllers.arm_action import down_rotation
from isaacgymenvs_hrl.paths import asset_path
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack, stack_success

ARM = [f"panda_joint{i}" for i in range(1, 8)]
HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def stack_cfg(**env):
    return {"name": "FrankaStack", "physics_engine": "mujoco",
            "env": {"numEnvs": 4, "episodeLength": 50, **env},
            "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}


def test_batched_fk_and_jacobian_match_mujoco():
    m = mujoco.MjModel.from_xml_path(str(asset_path("mjcf/franka/stack_scene.xml")))
    d = mujoco.MjData(m)
    kin = ChainKinematics(m, ARM, "ee_site", dtype=torch.float64)
    rng = np.random.default_rng(0)
    sid = m.site("ee_site").id
    qs, pos, rot, jac = [], [], [], []
    for _ in range(8):
        d.qpos[:7] = HOME + rng.uniform(-0.6, 0.6, 7)
        mujoco.mj_forward(m, d)
        jp, jr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jacSite(m, d, jp, jr, sid)
        qs.append(d.qpos[:7].copy())
        pos.append(d.site_xpos[sid].copy())
        rot.append(d.site_xmat[sid].reshape(3, 3).copy())
        jac.append(np.vstack([jp, jr])[:, :7])
    p, r, j = kin.forward(torch.tensor(np.array(qs)))
    np.testing.assert_allclose(p.numpy(), np.array(pos), atol=1e-9)
    np.testing.assert_allclose(r.numpy(), np.array(rot), atol=1e-9)
    np.testing.assert_allclose(j.numpy(), np.array(jac), atol=1e-9)
    # the pose is remembered for repeated asks of the same q, and recomputed for a new q
    q = torch.tensor(np.array(qs))
    assert kin.forward(q, jacobian=False)[0] is kin.forward(q.clone(), jacobian=False)[0]
    q2 = q.clone()
    q2[0, 0] += 0.3
    p2, _ = kin.forward(q2, jacobian=False)
    assert (p2[0] - p[0]).norm() > 0.05 and torch.allclose(p2[1:], p[1:], atol=1e-12)


def test_ik_reaches_reachable_targets():
    m = mujoco.MjModel.from_xml_path(str(asset_path("mjcf/franka/stack_scene.xml")))
    kin = ChainKinematics(m, ARM, "ee_site", dtype=torch.float64)
    n = 16
    gen = torch.Generator().manual_seed(0)
    goal = torch.stack([0.35 + 0.25 * torch.rand(n, generator=gen, dtype=torch.float64),
                        -0.2 + 0.4 * torch.rand(n, generator=gen, dtype=torch.float64),
                        0.05 + 0.25 * torch.rand(n, generator=gen, dtype=torch.float64)], -1)
    yaw = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5)
    q0 = torch.tensor(HOME).expand(n, 7)
    q = solve_ik(kin, q0, goal, down_rotation(yaw), iterations=30, damping=0.02)
    p, r = kin.forward(q, jacobian=False)
    assert (p - goal).norm(dim=-1).max() < 1e-3
    assert (r - down_rotation(yaw)).abs().amax() < 1e-2


def test_ee_delta_action_moves_the_hand():
    torch.manual_seed(0)
    task = FrankaStack(stack_cfg(armResetNoise=0.0), "cpu", "cpu", -1, True)
    task.reset()
    start, _ = task.ee_pose()
    act = torch.zeros(4, 5)
    act[:, 2] = -0.5       # down 1.5 cm per step
    act[:, 4] = 1.0
    for _ in range(6):
        task.step(act)
    end, _ = task.ee_pose()
    moved = start - end
    assert moved[:, 2].min() > 0.06 and moved[:, 2].max() < 0.11
    assert moved[:, :2].norm(dim=-1).max() < 0.01


def test_stack_success_predicate_on_constructed_states():
    hh = torch.full((3, 3), 0.025)
    hw = torch.full((3, 3), 0.025)
    pair = torch.tensor([[0, 2]] * 3)                  # red on blue
    pyr = torch.zeros(3, dtype=torch.bool)
    pos = torch.tensor([[0.5, 0.0, 0.025], [0.5, 0.15, 0.025], [0.5, -0.15, 0.025]]).repeat(3, 1, 1)
    pos[0, 0] = torch.tensor([0.5, -0.15, 0.075])      # resting on blue
    pos[1, 0] = torch.tensor([0.5, -0.15, 0.095])      # hovering 2 cm above
    pos[2, 0] = torch.tensor([0.5, -0.11, 0.075])      # beside (4 cm off)
    ee = torch.tensor([[0.5, -0.15, 0.3]]).repeat(3, 1)
    ok = stack_success(pos, hh, hw, ee, pair, pyr, 0.01, 0.06)
    assert ok.tolist() == [True, False, False]
    ee_held = ee.clone()
    ee_held[0] = pos[0, 0]
    assert not stack_success(pos, hh, hw, ee_held, pair, pyr, 0.01, 0.06)[0]


@pytest.mark.parametrize("sets", [["cubes", "cylinders", "boxes", "slanted", "mixed"]])
def test_all_object_sets_build_and_rest_on_the_table(sets):
    torch.manual_seed(0)
    task = FrankaStack(stack_cfg(numEnvs=8, objectSets=sets, variants=["red_on_blue", "pyramid"]),
                       "cpu", "cpu", -1, True)
    obs = task.reset()["obs"]
    assert obs.shape == (8, task.num_obs) and task.num_obs == 22 + 45 + 13 + 6
    # grasp_yaw: the expert's turn to the nearest grasp face, as (sin, cos) of order x turn; any yaw
    # (cylinders, order 0) reads (0, 1)
    from isaacgymenvs_hrl.controllers.arm_action import tool_yaw
    from isaacgymenvs_hrl.experts.base import symmetric_yaw_error
    from isaacgymenvs_hrl.utils.torch_jit_utils import yaw_from_quat
    g = task.obs_slice(obs, ["grasp_yaw"]).view(8, 3, 2)
    _, _, order = task.object_dims()
    pose = task.object_qpos()
    ee_yaw = tool_yaw(task.ee_pose()[1])
    for c in range(3):
        turn = symmetric_yaw_error(yaw_from_quat(pose[:, c, 3:7]), ee_yaw, order[:, c])
        k = order[:, c].float()
        assert torch.allclose(g[:, c, 0], torch.sin(k * turn), atol=1e-4)
        assert torch.allclose(g[:, c, 1], torch.cos(k * turn), atol=1e-4)
    assert (order == 0).any() and (order > 0).any(), "both kinds of object in the sample"
    # objects.ee_to_obj: the TCP -> object vectors, a field a low level can read alone
    ee_to_obj = task.obs_slice(obs, ["objects.ee_to_obj"]).view(8, 3, 3)
    assert torch.allclose(ee_to_obj, pose[:, :, :3] - task.ee_pose()[0][:, None], atol=1e-6)
    for _ in range(5):
        task.step(torch.zeros(8, task.num_actions))
    hh, _, _ = task.object_dims()
    z = task.object_qpos()[:, :, 2]
    assert ((z - hh).abs() < 0.004).all(), "active objects should rest on the table"


def test_sim_mujoco_solver_settings_reach_the_scene():
    cfg = stack_cfg()
    cfg["sim"]["substeps"] = 10
    cfg["sim"]["mujoco"].update(iterations=9, ls_iterations=4)
    task = FrankaStack(cfg, "cpu", "cpu", -1, True)
    opt = task.engine.model.opt
    assert (opt.iterations, opt.ls_iterations, opt.timestep) == (9, 4, pytest.approx(0.005))
    task.step(torch.zeros(4, task.num_actions))
    task.close()


def test_bad_config_names_the_key():
    with pytest.raises(Exception, match="objectSets"):
        FrankaStack(stack_cfg(objectSets=["spheres"]), "cpu", "cpu", -1, True)
    with pytest.raises(Exception, match="controlType"):
        FrankaStack(stack_cfg(controlType="osc"), "cpu", "cpu", -1, True)


def test_all_pairs_alias_is_helms_data_setting():
    task = FrankaStack(stack_cfg(numEnvs=2, variants="all_pairs", objectSets=["all"]), "cpu", "cpu", -1, True)
    assert task.variant_choice == ["red_on_blue", "red_on_green", "green_on_red", "green_on_blue",
                                   "blue_on_red", "blue_on_green"]
    assert task.set_choice == ["cubes", "cylinders", "boxes", "slanted", "mixed"]
    task.close()


def test_finished_episodes_count_under_their_own_variant_and_set():
    """Stats must attribute an ending episode to its variant/set, not to the next episode's draw."""
    torch.manual_seed(0)
    variants = ["red_on_blue", "red_on_green", "green_on_red", "green_on_blue", "blue_on_red",
                "blue_on_green", "pyramid"]
    task = FrankaStack(stack_cfg(numEnvs=8, variants=variants), "cpu", "cpu", -1, True)
    task.reset()
    ids = torch.arange(8)
    task.variant_id[:] = variants.index("pyramid")
    task.episode_success[:] = torch.tensor([True] * 5 + [False] * 3)
    task.progress_buf[:] = 7
    task.variant_id[6:] = variants.index("red_on_blue")
    task.reset_idx(ids)
    assert task.success_table() == {("pyramid", "cubes"): (5, 6), ("red_on_blue", "cubes"): (0, 2)}
    ep = task.extras["episode"]
    assert ep["success"] == 5 / 8 and ep["success_cubes"] == 5 / 8
    assert ep["success_pyramid"] == 5 / 6 and ep["success_red_on_blue"] == 0.0
    assert "success_green_on_red" not in ep and "success_cylinders" not in ep   # no episode ended there


def test_dense_reward_rises_through_the_stages():
    """reward_for: approaching, grasping, lifting and placing each pay more (the expert does them)."""
    from isaacgymenvs_hrl.experts import make_expert
    torch.manual_seed(0)
    task = FrankaStack(stack_cfg(numEnvs=4, episodeLength=200, terminateOnSuccess=False), "cpu", "cpu", -1, True)
    expert = make_expert(task, seed=0)
    obs = task.reset()
    first = task.reward_for("dense").mean()
    best_dense, best_staged = torch.zeros(4), torch.zeros(4)
    for _ in range(140):
        obs, rew, _, _ = task.step(expert(obs["obs"]))
        assert torch.allclose(rew, task.reward_for("dense"))           # the task's own reward type
        best_dense = torch.maximum(best_dense, task.reward_for("dense"))
        best_staged = torch.maximum(best_staged, task.reward_for("staged"))
    assert first > 0.002, "the wide reach kernel must pay something at the home pose (1 - tanh(10 d): 0.0003)"
    # success on top of the stage terms (more than all stage terms can pay), in at least 3 of the 4 envs
    stage_max = sum(v for k, v in task.reward_scales.items() if k != "success")
    assert (best_dense > stage_max).sum() >= 3 and (best_staged > stage_max).sum() >= 3, (best_dense, best_staged)


def test_letting_go_costs_nothing_and_success_pays_the_steps_left():
    """Success needs the gripper to let go and back off; if that lowered the reward, or ending the
    episode lost the per-step reward still to come, PPO learns to hover holding the object."""
    from isaacgymenvs_hrl.experts import make_expert
    torch.manual_seed(0)
    task = FrankaStack(stack_cfg(numEnvs=4, episodeLength=200), "cpu", "cpu", -1, True)
    expert = make_expert(task, seed=0)
    obs = task.reset()
    stage_max = sum(v for k, v in task.reward_scales.items() if k != "success")
    held_max = stage_max - task.reward_scales["release"]          # placed, still holding
    history, ended = [], {}
    for step in range(1, 160):
        obs, rew, done, _ = task.step(expert(obs["obs"]))
        history.append(rew.clone())
        for j in done.nonzero().flatten().tolist():
            ended.setdefault(j, (step, torch.stack(history)[:, j]))
    assert len(ended) >= 3, "the expert should stack in at least 3 of 4 envs"
    for j, (step, rewards) in ended.items():
        left = 200 - step
        expected = stage_max * (1 + left) + task.reward_scales["success"]
        assert abs(rewards[-1].item() - expected) < 0.05 * stage_max, (j, rewards[-1], expected)
        placed = (rewards[:-1] > held_max).nonzero().flatten()
        assert len(placed) > 0
        # from the first placed step to the end: no dip while the fingers open and back off,
        # and the release term pays for doing it
        assert (rewards[placed[0]:-1] > held_max).all(), (j, rewards[placed[0]:])
        assert rewards[-2] > rewards[placed[0]] + 0.5 * task.reward_scales["release"], (j, rewards[placed[0]:])
