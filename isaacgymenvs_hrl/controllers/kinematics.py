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
        # per body on the path: offset in parent, rotation in parent, joint index into ``joints``
        # (-1: rigid), joint anchor (None when at the body origin, as on the Panda)
        self._links = []
        axes = torch.zeros(len(jids), 3, dtype=dtype, device=self.device)
        for body in path:
            for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
                if j not in jids:
                    raise ValueError(f"joint '{model.joint(j).name}' moves site '{site}' but is not in {joints}")
            j = body_of_joint.get(body)
            jidx = jids.index(j) if j is not None else -1
            anchor = None
            if j is not None:
                axes[jidx] = t(model.jnt_axis[j])
                if np.any(model.jnt_pos[j]):
                    anchor = t(model.jnt_pos[j])
            self._links.append((t(model.body_pos[body]), rotation_from_quat(t(model.body_quat[body])), jidx, anchor))
        # Rodrigues per joint, R(q) = I + sin q K + (1 - cos q) K^2, with K = [axis]_x fixed
        skew = torch.zeros(len(jids), 3, 3, dtype=dtype, device=self.device)
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
        skew = skew - skew.transpose(1, 2)
        self._axes, self._skew, self._skew2 = axes, skew, skew @ skew
        self.site_pos = t(model.site_pos[site_id])                          # (3,) in the site body
        self.site_rot = rotation_from_quat(t(model.site_quat[site_id]))      # (3, 3)
        self.num_joints = len(jids)
        self._pose_q = self._pose = None      # last pose without Jacobian: tasks ask for it repeatedly

    def forward(self, q: torch.Tensor, jacobian: bool = True):
        """q (N, nj) -> site position (N, 3), rotation (N, 3, 3) and, optionally, J (N, 6, nj)
        with rows [linear; angular] velocity of the site in the world frame (as mj_jacSite)."""
        q = q.to(self.dtype)
        if not jacobian and self._pose_q is not None and torch.equal(self._pose_q, q):
            return self._pose
        n = q.shape[0]
        s, c = torch.sin(q)[:, :, None, None], torch.cos(q)[:, :, None, None]
        joint_rot = torch.eye(3, dtype=self.dtype, device=q.device) + s * self._skew + (1 - c) * self._skew2
        p = torch.zeros(n, 3, dtype=self.dtype, device=q.device)
        r = torch.eye(3, dtype=self.dtype, device=q.device).expand(n, 3, 3)
        axes_w, anchors_w = [None] * self.num_joints, [None] * self.num_joints
        for offset, rot, jidx, anchor in self._links:
            p = p + r @ offset
            r = r @ rot
            if jidx >= 0:
                anchor_w = p if anchor is None else p + r @ anchor
                axes_w[jidx] = r @ self._axes[jidx]
                anchors_w[jidx] = anchor_w
                r = r @ joint_rot[:, jidx]
                if anchor is not None:
                    p = anchor_w - r @ anchor                           # rotate about the anchor
        site_p = p + r @ self.site_pos
        site_r = r @ self.site_rot
        if not jacobian:
            self._pose_q, self._pose = q.clone(), (site_p, site_r)
            return site_p, site_r
        ax = torch.stack(axes_w, dim=-1)                                   # (N, 3, nj)
        lever = site_p[:, :, None] - torch.stack(anchors_w, dim=-1)       # (N, 3, nj)
        jac = torch.cat([torch.cross(ax, lever, dim=1), ax], dim=1)        # (N, 6, nj)
        return site_p, site_r, jac
