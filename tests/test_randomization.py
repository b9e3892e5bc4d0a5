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

    # Entries with no MuJoCo counterpart are reported, not dropped silently.
    skipped = set(task.randomizer.skipped)
    assert {"sim_params.gravity", "actor_params.humanoid.rigid_shape_properties.restitution",
            "actor_params.humanoid.dof_properties.lower",
            "actor_params.humanoid.dof_properties.upper"} <= skipped
    for mapped in ("mass", "friction", "damping", "stiffness"):
        assert not any(s.endswith("." + mapped) for s in skipped), mapped
    assert "restitution" in caplog.text and "gravity" in caplog.text

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
