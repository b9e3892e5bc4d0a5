"""Tests for the hand-written Franka Panda MJCF assets (assets/mjcf/franka).

All tests run real MuJoCo on CPU and take a few seconds in total.
"""

from pathlib import Path

import mujoco
import numpy as np
import pytest

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "mjcf" / "franka"
STACK = ASSET_DIR / "stack_scene.xml"
PEG = ASSET_DIR / "peg_scene.xml"

HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
FINGER_JOINTS = ["panda_finger_joint1", "panda_finger_joint2"]
ARM_ACTUATORS = [f"panda_actuator{i}" for i in range(1, 8)]
# Official Panda joint limits [rad].
JOINT_LIMITS = np.array(
    [
        [-2.8973, 2.8973],
        [-1.7628, 1.7628],
        [-2.8973, 2.8973],
        [-3.0718, -0.0698],
        [-2.8973, 2.8973],
        [-0.0175, 3.7525],
        [-2.8973, 2.8973],
    ]
)


def _load(path):
    m = mujoco.MjModel.from_xml_path(str(path))
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.key("home").id)
    mujoco.mj_forward(m, d)
    return m, d


def _arm_qpos(m, d):
    return np.array([d.qpos[m.jnt_qposadr[m.joint(n).id]] for n in ARM_JOINTS])


def _finger_qpos(m, d):
    return np.array([d.qpos[m.jnt_qposadr[m.joint(n).id]] for n in FINGER_JOINTS])


def _free_qadr(m, body):
    return m.jnt_qposadr[m.body(body).jntadr[0]]


def _step(m, d, seconds):
    for _ in range(int(round(seconds / m.opt.timestep))):
        mujoco.mj_step(m, d)


