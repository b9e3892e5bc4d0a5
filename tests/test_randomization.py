"""IsaacGymEnvs' ``randomization_params`` on MuJoCo, read from IsaacGymEnvs' own ``Humanoid.yaml``.

Per-env model parameters (mass, friction, damping), entries without a MuJoCo counterpart, schedules,
re-randomization on reset, and observation/action noise. IsaacGymEnvs draws gaussian noise as
``mu + range[1] * randn`` (``range[1]`` acts as the standard deviation although its docs call it
the variance), uniform noise from ``[range[0], range[1]]``.
"""
from __future__ import annotations

import copy
import logging

import pytest
import torch

from conftest import load_ige_task_cfg, make_cfg, make_task
from isaacgymenvs_hrl.tasks import Humanoid
from isaacgymenvs_hrl.tasks.base.randomization import RandomizationError

N = 8


def _strip_schedules(params: dict) -> dict:
    """The same entries at their full range from the first step (no linear ramp)."""
    params = copy.deepcopy(params)

    def walk(node):
        if isinstance(node, dict):
            node.pop("schedule", None)
            node.pop("schedule_steps", None)
            for v in node.values():
                walk(v)
    walk(params)
    return params


def _humanoid(randomization_params: dict | None = None, num_envs: int = N, seed: int = 0,
              frequency: int | None = None):
    """IsaacGymEnvs' Humanoid config with ``task.randomize: True``."""
    cfg = load_ige_task_cfg("Humanoid", num_envs=num_envs)
    cfg["task"]["randomize"] = True
    if randomization_params is not None:
        cfg["task"]["randomization_params"] = randomization_params
    if frequency is not None:
        cfg["task"]["randomization_params"]["frequency"] = frequency
    return make_task(cfg, seed=seed, task_cls=Humanoid)


def _ige_params() -> dict:
    return load_ige_task_cfg("Humanoid", num_envs=N)["task"]["randomization_params"]


def _default(task, field):
    return torch.tensor(getattr(task.engine.model, field), dtype=torch.float32)


def _robot(task):
    """Bodies, geoms and dofs of the humanoid (everything but the world body and the floor)."""
    m = task.engine.model
    bodies = torch.arange(1, m.nbody)
    geoms = torch.tensor([g for g in range(m.ngeom) if m.geom_bodyid[g] != 0])
    return bodies, geoms, torch.arange(m.nv)


