"""Scripted insertion expert for FrankaPegInHole (per env, batched).

Table start: reach above the peg (pads turned onto its faces), descend, close, lift. Then (both
starts): move the peg tip over the hole while turning the peg to the hole's yaw (modulo the shape's
symmetry), align a few mm above the mouth, and descend slowly under force control (admittance on
the wrist's vertical contact force: the target is pulled back up when the push exceeds the desired
one). When the peg is stuck on the rim (vertical force over a threshold and no progress) it runs a
spiral search in xy with a growing radius, pausing while the tip goes down, until the tip drops
into the mouth. Then it inserts under force control while moving the hand so that the peg's grasp
point comes over the hole's axis (this turns a peg that tilted in the grasp upright about its tip);
when jammed (no progress under load) it backs off a few mm and goes on. At the depth it holds.

The expert aims at the hole with a per-episode error (``aim_error``, uniform in a disk), as a
camera-located hole would give, so the search is part of the data. Timing is randomized per
episode (speeds, desired push, spiral pitch and direction, pauses) so that demonstrations differ;
``noise`` adds Gaussian action noise (std in action units: x posActionScale m per step).
It reads the task's privileged state (peg and hole poses) besides the wrist F/T.
"""
from __future__ import annotations

import math

import torch

from ..controllers.arm_action import wrap_angle
from ..tasks.franka_peg_in_hole import VARIANTS, peg_yaw_error
from ..utils.torch_jit_utils import yaw_from_quat
from .base import ScriptedExpert, symmetric_yaw_error

(REACH, PREGRASP, CLOSE, LIFT, MOVE, ALIGN, DESCEND, SEARCH, INSERT, HOLD, BACKOFF) = range(11)
PHASE_NAMES = ("reach", "pregrasp", "close", "lift", "move", "align", "descend", "search", "insert", "hold",
               "backoff")