def _ik(m, q_init, target_pos, target_mat, iters=200):
    """Damped least-squares IK for ee_site on a scratch MjData (arm joints only)."""
    d = mujoco.MjData(m)
    sid = m.site("ee_site").id
    arm_dofs = [m.jnt_dofadr[m.joint(n).id] for n in ARM_JOINTS]
    arm_qadr = [m.jnt_qposadr[m.joint(n).id] for n in ARM_JOINTS]
    q = q_init.copy()
    err = np.inf
    jp = np.zeros((3, m.nv))
    jr = np.zeros((3, m.nv))
    for _ in range(iters):
        d.qpos[arm_qadr] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        R = d.site_xmat[sid].reshape(3, 3)
        e_pos = target_pos - d.site_xpos[sid]
        e_rot = 0.5 * sum(np.cross(R[:, i], target_mat[:, i]) for i in range(3))
        e = np.r_[e_pos, e_rot]
        err = np.linalg.norm(e)
        if err < 1e-7:
            break
        mujoco.mj_jacSite(m, d, jp, jr, sid)
        J = np.r_[jp, jr][:, arm_dofs]
        q = q + J.T @ np.linalg.solve(J @ J.T + 1e-4 * np.eye(6), e)
        q = np.clip(q, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
    return q, err


def _servo(m, d, q_from, q_to, seconds, grip):
    """Linearly ramp arm joint targets over 80% of `seconds`, then hold."""
    arm_act = [m.actuator(n).id for n in ARM_ACTUATORS]
    grip_act = m.actuator("panda_gripper").id
    n = int(round(seconds / m.opt.timestep))
    for i in range(n):
        s = min(1.0, (i + 1) / (0.8 * n))
        d.ctrl[arm_act] = (1 - s) * q_from + s * q_to
        d.ctrl[grip_act] = grip
        mujoco.mj_step(m, d)


# --------------------------------------------------------------------------- #
# Structure
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "path, n_free", [(STACK, 3), (PEG, 1)], ids=["stack", "peg"]
)
def test_scene_loads_with_expected_structure(path, n_free):
    m = mujoco.MjModel.from_xml_path(str(path))

    # 7 arm hinges + 2 finger slides + n_free free joints.
    assert m.njnt == 9 + n_free
    assert m.nq == 9 + 7 * n_free
    assert m.nv == 9 + 6 * n_free
    assert m.nu == 8

    for i, name in enumerate(ARM_JOINTS):
        j = m.joint(name)
        assert j.type[0] == mujoco.mjtJoint.mjJNT_HINGE
        assert j.limited[0]
        np.testing.assert_allclose(j.range, JOINT_LIMITS[i], atol=1e-6)
    for name in FINGER_JOINTS:
        j = m.joint(name)
        assert j.type[0] == mujoco.mjtJoint.mjJNT_SLIDE
        np.testing.assert_allclose(j.range, [0.0, 0.04], atol=1e-9)
    free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    assert len(free) == n_free

    # Actuators: 7 joint position servos + 1 gripper on the finger tendon.
    for name, jname in zip(ARM_ACTUATORS, ARM_JOINTS):
        a = m.actuator(name)
        assert a.trntype[0] == mujoco.mjtTrn.mjTRN_JOINT
        assert a.trnid[0] == m.joint(jname).id
        assert a.gainprm[0] > 0 and a.biasprm[1] == -a.gainprm[0]  # position servo
        assert a.biasprm[2] < 0  # velocity damping (kv)
    g = m.actuator("panda_gripper")
    assert g.trntype[0] == mujoco.mjtTrn.mjTRN_TENDON
    np.testing.assert_allclose(g.ctrlrange, [0.0, 0.04])
    assert m.neq >= 1  # finger coupling

    for site in ["ee_site", "ft_site"]:
        m.site(site)
    assert m.sensor("wrist_force").type[0] == mujoco.mjtSensor.mjSENS_FORCE
    assert m.sensor("wrist_torque").type[0] == mujoco.mjtSensor.mjSENS_TORQUE
    assert m.sensor("wrist_force").objid[0] == m.site("ft_site").id
    m.camera("track")

    # Solver / integrator settings that MuJoCo Warp accepts; primitives only.
    assert m.opt.solver != mujoco.mjtSolver.mjSOL_PGS
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert m.opt.timestep == pytest.approx(0.002)
    assert m.nmesh == 0 and m.nplugin == 0
    allowed = {
        mujoco.mjtGeom.mjGEOM_PLANE,
        mujoco.mjtGeom.mjGEOM_CAPSULE,
        mujoco.mjtGeom.mjGEOM_BOX,
    }
    assert set(int(t) for t in m.geom_type) <= {int(t) for t in allowed}


def test_stack_scene_objects():
    m = mujoco.MjModel.from_xml_path(str(STACK))
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.key("home").id)
    mujoco.mj_forward(m, d)
    colours = {"red": 0, "green": 1, "blue": 2}
    for name, channel in colours.items():
        b = m.body(name)
        assert m.joint(f"{name}_joint").type[0] == mujoco.mjtJoint.mjJNT_FREE
        assert m.jnt_bodyid[m.joint(f"{name}_joint").id] == b.id
        assert 0.05 <= b.mass[0] <= 0.1
        geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b.id]
        assert len(geoms) == 1
        g = geoms[0]
        assert m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX
        np.testing.assert_allclose(m.geom_size[g], [0.025] * 3)
        assert np.argmax(m.geom_rgba[g][:3]) == channel
        np.testing.assert_allclose(d.site(f"{name}_site").xpos, d.body(name).xpos, atol=1e-9)
        # On the table (top at z = 0) and within the Panda's ~0.85 m reach.
        pos = d.body(name).xpos
        assert pos[2] == pytest.approx(0.025, abs=1e-3)
        assert 0.3 < np.linalg.norm(pos[:2]) < 0.75


# --------------------------------------------------------------------------- #
# Dynamics
# --------------------------------------------------------------------------- #


