"""Offline skill learning (LDSE, HeLMS, MRS, NPMP): the maths against brute force and hand-worked
cases, window cutting, and each algorithm end to end on small synthetic datasets written with the
real dataset writer, down to its LLC checkpoint loaded with ``load_llc`` and run in its modes."""
from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from isaacgymenvs_hrl.datasets import DatasetError, load_dataset, write_dataset
from isaacgymenvs_hrl.datasets.hdf5 import episode_ids
from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc
from isaacgymenvs_hrl.skills.common import gaussian_log_prob, kl_gaussians, kl_standard_normal, pca_2d
from isaacgymenvs_hrl.skills.helms import HeLMSConfig, elbo_terms, forward_filter, train_helms
from isaacgymenvs_hrl.hrl.segment_encoder import SkillMatcher, encoder_path
from isaacgymenvs_hrl.skills.ldse import LDSEConfig, train_ldse
from isaacgymenvs_hrl.skills.mrs import MRSConfig, train_mrs
from isaacgymenvs_hrl.skills.npmp import NPMPConfig, ar1_kl, train_npmp
from isaacgymenvs_hrl.datasets.windows import lookahead_indices, window_indices, window_starts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
QUIET = {"log": lambda *_: None, "progress": False}


# ---- synthetic datasets ------------------------------------------------------------------------------
def synthetic(path, episodes=6, length=40, proprio=6, actions=3, objects=3, task=0, seed=0,
              family="synthetic", control_type="torque"):
    """Episodes of a linear system driven by two alternating state-feedback skills (switching
    every 10 steps): actions are a function of the state and the phase, so they can be learned.
    Episode lengths vary by +-5 steps; ``objects``/``task`` slices are added when their size > 0."""
    rng = np.random.default_rng(seed)
    gains = rng.normal(0, 1.0, (2, actions, proprio))
    mix = rng.normal(0, 0.5, (proprio, actions))
    obs, act, terminals, timeouts = [], [], [], []
    for e in range(episodes):
        n = length + int(rng.integers(-5, 6))
        s = rng.normal(0, 1, proprio)
        goal = rng.normal(0, 1, objects + task)
        for t in range(n):
            a = np.tanh(gains[(t // 10 + e) % 2] @ s)
            obs.append(np.concatenate([s, goal + 0.01 * t]))
            act.append(a)
            s = 0.8 * s + mix @ a + 0.05 * rng.normal(0, 1, proprio)
            terminals.append(t == n - 1 and e % 2 == 0)
            timeouts.append(t == n - 1 and e % 2 == 1)
    layout = [["proprio", proprio]] + ([["objects", objects]] if objects else []) + ([["task", task]] if task else [])
    data = {"observations": np.asarray(obs, np.float32), "actions": np.asarray(act, np.float32),
            "rewards": np.zeros(len(act), np.float32), "terminals": np.asarray(terminals),
            "timeouts": np.asarray(timeouts)}
    meta = {"obs_layout": layout, "control_dt": 0.02, "control_type": control_type, "task_family": family,
            "num_actions": actions, "commit": "test"}
    write_dataset(path, data, meta)
    data, meta = load_dataset(path)
    meta["path"] = str(path)
    return data, meta


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("data") / "tiny.hdf5")


TINY = {"hidden": [16], "epochs": 2, "latent_dim": 3}
CONFIGS = {
    "ldse": (LDSEConfig, train_ldse, dict(TINY, horizon=6, lstm_hidden=8, batch_size=64)),
    "helms": (HeLMSConfig, train_helms, dict(TINY, num_skills=3, mid_hidden=[16], seq_len=12, seq_stride=6,
                                              batch_size=8, lookahead=2)),
    "mrs": (MRSConfig, train_mrs, dict(TINY, horizons=[4, 8], lstm_hidden=8, batch_size=64, stride=3)),
    "npmp": (NPMPConfig, train_npmp, dict(TINY, lookahead=3, seq_len=8, batch_size=16)),
}


# ---- windows -----------------------------------------------------------------------------------------
def test_windows_never_cross_episode_boundaries():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 12, 30)
    data = {"terminals": np.zeros(lengths.sum(), bool), "timeouts": np.zeros(lengths.sum(), bool)}
    ends = np.cumsum(lengths) - 1
    data["terminals"][ends[::2]] = True
    data["timeouts"][ends[1::2]] = True
    ep = episode_ids(data)
    assert np.array_equal(np.bincount(ep), lengths)
    for length, stride in ((1, 1), (5, 1), (5, 2), (11, 3), (12, 1)):
        starts = window_starts(ep, length, stride)
        brute = [t for t in range(len(ep) - length + 1)
                 if ep[t] == ep[t + length - 1] and (t - np.argmax(ep == ep[t])) % stride == 0]
        assert starts.tolist() == brute, (length, stride)
        idx = window_indices(starts, length)
        assert (ep[idx] == ep[idx[:, :1]]).all()
    assert len(window_starts(ep, 12)) == 0                       # no episode has 12 steps
    ahead = lookahead_indices(ep, np.arange(len(ep)), 4)
    assert (ep[ahead] == ep[:, None]).all()                      # clamped: never the next episode
    assert (ahead[:, 0] == np.minimum(np.arange(len(ep)) + 1, np.repeat(ends, lengths))).all()


# ---- Gaussian and categorical maths --------------------------------------------------------------------
def test_gaussian_terms_on_hand_computable_cases():
    zero, one = torch.zeros(1, 1), torch.ones(1, 1)
    assert kl_standard_normal(one, zero).item() == pytest.approx(0.5)               # mean 1, std 1
    assert kl_standard_normal(zero, torch.full((1, 1), math.log(2.0))).item() == pytest.approx(1.5 - math.log(2))
    m, ls = torch.randn(4, 5), 0.3 * torch.randn(4, 5)
    assert torch.allclose(kl_gaussians(m, ls, torch.zeros(4, 5), torch.zeros(4, 5)), kl_standard_normal(m, ls))
    mp, lp = torch.randn(4, 5), 0.3 * torch.randn(4, 5)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m, ls.exp()),
                                            torch.distributions.Normal(mp, lp.exp())).sum(-1)
    assert torch.allclose(kl_gaussians(m, ls, mp, lp), ref, atol=1e-5)
    x = torch.randn(4, 5)
    assert torch.allclose(gaussian_log_prob(x, m, ls), torch.distributions.Normal(m, ls.exp()).log_prob(x).sum(-1),
                          atol=1e-5)
    # log N(0; 0, 1) = -0.5 log(2 pi)
    assert gaussian_log_prob(zero, zero, zero).item() == pytest.approx(-0.5 * math.log(2 * math.pi))


