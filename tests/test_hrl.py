"""HRL core in process: LLC checkpoints, decoding of the four high-level modes, ``LatentSkillEnv``
against stepping the base task by hand, resets and time-outs inside a macro step, and the
mixture agent's KL terms.

Everything uses the real HumanoidLocation task on the C MuJoCo engine (N <= 8) and real LLC
modules with random weights; the mechanics under test do not depend on the weights being trained.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from conftest import make_cfg, make_task
from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.hrl import (FORMAT_VERSION, LatentSkillEnv, LLCError, load_llc, save_llc,
                                  validate_llc_for_task, wrap_module)
from isaacgymenvs_hrl.learning.mixture_agent import mixture_kl_terms
from isaacgymenvs_hrl.hrl.networks import build
from isaacgymenvs_hrl.tasks import HumanoidLocation

PROPRIO, TASK_OBS, NUM_ACTIONS = 52, 3, 21
K_STEPS = 5


# ---- helpers (also used by test_hrl_cli.py) -------------------------------------------------------
def llc_spec(latent_dim: int = 4, k: int = 3, modes=("continuous", "discrete", "mixture", "multires"),
             hidden=(64, 64), scale: float | None = None, normalization: str = "sphere") -> dict:
    """A full LLC spec for the humanoid tasks: policy on proprio, mid level on proprio + task."""
    pol = {"type": "skill_policy", "obs_dim": PROPRIO, "latent_dim": latent_dim, "action_dim": NUM_ACTIONS,
           "hidden": list(hidden), "num_heads": 5, "unconditional_head": True}
    arch = {"policy": pol}
    latent = {"dim": latent_dim, "normalization": normalization, "modes": list(modes),
              "multires": {"horizons": [4, 8, 16, 32], "unconditional": True}}
    if scale is not None:
        latent["scale"] = scale
    if "discrete" in modes or "mixture" in modes:
        arch["mid"] = {"type": "component_encoder", "obs_dim": PROPRIO + TASK_OBS, "num_components": k,
                       "latent_dim": latent_dim, "hidden": [32]}
        latent["discrete"] = {"k": k}
        latent["mixture"] = {"k": k, "prior_mean": [[0.0] * latent_dim] * k,
                             "prior_std": [[1.0] * latent_dim] * k}
    spec = {"task_family": "humanoid",
            "obs": {"policy": [["proprio", PROPRIO]]},
            "action": {"dim": NUM_ACTIONS, "control_type": "joint_position"},
            "latent": latent, "default_steps": K_STEPS, "control_dt": 0.02, "architecture": arch,
            "provenance": {"algorithm": "test"}}
    if "mid" in arch:
        spec["obs"]["mid"] = [["proprio", PROPRIO], ["task", TASK_OBS]]
    return spec


def write_llc(path, spec: dict | None = None, seed: int = 0, **kwargs):
    """Build the spec's modules with seeded random weights and save them as an LLC checkpoint."""
    spec = spec or llc_spec()
    torch.manual_seed(seed)
    policy = build(spec["architecture"]["policy"])
    mid = build(spec["architecture"]["mid"]) if "mid" in spec["architecture"] else None
    return save_llc(path, spec, policy, mid, **kwargs)


def location_task(num_envs: int = 8, seed: int = 0, **env):
    """A HumanoidLocation whose resets belong to its owner (as LatentSkillEnv requires)."""
    cfg = make_cfg(name="HumanoidLocation", env={"numEnvs": num_envs, **env})
    return make_task(cfg, seed=seed, task_cls=HumanoidLocation, auto_reset=False)


def falling_state(task, n: int, height: float, vz: float):
    """(qpos, qvel) of a humanoid lying horizontally at ``height`` with vertical speed ``vz``.

    With height 1.0 and vz -4 the torso crosses terminationHeight (0.8) on the 3rd control step;
    with height 0.7 it is below it at once (done on the 1st step). Actions only move joints, so the
    free fall does not depend on the LLC.
    """
    qpos = task.default_qpos.repeat(n, 1)
    qpos[:, 2] = height
    qpos[:, 3:7] = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0])
    qvel = torch.zeros(n, task.engine.model.nv)
    qvel[:, 2] = vz
    return qpos, qvel


def drop(task, env_ids, height=1.0, vz=-4.0):
    ids = torch.as_tensor(env_ids)
    task.engine.reset_envs(ids, *falling_state(task, len(ids), height, vz))
    task.compute_observations()


