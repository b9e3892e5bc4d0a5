"""Batched forward kinematics and geometric Jacobian of a serial hinge chain, in torch.

The C MuJoCo backend computes Jacobians one env at a time (``mj_jacSite``); IK for N envs needs them
as one batched tensor op. The chain (body offsets, joint axes and anchors, the site offset) is read
once from the MjModel, so the kinematics always match the simulated robot.
Rotations are (N, 3, 3) matrices; quaternions are MuJoCo's (w, x, y, z).
"""
from __future__ import annotations

import mujoco
import numpy as np
import torch


def rotation_from_quat(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) wxyz -> (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def quat_from_rotation(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) wxyz with w >= 0 (robust branch-free form via the largest component)."""
    m = r
    t = torch.stack([1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2],
                     1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                     1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], dim=-1).clamp_min(1e-12)
    # candidate quaternions, one per largest-component choice
    c0 = torch.stack([t[..., 0], m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    c1 = torch.stack([m[..., 2, 1] - m[..., 1, 2], t[..., 1], m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1)
    c2 = torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], t[..., 2], m[..., 2, 1] + m[..., 1, 2]], -1)
    c3 = torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], t[..., 3]], -1)
    cands = torch.stack([c0, c1, c2, c3], dim=-2)                       # (..., 4, 4)
    best = t.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return q * torch.where(q[..., :1] < 0, -1.0, 1.0)


def axis_angle_rotation(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: unit axis (3,) and angles (N,) -> (N, 3, 3)."""
    k = axis.to(angle)
    kx = torch.zeros(3, 3, dtype=angle.dtype, device=angle.device)
    kx[0, 1], kx[0, 2], kx[1, 0], kx[1, 2], kx[2, 0], kx[2, 1] = -k[2], k[1], k[2], -k[0], -k[1], k[0]
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    eye = torch.eye(3, dtype=angle.dtype, device=angle.device)
    return eye + s * kx + (1 - c) * (kx @ kx)


class ChainKinematics:
    """FK and 6xJ geometric Jacobian of ``site`` w.r.t. the hinge ``joints`` (in chain order).

    Bodies on the path from the world to the site that carry none of ``joints`` are treated as
    rigid; the chain must not contain other moving joints (MuJoCo would move the site with them).
    """

    def __init__(self, model: mujoco.MjModel, joints: list[str], site: str, device="cpu",
                 dtype=torch.float32):
        self.device, self.dtype = torch.device(device), dtype
        jids = [model.joint(j).id for j in joints]
        for j, name in zip(jids, joints):
            if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
                raise ValueError(f"ChainKinematics supports hinge joints only; '{name}' is not one")
        site_id = model.site(site).id
        path, b = [], int(model.site_bodyid[site_id])
        while b != 0:
            path.append(b)
            b = int(model.body_parentid[b])
        path.reverse()
        body_of_joint = {int(model.jnt_bodyid[j]): j for j in jids}
        if set(body_of_joint) - set(path):
            raise ValueError(f"joints {joints} are not all on the path from the world to site '{site}'")
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=self.device)
        # per body on the path: offset in parent, rotation in parent, optional joint (index into joints)
        self._links = []
        for body in path:
            for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
                if j not in jids:
                    raise ValueError(f"joint '{model.joint(j).name}' moves site '{site}' but is not in {joints}")
            jidx = jids.index(body_of_joint[body]) if body in body_of_joint else -1
            rot = rotation_from_quat(t(model.body_quat[body]))
            j = body_of_joint.get(body)
            axis = t(model.jnt_axis[j]) if j is not None else None
            anchor = t(model.jnt_pos[j]) if j is not None else None
            self._links.append((t(model.body_pos[body]), rot, jidx, axis, anchor))
        self.site_pos = t(model.site_pos[site_id])                          # (3,) in the site body
        self.site_rot = rotation_from_quat(t(model.site_quat[site_id]))      # (3, 3)
        self.num_joints = len(jids)

    def forward(self, q: torch.Tensor, jacobian: bool = True):
        """q (N, nj) -> site position (N, 3), rotation (N, 3, 3) and, optionally, J (N, 6, nj)
        with rows [linear; angular] velocity of the site in the world frame (as mj_jacSite)."""
        q = q.to(self.dtype)
        n = q.shape[0]
        p = torch.zeros(n, 3, dtype=self.dtype, device=q.device)
        r = torch.eye(3, dtype=self.dtype, device=q.device).expand(n, 3, 3)
        axes_w, anchors_w = [None] * self.num_joints, [None] * self.num_joints
        for offset, rot, jidx, axis, anchor in self._links:
            p = p + r @ offset
            r = r @ rot
            if jidx >= 0:
                anchor_w = p + r @ anchor
                axes_w[jidx] = r @ axis
                anchors_w[jidx] = anchor_w
                r = r @ axis_angle_rotation(axis, q[:, jidx])
                p = anchor_w - r @ anchor                               # rotate about the anchor
        site_p = p + r @ self.site_pos
        site_r = r @ self.site_rot
        if not jacobian:
            return site_p, site_r
        ax = torch.stack(axes_w, dim=-1)                                   # (N, 3, nj)
        lever = site_p[:, :, None] - torch.stack(anchors_w, dim=-1)       # (N, 3, nj)
        jac = torch.cat([torch.cross(ax, lever, dim=1), ax], dim=1)        # (N, 6, nj)
        return site_p, site_r, jac
