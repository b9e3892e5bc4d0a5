"""Zero-shot exploration statistics (isaacgymenvs_hrl/skills/exploration.py) on real FrankaStack envs."""
from __future__ import annotations

import torch
from torch import nn

from isaacgymenvs_hrl.hrl import load_llc, wrap_module
from isaacgymenvs_hrl.skills.exploration import explore_flat, explore_llc
from isaacgymenvs_hrl.tasks.franka_stack import FrankaStack


class HandFollowsLatent(nn.Module):
    """A hand-made LLC: the latent is the end-effector velocity command, the gripper stays open."""

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(obs.shape[0], 1)
        return torch.cat([z, 0.0 * ones, ones], dim=-1)


def test_random_high_level_explores_more_than_standing_still(tmp_path):
    torch.manual_seed(0)
    cfg = {"name": "FrankaStack", "physics_engine": "mujoco",
           "env": {"numEnvs": 4, "episodeLength": 100, "terminateOnSuccess": False, "armResetNoise": 0.0},
           "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}
    task = FrankaStack(cfg, "cpu", "cpu", -1, True, auto_reset=False)
    path = wrap_module(tmp_path / "hand.llc.pt", HandFollowsLatent(), torch.zeros(2, 22), torch.zeros(2, 3),
                       task_family="franka", obs=[["proprio", 22]], action={"dim": 5, "scale": 1.0, "control_type": "ee_delta"},
                       latent={"dim": 3, "modes": ["continuous"], "normalization": "none"},
                       default_steps=5, control_dt=0.05)
    llc = load_llc(path, trust_code=True)          # the test scripted this module itself
    still = explore_flat(task, lambda obs: torch.tensor([[0.0, 0, 0, 0, 1]]).expand(4, 5), 30)
    moving = explore_llc(task, llc, "continuous", 30, seed=0)
    moving.pop("_end")
    assert still["coverage_joints"] < 1e-4 and still["coverage_objects"] < 1e-6
    assert moving["coverage_joints"] > 100 * still["coverage_joints"] + 1e-5
    # rewards are the task's own functions: holding still at home pays only the reach term
    assert 0.0 < still["dense_reward"] < 0.02 and still["staged_reward"] == 0.0
    assert still["episodes"] == moving["episodes"] == 4 and still["sparse_successes"] == 0


def test_prior_high_level_samples_the_shipped_state_prior_on_the_task():
    """HeLMS' zero-shot high level draws each skill from p(y_t | y_{t-1}, x_t) on the task's own mid
    observation: row K at an episode's first decision, then the row of the env's previous skill."""
    from isaacgymenvs_hrl.skills.exploration import PriorHighLevel
    cfg = {"name": "FrankaStack", "physics_engine": "mujoco",
           "env": {"numEnvs": 6, "episodeLength": 100, "terminateOnSuccess": False},
           "sim": {"dt": 0.05, "substeps": 10, "mujoco": {"num_threads": 2, "sleep": True}}}
    task = FrankaStack(cfg, "cpu", "cpu", -1, True, auto_reset=False)
    task.reset()
    llc = load_llc("franka/stack_helms")
    assert llc.skill_prior is not None
    hl = PriorHighLevel(llc, "discrete", 6, 5, torch.Generator().manual_seed(3), task)
    mid = task.obs_slice(task.obs_processed, llc.mid_obs_names)
    y0 = hl()
    ref = torch.multinomial(llc.skill_log_prior(mid, None).exp(), 1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y0, ref.squeeze(-1))
    hl.episodes_ended(torch.tensor([1, 0, 0, 0, 0, 1]))
    hl.gen = torch.Generator().manual_seed(4)
    prev = torch.where(torch.tensor([True, False, False, False, False, True]), -1, y0)
    y1 = hl()
    ref = torch.multinomial(llc.skill_log_prior(mid, prev).exp(), 1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(y1, ref.squeeze(-1))
    # the state matters: for some previous skill the prior differs between envs whose cubes lie elsewhere
    rows = torch.stack([llc.skill_log_prior(mid, torch.full((6,), y)).exp() for y in range(llc.num_skills)])
    assert (rows - rows[:, :1]).abs().max() > 1e-2