def reference_macro_step(task, llc, hl, k, reward, gamma=0.99, mode="continuous"):
    """One high-level step done by hand on a task with ``auto_reset=False``: decode, k LLC + task
    steps, per-env aggregation up to and including each env's first done step, one reset at the end.
    Written per env with Python loops, independently of LatentSkillEnv's batched bookkeeping."""
    mid_obs = task.obs_slice(task.obs_processed, llc.mid_obs_names) if llc.mid_obs_names else None
    with torch.no_grad():
        z, head, _ = llc.decode(mode, hl, mid_obs)
    rews, dones, touts = [], [], []
    for _ in range(k):
        with torch.no_grad():
            a = llc(task.obs_slice(task.obs_processed, ["proprio"]), z, head)
        _, r, d, extras = task.step(a)
        rews.append(r.clone())
        dones.append(d.clone())
        touts.append(extras["time_outs"].clone())
    n = task.num_envs
    out_r, out_d, out_t, out_n = torch.zeros(n), torch.zeros(n, dtype=torch.long), \
        torch.zeros(n, dtype=torch.long), torch.zeros(n)
    for e in range(n):
        total, executed = 0.0, 0
        for i in range(k):
            total += float(rews[i][e]) * (gamma ** i if reward == "smdp" else 1.0)
            executed += 1
            if dones[i][e]:
                out_d[e], out_t[e] = 1, int(touts[i][e])
                break
        out_r[e] = total / executed if reward == "mean" else total
        out_n[e] = executed
    return task.reset(out_d.nonzero().squeeze(-1))["obs"].clone(), out_r, out_d, out_t, out_n


@pytest.fixture(scope="module")
def llc_path(tmp_path_factory):
    return write_llc(tmp_path_factory.mktemp("llc") / "llc.pt")


@pytest.fixture(scope="module")
def llc(llc_path):
    return load_llc(llc_path)


def paired_runs(llc, reward, hl_actions, num_envs=8, before_step=None, env_kwargs=None, gamma=0.99):
    """Run the same high-level actions through LatentSkillEnv and by hand on two identical tasks.

    ``before_step(task, i)`` may edit the state of both tasks (identically) before macro step i.
    Returns per macro step: (wrapped (obs, rew, done, extras, progress), reference (obs, rew, done,
    time_outs, executed, progress)).
    """
    env_kwargs = env_kwargs or {}
    wrapped_task = location_task(num_envs, seed=0, **env_kwargs)
    env = LatentSkillEnv(wrapped_task, llc, mode="continuous", steps=K_STEPS, reward=reward, llc_gamma=gamma)
    torch.manual_seed(1)
    env.reset()
    torch.manual_seed(2)
    wrapped = []
    for i, hl in enumerate(hl_actions):
        if before_step:
            before_step(wrapped_task, i)
        obs, r, d, extras = env.step(hl)
        wrapped.append((obs["obs"].clone(), r.clone(), d.clone(), copy.copy(extras),
                        wrapped_task.progress_buf.clone()))

    ref_task = location_task(num_envs, seed=0, **env_kwargs)
    torch.manual_seed(1)
    ref_task.reset()
    torch.manual_seed(2)
    reference = []
    for i, hl in enumerate(hl_actions):
        if before_step:
            before_step(ref_task, i)
        res = reference_macro_step(ref_task, llc, hl, K_STEPS, reward, gamma)
        reference.append(res + (ref_task.progress_buf.clone(),))
    return wrapped, reference, env


def hl_batch(n, d=4, count=2, seed=123):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, d, generator=g) * 2 - 1 for _ in range(count)]


# ---- LatentSkillEnv against the base task stepped by hand ----------------------------------------
@pytest.mark.parametrize("reward", ["sum", "mean", "smdp"])
def test_aggregated_reward_matches_stepping_by_hand(llc, reward):
    wrapped, reference, env = paired_runs(llc, reward, hl_batch(8), gamma=0.9)
    assert env.task.auto_reset is False
    for (w_obs, w_r, w_d, w_ex, w_prog), (r_obs, r_r, r_d, _, r_n, r_prog) in zip(wrapped, reference):
        assert torch.equal(w_d, torch.zeros(8, dtype=torch.long)) and torch.equal(r_d, w_d)
        assert torch.allclose(w_r, r_r, atol=1e-5, rtol=0), (reward, w_r, r_r)
        assert torch.equal(w_obs, r_obs)
        assert torch.equal(w_ex["executed_substeps"], r_n) and (r_n == K_STEPS).all()
        assert torch.equal(w_prog, r_prog)
    assert (wrapped[-1][4] == 2 * K_STEPS).all()