def test_arm_holds_home_pose_under_gravity():
    m, d = _load(STACK)
    np.testing.assert_allclose(_arm_qpos(m, d), HOME)
    # Servo targets == home pose (from the keyframe).
    np.testing.assert_allclose(d.ctrl[: len(HOME)], HOME)
    assert np.linalg.norm(m.opt.gravity) > 9.0

    max_err = 0.0
    for _ in range(int(2.0 / m.opt.timestep)):
        mujoco.mj_step(m, d)
        max_err = max(max_err, np.abs(_arm_qpos(m, d) - HOME).max())
    assert max_err < 0.05
    assert np.abs(d.qvel[:7]).max() < 1e-2  # settled, not oscillating
    np.testing.assert_allclose(_finger_qpos(m, d), [0.04, 0.04], atol=2e-3)


def test_arm_sags_without_servos():
    """Control: with the arm servos switched off the same check must fail."""
    m, d = _load(STACK)
    m.actuator_gainprm[:7, 0] = 0.0
    m.actuator_biasprm[:7, 1:3] = 0.0
    _step(m, d, 2.0)
    assert np.abs(_arm_qpos(m, d) - HOME).max() > 0.05


def test_wrist_force_reads_hand_weight_at_rest():
    m, d = _load(STACK)
    _step(m, d, 1.0)
    hand = m.body("panda_hand").id
    weight = m.body_subtreemass[hand] * np.linalg.norm(m.opt.gravity)
    assert 0.6 < m.body_subtreemass[hand] < 1.2  # hand + two fingers, kg

    R = d.site("ft_site").xmat.reshape(3, 3)
    f_site = d.sensor("wrist_force").data.copy()
    f_world = R @ f_site
    # link7 supports the hand: force along +z (world) with magnitude m*g.
    assert f_world[2] == pytest.approx(weight, rel=0.03)
    assert np.linalg.norm(f_world[:2]) < 0.05 * weight
    # The hand points down, so in the sensor frame the load is along -z.
    assert f_site[2] < -0.9 * weight
    # Torque about the flange is small (COM nearly on the flange axis).
    assert np.linalg.norm(d.sensor("wrist_torque").data) < 0.1


def test_gripper_fingers_are_coupled():
    m, d = _load(STACK)
    grip = m.actuator("panda_gripper").id
    for target in (0.02, 0.0, 0.035):
        d.ctrl[grip] = target
        _step(m, d, 0.5)
        q = _finger_qpos(m, d)
        assert abs(q[0] - q[1]) < 1e-3
        assert q == pytest.approx([target, target], abs=2e-3)


def _pick_red_cube(close_gripper):
    """Scripted pick: move above the cube, descend, (close), lift back to home."""
    m, d = _load(STACK)
    sid = m.site("ee_site").id
    p_home = d.site_xpos[sid].copy()
    R_home = d.site_xmat[sid].reshape(3, 3).copy()

    # Put the red cube on the table directly below the home TCP, aligned with the fingers.
    adr = _free_qadr(m, "red")
    cube = np.array([p_home[0], p_home[1], 0.025])
    d.qpos[adr : adr + 3] = cube
    d.qpos[adr + 3 : adr + 7] = [1, 0, 0, 0]
    d.qvel[:] = 0
    mujoco.mj_forward(m, d)
    z0 = d.body("red").xpos[2]

    q_pre, e1 = _ik(m, HOME, cube + [0, 0, 0.10], R_home)
    q_grasp, e2 = _ik(m, q_pre, cube, R_home)
    assert e1 < 1e-5 and e2 < 1e-5

    grip = 0.0 if close_gripper else 0.04
    _servo(m, d, HOME, q_pre, 0.6, 0.04)
    _servo(m, d, q_pre, q_grasp, 0.6, 0.04)
    # The TCP really is at the cube (servo tracking under gravity).
    assert np.linalg.norm(d.site_xpos[sid] - cube) < 0.01
    _servo(m, d, q_grasp, q_grasp, 0.5, grip)
    fingers = _finger_qpos(m, d)
    _servo(m, d, q_grasp, HOME, 1.0, grip)
    _servo(m, d, HOME, HOME, 0.5, grip)
    return m, d, z0, fingers


