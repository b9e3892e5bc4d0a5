"""IsaacGymEnvs-style ``Humanoid``: run forward as fast as possible while staying upright.

Reads the reward keys of IsaacGymEnvs' ``task/Humanoid.yaml`` (headingWeight, upWeight,
actionsCost, energyCost, jointsAtLimitCost, deathCost, terminationHeight), so that file loads
unchanged. The observation layout is HumanoidLocomotion's; its command slice is always zero.
"""
from __future__ import annotations

import torch

from .humanoid_locomotion import HumanoidLocomotion
from ..utils.torch_jit_utils import quat_rotate, world_to_heading, yaw_from_quat


REWARD_TERMS = ("progress", "alive", "heading", "up", "actions", "energy", "joints_at_limit", "death")


class Humanoid(HumanoidLocomotion):
    default_control = "torque"   # IsaacGymEnvs' Humanoid drives motors; controlType=pd also works
    reward_terms = REWARD_TERMS

    def __init__(self, cfg, *args, **kwargs):
        env = cfg["env"]
        self.heading_weight = float(env.get("headingWeight", 0.5))
        self.up_weight = float(env.get("upWeight", 0.1))
        self.actions_cost = float(env.get("actionsCost", 0.01))
        self.energy_cost = float(env.get("energyCost", 0.05))
        self.joints_at_limit_cost = float(env.get("jointsAtLimitCost", 0.25))
        self.death_cost = float(env.get("deathCost", -1.0))
        super().__init__(cfg, *args, **kwargs)
        self.cmd_low[:] = 0.0
        self.cmd_high[:] = 0.0
        self.standing_prob = 0.0
        # the terms of a falling step: the death cost alone
        self.death_terms = torch.tensor([self.death_cost if k == "death" else 0.0 for k in REWARD_TERMS],
                                        device=self.device)
        self.forward_w = torch.tensor([1.0, 0.0, 0.0], device=self.device).repeat(self.num_envs, 1)   # (N, 3)
        self.up_w = torch.tensor([0.0, 0.0, 1.0], device=self.device).repeat(self.num_envs, 1)        # (N, 3)
        self.dof_span = self.dof_high - self.dof_low

    def post_physics_step(self):
        qpos, qvel = self.engine.qpos, self.engine.qvel
        dof_frac = 2 * (qpos[:, 7:] - self.dof_low) / self.dof_span - 1
        self.rew_buf[:], terms, fallen = compute_forward_reward(
            qpos, qvel, self.actions, dof_frac, self.termination_height, self.heading_weight,
            self.up_weight, self.actions_cost, self.energy_cost, self.joints_at_limit_cost,
            self.death_terms, self.forward_w, self.up_w)
        self.reset_buf[:] = fallen.long()
        self.episode_sums += terms


@torch.jit.script
def compute_forward_reward(qpos: torch.Tensor, qvel: torch.Tensor, actions: torch.Tensor,
                           dof_frac: torch.Tensor, termination_height: float, heading_weight: float,
                           up_weight: float, actions_cost: float, energy_cost: float,
                           joints_at_limit_cost: float, death_terms: torch.Tensor, x_w: torch.Tensor,
                           z_w: torch.Tensor):
    """Reward, weighted terms (N, 8) in REWARD_TERMS order, fall mask. Progress along world
    x, alive bonus 2, heading/up bonuses, effort costs; on falling the death cost replaces them all.
    ``x_w``, ``z_w`` (N, 3): world x and z."""
    quat = qpos[:, 3:7]
    forward_w = quat_rotate(quat, x_w)
    up_w = quat_rotate(quat, z_w)
    heading = torch.where(forward_w[:, 0] > 0.8, torch.ones_like(qpos[:, 0]), forward_w[:, 0] / 0.8)
    up = torch.where(up_w[:, 2] > 0.93, torch.ones_like(qpos[:, 0]), torch.zeros_like(qpos[:, 0]))
    progress = qvel[:, 0]
    at_limit = torch.sum((torch.abs(dof_frac) > 0.98).float() * (torch.abs(dof_frac) - 0.98) / 0.02, dim=-1)
    fallen = qpos[:, 2] < termination_height
    terms = torch.stack([
        progress,
        torch.full_like(progress, 2.0),
        heading_weight * heading,
        up_weight * up,
        -actions_cost * torch.sum(actions ** 2, dim=-1),
        -energy_cost * 0.05 * torch.sum(torch.abs(actions * qvel[:, 6:]), dim=-1),
        -joints_at_limit_cost * at_limit,
        torch.zeros_like(progress),
    ], dim=-1)
    terms = torch.where(fallen[:, None], death_terms, terms)
    return terms.sum(-1), terms, fallen