def test_reward_aggregations_relate_as_documented(llc):
    """sum = k * mean, and smdp with gamma=1 equals sum, on identical runs."""
    hls = hl_batch(8, count=1)
    (s,), _, _ = paired_runs(llc, "sum", hls)
    (m,), _, _ = paired_runs(llc, "mean", hls)
    (p1,), _, _ = paired_runs(llc, "smdp", hls, gamma=1.0)
    (p9,), _, _ = paired_runs(llc, "smdp", hls, gamma=0.5)
    assert torch.allclose(s[1], K_STEPS * m[1], atol=1e-5)
    assert torch.allclose(s[1], p1[1], atol=1e-6)
    assert not torch.allclose(s[1], p9[1], atol=1e-3)


@pytest.mark.parametrize("reward", ["sum", "mean", "smdp"])
def test_reset_in_the_middle_of_a_macro_step(llc, reward):
    fall = [1, 3]

    def before(task, i):
        if i == 0:
            drop(task, fall)                 # torso crosses 0.8 m on the 3rd of 5 control steps

    hls = hl_batch(4, count=1)
    # a spy on the wrapped task's reset_idx: every env must be reset exactly once
    calls = []
    wrapped_task = location_task(4, seed=0)
    orig = wrapped_task.reset_idx
    env = LatentSkillEnv(wrapped_task, llc, mode="continuous", steps=K_STEPS, reward=reward)
    torch.manual_seed(1)
    env.reset()
    wrapped_task.reset_idx = lambda ids: (calls.append(ids.tolist()), orig(ids))[1]
    torch.manual_seed(2)
    before(wrapped_task, 0)
    obs, rew, done, extras = env.step(hls[0])
    assert calls == [fall], calls

    _, reference, _ = paired_runs(llc, reward, hls, num_envs=4, before_step=before)
    r_obs, r_rew, r_done, r_tout, r_n, r_prog = reference[0]
    assert torch.equal(done, torch.tensor([0, 1, 0, 1]))
    assert torch.equal(extras["executed_substeps"], torch.tensor([5.0, 3.0, 5.0, 3.0]))
    assert torch.equal(extras["time_outs"], torch.zeros(4, dtype=torch.long))
    # the fallen envs stop accumulating after the terminating step: reward = the by-hand sum of
    # their first 3 steps, the last of which is the death cost
    assert torch.allclose(rew, r_rew, atol=1e-5), (rew, r_rew)
    assert torch.equal(r_n, extras["executed_substeps"])
    assert (rew[fall] < 0).all()
    assert torch.equal(obs["obs"], r_obs)
    # reset once, at the end: a new episode with a standing humanoid
    assert torch.equal(wrapped_task.progress_buf, torch.tensor([5, 0, 5, 0]))
    q = wrapped_task.engine.qpos
    assert torch.allclose(q[fall, 2], torch.full((2,), 1.3))
    o = obs["obs"]
    assert torch.allclose(o[fall, 0], torch.full((2,), 1.3))                     # torso height
    assert torch.allclose(o[fall, 1:4], torch.tensor([0.0, 0.0, -1.0]).expand(2, 3), atol=1e-5)
    dist = o[fall, PROPRIO + 2]                                                   # a new target
    assert ((dist >= 2.0 - 1e-4) & (dist <= 5.0 + 1e-4)).all(), dist

    # the other envs are unaffected: same reward and observation as in a run where nobody fell
    (c_obs, c_rew, c_done, _, c_prog), = paired_runs(llc, reward, hls, num_envs=4)[0]
    keep = [0, 2]
    assert torch.equal(rew[keep], c_rew[keep]) and torch.equal(obs["obs"][keep], c_obs[keep])
    assert torch.equal(c_done, torch.zeros(4, dtype=torch.long))


def test_time_outs_end_the_second_macro_step(llc):
    """episodeLength=7, k=5: the 2nd macro step ends every env by time after 2 control steps, except
    an env that falls on its 1st control step, which is a failure (no time-out, 1 substep). Env 2
    times out on step 2 and would fall on step 3: the time-out, which came first, is kept."""
    def before(task, i):
        if i == 1:
            drop(task, [2], height=1.0, vz=-4.0)
            drop(task, [3], height=0.7, vz=0.0)

    wrapped, reference, env = paired_runs(llc, "sum", hl_batch(4), num_envs=4, before_step=before,
                                          env_kwargs={"episodeLength": 7})
    assert env.max_episode_length == 2
    (_, r0, d0, ex0, p0), (obs, r1, d1, ex1, p1) = wrapped
    assert torch.equal(d0, torch.zeros(4, dtype=torch.long)) and (p0 == 5).all()
    assert torch.equal(d1, torch.ones(4, dtype=torch.long))
    assert torch.equal(ex1["time_outs"], torch.tensor([1, 1, 1, 0]))
    assert torch.equal(ex1["executed_substeps"], torch.tensor([2.0, 2.0, 2.0, 1.0]))
    assert torch.equal(p1, torch.zeros(4, dtype=torch.long))
    _, ref_r, ref_d, ref_t, ref_n, _ = reference[1]
    assert torch.equal(ref_t, ex1["time_outs"]) and torch.equal(ref_n, ex1["executed_substeps"])
    assert torch.allclose(r1, ref_r, atol=1e-5)
    assert torch.equal(obs, reference[1][0])


