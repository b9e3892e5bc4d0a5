"""The engine layer on the humanoid MJCF: C MuJoCo (``mujoco``) and MuJoCo Warp on Warp's CPU
device (``mjwarp``), checked against the ``Engine`` contract and against each other.

MuJoCo Warp compiles its kernels on first use in a process (about a minute on two cores, cached in
~/.cache/warp afterwards); every later engine build takes a fraction of a second.
"""
from __future__ import annotations

import re

import mujoco
import numpy as np
import pytest
import torch

from conftest import HUMANOID_XML, make_engine, stand_state
from isaacgymenvs_hrl.sim import RANDOMIZABLE_FIELDS, SimError, SimParams, create_engine

BACKENDS = ("mujoco", "mjwarp")


def _quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) wxyz -> (N, 3, 3)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def _random_states(model, n: int, gen: torch.Generator, height: float = 2.0):
    """Distinct states: random yaw/tilt, positions and joint angles inside their limits."""
    qpos = torch.tensor(model.qpos0, dtype=torch.float32).repeat(n, 1)
    qpos[:, 0:2] = torch.rand(n, 2, generator=gen) * 4 - 2
    qpos[:, 2] = height + torch.rand(n, generator=gen)
    quat = torch.randn(n, 4, generator=gen)
    qpos[:, 3:7] = quat / quat.norm(dim=-1, keepdim=True)
    low = torch.tensor(model.jnt_range[1:, 0], dtype=torch.float32)
    high = torch.tensor(model.jnt_range[1:, 1], dtype=torch.float32)
    qpos[:, 7:] = low + (high - low) * torch.rand(n, model.nq - 7, generator=gen)
    qvel = 0.5 * torch.randn(n, model.nv, generator=gen)
    return qpos, qvel


