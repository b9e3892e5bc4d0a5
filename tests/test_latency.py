"""``Latency``: action / observation delays in steps and action delays in physics substeps.

The buffers are checked with step-numbered inputs (an action applied exactly d steps later, per
env, with delays fixed or drawn per env and per episode), then on the real HumanoidLocomotion task
(the ctrl MuJoCo receives at step t is the servo target of the action sent at t - d) and on the
real C MuJoCo engine (a substep delay s equals holding the old ctrl for s physics steps).
"""
from __future__ import annotations

import pytest
import torch

from conftest import make_cfg, make_engine, make_task, stand_state
from isaacgymenvs_hrl.tasks.base.latency import Latency, LatencyError

N = 16


def numbered(t: int, n: int = N, dim: int = 3) -> torch.Tensor:
    """Step t's input: every entry of env e is 1000 * e + t (t >= 1), so the step it came from is known."""
    return (1000 * torch.arange(n)[:, None] + t).float().expand(n, dim).clone()


def sent_at(x: torch.Tensor) -> torch.Tensor:
    """The step an output came from (0 = the zero fill before the episode's first action)."""
    e = torch.arange(len(x))[:, None].float()
    return torch.where(x == 0, torch.zeros_like(x), x - 1000 * e)[:, 0].long()


@pytest.mark.parametrize("d", [0, 1, 3])
def test_fixed_action_delay_applies_each_action_exactly_d_steps_later(d):
    lat = Latency({"action_delay": d}, N, "cpu")
    for t in range(1, 10):
        out = lat.delay_actions(numbered(t))
        expected = t - d if t > d else 0
        assert sent_at(out).tolist() == [expected] * N, (t, d)


def test_ranged_delays_are_per_env_within_range_and_redrawn_per_episode():
    gen = torch.Generator().manual_seed(0)
    lat = Latency({"action_delay": [1, 4], "observation_delay": [0, 2]}, 64, "cpu", generator=gen)
    d = lat.action_delay.clone()
    assert d.min() >= 1 and d.max() <= 4 and len(torch.unique(d)) == 4          # all four values drawn
    for t in range(1, 8):
        out = lat.delay_actions(numbered(t, 64))
        assert torch.equal(sent_at(out), torch.where(t > d, t - d, torch.zeros_like(d)))
        obs = lat.delay_observations(numbered(t, 64, dim=5))
        # observation history starts filled with the first observation (step 1)
        assert torch.equal(sent_at(obs), (t - lat.obs_delay).clamp_min(1))

    ids = torch.arange(0, 64, 2)
    before = lat.action_delay.clone()
    lat.reset(ids)
    others = torch.arange(1, 64, 2)
    assert torch.equal(lat.action_delay[others], before[others])                # untouched
    assert not torch.equal(lat.action_delay[ids], before[ids])                  # re-drawn
    d = lat.action_delay.clone()
    # a reset env forgets its old actions: zeros until its delay has passed in the new episode
    for t in range(8, 14):
        out = sent_at(lat.delay_actions(numbered(t, 64)))
        k = t - 7                                                                 # steps since the reset
        expected_reset = torch.where(k > d[ids], t - d[ids], torch.zeros_like(d[ids]))
        assert torch.equal(out[ids], expected_reset), t
        assert torch.equal(out[others], t - d[others]), t


def test_resample_never_keeps_each_envs_delay_for_good():
    lat = Latency({"action_delay": [0, 5], "resample": "never"}, N, "cpu")
    d = lat.action_delay.clone()
    lat.reset(torch.arange(N))
    assert torch.equal(lat.action_delay, d)


def test_observation_reset_rows_fill_the_history_without_shifting_the_others():
    lat = Latency({"observation_delay": 2}, 4, "cpu")
    for t in range(1, 5):
        out = lat.delay_observations(numbered(t, 4))
    assert sent_at(out).tolist() == [2, 2, 2, 2]
    lat.reset(torch.tensor([1]))
    rows = lat.delay_observations(numbered(50, 4)[[1]], torch.tensor([1]))     # partial reset observe
    assert rows[0, 0].item() == 1050                                             # returned as is
    out = lat.delay_observations(numbered(5, 4))
    assert sent_at(out).tolist() == [3, 50, 3, 3]                               # env 1: its first obs


def test_action_fill_first_repeats_the_first_action():
    lat = Latency({"action_delay": 2, "action_fill": "first"}, N, "cpu")
    assert sent_at(lat.delay_actions(numbered(1))).tolist() == [1] * N
    assert sent_at(lat.delay_actions(numbered(2))).tolist() == [1] * N
    assert sent_at(lat.delay_actions(numbered(3))).tolist() == [1] * N
    assert sent_at(lat.delay_actions(numbered(4))).tolist() == [2] * N


def test_discrete_high_level_actions_keep_their_dtype():
    cfg = {"env": {"latency": {"high_level": {"action_delay": 1}}}}
    lat = Latency.high_level_from_task_config(cfg, 4, "cpu")
    a = lat.delay_actions(torch.tensor([3, 1, 2, 0]))
    assert a.dtype == torch.long and a.tolist() == [0, 0, 0, 0]
    assert lat.delay_actions(torch.tensor([1, 1, 1, 1])).tolist() == [3, 1, 2, 0]
    assert Latency.from_task_config(cfg, 4, "cpu", 4) is None       # nothing at the low level