# ---- actor parameters -------------------------------------------------------------------------
def test_actor_params_are_per_env_and_within_the_configured_ranges(caplog):
    with caplog.at_level(logging.WARNING):
        task = _humanoid(_strip_schedules(_ige_params()))
    eng, m = task.engine, task.engine.model
    bodies, geoms, _ = _robot(task)
    hinges = torch.arange(6, m.nv)

    # body_mass: scaled by U(0.5, 1.5) per env and body; inertia scaled with it; world untouched.
    mass, mass0 = eng.get_param("body_mass"), _default(task, "body_mass")
    ratio = mass[:, bodies] / mass0[bodies]
    assert ratio.min() >= 0.5 - 1e-6 and ratio.max() <= 1.5 + 1e-6
    assert ratio.std() > 0.15                                   # U(0.5, 1.5) has std 0.29
    assert torch.all(mass[:, 0] == 0)
    inertia = eng.get_param("body_inertia")
    torch.testing.assert_close(inertia[:, bodies] / _default(task, "body_inertia")[bodies],
                               ratio[..., None].expand(-1, -1, 3), rtol=1e-5, atol=1e-5)

    # geom_friction: sliding column scaled by U(0.7, 1.3) on the robot's geoms only.
    fr, fr0 = eng.get_param("geom_friction"), _default(task, "geom_friction")
    ratio_f = fr[:, geoms, 0] / fr0[geoms, 0]
    assert ratio_f.min() >= 0.7 - 1e-6 and ratio_f.max() <= 1.3 + 1e-6 and ratio_f.std() > 0.08
    floor = m.geom("floor").id
    torch.testing.assert_close(fr[:, floor], fr0[floor].expand(N, 3))
    torch.testing.assert_close(fr[:, :, 1:], fr0[:, 1:].expand(N, -1, -1))   # torsional, rolling

    # dof_damping: hinge dofs scaled by U(0.5, 1.5); the free joint has none to scale.
    d, d0 = eng.get_param("dof_damping"), _default(task, "dof_damping")
    ratio_d = d[:, hinges] / d0[hinges]
    assert ratio_d.min() >= 0.5 - 1e-6 and ratio_d.max() <= 1.5 + 1e-6 and ratio_d.std() > 0.15
    assert torch.all(d[:, :6] == 0)
    # dof_properties.stiffness maps to jnt_stiffness: 0 in this MJCF, and scaling keeps it 0.
    assert torch.all(eng.get_param("jnt_stiffness") == 0)

    # Every env got its own draw.
    for values in (mass[:, bodies], fr[:, geoms, 0], d[:, hinges]):
        assert len({tuple(row.tolist()) for row in values}) == N

    # gravity (additive N(0, 0.4) per component), joint limits (additive N(0, 0.01)) per env
    g = eng.get_param("gravity")
    assert 0.2 < (g - torch.tensor([0.0, 0.0, -9.81])).std() < 0.6 and len({tuple(r.tolist()) for r in g}) == N
    lim, lim0 = eng.get_param("jnt_range")[:, 1:], _default(task, "jnt_range")[1:]
    assert 0.005 < (lim - lim0).std() < 0.015
    # restitution scales IsaacGym's default of 0 (MuJoCo's critically damped contact): stays 0
    torch.testing.assert_close(eng.get_param("geom_solref"), _default(task, "geom_solref").expand(N, -1, -1))

    # Entries with no MuJoCo counterpart are reported, not dropped silently.
    skipped = set(task.randomizer.skipped)
    assert skipped == {"actor_params.humanoid.color"}
    assert "color" in caplog.text

    # The randomized envs still simulate.
    task.reset()
    for _ in range(3):
        obs, rew, reset, _ = task.step(task.zero_actions())
    assert torch.isfinite(obs["obs"]).all() and not task.engine.unstable.any()
    task.close()


def test_linear_schedule_starts_from_no_randomization():
    """The file as published: every actor entry ramps linearly over 3000 steps, so at setup (step 0)
    the sampled scale is exactly 1 (as in IsaacGymEnvs); half-way the range is half as wide."""
    task = _humanoid()
    eng = task.engine
    for field in ("body_mass", "geom_friction", "dof_damping"):
        torch.testing.assert_close(eng.get_param(field), _default(task, field).expand(N, *_default(task, field).shape))

    task.randomizer.step_count = 1500
    task.randomizer.randomize_actors(torch.arange(N), setup=False)
    _, geoms, _ = _robot(task)
    hinges = torch.arange(6, eng.model.nv)
    ratio_f = eng.get_param("geom_friction")[:, geoms, 0] / _default(task, "geom_friction")[geoms, 0]
    ratio_d = eng.get_param("dof_damping")[:, hinges] / _default(task, "dof_damping")[hinges]
    assert ratio_f.min() >= 0.85 - 1e-6 and ratio_f.max() <= 1.15 + 1e-6 and ratio_f.std() > 0.03
    assert ratio_d.min() >= 0.75 - 1e-6 and ratio_d.max() <= 1.25 + 1e-6 and ratio_d.std() > 0.05
    # mass is setup_only: not re-drawn after setup.
    torch.testing.assert_close(eng.get_param("body_mass"), _default(task, "body_mass").expand(N, -1))
    task.close()