# ---- loading and the state tensors ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_load_humanoid_shapes_and_dtypes(backend):
    eng = make_engine(backend, 3)
    m = eng.model
    assert eng.name == backend and eng.num_envs == 3
    assert (m.nq, m.nv, m.nu) == (28, 27, 21)       # free joint + 21 hinges, one motor each
    expected = {"qpos": (3, m.nq), "qvel": (3, m.nv), "ctrl": (3, m.nu),
                "sensordata": (3, m.nsensordata)}
    for name, shape in expected.items():
        t = getattr(eng, name)
        assert tuple(t.shape) == shape, name
        assert t.dtype == torch.float32, name
        assert t.device.type == "cpu", name
    assert m.opt.timestep == pytest.approx(0.02 / 4)
    # Every env starts at the model's reference pose, torso at the MJCF height of 1.3 m.
    np.testing.assert_allclose(eng.qpos.numpy(), np.tile(m.qpos0, (3, 1)), atol=1e-6)
    assert torch.all(eng.qvel == 0)
    assert eng.unstable.shape == (3,) and eng.unstable.dtype == torch.bool and not eng.unstable.any()
    eng.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_envs_sets_exactly_those_rows(backend):
    n = 4
    eng = make_engine(backend, n)
    gen = torch.Generator().manual_seed(3)
    eng.ctrl[:] = 0.5 * torch.randn(n, eng.model.nu, generator=gen)
    eng.step(4)
    eng.step(4)
    before_q, before_v = eng.qpos.clone(), eng.qvel.clone()

    ids = torch.tensor([1, 3])
    new_q, new_v = _random_states(eng.model, 2, gen, height=3.0)
    eng.reset_envs(ids, new_q, new_v)
    torch.testing.assert_close(eng.qpos[ids], new_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(eng.qvel[ids], new_v, rtol=0, atol=1e-6)
    keep = torch.tensor([0, 2])
    assert torch.equal(eng.qpos[keep], before_q[keep])
    assert torch.equal(eng.qvel[keep], before_v[keep])

    # The reset reaches the simulator's own state, not only the tensors: one more step of the
    # reset rows matches a fresh engine started from the same states (free fall, no contacts).
    eng.ctrl[:] = 0.0
    eng.step(4)
    fresh = make_engine(backend, 2)
    fresh.reset_envs(torch.arange(2), new_q, new_v)
    fresh.step(4)
    torch.testing.assert_close(eng.qpos[ids], fresh.qpos, rtol=0, atol=1e-5)
    torch.testing.assert_close(eng.qvel[ids], fresh.qvel, rtol=0, atol=1e-4)
    assert not torch.allclose(fresh.qpos, new_q, atol=1e-4)       # the step did move them
    eng.close()
    fresh.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_fills_poses_of_the_current_state(backend):
    n = 3
    eng = make_engine(backend, n)
    m = eng.model
    qpos, qvel = _random_states(m, n, torch.Generator().manual_seed(5))
    eng.reset_envs(torch.arange(n), qpos, qvel)
    eng.forward()
    assert tuple(eng.xpos.shape) == (n, m.nbody, 3)
    assert tuple(eng.xquat.shape) == (n, m.nbody, 4)
    assert tuple(eng.site_xpos.shape) == (n, m.nsite, 3)
    assert tuple(eng.site_xmat.shape) == (n, m.nsite, 3, 3)
    for t in (eng.xpos, eng.xquat, eng.site_xpos, eng.site_xmat):
        assert t.dtype == torch.float32

    torso = m.body("torso").id
    torch.testing.assert_close(eng.xpos[:, torso], qpos[:, :3], rtol=0, atol=1e-5)
    torch.testing.assert_close(eng.xquat[:, torso], qpos[:, 3:7], rtol=0, atol=1e-5)   # wxyz
    torch.testing.assert_close(eng.xpos[:, 0], torch.zeros(n, 3))                      # world
    site = m.site("torso_site").id                          # at the torso origin, torso axes
    torch.testing.assert_close(eng.site_xpos[:, site], qpos[:, :3], rtol=0, atol=1e-5)
    torch.testing.assert_close(eng.site_xmat[:, site], _quat_to_mat(qpos[:, 3:7]), rtol=0, atol=1e-5)
    # forward() also refreshes the sensors: the torso framepos sensor reads the torso position.
    adr = m.sensor("torso_pos").adr[0]
    torch.testing.assert_close(eng.sensordata[:, adr:adr + 3], qpos[:, :3], rtol=0, atol=1e-5)
    # Bodies below the torso follow the joints: the feet are below the torso in its own frame.
    rel = eng.xpos[:, m.body("right_foot").id] - qpos[:, :3]
    rel_b = torch.einsum("nji,nj->ni", _quat_to_mat(qpos[:, 3:7]), rel)
    assert torch.all(rel_b[:, 2] < -0.5)
    eng.close()


def test_forward_kinematics_agree_across_backends():
    n = 4
    engines = {b: make_engine(b, n) for b in BACKENDS}
    qpos, qvel = _random_states(engines["mujoco"].model, n, torch.Generator().manual_seed(11))
    for eng in engines.values():
        eng.reset_envs(torch.arange(n), qpos, qvel)
        eng.forward()
    a, b = engines["mujoco"], engines["mjwarp"]
    for name in ("xpos", "xquat", "site_xpos", "site_xmat", "sensordata"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=1e-5, msg=name)


# ---- backend parity ------------------------------------------------------------------------
def _run_both(n: int, qpos: torch.Tensor, qvel: torch.Tensor, ctrl_seq, gravity=(0.0, 0.0, -9.81),
              per_env_damping: dict | None = None, after_step=None):
    """Step both backends from the same states with the same controls; max |difference| seen.

    ``after_step(mujoco_engine)`` is called after every control step."""
    engines = {b: make_engine(b, n, gravity=gravity) for b in BACKENDS}
    for eng in engines.values():
        eng.reset_envs(torch.arange(n), qpos, qvel)
        if per_env_damping:
            ids = torch.tensor(sorted(per_env_damping))
            values = eng.get_param("dof_damping")[ids] * torch.tensor(
                [per_env_damping[i] for i in ids.tolist()])[:, None]
            eng.set_param("dof_damping", ids, values)
    max_dq = max_dv = 0.0
    for ctrl in ctrl_seq:
        for eng in engines.values():
            eng.ctrl[:] = ctrl
            eng.step(4)
        a, b = engines["mujoco"], engines["mjwarp"]
        max_dq = max(max_dq, (a.qpos - b.qpos).abs().max().item())
        max_dv = max(max_dv, (a.qvel - b.qvel).abs().max().item())
        if after_step is not None:
            after_step(a)
    return engines, max_dq, max_dv


def test_backend_parity_100_control_steps_with_per_env_params():
    """100 control steps (400 physics steps) of random torques, airborne so that the comparison
    covers actuation, gravity, damping, joint limits and per-env parameters but not the chaotic
    whole-body ground impacts (those are covered for a short horizon below).

    Envs 4..7 repeat the states and controls of envs 0..3; envs 5 and 6 get 10x joint damping.
    """
    n, steps = 8, 100
    gen = torch.Generator().manual_seed(0)
    model = make_engine("mujoco", 1).model
    q0 = torch.tensor(model.key_qpos[model.key("stand").id], dtype=torch.float32).repeat(n, 1)
    q0[:, 2] = 30.0                     # falls ~20 m in 2 s: never reaches the floor
    v0 = torch.zeros(n, model.nv)
    ctrl_seq = []
    for _ in range(steps):
        c = 0.3 * torch.randn(4, model.nu, generator=gen)
        ctrl_seq.append(torch.cat([c, c]))
    engines, max_dq, max_dv = _run_both(n, q0, v0, ctrl_seq, per_env_damping={5: 10.0, 6: 10.0})

    assert max_dq < 1e-3, f"qpos differs between backends by {max_dq}"
    assert max_dv < 1e-2, f"qvel differs between backends by {max_dv}"
    for name, eng in engines.items():
        assert not eng.unstable.any(), name
        # Not trivially equal to the start: it fell and the limbs moved.
        assert torch.all(eng.qpos[:, 2] < 15.0), name
        assert (eng.qpos[:, 7:] - q0[:, 7:]).abs().max() > 0.3, name
        # Per-env parameters: the stored values ...
        damping = eng.get_param("dof_damping")
        default = torch.tensor(model.dof_damping, dtype=torch.float32)
        for i in range(n):
            factor = 10.0 if i in (5, 6) else 1.0
            torch.testing.assert_close(damping[i], default * factor, msg=f"{name} env {i}")
        # ... change only those envs' trajectories: 4 and 7 repeat 0 and 3, 5 and 6 do not.
        for i in (0, 3):
            torch.testing.assert_close(eng.qpos[i + 4], eng.qpos[i], rtol=0, atol=1e-5,
                                       msg=f"{name} env {i + 4}")
        for i in (1, 2):
            gap = (eng.qpos[i + 4, 7:] - eng.qpos[i, 7:]).abs().max().item()
            assert gap > 0.05, f"{name}: 10x damping in env {i + 4} changed its joints by only {gap}"
        eng.close()


def test_backend_parity_through_ground_contact():
    """From z=1.35 with random torques the humanoid drops onto its feet and starts to fall; the two
    backends agree over the first 20 control steps. (Later, whole-body impacts amplify the
    float32/float64 difference chaotically: ~1e-2 after 40 steps.)"""
    n, steps = 8, 20
    gen = torch.Generator().manual_seed(1)
    model = make_engine("mujoco", 1).model
    q0 = torch.tensor(model.key_qpos[model.key("stand").id], dtype=torch.float32).repeat(n, 1)
    q0[:, 2] = 1.35
    v0 = torch.zeros(n, model.nv)
    ctrl_seq = [0.3 * torch.randn(n, model.nu, generator=gen) for _ in range(steps)]
    feet = [model.body("right_foot").id, model.body("left_foot").id]
    lowest_foot = torch.full((n,), np.inf)

    def track_feet(eng):
        nonlocal lowest_foot
        eng.forward()
        lowest_foot = torch.minimum(lowest_foot, eng.xpos[:, feet, 2].min(-1).values)

    engines, max_dq, max_dv = _run_both(n, q0, v0, ctrl_seq, after_step=track_feet)
    assert max_dq < 1e-3, f"qpos differs between backends by {max_dq}"
    assert max_dv < 2e-2, f"qvel differs between backends by {max_dv}"
    # Every env had a foot on the floor (the foot frame sits 5 cm above its sole) ...
    assert torch.all(lowest_foot < 0.06), lowest_foot
    for name, eng in engines.items():
        assert torch.all(eng.qpos[:, 2] < 1.25), name          # ... and is dropping
        eng.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_param_checks_field_and_shape(backend):
    eng = make_engine(backend, 2)
    with pytest.raises(SimError, match="not randomizable"):
        eng.get_param("opt_timestep")
    with pytest.raises(SimError, match="not randomizable"):
        eng.set_param("geom_rgba", torch.arange(1), torch.zeros(1, eng.model.ngeom, 4))
    with pytest.raises(SimError, match="shape"):
        eng.set_param("dof_damping", torch.arange(1), torch.zeros(1, eng.model.nv + 1))
    from isaacgymenvs_hrl.sim.engine import model_field      # model.<field>, or model.opt.<field> (gravity)
    for field in RANDOMIZABLE_FIELDS:
        value = eng.get_param(field)
        assert value.shape == (2, *np.asarray(model_field(eng.model, field)).shape), field
        np.testing.assert_allclose(value[1].numpy(), model_field(eng.model, field), rtol=1e-6, err_msg=field)
    eng.close()


# ---- bad inputs --------------------------------------------------------------------------
PARAMS = SimParams(dt=0.02, substeps=4)


@pytest.mark.parametrize("name", ["physx", "flex"])
def test_isaac_gym_engines_are_refused_with_the_alternatives(name):
    with pytest.raises(SimError) as err:
        create_engine(name, HUMANOID_XML, 2, PARAMS)
    msg = str(err.value)
    assert "Isaac Gym" in msg and "physics_engine=mujoco" in msg and "physics_engine=mjwarp" in msg


def test_unknown_engine_name():
    with pytest.raises(SimError, match="unknown physics_engine 'bullet'.*mujoco.*mjwarp"):
        create_engine("bullet", HUMANOID_XML, 2, PARAMS)


@pytest.mark.parametrize("num_envs", [0, -1])
def test_num_envs_must_be_positive(num_envs):
    with pytest.raises(SimError, match="num_envs must be a positive integer"):
        create_engine("mujoco", HUMANOID_XML, num_envs, PARAMS)


def test_missing_mjcf_file(tmp_path):
    missing = tmp_path / "no_such_robot.xml"
    with pytest.raises(SimError, match="not found") as err:
        create_engine("mujoco", str(missing), 2, PARAMS)
    assert str(missing) in str(err.value)


def test_mjcf_that_does_not_compile(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><geom type='sphere'/></body></worldbody>")
    with pytest.raises(SimError, match="could not compile"):
        create_engine("mujoco", str(bad), 2, PARAMS)


@pytest.mark.parametrize("dt,substeps", [(0.0, 4), (-0.01, 4), (0.02, 0)])
def test_bad_timestep(dt, substeps):
    with pytest.raises(SimError, match="sim.dt"):
        create_engine("mujoco", HUMANOID_XML, 2, SimParams(dt=dt, substeps=substeps))


def test_pgs_solver_is_refused_by_mjwarp_only(tmp_path):
    xml = open(HUMANOID_XML).read()
    assert 'solver="Newton"' in xml
    pgs = tmp_path / "humanoid_pgs.xml"
    pgs.write_text(xml.replace('solver="Newton"', 'solver="PGS"'))
    with pytest.raises(SimError, match='PGS.*solver="Newton"'):
        create_engine("mjwarp", str(pgs), 2, PARAMS)
    eng = create_engine("mujoco", str(pgs), 2, PARAMS)          # C MuJoCo has PGS
    assert eng.model.opt.solver == mujoco.mjtSolver.mjSOL_PGS
    eng.step(1)
    eng.close()


# ---- divergence ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_diverging_env_is_marked_unstable(backend, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)               # MuJoCo appends its warnings to ./MUJOCO_LOG.TXT
    n = 4
    eng = make_engine(backend, n)
    qpos, qvel = stand_state(eng)
    qvel[1] = 1e12
    eng.reset_envs(torch.arange(n), qpos, qvel)
    eng.step(4)
    assert eng.unstable.tolist() == [False, True, False, False]
    keep = torch.tensor([0, 2, 3])
    assert torch.isfinite(eng.qpos[keep]).all() and torch.isfinite(eng.qvel[keep]).all()
    assert torch.all(eng.qpos[keep, 2] > 1.0)            # the others stand on, unaffected
    # A reset of the diverged env clears the flag on the next step.
    q1, v1 = stand_state(eng)
    eng.reset_envs(torch.tensor([1]), q1[:1], v1[:1])
    eng.step(4)
    assert not eng.unstable.any()
    eng.close()


def test_huge_gear_diverges_on_mujoco(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)               # MuJoCo appends its warnings to ./MUJOCO_LOG.TXT
    xml = re.sub(r'gear="\d+"', 'gear="1e9"', open(HUMANOID_XML).read())
    path = tmp_path / "humanoid_huge_gear.xml"
    path.write_text(xml)
    eng = create_engine("mujoco", str(path), 3, PARAMS)
    eng.ctrl[0] = 1.0                   # env 0 pushes with 1e9 N m, the others hold still
    eng.step(4)
    assert eng.unstable.tolist() == [True, False, False]
    eng.close()


def test_foot_touch_sensors_read_weight_while_standing():
    eng = make_engine("mujoco", 1)
    for _ in range(10):
        eng.step(4)
    m = eng.model
    touch = [eng.sensordata[0, m.sensor(s).adr[0]].item() for s in ("right_foot_touch", "left_foot_touch")]
    weight = float(np.sum(m.body_mass)) * 9.81
    assert sum(touch) == pytest.approx(weight, rel=0.3)


# ---- solver options and per-physics-step controls ------------------------------------------
def test_solver_options_from_the_config_reach_the_model():
    params = SimParams(dt=0.02, substeps=4, solver={"iterations": 7, "ls_iterations": 3, "tolerance": 1e-6,
                                                    "noslip_iterations": 2, "cone": "pyramidal"})
    eng = create_engine("mujoco", HUMANOID_XML, 2, params)
    opt = eng.model.opt
    assert (opt.iterations, opt.ls_iterations, opt.noslip_iterations) == (7, 3, 2)
    assert opt.tolerance == pytest.approx(1e-6) and opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL
    eng.close()


@pytest.mark.parametrize("solver,match", [({"itrations": 5}, r"sim.mujoco.itrations.*iterations"),
                                          ({"iterations": 0}, r"iterations must be >= 1"),
                                          ({"tolerance": "tight"}, r"tolerance must be a number"),
                                          ({"cone": "round"}, r"cone must be pyramidal or elliptic")])
def test_bad_solver_option_names_the_key(solver, match):
    with pytest.raises(SimError, match=match):
        create_engine("mujoco", HUMANOID_XML, 2, SimParams(dt=0.02, substeps=4, solver=solver))


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_controls_equals_stepping_one_control_at_a_time(backend):
    a, b = make_engine(backend, 3), make_engine(backend, 3)
    for eng in (a, b):
        eng.reset_envs(torch.arange(3), *stand_state(eng))
    gen = torch.Generator().manual_seed(0)
    seq = torch.rand(3, 5, a.model.nu, generator=gen) * 2 - 1
    seq[:, 2] = seq[:, 1]                       # a run of equal columns, as in a control ramp
    a.step_controls(seq)
    for j in range(5):
        b.ctrl[:] = seq[:, j]
        b.step(1)
    torch.testing.assert_close(a.qpos, b.qpos, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.qvel, b.qvel, rtol=0, atol=1e-5)
    assert torch.equal(a.ctrl, seq[:, -1].to(a.ctrl))
    # and the sequence matters: holding the last control gives another state
    c = make_engine(backend, 3)
    c.reset_envs(torch.arange(3), *stand_state(c))
    c.ctrl[:] = seq[:, -1]
    c.step(5)
    assert not torch.allclose(c.qvel, a.qvel, atol=1e-3)
    for eng in (a, b, c):
        eng.close()


# ---- sleeping bodies (sim.mujoco.sleep) ------------------------------------------------------
PUSH_XML = """<mujoco>
  <worldbody>
    <geom type="plane" size="2 2 0.1"/>
    <body name="pusher" pos="-0.5 0 0.07">
      <joint name="slide" type="slide" axis="1 0 0" damping="5"/>
      <geom type="box" size="0.05 0.05 0.05" mass="1"/>
    </body>
    <body name="box" pos="0 0 0.0505">
      <freejoint/>
      <geom type="box" size="0.05 0.05 0.05" mass="0.1"/>
    </body>
  </worldbody>
  <actuator><position joint="slide" kp="200" kv="20"/></actuator>
</mujoco>"""


def test_sleeping_bodies_wake_on_contact_and_on_reset_and_match_the_awake_physics(tmp_path):
    path = tmp_path / "push.xml"
    path.write_text(PUSH_XML)
    sleepy, awake = (create_engine("mujoco", str(path), 3, SimParams(dt=0.05, substeps=10, num_threads=2,
                                                                      solver={"sleep": s})) for s in (True, False))
    for eng in (sleepy, awake):
        eng.step(200)                                   # 1 s: every box comes to rest
    # the boxes sleep, each env on its own; the actuated pusher never does
    assert [d.ntree_awake for d in sleepy._env_datas] == [1, 1, 1]
    for eng in (sleepy, awake):
        qpos = eng.qpos[1:2].clone()
        qpos[0, 3] = 0.5                                # env 1: its box lifted into the air
        eng.reset_envs(torch.tensor([1]), qpos, torch.zeros(1, eng.model.nv))
        eng.ctrl[2] = 0.45                              # env 2: the pusher shoves its box 5 cm
        eng.step(200)
    torch.testing.assert_close(sleepy.qpos, awake.qpos, rtol=0, atol=1e-3)
    assert sleepy.qpos[1, 3] == pytest.approx(0.05, abs=2e-3)     # it fell back onto the plane
    assert sleepy.qpos[2, 1] > 0.03                                # it was pushed
    assert sleepy.qpos[0, 1].abs() < 1e-4                          # env 0's box stayed where it slept
    for eng in (sleepy, awake):
        eng.close()


def test_sleep_option_must_be_a_bool():
    with pytest.raises(SimError, match=r"sim.mujoco.sleep must be true or false"):
        create_engine("mujoco", HUMANOID_XML, 2, SimParams(dt=0.02, substeps=4, solver={"sleep": "yes"}))
