"""A fitted latent prior p(z | x) for the continuous LLCs that have none (skills/latent_prior.py).

Real FrankaStack expert data collected here, the real shipped ``franka/stack_ldse`` (with its segment
encoder) and ``franka/stack_npmp`` (no encoder: its latents are inverted through the policy), the real
``hrl-skills-prior`` command writing a new LLC file, real MuJoCo stepping it, and rl-games' own model
for the anchored high level. No mocks.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.datasets.hdf5 import episode_ids, take_slices
from isaacgymenvs_hrl.datasets.windows import window_indices, window_starts
from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.cli.skills_prior import fit
from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc
from isaacgymenvs_hrl.hrl.library import resolve, sha256
from isaacgymenvs_hrl.hrl.llc import normalize_latent
from isaacgymenvs_hrl.hrl.llc_checkpoint import LLCError, validate_llc_for_task
from isaacgymenvs_hrl.hrl.segment_encoder import SkillMatcher, encoder_path
from isaacgymenvs_hrl.learning.prior_agent import anchor_to_prior, gaussian_kl, register
from isaacgymenvs_hrl.learning.runs import build_network
from isaacgymenvs_hrl.skills.latent_prior import gaussian_nll, inverted_latents
from isaacgymenvs_hrl.tasks import isaacgym_task_map
from isaacgymenvs_hrl.utils.config import to_dict
from isaacgymenvs_hrl.utils.task_config import compose_config, load_task_config


def collect(folder, seed: int, episodes: int):
    out = folder / f"stack_{seed}.hdf5"
    res = subprocess.run([sys.executable, "-m", "isaacgymenvs_hrl.collect", "task=FrankaStack", "policy=expert",
                          "num_envs=4", f"num_episodes={episodes}", "noise=0.05", f"seed={seed}", f"output={out}"],
                         cwd=folder, capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-1500:]
    return out


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Expert data (fit: seed 1, held out: seed 2) and the LDSE and NPMP LLCs with priors fitted on it."""
    folder = tmp_path_factory.mktemp("latent_prior")
    train, held_out = collect(folder, 1, 8), collect(folder, 2, 4)
    out = {"train": train, "held_out": held_out, "library_sha": sha256(resolve("franka/stack_ldse"))}
    for name, extra in (("ldse", []), ("npmp", ["--invert-iters", "100"])):
        output = folder / f"{name}.llc.pt"
        out[name] = output
        out[name + "_record"] = fit([f"franka/stack_{name}", "--dataset", str(train), "--output", str(output),
                                     "--epochs", "40", *extra])
    return out


def held_out_latents(llc, path):
    """The held-out dataset's segment latents, computed here from the LLC's own encoder (LDSE) or by
    inverting its policy (NPMP), with the prior's observation at each segment's start."""
    data, _ = load_dataset(path)
    enc = encoder_path(llc.path)
    if enc.is_file():
        matcher = SkillMatcher.load(enc)
        starts = window_starts(episode_ids(data), matcher.horizon, matcher.horizon)
        idx = torch.from_numpy(window_indices(starts, matcher.horizon))
        z = matcher(take_slices(data, llc.obs_names)[idx], torch.from_numpy(data["actions"])[idx])
    else:
        starts, z = inverted_latents(llc, data, llc.decision_steps(), 0, 0.2, 100, 0.05, log=lambda *_: None)
    return z, take_slices(data, llc.latent_prior_obs_names)[torch.from_numpy(starts)]


@pytest.mark.parametrize("name", ["ldse", "npmp"])
def test_the_fitted_prior_explains_held_out_segments_better_than_n01(fitted, name):
    record = fitted[name + "_record"]
    assert record["source"] == ("encoder" if name == "ldse" else "policy")
    assert record["val_nll"] < record["val_nll_standard_normal"]
    llc = load_llc(fitted[name])
    layout = [n for n, _ in load_dataset(fitted["train"])[1]["obs_layout"]]
    assert llc.has_latent_prior and llc.latent_prior_obs_names == layout and "objects" in layout
    assert llc.spec["provenance"]["latent_prior"]["dataset_sha256"] == sha256(fitted["train"])
    # episodes the fit never saw, their latents computed independently of the fit's code path
    z, x = held_out_latents(llc, fitted["held_out"])
    with torch.no_grad():
        prior_nll = gaussian_nll(z, *llc.latent_prior(x)).mean()
    standard_nll = gaussian_nll(z, torch.zeros_like(z), torch.zeros_like(z)).mean()
    assert prior_nll < standard_nll - 1.0, (prior_nll, standard_nll)


