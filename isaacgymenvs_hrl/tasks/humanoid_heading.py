"""Walk in a target direction at a target speed while facing a target direction (ASE's heading
task); the targets are resampled during the episode.

A high-level task for HRL over humanoid locomotion skills. Every ``headingResampleTime`` seconds
(and at reset) each env draws a direction (uniform angle), a speed in ``targetSpeed`` and a facing
direction within ``facingOffset`` rad of the direction.

Observation layout: ``proprio`` as in HumanoidLocomotion, ``task`` (5) = target direction in the
heading frame (cos, sin), target speed (m/s), target facing in the heading frame (cos, sin).
Reward terms: ``direction`` (cosine between the planar velocity and the target direction, clipped at
0), ``speed`` (kernel of the speed error along the direction), ``facing`` (cosine between the torso's
heading and the target facing, clipped at 0), ``alive``, ``death``. Episode logs also give the mean
heading, speed and facing errors.
"""
from __future__ import annotations

import math

import torch

from ..utils.torch_jit_utils import yaw_from_quat
from .base.markers import ARROW, Marker
from .humanoid_locomotion import HumanoidLocomotion, compute_locomotion_observations

REWARD_TERMS = ("direction", "speed", "facing", "alive", "death")
ERRORS = ("heading_error", "speed_error", "facing_error")     # episode logs, in compute_heading_reward's order


class HumanoidHeading(HumanoidLocomotion):
    reward_terms = REWARD_TERMS
    obs_units = {**HumanoidLocomotion.obs_units,
                 "task": "target direction (cos, sin; heading frame), target speed (m/s), target facing "
                         "(cos, sin; heading frame)"}

    def __init__(self, cfg, *args, **kwargs):
        env = cfg["env"]
        self.target_speed_range = tuple(float(v) for v in env.get("targetSpeed", [0.3, 1.0]))
        self.facing_offset = float(env.get("facingOffset", 0.5))
        self.heading_resample_time = float(env.get("headingResampleTime", 4.0))
        rs = env.get("headingRewardScales", {})
        self.heading_scales = {k: float(rs.get(k, v)) for k, v in
                               (("direction", 0.3), ("speed", 0.5), ("facing", 0.2), ("alive", 0.1))}
        self.heading_death = float(env.get("deathCost", -2.0))
        super().__init__(cfg, *args, **kwargs)
        n, dev = self.num_envs, self.device
        self.target_angle = torch.zeros(n, device=dev)       # direction to walk (world yaw, rad)
        self.target_speed = torch.zeros(n, device=dev)       # m/s
        self.face_angle = torch.zeros(n, device=dev)         # direction to face (world yaw, rad)
        self.heading_steps = max(1, int(round(self.heading_resample_time / self.dt)))
        self.error_sums = torch.zeros(n, len(ERRORS), device=dev)   # (N, 3) ERRORS summed per episode
        # the terms of a falling step: the death cost alone
        self.death_terms = torch.tensor([self.heading_death if k == "death" else 0.0 for k in REWARD_TERMS],
                                        device=dev)

    def obs_layout(self):
        layout = super().obs_layout()
        layout["task"] = 5
        return layout

    def _new_targets(self, env_ids):
        n = len(env_ids)
        lo, hi = self.target_speed_range
        self.target_angle[env_ids] = (torch.rand(n, device=self.device) * 2 - 1) * math.pi
        self.target_speed[env_ids] = lo + (hi - lo) * torch.rand(n, device=self.device)
        offset = (torch.rand(n, device=self.device) * 2 - 1) * self.facing_offset
        self.face_angle[env_ids] = self.target_angle[env_ids] + offset

    def reset_idx(self, env_ids):
        length = self.progress_buf[env_ids].clamp_min(1).float()[:, None]
        means = (self.error_sums[env_ids] / length).mean(0)
        self.extras["episode"].update(zip(ERRORS, means.unbind(0)))
        self.error_sums[env_ids] = 0.0
        super().reset_idx(env_ids)
        self._new_targets(env_ids)

    def post_physics_step(self):
        qpos, qvel = self.engine.qpos, self.engine.qvel
        s = self.heading_scales
        self.rew_buf[:], terms, errors, fallen = compute_heading_reward(
            qpos, qvel, self.target_angle, self.target_speed, self.face_angle, self.termination_height,
            s["direction"], s["speed"], s["facing"], s["alive"], self.death_terms)
        self.reset_buf[:] = fallen.long()
        self.episode_sums += terms
        self.error_sums += errors
        resample = ((self.progress_buf % self.heading_steps) == 0) & ~fallen
        self._new_targets(resample.nonzero().squeeze(-1))

    def visual_markers(self, env_id):
        """Arrows on the floor from under the torso: the target direction (green, 0.5 m + 1 s at the
        target speed long) and the target facing (blue, 0.5 m)."""
        x, y = self.engine.qpos[env_id, 0:2].tolist()
        angle, speed, face = (float(t[env_id]) for t in (self.target_angle, self.target_speed, self.face_angle))
        walk = 0.5 + speed
        return [Marker(ARROW, (x, y, 0.05), (0.03,), (0.1, 0.8, 0.1, 1.0),
                       to=(x + walk * math.cos(angle), y + walk * math.sin(angle), 0.05)),
                Marker(ARROW, (x, y, 0.08), (0.02,), (0.1, 0.3, 0.9, 1.0),
                       to=(x + 0.5 * math.cos(face), y + 0.5 * math.sin(face), 0.08))]

    def compute_observations(self):
        qpos = self.engine.qpos
        yaw = yaw_from_quat(qpos[:, 3:7])
        rel_dir, rel_face = self.target_angle - yaw, self.face_angle - yaw
        task_obs = torch.stack([torch.cos(rel_dir), torch.sin(rel_dir), self.target_speed,
                                torch.cos(rel_face), torch.sin(rel_face)], dim=-1)
        self.obs_buf[:] = compute_locomotion_observations(
            qpos, self.engine.qvel, task_obs, self.dof_vel_scale, self.ang_vel_scale)