# ---- decoding of the four high-level action encodings ---------------------------------------------
def test_hl_action_spaces(llc):
    assert llc.hl_action_space("continuous").shape == (4,)
    assert llc.hl_action_space("discrete").n == 3
    assert llc.hl_action_space("mixture").shape == (3 + 3 * 4,)
    assert llc.hl_action_space("multires").shape == (4 + 1 + 4,)


def test_decode_continuous_sphere_has_unit_norm(llc):
    hl = torch.randn(16, 4) * torch.logspace(-3, 2, 16)[:, None]
    z, head, choice = llc.decode("continuous", hl)
    assert head is None and choice is None
    assert torch.allclose(z.norm(dim=-1), torch.ones(16), atol=1e-5)
    assert torch.allclose(z, hl / hl.norm(dim=-1, keepdim=True), atol=1e-6)


def test_decode_discrete_picks_the_mid_level_mean(tmp_path):
    mean, std = torch.randn(55), torch.rand(55) + 0.5
    llc = load_llc(write_llc(tmp_path / "d.pt", mid_obs_mean=mean, mid_obs_std=std))
    mid_obs = torch.randn(6, 55) * 3
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    z, head, choice = llc.decode("discrete", y, mid_obs)
    # independently: the mid level's raw MLP on the normalized obs -> (N, K, [mean, log_std], d)
    x = ((mid_obs - mean) / std).clamp(-5, 5)
    out = llc.mid.net(x).view(6, 3, 2, 4)
    expected = torch.stack([out[i, y[i], 0] for i in range(6)])
    assert head is None and torch.equal(choice, y)
    assert torch.allclose(z, expected, atol=1e-6)
    # a different skill gives a different latent
    z2, _, _ = llc.decode("discrete", (y + 1) % 3, mid_obs)
    assert not torch.allclose(z, z2)


def test_decode_mixture_argmax_picks_the_component(tmp_path):
    llc = load_llc(write_llc(tmp_path / "m.pt", llc_spec(scale=2.0)))
    hl = torch.rand(5, 3 + 12) * 2 - 1
    hl[:, :3] = torch.tensor([[0.9, 0.1, -0.5], [-1, 0.2, 0.1], [0.0, 0.1, 0.7], [0.3, 0.2, 0.1],
                              [-0.2, -0.1, -0.3]])
    expected_y = torch.tensor([0, 1, 2, 0, 1])
    z, head, choice = llc.decode("mixture", hl)
    assert head is None and torch.equal(choice, expected_y)
    for i, y in enumerate(expected_y.tolist()):
        assert torch.allclose(z[i], 2.0 * hl[i, 3 + 4 * y: 3 + 4 * (y + 1)])


def test_decode_multires_argmax_picks_the_head_and_the_last_is_unconditional(llc):
    n = 5
    hl = torch.rand(n, 5 + 4) * 2 - 1
    hl[:, :5] = -1.0
    heads = torch.tensor([0, 1, 2, 3, 4])
    hl[torch.arange(n), heads] = 1.0
    z, head, choice = llc.decode("multires", hl)
    assert torch.equal(head, heads) and torch.equal(choice, heads)
    assert torch.allclose(z.norm(dim=-1), torch.ones(n), atol=1e-5)
    obs = torch.randn(n, PROPRIO)
    a = llc(obs, z, head)
    # independently: the backbone's output split into 5 heads of 21 actions
    pol = llc.policy
    z_in = torch.where((heads == 4)[:, None], torch.zeros_like(z), z)
    raw = pol.heads(pol.backbone(torch.cat([obs, z_in], -1))).view(n, 5, NUM_ACTIONS)
    assert torch.allclose(a, raw[torch.arange(n), heads].clamp(-1, 1), atol=1e-6)
    # the unconditional head ignores z; the skill heads do not
    other = -z
    a2 = llc(obs, other, head)
    assert torch.equal(a[4], a2[4])
    assert not torch.allclose(a[:4], a2[:4])