def test_the_input_llc_is_kept_and_the_encoder_travels(fitted):
    source = resolve("franka/stack_ldse")              # verified against the manifest
    assert sha256(source) == fitted["library_sha"]
    assert sha256(encoder_path(fitted["ldse"])) == sha256(encoder_path(source))
    with pytest.raises(UserError, match="--output=.* is the command's input"):
        fit([str(fitted["ldse"]), "--dataset", str(fitted["train"]), "--output", str(fitted["ldse"])])


def stack_env(llc_file, num_envs: int = 8, **kw) -> LatentSkillEnv:
    cfg = load_task_config("FrankaStack", [f"num_envs={num_envs}", "num_threads=1"])
    torch.manual_seed(0)
    task = isaacgym_task_map["FrankaStack"](cfg=cfg, rl_device="cpu", sim_device="cpu", graphics_device_id=0,
                                            headless=True, virtual_screen_capture=False, force_render=False,
                                            auto_reset=False)
    return LatentSkillEnv(task, load_llc(llc_file), mode="continuous", **kw)


@pytest.mark.parametrize("name", ["ldse", "npmp"])
def test_the_untrained_anchored_high_level_is_the_fitted_prior_on_real_observations(fitted, name):
    env = stack_env(fitted[name], prior=True)
    llc, d, s = env.llc, env.llc.latent_dim, env.prior_scale
    assert env.num_obs == env.task.num_obs                  # nothing is appended to the high level's observation
    assert env.hl_action_info["prior"]["std"] == 1.0 / s
    params = to_dict(compose_config(["task=FrankaStackHRL", "task.env.llc.mode=continuous",
                                     "train=HRLPriorContinuousPPO"]).train)["params"]
    register()
    model = build_network(params, env.num_obs, d)
    anchor_to_prior(model, 1.0 / s)
    gen = torch.Generator().manual_seed(0)
    obs, states = [env.reset()["obs"]], [env.task.obs_slice(env.task.obs_processed, llc.latent_prior_obs_names)]
    for _ in range(6):
        obs.append(env.step(torch.randn(env.num_envs, d, generator=gen).clamp(-1, 1))[0]["obs"].clone())
        states.append(env.task.obs_slice(env.task.obs_processed, llc.latent_prior_obs_names))
    obs, states = torch.cat(obs), torch.cat(states)
    model.train()
    for _ in range(3):                                      # the input normalizer moves as in training
        model({"is_train": False, "obs": obs * 3.0 + 1.0, "prev_actions": None, "rnn_states": None})
    model.eval()
    with torch.no_grad():
        out = model({"is_train": True, "obs": obs, "prev_actions": torch.zeros(len(obs), d), "rnn_states": None})
        assert gaussian_kl(out["mus"], out["sigmas"], 1.0 / s).max() < 1e-6
        # the latent it induces, z = mu_p + sigma_p * s * a, against the prior computed from the LLC
        mu_p, log_std_p = llc.latent_prior(states)
        z_mean, z_std = mu_p + log_std_p.exp() * s * out["mus"], log_std_p.exp() * s * out["sigmas"]
        kl = 0.5 * ((z_std / log_std_p.exp()) ** 2 + ((z_mean - mu_p) / log_std_p.exp()) ** 2 - 1
                    - 2 * torch.log(z_std / log_std_p.exp())).sum(-1)
        assert kl.max() < 1e-6, kl.max()
        # the prior is state-conditioned: a state-free anchor would not match it
        assert (mu_p - mu_p.mean(0)).abs().max() > 0.1