@torch.jit.script
def compute_heading_reward(qpos: torch.Tensor, qvel: torch.Tensor, target_angle: torch.Tensor,
                           target_speed: torch.Tensor, face_angle: torch.Tensor, termination_height: float,
                           w_direction: float, w_speed: float, w_facing: float, w_alive: float,
                           death_terms: torch.Tensor):
    """Reward, weighted terms (N, 5) in REWARD_TERMS order, errors (N, 3) in ERRORS order (heading
    error rad, speed error m/s, facing error rad) and the fall mask."""
    direction = torch.stack([torch.cos(target_angle), torch.sin(target_angle)], dim=-1)     # (N, 2)
    vel = qvel[:, 0:2]                                                                        # world xy
    along = torch.sum(vel * direction, dim=-1)
    cos_dir = along / torch.norm(vel, dim=-1).clamp_min(1e-3)
    yaw = yaw_from_quat(qpos[:, 3:7])
    cos_face = torch.cos(yaw - face_angle)
    fallen = qpos[:, 2] < termination_height
    terms = torch.stack([w_direction * cos_dir.clamp_min(0.0),
                         w_speed * torch.exp(-(along - target_speed) ** 2 / 0.25),
                         w_facing * cos_face.clamp_min(0.0),
                         torch.full_like(along, w_alive),
                         torch.zeros_like(along)], dim=-1)
    terms = torch.where(fallen[:, None], death_terms, terms)
    errors = torch.stack([torch.acos(cos_dir.clamp(-1.0, 1.0)), torch.abs(along - target_speed),
                          torch.acos(cos_face.clamp(-1.0, 1.0))], dim=-1)
    return terms.sum(-1), terms, errors, fallen
