"""Walk to a target location; a new target appears once the torso is within ``successRadius``.

The high-level task for HRL over humanoid locomotion skills. Observation layout: ``proprio`` as in
HumanoidLocomotion, ``task`` (3) = target offset in the heading frame (x, y, clipped to 5 m) and its
distance. Reward: speed towards the target, closeness, alive bonus, a bonus per target reached,
``deathCost`` on falling.
"""
from __future__ import annotations

import torch

from ..utils.torch_jit_utils import world_to_heading, yaw_from_quat
from .base.markers import CYLINDER, SPHERE, Marker
from .humanoid_locomotion import HumanoidLocomotion, compute_locomotion_observations

REWARD_TERMS = ("progress", "near", "alive", "reach", "death")


class HumanoidLocation(HumanoidLocomotion):
    reward_terms = REWARD_TERMS
    obs_units = {**HumanoidLocomotion.obs_units,
                 "task": "target offset x, y (m, heading frame, clipped to 5 m) and its distance (m)"}

    def __init__(self, cfg, *args, **kwargs):
        env = cfg["env"]
        self.target_distance = tuple(env.get("targetDistance", [2.0, 5.0]))
        self.success_radius = float(env.get("successRadius", 0.5))
        rs = env.get("locationRewardScales", {})
        self.loc_scales = {k: float(rs.get(k, v)) for k, v in
                           (("progress", 1.0), ("near", 0.5), ("alive", 0.2), ("reach", 5.0))}
        self.loc_scales["death"] = float(env.get("deathCost", -2.0))
        super().__init__(cfg, *args, **kwargs)
        n = self.num_envs
        self.targets = torch.zeros(n, 2, device=self.device)         # (N, 2) world xy
        self.prev_dist = torch.zeros(n, device=self.device)
        self.reached = torch.zeros(n, device=self.device)             # targets reached this episode
        # the terms of a falling step: the death cost alone
        self.death_terms = torch.tensor([self.loc_scales["death"] if k == "death" else 0.0 for k in REWARD_TERMS],
                                        device=self.device)

    def _new_targets(self, env_ids):
        n = len(env_ids)
        lo, hi = self.target_distance
        r = lo + (hi - lo) * torch.rand(n, device=self.device)
        a = (torch.rand(n, device=self.device) * 2 - 1) * torch.pi
        self.targets[env_ids] = self.engine.qpos[env_ids, 0:2] + torch.stack([r * torch.cos(a), r * torch.sin(a)], -1)
        self.prev_dist[env_ids] = r

    def reset_idx(self, env_ids):
        self.extras["episode"]["targets_reached"] = self.reached[env_ids].mean()
        self.reached[env_ids] = 0.0
        super().reset_idx(env_ids)
        self._new_targets(env_ids)

    def post_physics_step(self):
        qpos = self.engine.qpos
        s = self.loc_scales
        self.rew_buf[:], terms, dist, fallen = compute_location_reward(
            qpos, self.targets, self.prev_dist, self.dt, self.termination_height, self.success_radius,
            s["progress"], s["near"], s["alive"], s["reach"], self.death_terms)
        self.reset_buf[:] = fallen.long()
        self.episode_sums += terms
        self.prev_dist[:] = dist
        hit = (dist < self.success_radius) & ~fallen
        self.reached += hit.float()
        ids = hit.nonzero().squeeze(-1)
        if len(ids):
            self._new_targets(ids)

    def visual_markers(self, env_id):
        """The target: a disc of the success radius on the floor under a pole with a ball on top."""
        x, y = self.targets[env_id].tolist()
        green = (0.1, 0.8, 0.1)
        return [Marker(CYLINDER, (x, y, 0.005), (self.success_radius, 0.005), (*green, 0.5)),
                Marker(CYLINDER, (x, y, 0.5), (0.02, 0.5), (*green, 1.0)),
                Marker(SPHERE, (x, y, 1.0), (0.08,), (*green, 1.0))]

    def compute_observations(self):
        qpos = self.engine.qpos
        offset_w = torch.cat([self.targets - qpos[:, 0:2], torch.zeros_like(qpos[:, 0:1])], -1)
        offset_h = world_to_heading(offset_w, yaw_from_quat(qpos[:, 3:7]))[:, 0:2]
        dist = offset_h.norm(dim=-1, keepdim=True)
        task_obs = torch.cat([offset_h * (5.0 / dist.clamp_min(5.0)), dist], -1)
        self.obs_buf[:] = compute_locomotion_observations(
            qpos, self.engine.qvel, task_obs, self.dof_vel_scale, self.ang_vel_scale)


@torch.jit.script
def compute_location_reward(qpos: torch.Tensor, targets: torch.Tensor, prev_dist: torch.Tensor, dt: float,
                            termination_height: float, success_radius: float, w_progress: float,
                            w_near: float, w_alive: float, w_reach: float, death_terms: torch.Tensor):
    """Reward, weighted terms (N, 5) in REWARD_TERMS order, distance, fall mask."""
    dist = torch.norm(targets - qpos[:, 0:2], dim=-1)
    speed_to_target = torch.clamp((prev_dist - dist) / dt, -1.0, 1.5)
    fallen = qpos[:, 2] < termination_height
    terms = torch.stack([w_progress * speed_to_target, w_near * torch.exp(-dist), torch.full_like(dist, w_alive),
                         w_reach * (dist < success_radius).float(), torch.zeros_like(dist)], dim=-1)
    terms = torch.where(fallen[:, None], death_terms, terms)
    return terms.sum(-1), terms, dist, fallen