def test_gripper_grasps_and_lifts_cube():
    m, d, z0, fingers = _pick_red_cube(close_gripper=True)
    # Fingers stopped on the 5 cm cube (0.025 each), not fully closed.
    assert fingers == pytest.approx([0.025, 0.025], abs=2e-3)
    rise = d.body("red").xpos[2] - z0
    assert rise > 0.03
    # Cube is held at the TCP, not just bumped upward.
    assert np.linalg.norm(d.site("ee_site").xpos - d.body("red").xpos) < 0.02
    # The wrist force sensor now also carries the cube's weight.
    g = np.linalg.norm(m.opt.gravity)
    hand = m.body("panda_hand").id
    f_world = d.site("ft_site").xmat.reshape(3, 3) @ d.sensor("wrist_force").data
    expected = (m.body_subtreemass[hand] + m.body("red").mass[0]) * g
    assert f_world[2] == pytest.approx(expected, rel=0.03)


def test_open_gripper_does_not_lift_cube():
    """Control for the grasp test: same motion with the gripper left open."""
    _, d, z0, fingers = _pick_red_cube(close_gripper=False)
    assert fingers == pytest.approx([0.04, 0.04], abs=2e-3)
    assert d.body("red").xpos[2] - z0 < 0.005


# --------------------------------------------------------------------------- #
# Peg-in-hole scene
# --------------------------------------------------------------------------- #


def test_peg_scene_geometry_and_grasp_holds():
    m, d = _load(PEG)
    m.site("hole_site")
    m.site("peg_tip_site")
    assert m.joint("peg_joint").type[0] == mujoco.mjtJoint.mjJNT_FREE

    ee = d.site("ee_site")
    tip0 = d.site("peg_tip_site").xpos.copy()
    # Peg starts between the fingers, pointing out of the gripper (along ee z).
    ee_z = ee.xmat.reshape(3, 3)[:, 2]
    assert np.linalg.norm(np.cross(tip0 - ee.xpos, ee_z)) < 1e-3
    assert np.dot(tip0 - ee.xpos, ee_z) > 0.03
    # Hole bottom is on the fixture above the table top, away from the peg.
    hole = d.site("hole_site").xpos
    assert 0.0 < hole[2] < 0.03

    _step(m, d, 2.0)
    assert np.abs(_arm_qpos(m, d) - HOME).max() < 0.05
    assert np.linalg.norm(d.site("peg_tip_site").xpos - tip0) < 0.01


def _drop_peg(offset):
    m, d = _load(PEG)
    # Open the gripper and park the arm; drop the peg vertically over the hole.
    d.qpos[[m.jnt_qposadr[m.joint(n).id] for n in FINGER_JOINTS]] = 0.04
    d.ctrl[m.actuator("panda_gripper").id] = 0.04
    hole = d.site("hole_site").xpos.copy()
    adr = _free_qadr(m, "peg")
    half_len = m.geom("peg_geom").size[1] + m.geom("peg_geom").size[0]
    d.qpos[adr : adr + 3] = hole + [offset, 0.0, half_len + 0.06]
    d.qpos[adr + 3 : adr + 7] = [0, 1, 0, 0]  # tip (+z body axis) pointing down
    d.qvel[:] = 0
    _step(m, d, 1.0)
    return d.site("peg_tip_site").xpos - hole


def test_peg_fits_hole_with_clearance():
    rel = _drop_peg(offset=0.0)
    assert np.linalg.norm(rel) < 0.002  # reaches the bottom of the hole


def test_misaligned_peg_does_not_enter_hole():
    """Control: 4 mm off-centre (> 1 mm clearance) the peg jams on the rim."""
    rel = _drop_peg(offset=0.004)
    assert rel[2] > 0.01