def test_the_prior_latent_is_computed_at_the_decision_and_held(fitted):
    """a = 0 runs z = normalize(mu_p(x_0)) for all k control steps of the decision."""
    env = stack_env(fitted["ldse"], num_envs=4, prior=True)
    llc = env.llc
    env.reset()
    for _ in range(2):
        env.step(torch.zeros(env.num_envs, llc.latent_dim))
    x0 = env.task.obs_slice(env.task.obs_processed, llc.latent_prior_obs_names)
    z0 = normalize_latent(llc.latent_prior(x0)[0], llc.normalization)
    obs_before = [env.task.obs_slice(env.task.obs_processed, llc.obs_names)]
    taken = []

    def record(i, actions, alive):
        taken.append(actions.clone())
        obs_before.append(env.task.obs_slice(env.task.obs_processed, llc.obs_names))
    env.step(torch.zeros(env.num_envs, llc.latent_dim), on_control_step=record)
    assert len(taken) == env.steps == 8
    for i, actions in enumerate(taken):
        assert torch.allclose(actions, llc(obs_before[i], z0), atol=1e-6)
    # latent 0 (the un-anchored default) acts differently: the comparison can fail
    assert not torch.allclose(taken[0], llc(obs_before[0], torch.zeros_like(z0)), atol=1e-3)


def corrupt(src, dst, edit):
    blob = torch.load(src, map_location="cpu", weights_only=True)
    edit(blob)
    torch.save(blob, dst)
    return dst


@pytest.mark.parametrize("edit, field", [
    (lambda b: b["weights"]["latent_prior"].update({"net.0.weight": torch.zeros(3, 3)}), "weights.latent_prior"),
    (lambda b: b["weights"]["latent_prior"]["net.2.bias"].fill_(float("nan")), "weights.latent_prior"),
    (lambda b: b["weights"]["latent_prior"]["obs_std"].zero_(), "weights.latent_prior.obs_std"),
    (lambda b: b["weights"].pop("latent_prior"), "weights.latent_prior"),
    (lambda b: b["spec"]["architecture"]["latent_prior"].update(latent_dim=4), "architecture.latent_prior.latent_dim"),
    (lambda b: b["spec"]["architecture"]["latent_prior"].update(obs_dim=7), "architecture.latent_prior.obs_dim"),
    (lambda b: b["spec"]["architecture"]["latent_prior"].update(type="mlp"), "architecture.latent_prior.type"),
    (lambda b: b["spec"]["obs"].pop("latent_prior"), "obs.latent_prior"),
    (lambda b: b["spec"]["obs"].update(latent_prior=[["proprio", 0]]), "obs.latent_prior"),
    (lambda b: b["spec"]["latent"].update(modes=["multires"], multires={"horizons": [4]}), "architecture.latent_prior"),
])
def test_a_corrupt_prior_is_a_one_line_error_naming_the_field(fitted, tmp_path, edit, field):
    bad = corrupt(fitted["ldse"], tmp_path / "bad.llc.pt", edit)
    with pytest.raises(LLCError) as info:
        load_llc(bad)
    msg = str(info.value)
    assert field in msg and "\n" not in msg, msg


def test_a_prior_reading_a_slice_the_task_lacks_is_refused_against_the_task(fitted, tmp_path):
    def rename(b):
        b["spec"]["obs"]["latent_prior"][0][0] = "hole"
    llc = load_llc(corrupt(fitted["ldse"], tmp_path / "bad.llc.pt", rename))
    env = stack_env(fitted["ldse"], num_envs=1)
    with pytest.raises(LLCError, match="obs.latent_prior: the LLC reads observation slice 'hole'"):
        validate_llc_for_task(llc, env.task, "continuous")


def test_llcs_outside_the_scheme_are_refused(fitted):
    for name, why in (("franka/stack_helms", "skill prior"), ("franka/stack_mrs", "multires")):
        with pytest.raises(UserError, match=why):
            fit([name, "--dataset", str(fitted["held_out"]), "--output", str(fitted["train"].parent / "x.llc.pt")])