def test_latent_skill_env_runs_every_mode(llc):
    spaces = {"continuous": 4, "mixture": 15, "multires": 9}
    for mode in ("continuous", "discrete", "mixture", "multires"):
        env = LatentSkillEnv(location_task(4), llc, mode=mode)
        obs = env.reset()["obs"]
        assert obs.shape == (4, 55) and env.steps == K_STEPS and env.dt == pytest.approx(0.1)
        hl = torch.tensor([0, 1, 2, 1]) if mode == "discrete" else torch.rand(4, spaces[mode]) * 2 - 1
        obs, r, d, extras = env.step(hl)
        assert obs["obs"].shape == (4, 55) and r.shape == (4,) and torch.isfinite(r).all()
        assert env.num_actions == (1 if mode == "discrete" else spaces[mode])
        if mode == "discrete":
            assert torch.equal(extras["skill"], hl)


def test_bad_settings_for_latent_skill_env(llc):
    with pytest.raises(UserError, match="task.env.llc.reward"):
        LatentSkillEnv(location_task(2), llc, reward="max")
    for steps in (-1, 0):
        with pytest.raises(UserError, match=f"task.env.llc.steps must be >= 1, got {steps}"):
            LatentSkillEnv(location_task(2), llc, steps=steps)
    assert LatentSkillEnv(location_task(2), llc, steps=None).steps == K_STEPS       # the default
    assert LatentSkillEnv(location_task(2), llc, steps="").steps == K_STEPS
    assert LatentSkillEnv(location_task(2), llc, steps=3).steps == 3
    with pytest.raises(LLCError, match="hl_obs.*'nope'"):
        LatentSkillEnv(location_task(2), llc, hl_obs=["nope"])
    env = LatentSkillEnv(location_task(2), llc, hl_obs=["task"])
    assert env.reset()["obs"].shape == (2, 3)


# ---- bad checkpoints: one clear LLCError each ---------------------------------------------------
def _edit_blob(path, edit):
    blob = torch.load(path, weights_only=True)
    edit(blob)
    torch.save(blob, path)
    return path


def _with_spec(path, **changes):
    """Save a good checkpoint, then change spec fields (dotted keys) in the file directly, bypassing
    save_llc's own checks, as an edited or foreign file would."""
    write_llc(path)

    def edit(blob):
        for dotted, value in changes.items():
            node = blob["spec"]
            *head, last = dotted.split("__")
            for key in head:
                node = node[key]
            node[last] = value
    return _edit_blob(path, edit)


def _nan_weights(path):
    write_llc(path)

    def edit(blob):
        w = blob["weights"]["policy"]
        key = sorted(w)[0]
        w[key] = w[key].clone()
        w[key].view(-1)[0] = float("nan")
    return _edit_blob(path, edit)