def test_ar1_kl_hand_case_and_monte_carlo():
    alpha = 0.5
    # q_0 = N(0, 1) = the prior: KL 0. q_1 = N(0, 0.75): E_{z0~N(0,1)} KL(N(0, .75) || N(z0/2, .75))
    # = E[(z0/2)^2] / (2 * 0.75) = 0.25 / 1.5
    mean, log_std = torch.zeros(1, 2, 1), torch.tensor([[[0.0], [0.5 * math.log(0.75)]]])
    kl = ar1_kl(mean, log_std, alpha)
    assert kl[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert kl[0, 1].item() == pytest.approx(0.25 / 1.5, rel=1e-5)
    # random posteriors against a Monte Carlo average over z_{t-1}
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(1, 2, 3, generator=g), 0.3 * torch.randn(1, 2, 3, generator=g)
    z0 = mean[0, 0] + log_std[0, 0].exp() * torch.randn(200_000, 3, generator=g)
    prior_log_std = torch.full((3,), 0.5 * math.log(1 - alpha ** 2))
    mc = kl_gaussians(mean[0, 1].expand(len(z0), 3), log_std[0, 1].expand(len(z0), 3), alpha * z0,
                      prior_log_std.expand(len(z0), 3)).mean()
    assert ar1_kl(mean, log_std, alpha)[0, 1].item() == pytest.approx(mc.item(), rel=1e-2)


def tiny_chain(b=2, t=4, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    init = torch.log_softmax(torch.randn(b, k, generator=g), -1)
    trans = torch.log_softmax(2 * torch.randn(b, t - 1, k, k, generator=g), -1)
    return init, trans


def test_forward_filter_equals_brute_force_marginals():
    init, trans = tiny_chain()
    b, t, k = 2, 4, 3
    alpha = forward_filter(init, trans)
    brute = torch.zeros(b, t, k)
    for path in itertools.product(range(k), repeat=t):
        p = init[:, path[0]].exp()
        for s in range(1, t):
            p = p * trans[:, s - 1, path[s - 1], path[s]].exp()
        for s in range(t):
            brute[:, s, path[s]] += p
    assert torch.allclose(alpha, brute, atol=1e-6)
    assert torch.allclose(alpha.sum(-1), torch.ones(b, t), atol=1e-6)


def test_elbo_terms_equal_the_path_enumerated_elbo():
    """sum_t (recon - kl_z - kl_y) = E_{q(y_1:T)}[sum_t log_lik - kl_z] - KL(q(y_1:T) || p(y_1:T))."""
    b, t, k = 2, 4, 3
    init, trans = tiny_chain(b, t, k, seed=1)
    g = torch.Generator().manual_seed(2)
    log_p = torch.log_softmax(torch.randn(k, k, generator=g), -1)
    log_lik, kl_z = torch.randn(b, t, k, generator=g), torch.rand(b, t, k, generator=g)
    terms = elbo_terms(init, trans, log_p, log_lik, kl_z)
    ours = (terms["recon"] - terms["kl_z"] - terms["kl_y"]).sum(-1)
    brute = torch.zeros(b)
    for path in itertools.product(range(k), repeat=t):
        log_q = init[:, path[0]].clone()
        log_prior = torch.full((b,), -math.log(k))
        for s in range(1, t):
            log_q = log_q + trans[:, s - 1, path[s - 1], path[s]]
            log_prior = log_prior + log_p[path[s - 1], path[s]]
        gain = sum(log_lik[:, s, path[s]] - kl_z[:, s, path[s]] for s in range(t))
        brute += log_q.exp() * (gain - (log_q - log_prior))
    assert torch.allclose(ours, brute, atol=1e-5)
    # a state-conditioned prior: its own transition rows at every step and its own p(y_0)
    step_p = torch.log_softmax(torch.randn(b, t - 1, k, k, generator=g), -1)
    init_p = torch.log_softmax(torch.randn(b, k, generator=g), -1)
    terms = elbo_terms(init, trans, step_p, log_lik, kl_z, init_p)
    brute = torch.zeros(b)
    for path in itertools.product(range(k), repeat=t):
        log_q, log_prior = init[:, path[0]].clone(), init_p[:, path[0]].clone()
        for s in range(1, t):
            log_q = log_q + trans[:, s - 1, path[s - 1], path[s]]
            log_prior = log_prior + step_p[:, s - 1, path[s - 1], path[s]]
        gain = sum(log_lik[:, s, path[s]] - kl_z[:, s, path[s]] for s in range(t))
        brute += log_q.exp() * (gain - (log_q - log_prior))
    assert torch.allclose((terms["recon"] - terms["kl_z"] - terms["kl_y"]).sum(-1), brute, atol=1e-5)
    # a posterior equal to the prior has no categorical KL
    same = elbo_terms(torch.full((1, k), -math.log(k)), log_p.expand(1, t - 1, k, k), log_p,
                      log_lik[:1], kl_z[:1])
    assert same["kl_y"].abs().max().item() < 1e-6


def test_pca_recovers_the_main_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (500, 1)) * np.array([[3.0, 0.0, 4.0]]) + 0.01 * rng.normal(0, 1, (500, 3))
    xy = pca_2d(x)
    assert xy.shape == (500, 2) and xy[:, 0].std() == pytest.approx(5.0, rel=0.1) and xy[:, 1].std() < 0.05


# ---- each algorithm end to end ---------------------------------------------------------------------------
@pytest.mark.parametrize("algo", list(CONFIGS))
def test_algorithm_writes_an_llc_that_loads_and_runs(algo, tiny, tmp_path):
    cls, train, kwargs = CONFIGS[algo]
    data, meta = tiny
    out = tmp_path / f"{algo}.llc.pt"
    result = train(data, meta, cls(**kwargs), str(out), **QUIET)
    assert all(len(v) == 2 and np.isfinite(v).all() for v in result["history"].values())
    llc = load_llc(out)
    spec = llc.spec
    assert spec["provenance"]["algorithm"] == algo and spec["provenance"]["metrics"]["train_loss"] > -1e9
    assert spec["obs"]["policy"] == [["proprio", 6]] and spec["action"]["dim"] == 3
    assert len(result["report"]["latents"]) == len(result["report"]["labels"]) > 0
    obs = torch.as_tensor(data["obs"]["proprio"][:5])
    mid = torch.as_tensor(data["observations"][:5])                   # proprio + objects
    hl = {"continuous": torch.randn(5, 3), "discrete": torch.tensor([0, 1, 2, 0, 1]),
          "mixture": torch.randn(5, 3 * 4), "multires": torch.randn(5, 3 + 3)}
    expected = {"ldse": ["continuous"], "npmp": ["continuous"], "mrs": ["multires"],
                "helms": ["continuous", "discrete", "mixture"]}[algo]
    assert spec["latent"]["modes"] == expected
    for mode in expected:
        z, head, choice = llc.decode(mode, hl[mode], mid)
        a = llc(obs, z, head)
        assert z.shape == (5, 3) and a.shape == (5, 3) and torch.isfinite(a).all() and a.abs().max() <= 1.0
        if mode == "discrete":
            # the latent of skill y is the frozen mid level's mean for y
            means, _ = llc.mid_latents(mid)
            assert torch.equal(z, means[torch.arange(5), choice])
        if mode == "multires":
            assert head.tolist() == hl[mode][:, :3].argmax(-1).tolist()
    if algo == "helms":
        k = spec["latent"]["mixture"]["k"]
        assert np.array(spec["latent"]["mixture"]["prior_std"]).shape == (k, 3)
        assert np.allclose(np.array(spec["latent"]["transition_prior"]).sum(1), 1.0, atol=1e-5)
        assert result["report"]["usage"].sum() == pytest.approx(1.0)
        # the state-conditioned skill prior ships: row K starts an episode, row i follows skill i
        rows = llc.skill_prior_rows(mid).exp()                                              # (5, K+1, K)
        assert rows.shape == (5, k + 1, k) and torch.allclose(rows.sum(-1), torch.ones(5, k + 1), atol=1e-5)
        prev = torch.tensor([0, 1, 2, -1, 1])
        first = llc.skill_log_prior(mid, None).exp()
        assert torch.allclose(first, rows[:, k]) and torch.allclose(llc.skill_log_prior(mid, prev).exp()[3], rows[3, k])
        assert torch.allclose(llc.skill_log_prior(mid, prev).exp()[:3], rows[torch.arange(3), prev[:3]])
    if algo == "mrs":
        assert spec["latent"]["multires"]["horizons"] == [4, 8]
        # the unconditional head ignores z
        uncond = torch.full((5,), 2)
        assert torch.equal(llc(obs, torch.randn(5, 3), uncond), llc(obs, torch.randn(5, 3), uncond))
    if algo == "ldse":
        matcher = SkillMatcher.load(encoder_path(out))
        z = matcher(torch.as_tensor(data["obs"]["proprio"][None, :6]), torch.as_tensor(data["actions"][None, :6]))
        assert z.shape == (1, 3) and torch.isfinite(z).all()


def test_ldse_fixed_variance_variant(tiny, tmp_path):
    """Fixed decoder std: the dynamics NLL is the MSE rescaled, S * (mse / (2 sigma^2) + log sigma
    + log(2 pi) / 2); the 'none' normalization and sampled policy latents reach the checkpoint."""
    data, meta = tiny
    cfg = LDSEConfig(**dict(CONFIGS["ldse"][2], epochs=1), decoder_variance="fixed", fixed_std=0.5,
                     policy_latent="sample", latent_normalization="none")
    hist = train_ldse(data, meta, cfg, str(tmp_path / "f.llc.pt"), **QUIET)["history"]
    s = 6
    expected = s * (hist["val_dyn_mse"][-1] / (2 * 0.25) + math.log(0.5) + 0.5 * math.log(2 * math.pi))
    assert hist["val_dyn_nll"][-1] == pytest.approx(expected, rel=1e-4)
    llc = load_llc(tmp_path / "f.llc.pt")
    assert llc.spec["latent"]["normalization"] == "none"
    assert llc.spec["provenance"]["config"]["policy_latent"] == "sample"
    with pytest.raises(UserError, match="decoder_variance"):
        train_ldse(data, meta, LDSEConfig(decoder_variance="bogus"), str(tmp_path / "g.pt"), **QUIET)


@pytest.mark.parametrize("algo", ["ldse", "npmp"])
def test_the_fit_reports_how_much_of_its_latent_space_a_high_level_reaches(tiny, tmp_path, algo):
    """A high level's action lies in [-1, 1]: with a tiny latent_scale it reaches no fitted latent and
    the fit says which scale would; with a huge one it reaches them all. The share is in the checkpoint."""
    data, meta = tiny
    cls, train, kwargs = CONFIGS[algo]
    for scale, reach in ((1e-4, 0.0), (1e4, 1.0)):
        lines = []
        out = tmp_path / f"{algo}_{scale:g}.llc.pt"
        metrics = train(data, meta, cls(**dict(kwargs, epochs=1), latent_scale=scale), str(out),
                        log=lines.append, progress=False)["metrics"]
        assert metrics["hl_reach"] == reach
        assert load_llc(out).spec["provenance"]["metrics"]["hl_reach"] == reach
        warned = [line for line in lines if "high level reaches" in line]
        assert bool(warned) == (reach == 0.0) and (not warned or "skills.latent_scale=" in warned[0])


def test_helms_needs_an_objects_slice(tmp_path):
    data, meta = synthetic(tmp_path / "noobj.hdf5", episodes=2, objects=0, task=3)
    cls, train, kwargs = CONFIGS["helms"]
    with pytest.raises(DatasetError, match="no 'objects' observation slice.*skills.mid_obs"):
        train(data, meta, cls(**kwargs), str(tmp_path / "x.llc.pt"), **QUIET)
    assert not (tmp_path / "x.llc.pt").exists()


def test_episodes_too_short_are_a_clear_error(tiny, tmp_path):
    data, meta = tiny
    with pytest.raises(DatasetError, match="no episode is long enough.*skills.horizons"):
        train_mrs(data, meta, MRSConfig(horizons=[4, 64], epochs=1, hidden=[8]), str(tmp_path / "m.pt"), **QUIET)


def test_losses_decrease_on_learnable_data(tmp_path):
    data, meta = synthetic(tmp_path / "learn.hdf5", episodes=8, length=40, seed=3)
    npmp = train_npmp(data, meta, NPMPConfig(hidden=[64, 64], epochs=12, latent_dim=4, batch_size=16, lr=3e-3),
                      str(tmp_path / "n.pt"), **QUIET)["history"]
    assert npmp["train_action_mse"][-1] < 0.4 * npmp["train_action_mse"][0], npmp["train_action_mse"]
    assert npmp["val_action_mse"][-1] < 0.6 * npmp["val_action_mse"][0], npmp["val_action_mse"]
    ldse = train_ldse(data, meta, LDSEConfig(hidden=[32], epochs=8, latent_dim=4, lstm_hidden=8,
                                             batch_size=32, lr=3e-3), str(tmp_path / "l.pt"), **QUIET)["history"]
    # the state change is a known linear function of (s, a): the dynamics decoder must fit it
    assert ldse["train_dyn_mse"][-1] < 0.5 * ldse["train_dyn_mse"][0], ldse["train_dyn_mse"]
    assert ldse["val_loss"][-1] < ldse["val_loss"][0], ldse["val_loss"]


# ---- in a real high-level env ----------------------------------------------------------------------------
def test_helms_llc_drives_humanoid_location(tmp_path):
    """A humanoid-shaped dataset (proprio 52 + task 3, 21 actions) -> HeLMS with the task slice as
    mid context -> LatentSkillEnv on HumanoidLocation in discrete and mixture modes."""
    from isaacgymenvs_hrl.tasks import HumanoidLocation
    data, meta = synthetic(tmp_path / "hum.hdf5", episodes=3, length=30, proprio=52, actions=21, objects=0,
                           task=3, family="humanoid", control_type="joint_position")
    cfg = HeLMSConfig(mid_obs=["proprio", "task"], num_skills=3, latent_dim=4, hidden=[32], mid_hidden=[32],
                      seq_len=10, seq_stride=5, epochs=1, batch_size=8)
    out = tmp_path / "helms.llc.pt"
    train_helms(data, meta, cfg, str(out), **QUIET)
    llc = load_llc(out)
    assert llc.spec["obs"]["mid"] == [["proprio", 52], ["task", 3]]
    task = HumanoidLocation({"name": "HumanoidLocation", "env": {"numEnvs": 3, "episodeLength": 40},
                             "sim": {"dt": 0.02, "substeps": 4}}, "cpu", "cpu", -1, True, auto_reset=False)
    for mode, hl in (("discrete", torch.tensor([0, 1, 2])), ("mixture", torch.randn(3, 3 * 5))):
        env = LatentSkillEnv(task, llc, mode=mode, steps=3)
        env.reset()
        obs, rew, done, extras = env.step(hl)
        assert obs["obs"].shape == (3, 55) and torch.isfinite(rew).all()
        assert extras["skill"].tolist() == (hl.tolist() if mode == "discrete" else hl[:, :3].argmax(-1).tolist())


# ---- the CLI ---------------------------------------------------------------------------------------------
def test_cli_trains_helms_and_writes_the_report(tiny, tmp_path):
    _, meta = tiny
    out = tmp_path / "h.llc.pt"
    args = ["algo=helms", f"dataset={meta['path']}", f"output={out}", "skills.epochs=1", "skills.hidden=[16]",
            "skills.mid_hidden=[16]", "skills.num_skills=3", "skills.seq_len=12", "skills.latent_dim=3"]
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.cli.skills", *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = tmp_path / "h.llc_report"
    for name in ("losses.png", "latents_pca.png", "skill_usage.png", "transitions.png", "metrics.json", "index.md"):
        assert (report / name).is_file(), name
    assert load_llc(out).spec["provenance"]["algorithm"] == "helms"
    assert "epoch 1/1" in res.stdout + res.stderr           # per-epoch losses are printed


def test_algo_selects_the_skills_config():
    """algo=<name> picks cfg/skills/<name>.yaml (skills=<name> still does); skills.* overrides apply."""
    from hydra import compose, initialize_config_dir
    from isaacgymenvs_hrl.paths import CFG_DIR
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
        for overrides, algo in (([], "bc"), (["algo=ldse", "skills.epochs=3"], "ldse"), (["skills=npmp"], "npmp"),
                                (["algo=mrs", "skills=helms"], "helms")):
            cfg = compose(config_name="skills_config", overrides=["dataset=x", *overrides])
            assert cfg.skills.algo == algo and cfg.output == f"llcs/{algo}.llc.pt", overrides
            if "skills.epochs=3" in overrides:
                assert cfg.skills.epochs == 3


def test_every_algorithm_is_registered_with_its_settings_file():
    """bc, ldse, helms, mrs and npmp share the registry and the training loop's settings; each
    cfg/skills/<algo>.yaml names every field of its config, with the dataclass's defaults."""
    from dataclasses import fields

    from hydra import compose, initialize_config_dir

    from isaacgymenvs_hrl.paths import CFG_DIR
    from isaacgymenvs_hrl.skills.algorithms import ALGORITHMS, algorithm, make_config
    from isaacgymenvs_hrl.skills.bc import BCConfig
    from isaacgymenvs_hrl.skills.trainer import SkillConfig
    from isaacgymenvs_hrl.utils.config import to_dict
    assert set(ALGORITHMS) == {"bc", "ldse", "helms", "mrs", "npmp"}
    shared = {f.name for f in fields(SkillConfig)}
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
        for name in ALGORITHMS:
            cls, train = algorithm(name)
            assert issubclass(cls, SkillConfig) and train.__name__ == f"train_{name}"
            params = {k: v for k, v in to_dict(compose(config_name="skills_config",
                                                       overrides=["dataset=x", f"algo={name}"]).skills).items()
                      if k != "algo"}
            assert set(params) == {f.name for f in fields(cls)} and shared <= set(params), name
            assert make_config(cls, params) == cls(), name
    with pytest.raises(UserError, match="'vae' is not implemented; available"):
        algorithm("vae")
    assert make_config(BCConfig, {"condition_on": []}).condition_on == []          # plain BC
    with pytest.raises(UserError, match="skills.hidden must be a non-empty list"):
        make_config(BCConfig, {"hidden": []})


def test_fixed_sticky_prior_ships_and_drives_the_prior_high_level(tiny, tmp_path):
    """skills.prior_stay fixes HeLMS' transition prior; the zero-shot high level (PriorHighLevel)
    then keeps a skill over one decision of k steps with probability (P^k)[y, y]."""
    from isaacgymenvs_hrl.skills.exploration import PriorHighLevel
    cls, train, kwargs = CONFIGS["helms"]
    data, meta = tiny
    out = tmp_path / "sticky.llc.pt"
    train(data, meta, cls(**kwargs, prior_stay=0.9), str(out), **QUIET)
    llc = load_llc(out)
    trans = np.array(llc.spec["latent"]["transition_prior"])
    assert np.allclose(np.diag(trans), 0.9) and np.allclose(trans.sum(1), 1.0)
    gen = torch.Generator().manual_seed(0)
    hl = PriorHighLevel(llc, "discrete", 20000, 2, gen)
    y0, y1 = hl(), hl()
    stay = float(np.linalg.matrix_power(trans, 2)[0, 0])             # 0.9^2 + (K - 1) 0.05^2
    assert abs(float((y0 == y1).float().mean()) - stay) < 0.01
    mix = PriorHighLevel(llc, "mixture", 5, 2, gen)()
    k, d = llc.num_skills, llc.latent_dim
    assert mix.shape == (5, k * (1 + d)) and torch.equal(mix[:, :k].sum(1), torch.ones(5))
    with pytest.raises(UserError, match="prior_stay must be in"):
        train(data, meta, cls(**kwargs, prior_stay=1.0), str(tmp_path / "bad.llc.pt"), **QUIET)


def test_skill_matching_pretrains_the_high_level_actor(tiny, tmp_path):
    """LDSE's encoder labels every k-step decision of the data with its latent; the rl-games actor
    regressed onto them reproduces them, with its input normalizer set from the same data."""
    from isaacgymenvs_hrl.learning.actor_init import matched_targets, pretrain_actor
    from isaacgymenvs_hrl.learning.runs import build_network
    from isaacgymenvs_hrl.utils.config import to_dict
    from isaacgymenvs_hrl.utils.task_config import compose_config
    cls, train, kwargs = CONFIGS["ldse"]
    data, meta = tiny
    out = tmp_path / "ldse.llc.pt"
    train(data, meta, cls(**kwargs), str(out), **QUIET)
    llc = load_llc(out)
    matcher = SkillMatcher.load(encoder_path(out))
    obs, targets = matched_targets(data, llc, matcher, ["proprio", "objects"], k=4)
    assert obs.shape[1] == data["observations"].shape[1] and targets.shape == (len(obs), 3)
    assert targets.abs().max() <= 1.0 and targets.var(0).mean() > 1e-4
    params = to_dict(compose_config(["task=FrankaStackHRL", "train=FrankaStackPPO"]).train)["params"]
    net = build_network(params, obs.shape[1], 3)
    before = float(((net.a2c_network({"obs": net.norm_obs(obs)})[0] - targets) ** 2).mean())
    mse = pretrain_actor(net, obs, targets, epochs=30, log=lambda *_: None)
    assert mse < 0.5 * before and mse < 0.5 * float(targets.var(0).mean())
    assert torch.allclose(net.running_mean_std.running_mean.float(), obs.mean(0), atol=1e-5)
    from isaacgymenvs_hrl.learning.actor_init import skill_matching_init
    with pytest.raises(UserError, match="encoder .* is not there"):
        skill_matching_init("unused.hdf5", str(tmp_path / "none.encoder.pt"), llc, ["proprio"], 4, 1, 0)


def test_helms_skill_prior_starts_a_discrete_high_level(tiny, tmp_path):
    """match_init over HeLMS: the shipped skill prior, chained along each demonstration, gives the
    skill distribution at every k-th step of an episode, and the rl-games discrete actor's logits
    are fitted to it (cross-entropy near the targets' own entropy)."""
    from isaacgymenvs_hrl.learning.actor_init import prior_targets, pretrain_actor, skill_matching_init
    from isaacgymenvs_hrl.learning.runs import build_network
    from isaacgymenvs_hrl.utils.config import to_dict
    from isaacgymenvs_hrl.utils.task_config import compose_config
    cls, train, kwargs = CONFIGS["helms"]
    data, meta = tiny
    out = tmp_path / "helms.llc.pt"
    train(data, meta, cls(**kwargs), str(out), **QUIET)
    llc = load_llc(out)
    obs, probs = prior_targets(data, llc, ["proprio", "objects"], k=4)
    ep = episode_ids(data)
    starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    expected = sum(-(-n // 4) for n in np.diff(np.r_[starts, len(ep)]))             # ceil(len / k) each
    assert obs.shape == (expected, 9) and probs.shape == (expected, 3)
    assert torch.allclose(probs.sum(-1), torch.ones(expected), atol=1e-5)
    # an episode's first decision is the prior's first row on that state
    first_mid = torch.as_tensor(data["observations"][starts[:1]])
    assert torch.allclose(probs[0], llc.skill_log_prior(first_mid, None).exp()[0], atol=1e-6)
    params = to_dict(compose_config(["task=FrankaStackHRL", "train=HRLDiscretePPO"]).train)["params"]
    net = build_network(params, obs.shape[1], 3)
    ce = pretrain_actor(net, obs, probs, epochs=60, discrete=True, log=lambda *_: None)
    entropy = float(-(probs * probs.clamp_min(1e-8).log()).sum(-1).mean())
    assert ce < entropy + 0.1 * math.log(3)
    with pytest.raises(UserError, match="set task.env.llc.mode=discrete"):
        skill_matching_init(str(meta["path"]), "", llc, ["proprio"], 4, 1, 0, mode="mixture")
