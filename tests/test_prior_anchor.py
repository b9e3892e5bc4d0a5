"""The prior-anchored high level (``learning/prior_agent.py``) over the shipped HeLMS skills.

Real FrankaStack on C MuJoCo, the real shipped ``franka/stack_helms`` with its learned skill prior,
rl-games' own model builder and PPO. The untrained high level must *be* the prior on real
observations (also after its input normalizer has moved), training must move it away from the prior
by a measured KL, and the KL coefficient must follow its target.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc
from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint
from isaacgymenvs_hrl.learning.evaluation import latest_checkpoint
from isaacgymenvs_hrl.learning.runs import build_network
from isaacgymenvs_hrl.learning.prior_agent import EliteReplay, anchor_to_prior, categorical_kl, gaussian_kl, register
from isaacgymenvs_hrl.tasks import isaacgym_task_map
from isaacgymenvs_hrl.utils.config import to_dict
from isaacgymenvs_hrl.utils.task_config import compose_config, load_task_config


def stack_env(num_envs: int, mode: str = "discrete", prior: bool = True) -> LatentSkillEnv:
    cfg = load_task_config("FrankaStack", [f"num_envs={num_envs}", "num_threads=1"])
    torch.manual_seed(0)
    task = isaacgym_task_map["FrankaStack"](cfg=cfg, rl_device="cpu", sim_device="cpu", graphics_device_id=0,
                                            headless=True, virtual_screen_capture=False, force_render=False,
                                            auto_reset=False)
    return LatentSkillEnv(task, load_llc("franka/stack_helms"), mode=mode, prior=prior)


def test_the_untrained_high_level_is_the_skill_prior_on_real_observations():
    env = stack_env(8)
    k = env.llc.num_skills
    params = to_dict(compose_config(["task=FrankaStackHRL"]).train)["params"]
    register()
    model = build_network(params, env.num_obs, k)
    gen = torch.Generator().manual_seed(0)
    obs = [env.reset()["obs"]]
    for _ in range(6):                         # later decisions: the previous skill is set
        obs.append(env.step(torch.randint(k, (env.num_envs,), generator=gen))[0]["obs"].clone())
    obs = torch.cat(obs)
    # the prior computed independently, from the LLC and each env's state and previous skill
    assert env.previous_skill.min() >= 0
    mid = env.task.obs_slice(env.task.obs_processed, env.llc.mid_obs_names)
    expected = env.llc.skill_log_prior(mid, env.previous_skill)
    assert torch.allclose(obs[-env.num_envs:, -k:], expected.clamp_min(-30.0), atol=1e-6)
    # move the input normalizer as training would (rl-games updates it in train mode)
    model.train()
    for _ in range(3):
        model({"is_train": False, "obs": obs * 3.0 + 1.0, "prev_actions": None, "rnn_states": None})
    model.eval()
    with torch.no_grad():
        logits = model({"is_train": False, "obs": obs, "prev_actions": None, "rnn_states": None})["logits"]
    kl = categorical_kl(logits, obs[:, -k:])
    assert kl.max() < 1e-6, kl.max()
    # a high level that ignored the prior would be far from it: the check can fail
    assert categorical_kl(torch.zeros_like(logits), obs[:, -k:]).mean() > 0.05


def test_a_floored_anchor_keeps_the_priors_choice_and_gives_every_skill_mass():
    env = stack_env(8)
    k = env.llc.num_skills
    params = to_dict(compose_config(["task=FrankaStackHRL", "train.params.network.prior_floor=0.05"]).train)["params"]
    register()
    model = build_network(params, env.num_obs, k)
    gen = torch.Generator().manual_seed(0)
    obs = torch.cat([env.reset()["obs"]] + [env.step(torch.randint(k, (env.num_envs,), generator=gen))[0]["obs"].clone()
                                            for _ in range(4)])
    model.eval()
    with torch.no_grad():
        probs = model({"is_train": False, "obs": obs, "prev_actions": None, "rnn_states": None})["logits"].softmax(-1)
    prior = obs[:, -k:].softmax(-1)
    assert prior.min() < 1e-6                               # the learned prior is near-deterministic here
    assert torch.allclose(probs, 0.95 * prior + 0.05 / k, atol=1e-6)
    assert torch.equal(probs.argmax(-1), prior.argmax(-1))


def test_the_untrained_continuous_high_level_is_the_latent_prior_on_real_observations():
    env = stack_env(8, mode="continuous")
    d, prior_std = env.llc.latent_dim, env.hl_action_info["prior"]["std"]
    assert prior_std == 0.5                            # 1 / task.env.llc.prior_scale (2)
    params = to_dict(compose_config(["task=FrankaStackHRL", "task.env.llc.mode=continuous",
                                     "train=HRLPriorContinuousPPO"]).train)["params"]
    model = build_network(params, env.num_obs, d)
    anchor_to_prior(model, prior_std)
    gen = torch.Generator().manual_seed(0)
    obs = [env.reset()["obs"]]
    for _ in range(6):
        obs.append(env.step(torch.randn(env.num_envs, d, generator=gen).clamp(-1, 1))[0]["obs"].clone())
    obs = torch.cat(obs)
    model.train()
    for _ in range(3):                                 # the input normalizer moves as in training
        model({"is_train": False, "obs": obs * 3.0 + 1.0, "prev_actions": None, "rnn_states": None})
    model.eval()
    with torch.no_grad():
        out = model({"is_train": True, "obs": obs, "prev_actions": torch.zeros(len(obs), d), "rnn_states": None})
    kl = gaussian_kl(out["mus"], out["sigmas"], prior_std)
    assert kl.max() < 1e-6, kl.max()
    assert torch.allclose(-out["entropy"], kl)         # the KL takes the entropy's slot in the loss
    # a fresh rl-games policy (std exp(0), mean from a random layer) is far from the prior: the check can fail
    fresh = build_network(params, env.num_obs, d)
    with torch.no_grad():
        out = fresh({"is_train": True, "obs": obs, "prev_actions": torch.zeros(len(obs), d), "rnn_states": None})
    assert gaussian_kl(out["mus"], out["sigmas"], prior_std).mean() > 0.05


def test_the_prior_mean_runs_the_prior_skill_as_the_discrete_high_level_does():
    """The shift a = 0 (the untrained policy's mean) runs the skill prior's choice with its mid-level
    mean: the same control steps as a discrete high level that takes the prior's most likely skill."""
    def rollout(mode, act, decisions=8):
        env = stack_env(4, mode=mode)                  # seeds torch: the same starts and noise
        k = env.llc.num_skills
        obs, skills, states, rewards = env.reset()["obs"], [], [], []
        for _ in range(decisions):
            skills.append(obs[:, -k:].argmax(-1))     # discrete: the prior's log-probs; continuous: its one-hot
            obs, r, _, _ = env.step(act(env, obs[:, -k:].argmax(-1)))
            obs = obs["obs"]
            states.append(env.task.obs_processed.clone())
            rewards.append(r)
        return torch.stack(skills), torch.stack(states), torch.stack(rewards)

    zero = lambda env, y: torch.zeros(env.num_envs, env.llc.latent_dim)    # noqa: E731
    skills_c, states_c, rewards_c = rollout("continuous", zero)
    skills_d, states_d, rewards_d = rollout("discrete", lambda env, y: y)
    assert torch.equal(skills_c, skills_d) and len(set(skills_d.flatten().tolist())) > 1
    assert torch.allclose(states_c, states_d, atol=1e-5) and torch.allclose(rewards_c, rewards_d, atol=1e-6)
    # a shift moves the arm elsewhere: the comparison can fail
    _, states_s, _ = rollout("continuous", lambda env, y: torch.ones(env.num_envs, env.llc.latent_dim))
    assert not torch.allclose(states_s, states_d, atol=1e-3)


def test_prior_needs_discrete_skills_with_a_prior():
    with pytest.raises(UserError, match="task.env.llc.prior=True"):
        stack_env(2, mode="mixture")


def _train(tmp_path, *extra):
    args = [sys.executable, "-m", "isaacgymenvs_hrl.train", "task=FrankaStackHRL", "num_envs=8", "seed=0",
            "train.params.config.horizon_length=16", "train.params.config.minibatch_size=64",
            "task.env.episodeLength=40", "headless=True", *extra]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_training_moves_the_high_level_off_the_prior_and_tunes_the_kl_coefficient(tmp_path):
    res = _train(tmp_path, "max_iterations=4", "experiment=anchored",
                 "train.params.config.hrl_prior.kl_coef=0.05", "train.params.config.hrl_prior.target_kl=1e-6",
                 "train.params.config.learning_rate=3e-3", "train.params.config.hrl_prior.replay_coef=1.0",
                 "train.params.config.hrl_prior.replay_batch=16")
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    (run,) = tmp_path.glob("runs/anchored_*")
    state = load_checkpoint(latest_checkpoint(run))
    # the KL was above its (tiny) target at every minibatch, so the coefficient rose from 0.05
    assert float(state["hrl_prior_log_coef"]) > math.log(0.05) + 1e-5
    # the residual's last layer left zero: the policy is no longer exactly the prior
    assert state["model"]["a2c_network.logits.weight"].abs().max() > 0
    # ended episodes were screened and the best ones replayed
    from isaacgymenvs_hrl.tools.plot import read_scalars
    scalars = read_scalars([run])
    assert scalars["hrl/replay_decisions"][-1][2] > 0 and scalars["hrl/kl_prior"][-1][2] > 0


def test_elite_replay_keeps_only_the_best_recent_episodes():
    """Four envs, episodes of different lengths and returns: only the top share joins the buffer,
    with every one of its decisions and the actions taken; under a sparse reward a failure is none."""
    replay = EliteReplay(num_envs=4, obs_dim=2, elite=0.25, size=100, window=8)
    returns = torch.tensor([1.0, 5.0, 2.0, 3.0])
    lengths = [3, 2, 4, 1]
    for t in range(4):
        obs = torch.stack([torch.tensor([float(e), float(t)]) for e in range(4)])
        done = torch.tensor([t == lengths[e] - 1 for e in range(4)])
        alive = torch.tensor([t < lengths[e] for e in range(4)])
        replay.add(obs, torch.full((4,), 7 + t), torch.where(alive, returns / torch.tensor(lengths), 0.0), done)
    # an elite is at least the 0.75 quantile of the episodes ended so far and above their median:
    # env 3 (return 3, alone at step 0: its own median) does not qualify, env 1 (5 against {3, 5})
    # does, env 0 (1) and env 2 (2) do not
    assert sorted(set(replay.obs[:, 0].tolist())) == [1.0]
    assert len(replay.obs) == lengths[1]
    env1 = replay.obs[:, 0] == 1.0
    assert replay.obs[env1, 1].tolist() == [0.0, 1.0] and replay.act[env1].tolist() == [7, 8]
    sparse = EliteReplay(num_envs=8, obs_dim=1, elite=0.5, size=100)
    sparse.add(torch.zeros(8, 1), torch.zeros(8), torch.tensor([0.0] * 7 + [1.0]), torch.ones(8))
    assert len(sparse.obs) == 1


@pytest.mark.parametrize("extra, expected", [
    (["task.env.llc.prior=False"], "hrl_prior_discrete anchors the high level"),
    (["train=HRLDiscretePPO"], "needs train.params.algo.name=hrl_prior_discrete"),
    (["train.params.config.hrl_prior.kl_coef=-1"], "kl_coef"),
    (["train.params.network.prior_floor=1"], "prior_floor must be in [0, 1)"),
])
def test_bad_prior_settings_get_one_line(tmp_path, extra, expected):
    res = _train(tmp_path, "max_iterations=1", *extra)
    assert res.returncode != 0
    assert expected in res.stderr + res.stdout and "Traceback" not in res.stderr, res.stderr[-1500:]