def _truncated(path):
    write_llc(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _random_bytes(path):
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    return path


def _rl_games(path):
    torch.save({"model": {"a2c_network.mu.weight": torch.zeros(21, 64)}, "epoch": 10,
                "optimizer": {}, "frame": 1000}, path)
    return path


LOAD_ERRORS = {
    "missing file": (lambda p: p.parent / "nope.pt", ["not found", "nope.pt"]),
    "truncated": (_truncated, ["truncated or corrupt"]),
    "random bytes": (_random_bytes, ["truncated or corrupt"]),
    "rl-games dict": (_rl_games, ["not an isaacgymenvs_hrl LLC checkpoint", "format", "wrap_module"]),
    "format_version 99": (lambda p: _edit_blob(write_llc(p), lambda b: b.update(format_version=99)),
                          ["format_version", "99"]),
    "state dict vs architecture": (lambda p: _with_spec(
        p, architecture__policy__hidden=[64, 32]), ["weights.policy", "architecture.policy"]),
    "NaN weights": (_nan_weights, ["weights.policy", "NaN"]),
    "unknown normalization": (lambda p: _with_spec(p, latent__normalization="cube"),
                              ["latent.normalization", "cube"]),
    "mixture prior shape": (lambda p: _with_spec(p, latent__mixture__prior_mean=[[0.0] * 4] * 2),
                            ["latent.mixture.prior_mean", "(3, 4)", "(2, 4)"]),
    "unknown mode": (lambda p: _with_spec(p, latent__modes=["continuous", "options"]),
                     ["latent.modes", "options"]),
    "missing field": (lambda p: _edit_blob(write_llc(p), lambda b: b["spec"].pop("control_dt")),
                      ["control_dt"]),
}


@pytest.mark.parametrize("case", sorted(LOAD_ERRORS))
def test_bad_checkpoint_file_gives_clear_error(tmp_path, case):
    make, needles = LOAD_ERRORS[case]
    path = make(tmp_path / "llc.pt")
    with pytest.raises(LLCError) as info:
        load_llc(path)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (case, msg)


@pytest.fixture(scope="module")
def small_task():
    return location_task(2)


def _spec_with(**changes):
    spec = llc_spec()
    for dotted, value in changes.items():
        node = spec
        *head, last = dotted.split("__")
        for key in head:
            node = node[key]
        node[last] = value
    return spec


TASK_ERRORS = {
    "obs slice missing": (dict(obs__policy=[["objects", 52]]), "continuous", ["obs.policy", "'objects'"]),
    "obs slice size": (dict(obs__policy=[["proprio", 50]], architecture__policy__obs_dim=50), "continuous",
                       ["obs.policy.proprio", "52", "50"]),
    "mid obs slice size": (dict(obs__mid=[["proprio", 52], ["task", 4]]), "discrete", ["obs.mid.task", "4"]),
    "action dim": (dict(action__dim=20, architecture__policy__action_dim=20), "continuous",
                   ["action.dim", "21", "20"]),
    "control type": (dict(action__control_type="torque"), "continuous",
                     ["action.control_type", "joint_position", "torque"]),
    "task family": (dict(task_family="franka"), "continuous", ["task_family", "humanoid", "franka"]),
    "mode not supported": (dict(latent__modes=["continuous"]), "discrete",
                           ["task.env.llc.mode=discrete", "['continuous']"]),
    "control_dt": (dict(control_dt=0.05), "continuous", ["control_dt", "0.02", "0.05"]),
}


@pytest.mark.parametrize("case", sorted(TASK_ERRORS))
def test_checkpoint_that_does_not_fit_the_task_gives_clear_error(tmp_path, small_task, case):
    changes, mode, needles = TASK_ERRORS[case]
    spec = _spec_with(**changes)
    if case == "mode not supported":
        del spec["architecture"]["mid"], spec["obs"]["mid"]
        del spec["latent"]["discrete"], spec["latent"]["mixture"]
    llc = load_llc(write_llc(tmp_path / "llc.pt", spec))        # structurally fine: loads
    with pytest.raises(LLCError) as info:
        validate_llc_for_task(llc, small_task, mode)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, (case, msg)
    # the env wrapper refuses it the same way
    with pytest.raises(LLCError):
        LatentSkillEnv(small_task, llc, mode=mode)


def test_llc_error_is_a_user_error():
    assert issubclass(LLCError, UserError) and issubclass(LLCError, ValueError)


# ---- the LLC is frozen ----------------------------------------------------------------------------
def test_loaded_llc_is_frozen(llc_path):
    llc = load_llc(llc_path)
    assert not llc.training and all(not m.training for m in llc.modules())
    params = list(llc.parameters())
    assert params and all(not p.requires_grad for p in params)
    before = {k: v.clone() for k, v in llc.state_dict().items()}
    env = LatentSkillEnv(location_task(4), llc)
    env.reset()
    for hl in hl_batch(4, count=3):
        env.step(hl)
    assert all(torch.equal(before[k], v) for k, v in llc.state_dict().items())
    assert all(not p.requires_grad for p in llc.parameters()) and not llc.training
    # a loss through the LLC has nothing to train
    z = torch.randn(4, 4, requires_grad=True)
    out = llc(torch.randn(4, PROPRIO), z)
    out.sum().backward()
    assert all(p.grad is None for p in llc.parameters())


def test_save_load_roundtrip_keeps_weights_and_spec(tmp_path):
    spec = llc_spec()
    torch.manual_seed(3)
    pol, mid = build(spec["architecture"]["policy"]), build(spec["architecture"]["mid"])
    path = save_llc(tmp_path / "sub" / "llc.pt", spec, pol, mid, obs_mean=torch.zeros(52), obs_std=torch.ones(52))
    assert not list(path.parent.glob("*.tmp*"))
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == "isaacgymenvs_hrl.llc" and blob["format_version"] == FORMAT_VERSION
    llc = load_llc(path)
    assert llc.spec == spec and llc.path == str(path)
    for k, v in pol.state_dict().items():
        assert torch.equal(llc.policy.state_dict()[k], v)
    for k, v in mid.state_dict().items():
        assert torch.equal(llc.mid.state_dict()[k], v)


# ---- wrap_module ------------------------------------------------------------------------------------
class ExternalPolicy(nn.Module):
    """A policy trained elsewhere: (obs, z) -> action, small outputs (inside the LLC's clip)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(PROPRIO + 6, 32), nn.Tanh(), nn.Linear(32, NUM_ACTIONS), nn.Tanh())

    def forward(self, obs, z):
        return 0.9 * self.net(torch.cat([obs, z], dim=-1))


WRAP_KW = dict(task_family="humanoid", obs=[("proprio", PROPRIO)],
               action={"dim": NUM_ACTIONS, "control_type": "joint_position"},
               latent={"dim": 6, "normalization": "none", "modes": ["continuous"]},
               default_steps=4, control_dt=0.02)


@pytest.mark.parametrize("source", ["module", "torchscript_file"])
def test_wrap_module_matches_the_original(tmp_path, source):
    torch.manual_seed(5)
    module = ExternalPolicy().eval()
    if source == "torchscript_file":
        ts_path = tmp_path / "policy_ts.pt"
        torch.jit.script(module).save(str(ts_path))
        src = ts_path
    else:
        src = module
    ex_obs, ex_z = torch.randn(2, PROPRIO), torch.randn(2, 6)
    path = wrap_module(tmp_path / "wrapped.pt", src, ex_obs, ex_z, provenance={"algorithm": "ext"}, **WRAP_KW)
    llc = load_llc(path, trust_code=True)
    assert llc.spec["architecture"]["policy"]["type"] == "torchscript"
    assert llc.spec["provenance"] == {"algorithm": "ext"}
    obs, z = torch.randn(64, PROPRIO), torch.randn(64, 6)
    with torch.no_grad():
        expected = module(obs, z)
        got = llc(obs, z)
    assert (expected.abs() < 1).all()
    assert torch.allclose(got, expected, atol=1e-6, rtol=0)
    assert all(not p.requires_grad for p in llc.parameters())
    # and it drives the task
    env = LatentSkillEnv(location_task(2), llc)
    assert env.steps == 4 and env.action_space.shape == (6,)
    env.reset()
    _, r, d, extras = env.step(torch.randn(2, 6))
    assert torch.isfinite(r).all() and (extras["executed_substeps"] == 4).all()


# ---- mixture agent KL terms ---------------------------------------------------------------------------
def _mixture_inputs(k=3, d=4, b=2):
    g = torch.Generator().manual_seed(0)
    prior_mean = torch.randn(k, d, generator=g)
    prior_std = torch.rand(k, d, generator=g) + 0.5
    return prior_mean, prior_std, torch.zeros(b, k + k * d), torch.ones(b, k + k * d)


def test_kl_y_uniform_scores_is_zero():
    pm, ps, mu, sigma = _mixture_inputs()
    mu[:, :3] = torch.tensor([[0.3, 0.3, 0.3], [-2.0, -2.0, -2.0]])
    kl_y, _ = mixture_kl_terms(mu, sigma, 3, 1.0, pm, ps)
    assert torch.allclose(kl_y, torch.zeros(2), atol=1e-6)


def test_kl_y_one_hot_scores_is_log_k():
    for k in (2, 3, 5):
        pm, ps, mu, sigma = _mixture_inputs(k=k)
        mu[:, 0] = 50.0
        kl_y, _ = mixture_kl_terms(mu, sigma, k, 1.0, pm, ps)
        assert torch.allclose(kl_y, torch.full((2,), math.log(k)), atol=1e-4), (k, kl_y)


def test_kl_z_zero_when_the_policy_equals_the_prior():
    pm, ps, mu, sigma = _mixture_inputs()
    scale = 2.0
    mu[:, 3:] = (pm / scale).reshape(-1)
    sigma[:, 3:] = (ps / scale).reshape(-1)
    mu[:, :3] = torch.tensor([[1.0, -1.0, 0.5], [0.0, 3.0, 0.0]])
    _, kl_z = mixture_kl_terms(mu, sigma, 3, scale, pm, ps)
    assert torch.allclose(kl_z, torch.zeros(2), atol=1e-6)


def test_kl_z_known_offset():
    k, d, delta = 3, 4, 0.3
    pm, ps, mu, sigma = _mixture_inputs(k=k, d=d)
    ps = torch.full((k, d), 0.5)
    mu[:, k:] = (pm + delta).reshape(-1)
    sigma[:, k:] = 0.5
    expected = 0.5 * (delta / 0.5) ** 2 * d
    _, kl_z = mixture_kl_terms(mu, sigma, k, 1.0, pm, ps)           # same offset for every component
    assert torch.allclose(kl_z, torch.full((2,), expected), atol=1e-5)
    # only component 0 off the prior: weighted by p_0 (uniform 1/K, or ~1 when it dominates)
    mu[:, k:] = pm.reshape(-1)
    mu[:, k:k + d] += delta
    _, kl_uniform = mixture_kl_terms(mu, sigma, k, 1.0, pm, ps)
    assert torch.allclose(kl_uniform, torch.full((2,), expected / k), atol=1e-5)
    mu[:, 0] = 50.0
    _, kl_peaked = mixture_kl_terms(mu, sigma, k, 1.0, pm, ps)
    assert torch.allclose(kl_peaked, torch.full((2,), expected), atol=1e-4)


# ---- broken normalizers and self-contradicting specs: refused at save and at load ----------------
def _raw_blob(tmp_path, **weights_changes):
    """A checkpoint dict written by save_llc, then edited the way a broken tool would."""
    blob = torch.load(write_llc(tmp_path / "good.pt", llc_spec(),
                                obs_mean=torch.zeros(PROPRIO), obs_std=torch.ones(PROPRIO)), weights_only=True)
    blob["weights"].update(weights_changes)
    path = tmp_path / "edited.pt"
    torch.save(blob, path)
    return path


@pytest.mark.parametrize("change,needle", [
    (dict(obs_std=torch.zeros(PROPRIO)), "weights.obs_std has 52 zero or negative entries"),
    (dict(obs_std=torch.full((PROPRIO,), float("nan"))), "weights.obs_std is not a finite tensor"),
    (dict(obs_mean=torch.zeros(7)), "weights.obs_mean has shape (7,), expected (52,)"),
])
def test_broken_normalizers_are_refused_on_load(tmp_path, change, needle):
    with pytest.raises(LLCError) as info:
        load_llc(_raw_blob(tmp_path, **change))
    assert needle in str(info.value)


def test_save_refuses_nan_weights_and_keeps_the_old_file(tmp_path):
    path = write_llc(tmp_path / "llc.pt", llc_spec())
    before = path.read_bytes()
    spec = llc_spec()
    policy = build(spec["architecture"]["policy"])
    with torch.no_grad():
        next(policy.parameters())[0, 0] = float("nan")
    with pytest.raises(LLCError, match="contains NaN or infinite values"):
        save_llc(path, spec, policy, build(spec["architecture"]["mid"]))
    with pytest.raises(LLCError, match="obs_std has 1 zero"):
        save_llc(path, spec, build(spec["architecture"]["policy"]), build(spec["architecture"]["mid"]),
                 obs_mean=torch.zeros(PROPRIO), obs_std=torch.cat([torch.zeros(1), torch.ones(PROPRIO - 1)]))
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp.*"))


def test_latent_size_that_disagrees_with_the_network_is_refused(tmp_path):
    spec = llc_spec()
    write_llc(tmp_path / "good.pt", spec)
    blob = torch.load(tmp_path / "good.pt", weights_only=True)
    blob["spec"]["latent"]["dim"] = spec["latent"]["dim"] + 1
    blob["spec"]["latent"]["mixture"]["prior_mean"] = torch.zeros(spec["latent"]["mixture"]["k"], spec["latent"]["dim"] + 1).tolist()
    blob["spec"]["latent"]["mixture"]["prior_std"] = torch.ones(spec["latent"]["mixture"]["k"], spec["latent"]["dim"] + 1).tolist()
    torch.save(blob, tmp_path / "edited.pt")
    with pytest.raises(LLCError, match="architecture.policy.latent_dim is .* but the spec says"):
        load_llc(tmp_path / "edited.pt")


def test_non_finite_high_level_actions_are_counted_and_end_their_episode():
    """inf is no more a usable latent than NaN: either reaches the task as NaN actions, once per
    high-level action, counted in extras["nan_actions"] and ended, as a flat task treats them."""
    from isaacgymenvs_hrl.hrl.env_factory import build_env
    from isaacgymenvs_hrl.utils.task_config import load_task_config
    env = build_env(load_task_config("HumanoidLocationHRL", ["num_envs=4", "num_threads=1"]))
    env.reset()
    actions = torch.zeros(4, env.action_space.shape[0])
    actions[1, 0], actions[2, 1] = float("inf"), float("-inf")
    _, _, done, extras = env.step(actions)
    assert int(extras["nan_actions"]) == 2 and done.tolist() == [0, 1, 1, 0]
    _, _, done, extras = env.step(torch.zeros_like(actions))
    assert int(extras["nan_actions"]) == 2 and done.tolist() == [0, 0, 0, 0]