@pytest.mark.parametrize("frequency,redrawn", [(1, True), (600, False)])
def test_reset_envs_are_redrawn_once_frequency_steps_have_passed(frequency, redrawn):
    task = _humanoid(_strip_schedules(_ige_params()), frequency=frequency)
    task.reset()
    eng = task.engine
    before = {f: eng.get_param(f) for f in ("body_mass", "geom_friction", "dof_damping")}

    # Knock env 2 over; it ends its episode in this step.
    qpos = task.default_qpos.clone()[None]
    qpos[0, 2] = 0.4
    qpos[0, 3:7] = torch.tensor([0.7071068, 0.7071068, 0.0, 0.0])
    eng.reset_envs(torch.tensor([2]), qpos, torch.zeros(1, eng.model.nv))
    _, _, reset, _ = task.step(task.zero_actions())
    assert reset.tolist() == [0, 0, 1, 0, 0, 0, 0, 0]

    after = {f: eng.get_param(f) for f in before}
    others = torch.tensor([0, 1, 3, 4, 5, 6, 7])
    for f in before:
        assert torch.equal(after[f][others], before[f][others]), f
    assert torch.equal(after["body_mass"], before["body_mass"])          # setup_only
    for f in ("geom_friction", "dof_damping"):
        assert (not torch.equal(after[f][2], before[f][2])) == redrawn, f
    task.close()


def test_unknown_actor_name_is_a_clear_error():
    params = _strip_schedules(_ige_params())
    params["actor_params"]["robot_arm"] = params["actor_params"].pop("humanoid")
    with pytest.raises(RandomizationError, match=r"actor_params\.robot_arm.*humanoid"):
        _humanoid(params)


def test_humanoid_actor_name_also_works_for_the_locomotion_task():
    params = _strip_schedules(_ige_params())
    cfg = make_cfg(env={"numEnvs": 4}, task={"randomize": True, "randomization_params": params})
    task = make_task(cfg)
    ratio = task.engine.get_param("body_mass")[:, 1:] / _default(task, "body_mass")[1:]
    assert ratio.std() > 0.15
    task.close()


def test_bad_entries_are_clear_errors():
    params = {"observations": {"range": [0.0, 0.1], "operation": "multiply"}}
    with pytest.raises(RandomizationError, match="operation"):
        _humanoid(params)
    params = {"actions": {"range": [0.0], "operation": "additive"}}
    with pytest.raises(RandomizationError, match="range"):
        _humanoid(params)


# ---- noise ------------------------------------------------------------------------------------
def test_observation_noise_changes_obs_but_not_the_state():
    """IsaacGymEnvs' observation noise (gaussian, range [0, .002]: std 0.002) on the returned
    observations only: a twin without noise keeps the same physics and the same clean obs_buf."""
    n = 16
    obs_noise = {"observations": _ige_params()["observations"]}
    noisy = _humanoid(obs_noise, num_envs=n, seed=3)
    noisy_obs = noisy.reset()["obs"]
    cfg = load_ige_task_cfg("Humanoid", num_envs=n)
    clean = make_task(cfg, seed=3, task_cls=Humanoid)
    clean_obs = clean.reset()["obs"]
    assert clean.randomizer is None
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        actions = 0.3 * torch.randn(n, 21, generator=gen)
        noisy_obs = noisy.step(actions)[0]["obs"]
        clean_obs = clean.step(actions)[0]["obs"]
    assert torch.equal(noisy.engine.qpos, clean.engine.qpos)
    assert torch.equal(noisy.engine.qvel, clean.engine.qvel)
    assert torch.equal(noisy.obs_buf, clean.obs_buf)
    torch.testing.assert_close(clean_obs, clean.obs_buf)
    noise = noisy_obs - clean_obs
    assert (noise != 0).float().mean() > 0.99                 # every entry got its own draw
    assert 0.0016 < noise.std().item() < 0.0024, noise.std().item()
    assert abs(noise.mean().item()) < 5e-4
    noisy.close()
    clean.close()


