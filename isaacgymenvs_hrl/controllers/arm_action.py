"""Policy actions -> position-servo targets for a 7-DoF arm with a one-dimensional gripper.

Control types (config ``controlType``):
  joint_delta: a[:7] * jointDeltaScale rad added to the current joint positions
  ee_delta:    a[:3] * posScale m moves the end-effector target (world frame), a[3] * yawScale rad
               turns it about world z; the gripper is kept pointing down. Targets go through DLS IK.
               The target persists between steps (reset with the env), so servo lag does not
               accumulate as drift; it is kept within ``maxLead`` of the measured pose so that a
               blocked arm does not wind up.
  ee_delta_pos: as ee_delta without the yaw dimension (the yaw is held).
The last action dim is the gripper: -1 closed .. +1 fully open (linear in finger opening).
Operational-space (torque) control is not provided: the Panda asset has position servos.
"""
from __future__ import annotations

import math

import torch

from .ik import solve_ik
from .kinematics import ChainKinematics

ARM_CONTROL_TYPES = ("joint_delta", "ee_delta", "ee_delta_pos")


def down_rotation(yaw: torch.Tensor) -> torch.Tensor:
    """Gripper-down orientation (N, 3, 3): tool z = -world z, tool x at angle ``yaw`` in the xy plane."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([c, s, z, s, -c, z, z, z, -o], dim=-1).reshape(-1, 3, 3)


def tool_yaw(rot: torch.Tensor) -> torch.Tensor:
    """Yaw of the tool x axis projected on the world xy plane, (N,)."""
    return torch.atan2(rot[:, 1, 0], rot[:, 0, 0])


def wrap_angle(a: torch.Tensor) -> torch.Tensor:
    return torch.remainder(a + math.pi, 2 * math.pi) - math.pi


class ArmActionMap:
    """Maps actions (N, A) to servo targets (N, 7 + 1) = joint targets and finger opening."""

    def __init__(self, kin: ChainKinematics, control_type: str, q_low: torch.Tensor,
                 q_high: torch.Tensor, grip_max: float, pos_scale: float = 0.03,
                 yaw_scale: float = 0.25, joint_scale: float = 0.1, ik_iterations: int = 3,
                 ik_damping: float = 0.05, workspace_low=(0.15, -0.5, 0.005),
                 workspace_high=(0.85, 0.5, 0.6), max_lead: float = 0.04, num_envs: int = 1):
        if control_type not in ARM_CONTROL_TYPES:
            raise ValueError(f"task.env.controlType must be one of {', '.join(ARM_CONTROL_TYPES)}, "
                             f"got {control_type!r}")
        self.kin, self.control_type = kin, control_type
        self.q_low, self.q_high, self.grip_max = q_low, q_high, grip_max
        self.pos_scale, self.yaw_scale, self.joint_scale = pos_scale, yaw_scale, joint_scale
        self.ik_iterations, self.ik_damping = ik_iterations, ik_damping
        self.ws_low = torch.tensor(workspace_low, device=q_low.device)
        self.ws_high = torch.tensor(workspace_high, device=q_low.device)
        self.max_lead = max_lead
        self.target_pos = torch.zeros(num_envs, 3, device=q_low.device)     # (N, 3) world
        self.target_yaw = torch.zeros(num_envs, device=q_low.device)        # (N,) tool x yaw

    def reset(self, env_ids: torch.Tensor, q: torch.Tensor) -> None:
        """Put the end-effector targets of ``env_ids`` on the pose of joint positions q (n, 7)."""
        pos, rot = self.kin.forward(q, jacobian=False)
        self.target_pos[env_ids] = pos.to(self.target_pos)
        self.target_yaw[env_ids] = tool_yaw(rot).to(self.target_yaw)

    @property
    def num_actions(self) -> int:
        return {"joint_delta": 7, "ee_delta": 4, "ee_delta_pos": 3}[self.control_type] + 1

    def __call__(self, actions: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(joint targets (N, 7), finger opening target (N,)) from actions and joint positions q."""
        grip = (actions[:, -1] + 1.0) * 0.5 * self.grip_max
        if self.control_type == "joint_delta":
            target = q + actions[:, :7] * self.joint_scale
        else:
            pos, rot = self.kin.forward(q, jacobian=False)
            goal = self.target_pos + actions[:, :3] * self.pos_scale
            goal = pos + (goal - pos).clamp(-self.max_lead, self.max_lead)
            goal = torch.maximum(torch.minimum(goal, self.ws_high), self.ws_low)
            yaw = self.target_yaw
            if self.control_type == "ee_delta":
                yaw = yaw + actions[:, 3] * self.yaw_scale
            yaw_now = tool_yaw(rot)
            yaw = yaw_now + wrap_angle(yaw - yaw_now).clamp(-4 * self.yaw_scale, 4 * self.yaw_scale)
            self.target_pos, self.target_yaw = goal, wrap_angle(yaw)
            target = solve_ik(self.kin, q, goal, down_rotation(yaw), self.ik_iterations, self.ik_damping,
                              self.q_low, self.q_high)
        target = torch.maximum(torch.minimum(target, self.q_high), self.q_low)
        return target.to(q.dtype), grip
