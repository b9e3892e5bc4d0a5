"""``task.env.llc.head``: the shipped multi-resolution LLC (franka/stack_mrs) on FrankaStack with its
head picked by the high level, fixed to one resolution, or drawn at random per decision (real
MuJoCo, the real checkpoint, through ``isaacgymenvs_hrl.make`` as hrl-train builds it)."""
from __future__ import annotations

import pytest
import torch

import isaacgymenvs_hrl
from isaacgymenvs_hrl.errors import UserError
from isaacgymenvs_hrl.hrl.head_choice import HeadChoice, parse_head
from isaacgymenvs_hrl.hrl.llc_checkpoint import load_llc

MRS = ["task.env.llc.checkpoint=franka/stack_mrs", "task.env.llc.mode=multires", "task.env.llc.prior=False"]
N = 4


def make(*overrides, seed=0):
    return isaacgymenvs_hrl.make(seed=seed, task="FrankaStackHRL", num_envs=N, sim_device="cpu", rl_device="cpu",
                                 overrides=[*MRS, *overrides])


@pytest.fixture(scope="module")
def mrs():
    return load_llc("franka/stack_mrs")


def test_default_the_high_level_picks(mrs):
    env = make()
    assert not isinstance(env, HeadChoice)
    assert env.action_space.shape == (len(mrs.horizons) + 1 + mrs.latent_dim,)


def test_a_fixed_head_is_the_high_level_choosing_it(mrs):
    """head=i with latent z steps exactly as the plain multires env given scores that pick head i."""
    head = 1
    fixed = make(f"task.env.llc.head={head}")
    plain = make()
    assert isinstance(fixed, HeadChoice) and fixed.head == head
    assert fixed.action_space.shape == (mrs.latent_dim,) and fixed.num_actions == mrs.latent_dim
    assert fixed.num_obs == plain.num_obs and fixed.steps == plain.steps == 8
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        z = torch.rand(N, mrs.latent_dim, generator=g) * 2 - 1
        scores = torch.full((N, len(mrs.horizons) + 1), -1.0)
        scores[:, head] = 1.0
        obs_f, rew_f, done_f, ext_f = fixed.step(z)
        obs_p, rew_p, done_p, ext_p = plain.step(torch.cat([scores, z], -1))
        assert torch.equal(ext_f["skill"], torch.full((N,), head)) and torch.equal(ext_p["skill"], ext_f["skill"])
        assert torch.allclose(obs_f["obs"], obs_p["obs"]) and torch.allclose(rew_f, rew_p)
        assert torch.equal(done_f, done_p)
    # another head drives the arm elsewhere from the same latents
    other = make("task.env.llc.head=3")
    g = torch.Generator().manual_seed(3)
    fixed2 = make(f"task.env.llc.head={head}")
    for _ in range(3):
        z = torch.rand(N, mrs.latent_dim, generator=g) * 2 - 1
        o1, o3 = fixed2.step(z)[0]["obs"], other.step(z)[0]["obs"]
    assert not torch.allclose(o1, o3)


def test_random_head_draws_every_head_uniformly(mrs):
    env = make("task.env.llc.head=random")
    assert env.head == "random" and env.action_space.shape == (mrs.latent_dim,)
    drawn = torch.cat([env.heads(1000, "cpu") for _ in range(5)])
    counts = torch.bincount(drawn, minlength=len(mrs.horizons) + 1).float() / len(drawn)
    assert counts.shape == (5,) and (counts - 0.2).abs().max() < 0.03
    seen = torch.cat([env.step(torch.zeros(N, mrs.latent_dim))[3]["skill"] for _ in range(6)])
    assert len(seen.unique()) > 1 and int(seen.max()) <= len(mrs.horizons)


def test_bad_values_are_one_line(mrs):
    for value in ("5", "-1", "h8", "1.5", "True"):
        with pytest.raises(UserError, match=r"task.env.llc.head=.* is not a head of .*0 \(h=4\).*4 \(unconditional\)"):
            parse_head(value, "multires", mrs)
    assert parse_head("", "multires", mrs) is None and parse_head("RANDOM", "multires", mrs) == "random"
    assert parse_head(4, "multires", mrs) == 4
    with pytest.raises(UserError, match="only task.env.llc.mode=multires has \\(got discrete\\)"):
        isaacgymenvs_hrl.make(seed=0, task="FrankaStackHRL", num_envs=2, sim_device="cpu", rl_device="cpu",
                              overrides=["task.env.llc.head=0"])
    with pytest.raises(UserError, match="not a head of"):
        make("task.env.llc.head=7")
    with pytest.raises(UserError, match="takes the latent alone"):
        make("task.env.llc.head=0").step(torch.zeros(N, len(mrs.horizons) + 1 + mrs.latent_dim))