def test_action_noise_perturbs_the_applied_actions():
    """IsaacGymEnvs' action noise (gaussian, range [0, .02]: std 0.02) is added before clipping."""
    act_noise = {"actions": _ige_params()["actions"]}
    task = _humanoid(act_noise, seed=5)
    task.reset()
    task.step(task.zero_actions())
    applied = task.actions                                   # what reached the motors
    assert 0.014 < applied.std().item() < 0.026, applied.std().item()
    torch.testing.assert_close(task.engine.ctrl, applied * task.power_scale)
    task.close()


# ---- the rest of the schema: gravity, restitution, PD gains, effort and joint limits, both backends ----
def _pd_task(params: dict, num_envs: int = N, physics_engine: str = "mujoco", seed: int = 0):
    """HumanoidLocomotion in pd mode: MuJoCo position servos (kp, kv) with force limits."""
    cfg = make_cfg(physics_engine=physics_engine, env={"numEnvs": num_envs},
                   task={"randomize": True, "randomization_params": params})
    return make_task(cfg, seed=seed)


SCHEMA = {
    "sim_params": {"gravity": {"range": [0.0, 1.0], "operation": "additive", "distribution": "gaussian"}},
    "actor_params": {"robot": {
        "rigid_shape_properties": {"restitution": {"range": [0.2, 0.6], "operation": "additive",
                                                   "distribution": "uniform"}},
        "dof_properties": {
            "stiffness": {"range": [0.5, 1.5], "operation": "scaling", "distribution": "uniform"},
            "damping": {"range": [0.5, 2.0], "operation": "scaling", "distribution": "loguniform"},
            "effort": {"range": [0.6, 0.9], "operation": "scaling", "distribution": "uniform"},
            "lower": {"range": [-0.1, 0.0], "operation": "additive", "distribution": "uniform"},
            "upper": {"range": [0.0, 0.1], "operation": "additive", "distribution": "uniform"}}}},
}


def _check_schema_fields(task):
    from isaacgymenvs_hrl.tasks.base.randomization import dampratio_from_restitution, restitution_from_dampratio
    eng, m = task.engine, task.engine.model
    n = task.num_envs
    # gravity: every component + N(0, 1) per env
    g = eng.get_param("gravity")
    assert g.shape == (n, 3) and len({tuple(r.tolist()) for r in g}) == n
    assert 0.4 < (g - torch.tensor([0.0, 0.0, -9.81])).std() < 1.8
    # restitution e ~ U(0.2, 0.6) (default 0) -> the contact damping ratio of the robot's geoms
    geoms = torch.tensor([i for i in range(m.ngeom) if m.geom_bodyid[i] != 0])
    z = eng.get_param("geom_solref")[:, geoms, 1]
    e = restitution_from_dampratio(z)
    assert e.min() >= 0.2 - 1e-4 and e.max() <= 0.6 + 1e-4 and e.std() > 0.05
    torch.testing.assert_close(dampratio_from_restitution(e), z, rtol=1e-4, atol=1e-5)
    floor = m.geom("floor").id
    assert torch.all(eng.get_param("geom_solref")[:, floor] == _default(task, "geom_solref")[floor])
    # PD gains: kp (gainprm[0] = -biasprm[1]) scaled by U(0.5, 1.5), kv (-biasprm[2]) log-uniform [0.5, 2]
    gain, bias = eng.get_param("actuator_gainprm"), eng.get_param("actuator_biasprm")
    kp0, kv0 = _default(task, "actuator_gainprm")[:, 0], -_default(task, "actuator_biasprm")[:, 2]
    r_kp = gain[:, :, 0] / kp0
    assert r_kp.min() >= 0.5 - 1e-5 and r_kp.max() <= 1.5 + 1e-5 and r_kp.std() > 0.15
    torch.testing.assert_close(bias[:, :, 1], -gain[:, :, 0])
    r_kv = -bias[:, :, 2] / kv0
    assert r_kv.min() >= 0.5 - 1e-5 and r_kv.max() <= 2.0 + 1e-5 and r_kv.std() > 0.2
    # the servo dofs' passive damping and stiffness are left alone
    torch.testing.assert_close(eng.get_param("dof_damping"), _default(task, "dof_damping").expand(n, -1))
    # effort limits: forcerange scaled by U(0.6, 0.9), symmetric
    fr, fr0 = eng.get_param("actuator_forcerange"), _default(task, "actuator_forcerange")
    r_f = fr[:, :, 1] / fr0[:, 1]
    assert r_f.min() >= 0.6 - 1e-5 and r_f.max() <= 0.9 + 1e-5
    torch.testing.assert_close(fr[:, :, 0], -fr[:, :, 1])
    # joint limits of the hinges widened by up to 0.1 rad; the free joint untouched
    lim, lim0 = eng.get_param("jnt_range"), _default(task, "jnt_range")
    dlo, dhi = lim[:, 1:, 0] - lim0[1:, 0], lim[:, 1:, 1] - lim0[1:, 1]
    assert dlo.min() >= -0.1 - 1e-5 and dlo.max() <= 1e-5 and dhi.min() >= -1e-5 and dhi.max() <= 0.1 + 1e-5
    assert dlo.std() > 0.02 and torch.all(lim[:, 0] == lim0[0])
    return g


