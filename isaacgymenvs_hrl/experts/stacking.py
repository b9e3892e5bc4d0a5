"""Scripted stacking expert: reach, grasp, lift, carry, place, release, retreat (per env, batched).

Each pick-and-place comes from the task's ``plan()`` (which object, where its centre must go), so
the same machine does ``X_on_Y`` and the two steps of ``pyramid``. A failed grasp (object not
following the hand) restarts the approach. Timing is randomized per episode (speed gain, gripper
wait steps) so that demonstrations differ.
"""
from __future__ import annotations

import torch

from ..utils.torch_jit_utils import yaw_from_quat
from .base import ScriptedExpert, symmetric_yaw_error

APPROACH, DESCEND, CLOSE, LIFT, CARRY, LOWER, RELEASE, RETREAT = range(8)


class StackingExpert(ScriptedExpert):
    approach_height = 0.08     # m above the grasp point
    clearance = 0.06           # m the carried object's centre travels above its target
    squeeze = 0.005            # m per finger the closed-grip target sits inside the object's half width
    grasp_depth = 0.01         # m the TCP goes below the object's centre (clamped above the table)

    def __init__(self, task, noise: float = 0.0, seed: int = 0):
        super().__init__(task, noise, seed)
        n, dev = task.num_envs, task.device
        self.pick = torch.zeros(n, dtype=torch.long, device=dev)
        self.offset = torch.zeros(n, 3, device=dev)          # TCP - object centre, at grasp time
        self.hold = torch.zeros(n, 3, device=dev)            # TCP where the release started
        self.grasp_at = torch.zeros(n, 3, device=dev)        # TCP goal frozen when closing starts
        self.gain = torch.ones(n, device=dev)
        self.wait_close = torch.full((n,), 4, dtype=torch.long, device=dev)
        self.wait_open = torch.full((n,), 3, dtype=torch.long, device=dev)

    def plan(self, new, ee_pos, ee_yaw):
        task, n = self.task, self.task.num_envs
        ar = torch.arange(n, device=task.device)
        if new.any():
            self.gain = torch.where(new, 0.6 + 0.4 * self.rand(n), self.gain)
            self.wait_close = torch.where(new, 3 + (self.rand(n) * 4).long(), self.wait_close)
            self.wait_open = torch.where(new, 2 + (self.rand(n) * 3).long(), self.wait_open)
        pose = task.object_qpos()
        hh, hw, sym = task.object_dims()
        pick_live, target, _, _ = task.plan()
        ph = self.phase
        self.pick = torch.where(ph == APPROACH, pick_live, self.pick)
        obj = pose[ar, self.pick, 0:3]
        obj_yaw = yaw_from_quat(pose[ar, self.pick, 3:7])
        grasp = obj.clone()
        grasp[:, 2] = torch.clamp(obj[:, 2] - self.grasp_depth, min=0.012)
        above = grasp + torch.tensor([0.0, 0.0, self.approach_height], device=task.device)
        carry_z = target[:, 2] + self.clearance + self.offset[:, 2]
        place = target + self.offset
        follows = torch.norm(ee_pos - obj - self.offset, dim=-1) < 0.025      # object still in hand
        d = lambda a, b: torch.norm(a - b, dim=-1)

        yaw_err = symmetric_yaw_error(obj_yaw, ee_yaw, sym[ar, self.pick])
        goal = ee_pos.clone()
        grip = torch.ones(n, device=task.device)
        gain = self.gain.clone()

        m = ph == APPROACH
        goal = torch.where(m[:, None], above, goal)
        m = ph == DESCEND
        goal = torch.where(m[:, None], grasp, goal)
        # closing: hold the TCP where the descent ended; a goal that follows the object lets the
        # squeezed cube walk the hand upwards (and pop out)
        m = ph == CLOSE
        goal = torch.where(m[:, None], self.grasp_at, goal)
        lift_goal = torch.cat([ee_pos[:, 0:2], carry_z[:, None]], -1)
        goal = torch.where((ph == LIFT)[:, None], lift_goal, goal)
        carry_goal = torch.cat([place[:, 0:2], carry_z[:, None]], -1)
        goal = torch.where((ph == CARRY)[:, None], carry_goal, goal)
        goal = torch.where((ph == LOWER)[:, None], place, goal)
        goal = torch.where((ph == RELEASE)[:, None], self.hold, goal)
        up = self.hold + torch.tensor([0.0, 0.0, 0.1], device=task.device)
        goal = torch.where((ph == RETREAT)[:, None], up, goal)
        closed = (ph >= CLOSE) & (ph <= LOWER)
        grip = torch.where(closed, -grip, grip)
        # close gently: ramp the opening target from just over the object's width to ``squeeze``
        # inside it, and hold it there. Commanding the fingers fully shut (-1) squeezes with tens of N;
        # the stiff pad contacts then squirt the object sideways out of the grasp when the lift
        # starts (or fling it off the table during the carry).
        ramp = (self.timer.float() / 3.0).clamp(max=1.0)
        width_cmd = (hw[ar, self.pick] + 0.004) / 0.02 - 1.0
        hold_cmd = ((hw[ar, self.pick] - self.squeeze) / 0.02 - 1.0).clamp(min=-1.0)
        grip = torch.where(closed, hold_cmd, grip)
        grip = torch.where(ph == CLOSE, (1 - ramp) * width_cmd + ramp * hold_cmd, grip)
        gain = torch.where((ph == LOWER) | (ph == LIFT), 0.3 * gain, gain)
        yaw_err = torch.where((ph == APPROACH) | (ph == DESCEND), yaw_err, torch.zeros_like(yaw_err))

        # transitions (evaluated on this step's state, applied for the next call)
        t = self.timer
        to_descend = (ph == APPROACH) & (d(ee_pos, above) < 0.012) & (yaw_err.abs() < 0.08)
        to_close = (ph == DESCEND) & ((d(ee_pos, grasp) < 0.006) | (t > 40))
        self.grasp_at = torch.where(to_close[:, None], grasp, self.grasp_at)
        to_lift = (ph == CLOSE) & (t >= self.wait_close + 3)
        self.offset = torch.where(to_lift[:, None], ee_pos - obj, self.offset)
        dropped = ((ph == LIFT) | (ph == CARRY)) & ~follows & (t > 2)
        to_carry = (ph == LIFT) & (ee_pos[:, 2] > carry_z - 0.015)
        to_lower = (ph == CARRY) & (d(ee_pos[:, 0:2], place[:, 0:2]) < 0.008)
        to_release = (ph == LOWER) & ((obj[:, 2] - target[:, 2] < 0.004) | (t > 30))
        self.hold = torch.where(to_release[:, None], ee_pos, self.hold)
        to_retreat = (ph == RELEASE) & (t >= self.wait_open)
        to_restart = ((ph == RETREAT) & (d(ee_pos, up) < 0.02)) | dropped
        for mask, nxt in ((to_descend, DESCEND), (to_close, CLOSE), (to_lift, LIFT), (to_carry, CARRY),
                          (to_lower, LOWER), (to_release, RELEASE), (to_retreat, RETREAT),
                          (to_restart, APPROACH)):
            self.set_phase(mask, nxt)
        return goal, yaw_err, grip, gain
