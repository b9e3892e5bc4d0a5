"""What every scripted expert shares: per-env episode restarts, pose-to-action conversion, noise."""
from __future__ import annotations

import math

import torch

from ..controllers.arm_action import tool_yaw
from ..errors import UserError


class ScriptedExpert:
    """Base of the batched experts. Subclasses implement ``plan(new)`` -> (goal_pos, yaw_err, grip, gain)."""

    def __init__(self, task, noise: float = 0.0, seed: int = 0):
        if task.control_type not in ("ee_delta", "ee_delta_pos"):
            raise UserError(f"the scripted experts drive the end effector: set task.env.controlType=ee_delta "
                            f"(got {task.control_type!r})")
        self.task, self.noise = task, float(noise)
        self.gen = torch.Generator(device=task.device).manual_seed(int(seed))
        n, dev = task.num_envs, task.device
        self.phase = torch.zeros(n, dtype=torch.long, device=dev)
        self.timer = torch.zeros(n, dtype=torch.long, device=dev)

    def rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen, device=self.task.device)

    def set_phase(self, mask: torch.Tensor, phase: int) -> None:
        self.phase = torch.where(mask, torch.full_like(self.phase, phase), self.phase)
        self.timer = torch.where(mask, torch.zeros_like(self.timer), self.timer)

    def __call__(self, obs=None) -> torch.Tensor:
        task = self.task
        new = task.progress_buf == 0
        self.set_phase(new, 0)
        ee_pos, ee_rot = task.ee_pose()
        goal, yaw_err, grip, gain = self.plan(new, ee_pos, tool_yaw(ee_rot))
        self.timer += 1
        # steer the controller's persistent target, not the lagging measured pose (no overshoot)
        ref = torch.where(new[:, None], ee_pos, task.action_map.target_pos)
        delta = (goal - ref) / task.pos_scale
        # speed limit ``gain`` (share of the full action), keeping the direction
        delta = delta * (gain[:, None] / delta.abs().amax(-1, keepdim=True).clamp_min(1e-6)).clamp(max=1.0)
        parts = [delta]
        if task.control_type == "ee_delta":
            parts.append((yaw_err / task.yaw_scale).clamp(-1.0, 1.0)[:, None])
        parts.append(grip[:, None])
        actions = torch.cat(parts, dim=-1)
        if self.noise > 0:
            actions = actions + self.noise * torch.randn(actions.shape, generator=self.gen, device=actions.device)
        return actions.clamp(-1.0, 1.0)


def symmetric_yaw_error(target_yaw: torch.Tensor, yaw: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Smallest turn from ``yaw`` to ``target_yaw`` modulo 2 pi / order (order 0: any yaw, no turn)."""
    period = 2 * math.pi / order.clamp_min(1).float()
    d = torch.remainder(target_yaw - yaw + period / 2, period) - period / 2
    return torch.where(order > 0, d, torch.zeros_like(d))