def _free_fall_accel(task):
    """Vertical acceleration of the torso in one control step, lifted 3 m above the floor at rest."""
    eng = task.engine
    qpos = task.default_qpos.repeat(task.num_envs, 1)
    qpos[:, 2] = 3.0
    eng.reset_envs(torch.arange(task.num_envs), qpos, torch.zeros(task.num_envs, eng.model.nv))
    eng.ctrl[:] = torch.as_tensor(task.default_qpos[7:][task.act_dof]).to(eng.ctrl)
    eng.step(1)
    return eng.qvel[:, 2] / eng.model.opt.timestep


@pytest.mark.parametrize("backend", ["mujoco", "mjwarp"])
def test_gravity_restitution_pd_gains_effort_and_joint_limits_per_env(backend):
    task = _pd_task(SCHEMA, num_envs=4 if backend == "mjwarp" else N, physics_engine=backend)
    g = _check_schema_fields(task)
    # the physics uses each env's own gravity: free fall accelerates at g_z (the servos and joint
    # limits of a body in the air add a few cm/s^2); the envs' g_z are spread by ~1 m/s^2
    acc = _free_fall_accel(task)
    torch.testing.assert_close(acc, g[:, 2], rtol=0.0, atol=0.06)
    assert (acc + 9.81).abs().max() > 0.3
    task.reset()
    obs = task.step(task.zero_actions())[0]["obs"]
    assert torch.isfinite(obs).all()
    task.close()


def test_effort_on_motors_without_force_limits_is_reported_and_skipped(caplog):
    params = {"actor_params": {"humanoid": {"dof_properties": {
        "effort": {"range": [0.5, 1.0], "operation": "scaling", "distribution": "uniform"}}}}}
    with caplog.at_level(logging.WARNING):
        task = _humanoid(params)                                # IsaacGymEnvs' Humanoid: torque motors
    assert any("effort" in s and "no force limit" in s for s in task.randomizer.skipped)
    assert "forcerange" in caplog.text
    task.close()


def test_dof_stiffness_on_torque_motors_is_the_passive_spring():
    params = {"actor_params": {"humanoid": {"dof_properties": {
        "stiffness": {"range": [0.5, 1.0], "operation": "additive", "distribution": "uniform"}}}}}
    task = _humanoid(params)
    k = task.engine.get_param("jnt_stiffness")
    assert torch.all(k[:, 0] == 0)                              # the free joint has no spring
    assert k[:, 1:].min() >= 0.5 and k[:, 1:].max() <= 1.0 and k[:, 1:].std() > 0.1
    torch.testing.assert_close(task.engine.get_param("actuator_gainprm"),
                               _default(task, "actuator_gainprm").expand(N, -1, -1))
    task.close()