class InsertionExpert(ScriptedExpert):
    approach_height = 0.08     # m above the grasp point (table start)
    travel_height = 0.03       # m of the tip over the hole's mouth while moving over it
    align_height = 0.004       # m of the tip over the mouth before the compliant descent
    aim_error = 0.003          # m, radius of the per-episode aiming error disk
    stuck_share = 0.6          # share of the desired push that, without progress, means stuck
    search_pitch = 0.0008      # m of spiral radius growth per turn (randomized +-25%)
    search_step = 0.0006       # m of spiral arc per control step
    search_radius = 0.005      # m: a spiral this wide without success restarts the alignment
    insert_margin = 0.003      # m beyond insertDepth that the insertion aims for
    straighten_step = 0.0003   # m per step the hand moves to put the peg upright while inserting
    jam_steps = 8              # steps without progress under load in the insertion that mean jammed
    backoff_height = 0.003     # m the hand backs off when jammed
    force_gain = 0.0002        # m of target per N of force error per step (admittance)

    def __init__(self, task, noise: float = 0.0, seed: int = 0):
        super().__init__(task, noise, seed)
        n, dev = task.num_envs, task.device
        z = lambda: torch.zeros(n, device=dev)
        self.gain = torch.ones(n, device=dev)            # transport speed (share of full action)
        self.descend_step = z() + 0.0008                 # m per step of free descent
        self.push = z() + 4.0                            # N, desired vertical push in contact
        self.pause = torch.zeros(n, dtype=torch.long, device=dev)
        self.aim = torch.zeros(n, 2, device=dev)         # aiming error (xy)
        self.spiral_dir = torch.ones(n, device=dev)
        self.pitch = z() + self.search_pitch
        self.theta = z()                                 # spiral angle
        self.centre = torch.zeros(n, 2, device=dev)      # spiral centre (tip xy where it got stuck)
        self.stuck = torch.zeros(n, dtype=torch.long, device=dev)
        self.prev_tip_z = z()
        self.fz = z()                                    # filtered vertical contact force
        self.grasp_at = torch.zeros(n, 3, device=dev)
        self.hold_z = z()
        self.jam = torch.zeros(n, dtype=torch.long, device=dev)
        self.backoff_z = z()

    def plan(self, new, ee_pos, ee_yaw):
        task, n, dev = self.task, self.task.num_envs, self.task.device
        if new.any():
            self._new_episode(new)
        peg, hole = task.peg_pose(), task.hole_pose()
        tip, grasp, _ = task.peg_points(peg)
        top = task.hole_top(hole)
        order = task.symmetry_order()
        ref = torch.where(new[:, None], ee_pos, task.action_map.target_pos)
        wrench = task.wrist_wrench()
        contact = wrench[:, 2] + task.peg_mass * task.gravity            # upward push on the peg
        self.fz = torch.where(new, contact, 0.5 * self.fz + 0.5 * contact)
        ph, t = self.phase, self.timer
        d = lambda a, b: torch.norm(a - b, dim=-1)
        up = torch.tensor([0.0, 0.0, 1.0], device=dev)
        tcp_from_tip = ee_pos - tip                      # the TCP goal for a tip goal is tip goal + this
        aim_xy = top[:, 0:2] + self.aim
        depth = top[:, 2] - tip[:, 2]
        lateral = d(tip[:, 0:2], aim_xy)

        goal = ee_pos.clone()
        grip = -torch.ones(n, device=dev)
        gain = self.gain.clone()
        # yaw: grasp with the pads on the peg's faces; carry the peg to the hole's yaw
        grasp_yaw = symmetric_yaw_error(yaw_from_quat(peg[:, 3:7]), ee_yaw, order)
        insert_yaw = peg_yaw_error(peg[:, 3:7], hole[:, 3:7], order)
        yaw_err = torch.where(ph <= PREGRASP, grasp_yaw, insert_yaw)
        yaw_err = torch.where((ph == CLOSE) | (ph == LIFT) | (ph == HOLD), torch.zeros_like(yaw_err), yaw_err)

        # -- pick (table start)
        above = grasp + up * self.approach_height
        goal = torch.where((ph == REACH)[:, None], above, goal)
        goal = torch.where((ph == PREGRASP)[:, None], grasp, goal)
        goal = torch.where((ph == CLOSE)[:, None], self.grasp_at, goal)
        grip = torch.where(ph <= PREGRASP, torch.ones_like(grip), grip)
        lift_z = (top[:, 2:3] + self.travel_height + tcp_from_tip[:, 2:3]).clamp(min=0.12)
        lift_goal = torch.cat([ee_pos[:, 0:2], lift_z], -1)
        goal = torch.where((ph == LIFT)[:, None], lift_goal, goal)
        gain = torch.where((ph == PREGRASP) | (ph == LIFT), 0.4 * gain, gain)
        # -- carry over the hole, align above its mouth
        over = torch.cat([aim_xy, top[:, 2:3] + self.travel_height], -1) + tcp_from_tip
        goal = torch.where((ph == MOVE)[:, None], over, goal)
        hover = torch.cat([aim_xy, top[:, 2:3] + self.align_height], -1) + tcp_from_tip
        goal = torch.where((ph == ALIGN)[:, None], hover, goal)
        gain = torch.where(ph == ALIGN, 0.15 * gain, gain)
        # -- compliant descent: z from the persistent target, pulled back when pushing too hard
        # in contact (over half the desired push): admittance, dz = k (f - f_desired); free: descend
        dz = torch.where(self.fz > 0.5 * self.push, (self.force_gain * (self.fz - self.push)).clamp(max=0.002),
                         -self.descend_step)
        dz = torch.maximum(dz, -self.descend_step)
        press_z = ref[:, 2] + dz
        descend_goal = torch.cat([aim_xy + tcp_from_tip[:, 0:2], press_z[:, None]], -1)
        goal = torch.where((ph == DESCEND)[:, None], descend_goal, goal)
        # -- spiral search around the point where it got stuck, pressing lightly
        r = self.pitch * self.theta / (2 * math.pi)
        spiral = self.centre + r[:, None] * torch.stack([torch.cos(self.theta * self.spiral_dir),
                                                         torch.sin(self.theta * self.spiral_dir)], -1)
        light_z = ref[:, 2] + torch.where(self.fz > 0.25 * self.push,
                                          (self.force_gain * (self.fz - 0.5 * self.push)).clamp(max=0.002),
                                          -self.descend_step)
        light_z = torch.maximum(light_z, ref[:, 2] - self.descend_step)
        search_goal = torch.cat([spiral + tcp_from_tip[:, 0:2], light_z[:, None]], -1)
        goal = torch.where((ph == SEARCH)[:, None], search_goal, goal)
        # -- insertion: xy follows the hand (no lateral push), z pushes down under force control
        ins_z = ref[:, 2] + torch.where(self.fz > 0.5 * self.push,
                                        torch.maximum((self.force_gain * (self.fz - self.push)).clamp(max=0.002),
                                                      -1.5 * self.descend_step),
                                        -1.5 * self.descend_step)
        # xy: bring the grasp point over the hole's axis, so that a peg tilted in the hand is turned
        # upright about its tip (held by the hole) instead of jamming
        upright = ee_pos[:, 0:2] + (top[:, 0:2] - grasp[:, 0:2]).clamp(-self.straighten_step, self.straighten_step)
        goal = torch.where((ph == INSERT)[:, None], torch.cat([upright, ins_z[:, None]], -1), goal)
        # jammed (a peg tilted in the hand wedges in the hole): back off a few mm, still straightening
        goal = torch.where((ph == BACKOFF)[:, None], torch.cat([upright, self.backoff_z[:, None]], -1), goal)
        # the force-controlled z targets stay near the measured hand (measured: ~0.3-0.6 mm lead per
        # 2-8 N), so that action noise cannot random-walk them away
        pressed = (ph == DESCEND) | (ph == SEARCH) | (ph == INSERT)
        bounded_z = torch.minimum(torch.maximum(goal[:, 2], ee_pos[:, 2] - 0.002), ee_pos[:, 2] + 0.001)
        goal = torch.where(pressed[:, None], torch.cat([goal[:, 0:2], bounded_z[:, None]], -1), goal)
        hold_goal = torch.cat([ee_pos[:, 0:2], self.hold_z[:, None]], -1)
        goal = torch.where((ph == HOLD)[:, None], hold_goal, goal)
        gain = torch.where(ph >= DESCEND, torch.ones_like(gain), gain)   # small steps there already
        # absolute yaw target (no accumulation in the persistent target): hand yaw + error - target yaw
        yaw_cmd = wrap_angle(ee_yaw + yaw_err - task.action_map.target_yaw)
        yaw_cmd = torch.where(new, yaw_err, yaw_cmd)

        # transitions (evaluated on this step's state, applied for the next call)
        follows = d(ee_pos, grasp) < 0.03
        to_pregrasp = (ph == REACH) & (d(ee_pos, above) < 0.01) & (grasp_yaw.abs() < 0.05)
        to_close = (ph == PREGRASP) & ((d(ee_pos, grasp) < 0.004) | (t > 40))
        self.grasp_at = torch.where(to_close[:, None], grasp, self.grasp_at)
        to_lift = (ph == CLOSE) & (t >= 6 + self.pause)
        to_move = (ph == LIFT) & (ee_pos[:, 2] > lift_goal[:, 2] - 0.01)
        to_align = (ph == MOVE) & (d(tip[:, 0:2], aim_xy) < 0.003) & (d(tip, over - tcp_from_tip) < 0.006) & \
            (insert_yaw.abs() < 0.03)
        hovering = (tip[:, 2] - top[:, 2] - self.align_height).abs() < 0.0015
        to_descend = (ph == ALIGN) & (lateral < 0.001) & hovering & (insert_yaw.abs() < 0.01) & (t >= self.pause)
        progress = self.prev_tip_z - tip[:, 2]
        pressing = (ph == DESCEND) | (ph == SEARCH)
        self.stuck = torch.where(pressing & (self.fz > self.stuck_share * self.push) & (progress < 0.0002),
                                 self.stuck + 1, torch.zeros_like(self.stuck))
        entered = (depth > 0.0005) & (d(tip[:, 0:2], top[:, 0:2]) < task.hole_apothem)
        to_insert = pressing & entered
        to_search = (ph == DESCEND) & ~entered & (self.stuck >= 3)
        self.centre = torch.where(to_search[:, None], tip[:, 0:2], self.centre)
        # the spiral advances by a fixed arc length per step
        # ... and waits while the tip is going down (it may be dropping into the mouth)
        self.theta = torch.where((ph == SEARCH) & (progress < 0.0001), self.theta + 2 * math.pi * self.search_step /
                                 (2 * math.pi * r).clamp(min=4 * self.search_step), self.theta)
        self.theta = torch.where(to_search, torch.full_like(self.theta, 2 * math.pi), self.theta)
        give_up = (ph == SEARCH) & (r > self.search_radius)
        # a new (better) estimate of the hole after a failed search, as if from another look
        self.aim = torch.where(give_up[:, None], 0.5 * self._disk(self.aim_error), self.aim)
        done = (depth > task.insert_depth + self.insert_margin) | (depth > task.hole_depth - 0.001)
        to_hold = (ph == INSERT) & done
        self.jam = torch.where((ph == INSERT) & (self.fz > 0.5 * self.push) & (progress < 0.0001),
                               self.jam + 1, torch.zeros_like(self.jam))
        to_backoff = (ph == INSERT) & ~done & (self.jam >= self.jam_steps)
        self.backoff_z = torch.where(to_backoff, ee_pos[:, 2] + self.backoff_height, self.backoff_z)
        to_reinsert = (ph == BACKOFF) & ((ee_pos[:, 2] > self.backoff_z - 0.001) | (t >= 8))
        popped_out = (ph == INSERT) & (depth < -0.0005) & (t > 4)       # the tip left the mouth: re-align
        self.hold_z = torch.where(to_hold, ref[:, 2], self.hold_z)
        dropped = (ph >= LIFT) & (ph <= ALIGN) & ~follows & (t > 2)
        for mask, nxt in ((to_pregrasp, PREGRASP), (to_close, CLOSE), (to_lift, LIFT), (to_move, MOVE),
                          (to_align, ALIGN), (to_descend, DESCEND), (to_search, SEARCH), (to_insert, INSERT),
                          (give_up, ALIGN), (popped_out, ALIGN), (to_hold, HOLD), (to_backoff, BACKOFF),
                          (to_reinsert, INSERT),
                          (dropped, REACH)):
            self.set_phase(mask, nxt)
        self.prev_tip_z = tip[:, 2]
        return goal, yaw_cmd, grip, gain

    def _new_episode(self, new):
        task, n = self.task, self.task.num_envs
        in_hand = task.variant_id == VARIANTS.index("hand")
        self.set_phase(new & in_hand, MOVE)
        w = lambda lo, hi: lo + (hi - lo) * self.rand(n)
        self.gain = torch.where(new, w(0.5, 0.9), self.gain)
        self.descend_step = torch.where(new, w(0.0005, 0.001), self.descend_step)
        self.push = torch.where(new, w(3.0, 6.0), self.push)
        self.pause = torch.where(new, (self.rand(n) * 4).long(), self.pause)
        self.aim = torch.where(new[:, None], self._disk(self.aim_error), self.aim)
        self.spiral_dir = torch.where(new, torch.where(self.rand(n) < 0.5, -1.0, 1.0), self.spiral_dir)
        self.pitch = torch.where(new, self.search_pitch * w(0.75, 1.25), self.pitch)
        self.stuck = torch.where(new, torch.zeros_like(self.stuck), self.stuck)
        self.jam = torch.where(new, torch.zeros_like(self.jam), self.jam)
        self.fz = torch.where(new, torch.zeros_like(self.fz), self.fz)

    def _disk(self, radius: float) -> torch.Tensor:
        """(N, 2) points uniform in a disk."""
        n = self.task.num_envs
        ang, rad = self.rand(n) * 2 * math.pi, radius * self.rand(n).sqrt()
        return rad[:, None] * torch.stack([ang.cos(), ang.sin()], -1)