@pytest.mark.parametrize("cfg, match", [
    ({"action_delay": -1}, "0 <= min <= max"),
    ({"action_delay": [3, 1]}, "0 <= min <= max"),
    ({"observation_delay": 1.5}, "0 <= min <= max"),
    ({"substep_delay": 4}, "at most 3"),
    ({"action_latency": 2}, r"unknown key\(s\) \['action_latency'\].*action_delay"),
    ({"resample": "sometimes"}, "resample"),
])
def test_bad_config_is_one_clear_error(cfg, match):
    with pytest.raises(LatencyError, match=match):
        Latency(cfg, 4, "cpu", substeps=4)


# ---- on the real task and engine ------------------------------------------------------------------
def test_on_the_real_task_the_servo_target_follows_the_action_d_steps_later():
    """Delaying the actions given to the real task: the ctrl MuJoCo holds in step t is the servo
    target of the action of step t - d (pd mode: default pose + action * actionScale, clamped)."""
    d = 2
    task = make_task(make_cfg(env={"numEnvs": 4}))
    task.reset()
    lat = Latency({"action_delay": d}, 4, "cpu")
    gen = torch.Generator().manual_seed(0)
    sent = [0.5 * torch.randn(4, task.num_actions, generator=gen).clamp(-1, 1) for _ in range(6)]
    ctrls = []
    for a in sent:
        task.step(lat.delay_actions(a))
        ctrls.append(task.engine.ctrl.clone())
    target = lambda a: torch.clamp(task.default_qpos[7:][task.act_dof] + a * task.action_scale,
                                   task.dof_low[task.act_dof], task.dof_high[task.act_dof])
    for t in range(d, 6):
        torch.testing.assert_close(ctrls[t], target(sent[t - d]))
    torch.testing.assert_close(ctrls[0], target(torch.zeros(4, task.num_actions)))
    task.close()


def test_substep_delay_holds_the_previous_ctrl_for_s_physics_steps():
    a, b = make_engine("mujoco", 3), make_engine("mujoco", 3)
    for eng in (a, b):
        eng.reset_envs(torch.arange(3), *stand_state(eng))
    old = torch.zeros(3, a.model.nu)
    new = 0.8 * torch.ones(3, a.model.nu)
    lat = Latency({"substep_delay": [0, 3]}, 3, "cpu", substeps=4)
    lat.substep_delay[:] = torch.tensor([0, 1, 3])
    lat.simulate(a, old, new, 4)
    # reference: each env stepped on its own schedule, one physics step at a time
    for i in range(4):
        b.ctrl[:] = torch.where((torch.tensor([0, 1, 3]) <= i)[:, None], new, old)
        b.step(1)
    assert torch.equal(a.qpos, b.qpos) and torch.equal(a.qvel, b.qvel)
    assert torch.equal(a.ctrl, new)
    # and it differs from no delay (the delay is real)
    c = make_engine("mujoco", 3)
    c.reset_envs(torch.arange(3), *stand_state(c))
    c.ctrl[:] = new
    c.step(4)
    assert torch.equal(c.qpos[0], a.qpos[0]) and not torch.equal(c.qpos[2], a.qpos[2])
    for eng in (a, b, c):
        eng.close()


# ---- wired into VecTask and, through the env factory, LatentSkillEnv (task.env.latency) ----------
# Both fail, not skip, when the wiring is missing: the undelayed run differs from the expected one.
def test_task_env_latency_delays_actions_and_observations_in_the_task():
    cfg = make_cfg(env={"numEnvs": 4, "latency": {"action_delay": 2, "observation_delay": 1}})
    task = make_task(cfg)
    task.reset()
    gen = torch.Generator().manual_seed(0)
    sent = [0.5 * torch.randn(4, task.num_actions, generator=gen).clamp(-1, 1) for _ in range(6)]
    target = lambda a: torch.clamp(task.default_qpos[7:][task.act_dof] + a * task.action_scale,
                                   task.dof_low[task.act_dof], task.dof_high[task.act_dof])
    clean = []
    for t, a in enumerate(sent):
        obs = task.step(a)[0]["obs"]
        if t >= 2:
            torch.testing.assert_close(task.engine.ctrl, target(sent[t - 2]))
        if t >= 1:
            torch.testing.assert_close(obs, clean[-1])          # the observation of one step ago
        clean.append(torch.clamp(task.obs_buf, -task.clip_obs, task.clip_obs).clone())
    task.close()


def test_high_level_action_delay_shifts_the_skill_sequence_by_one_decision(tmp_path):
    """A delayed high level (high_level.action_delay: 1) sent hl_0, hl_1, hl_2 runs exactly what an
    undelayed twin runs when sent 0, hl_0, hl_1. Both are wrapped by the env factory, which reads
    task.env.latency.high_level from the task config (LatentSkillEnv reads no config itself)."""
    from test_hrl import location_task, write_llc
    from isaacgymenvs_hrl.hrl import load_llc
    from isaacgymenvs_hrl.hrl.env_factory import wrap_task

    llc = load_llc(write_llc(tmp_path / "llc.pt"))
    delayed_task = location_task(4, seed=0, latency={"high_level": {"action_delay": 1}})
    delayed = wrap_task(delayed_task, delayed_task.cfg, llc, steps=3)
    twin_task = location_task(4, seed=0)
    twin = wrap_task(twin_task, twin_task.cfg, llc, steps=3)
    torch.manual_seed(1)
    delayed.reset()
    torch.manual_seed(1)
    twin.reset()
    hls = [torch.rand(4, llc.latent_dim) * 2 - 1 for _ in range(3)]
    for i in range(3):
        delayed.step(hls[i])
        twin.step(torch.zeros_like(hls[0]) if i == 0 else hls[i - 1])
    assert torch.equal(delayed_task.engine.qpos, twin_task.engine.qpos)
    delayed.close()
    twin.close()
