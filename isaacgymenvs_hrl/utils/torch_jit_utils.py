"""Batched rotation math for MuJoCo quaternions, (w, x, y, z). Shapes: q (N, 4), v (N, 3)."""
from typing import Tuple

import torch


@torch.jit.script
def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate v from the body frame to the world frame."""
    w, xyz = q[:, 0:1], q[:, 1:4]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)


@torch.jit.script
def quat_rotate_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate v from the world frame to the body frame."""
    w, xyz = q[:, 0:1], -q[:, 1:4]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)


@torch.jit.script
def yaw_from_quat(q: torch.Tensor) -> torch.Tensor:
    """Heading angle about world z, (N,)."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


@torch.jit.script
def heading_and_tilt(q: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Heading angle about world z (N,) and world z in the body frame (N, 3), the bottom row of the
    rotation matrix: ``quat_rotate_inverse(q, z)`` (minus gravity's direction), and
    ``quat_rotate(q, v)[:, 2] = (tilt * v).sum(-1)``, without the cross products."""
    w, x, y, z = q.unbind(1)
    tilt = torch.stack([2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)], dim=-1)
    return yaw_from_quat(q), tilt


@torch.jit.script
def world_to_heading(v_w: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """Express world vectors in the yaw-only heading frame (x forward, z up)."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    vx, vy = v_w.select(1, 0), v_w.select(1, 1)
    return torch.stack([c * vx + s * vy, c * vy - s * vx, v_w.select(1, 2)], dim=-1)


@torch.jit.script
def quat_from_yaw(yaw: torch.Tensor) -> torch.Tensor:
    half = 0.5 * yaw
    zeros = torch.zeros_like(yaw)
    return torch.stack([torch.cos(half), zeros, zeros, torch.sin(half)], dim=-1)
