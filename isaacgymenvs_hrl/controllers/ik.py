"""Damped-least-squares inverse kinematics, batched over envs.

DLS (dq = J^T (J J^T + lambda^2 I)^-1 e) stays bounded near singularities, where the plain
pseudo-inverse would command huge joint steps; a few iterations per control step land the joint
targets on the commanded end-effector pose so that the position servos only have to track them.
"""
from __future__ import annotations

import torch

from .kinematics import ChainKinematics


def orientation_error(r_target: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Small-angle rotation vector (N, 3) that turns ``r`` towards ``r_target`` (world frame)."""
    return 0.5 * torch.cross(r, r_target, dim=1).sum(-1)   # sum over the three column pairs


def dls_step(jac: torch.Tensor, err: torch.Tensor, damping: float) -> torch.Tensor:
    """Joint step (N, nj) reducing the task-space error (N, m) with Jacobian (N, m, nj)."""
    jjt = jac @ jac.transpose(1, 2)
    eye = torch.eye(jac.shape[1], dtype=jac.dtype, device=jac.device)
    x = torch.linalg.solve(jjt + (damping ** 2) * eye, err.unsqueeze(-1))
    return (jac.transpose(1, 2) @ x).squeeze(-1)


def solve_ik(kin: ChainKinematics, q0: torch.Tensor, target_pos: torch.Tensor,
             target_rot: torch.Tensor | None = None, iterations: int = 3, damping: float = 0.05,
             q_low: torch.Tensor | None = None, q_high: torch.Tensor | None = None,
             max_step: float = 0.5) -> torch.Tensor:
    """Joint positions (N, nj) near ``q0`` that put the site at ``target_pos`` (and ``target_rot``).

    Without ``target_rot`` only the position rows of the Jacobian are used. Each iteration's step is
    clipped to ``max_step`` rad per joint and the result to [q_low, q_high]."""
    q = q0.to(kin.dtype).clone()
    for _ in range(iterations):
        pos, rot, jac = kin.forward(q)
        err = target_pos.to(q) - pos
        if target_rot is not None:
            err = torch.cat([err, orientation_error(target_rot.to(q), rot)], dim=-1)
        else:
            jac = jac[:, :3]
        q = q + dls_step(jac, err, damping).clamp(-max_step, max_step)
        if q_low is not None:
            q = torch.maximum(torch.minimum(q, q_high), q_low)
    return q