def test_setup_only_draws_survive_rerandomization_of_the_same_field():
    """lower is setup_only, upper is not: both live in jnt_range; re-drawing upper keeps lower."""
    params = {"frequency": 1, "actor_params": {"robot": {"dof_properties": {
        "lower": {"range": [-0.1, 0.0], "operation": "additive", "distribution": "uniform", "setup_only": True},
        "upper": {"range": [0.0, 0.1], "operation": "additive", "distribution": "uniform"}}}}}
    task = _pd_task(params, num_envs=4)
    before = task.engine.get_param("jnt_range")
    task.randomize_buf[:] = 5
    task.randomizer.on_reset(torch.arange(4))
    after = task.engine.get_param("jnt_range")
    assert torch.equal(after[..., 0], before[..., 0])
    assert not torch.equal(after[..., 1], before[..., 1])
    task.close()


@pytest.mark.parametrize("params, match", [
    ({"actor_params": {"robot": {"dof_properties": {"stifness": {"range": [0, 1]}}}}},
     r"dof_properties\.stifness: unknown property; dof_properties has \[.*'stiffness'.*'effort'.*'velocity'"),
    ({"actor_params": {"robot": {"joint_properties": {"damping": {"range": [0, 1]}}}}},
     r"joint_properties: unknown property group; the groups are \[.*'dof_properties'"),
    ({"sim_params": {"timestep": {"range": [0, 1]}}}, r"sim_params\.timestep.*\['gravity'\]"),
    ({"actor_param": {}}, r"unknown key\(s\) \['actor_param'\].*'actor_params'"),
    ({"actor_params": {"hand": {}}}, r"no actor 'hand'.*\['HumanoidLocomotion', 'humanoid', 'robot'\].*actor_names"),
])
def test_unknown_names_are_one_clear_error_listing_what_exists(params, match):
    with pytest.raises(RandomizationError, match=match):
        _pd_task(params, num_envs=2)


def test_shadow_hand_block_parses_on_a_humanoid_with_actor_names(caplog):
    """IsaacGymEnvs' ShadowHand.yaml block, unchanged but for the extra actor_names key: hand -> our
    robot, object -> none here. Its correlated noise is a per-env offset constant over steps."""
    from conftest import IGE_CFG_DIR
    if not (IGE_CFG_DIR / "task" / "ShadowHand.yaml").is_file():
        pytest.skip("IsaacGymEnvs config files not found")
    import yaml
    params = yaml.safe_load((IGE_CFG_DIR / "task" / "ShadowHand.yaml").read_text())["task"]["randomization_params"]
    params["actor_names"] = {"hand": "robot", "object": None}
    with caplog.at_level(logging.WARNING):
        task = _pd_task(params, num_envs=8)
    skipped = set(task.randomizer.skipped)
    assert {"actor_params.hand.tendon_properties.damping", "actor_params.hand.tendon_properties.stiffness",
            "actor_params.hand.color"} <= skipped
    assert any(s.startswith("actor_params.object") for s in skipped)
    handlers = {t.handler for t in task.randomizer.terms}
    assert {"gravity", "servo_kp", "servo_kv", "lower", "upper", "mass", "friction0"} <= handlers
    # loguniform [0.3, 3] on kv, [0.75, 1.5] on kp
    r_kp = task.engine.get_param("actuator_gainprm")[:, :, 0] / _default(task, "actuator_gainprm")[:, 0]
    assert r_kp.min() >= 0.75 - 1e-5 and r_kp.max() <= 1.5 + 1e-5
    # correlated observation noise: range_correlated [0, .001] offset per env + white [0, .002]
    task.reset()
    clean, noisy = [], []
    for _ in range(30):
        task.step(task.zero_actions())
        clean.append(task.obs_buf.clone())
        noisy.append(task.obs_processed.clone())
    noise = torch.stack(noisy) - torch.stack(clean)                     # (T, N, O)
    offset = noise.mean(0)                                              # the correlated part
    assert 0.0006 < offset.std() < 0.0014, offset.std()
    assert 0.0017 < (noise - offset).std() < 0.0023
    task.close()
