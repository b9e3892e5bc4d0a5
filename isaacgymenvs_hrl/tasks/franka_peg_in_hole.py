"""Franka peg-in-hole: insert a peg with a parametric cross-section into a hole with a set clearance.

Peg shapes (``pegShapes``, one name or a list sampled per env):
  round:    the peg is a 32-sided prism inscribed in a circle of radius ``pegRadius``; the hole is
            24 box walls whose inner faces circumscribe a circle of radius pegRadius + clearance,
            so the radial gap is at least ``clearance`` at any peg yaw
  square:   square peg with half width (apothem) ``pegRadius``
  ngon<N>:  regular N-gon prism (N in 3..12, e.g. ngon3, ngon6) with apothem ``pegRadius``
            (``ngon4`` is the same as ``square``)
Polygon holes are N box walls whose inner faces form the peg's polygon grown by ``clearance`` per
side, so the fit is exact; the peg must be turned to the hole's yaw (modulo 2 pi / N) to go in.
Pegs are convex mesh prisms with a 45 degree chamfer of ``pegChamfer`` at the tip. Each hole
fixture is a free body (heavy base plate + walls) resting on the table: its pose is per-env state.
All shapes share one model: the scene holds one peg and one hole body per configured shape; an
env's unused ones are parked on the floor beyond the table.

Variants (``pegStart``, sampled per env): ``hand`` (the peg starts clamped between the fingers,
with offset / tilt noise) and ``table`` (the peg stands upright on the table: pick, then insert).

Success (geometric): the peg tip (centre of its bottom face) is at least ``insertDepth`` below the
hole's top and laterally inside the hole (closer to its axis than the hole's inner apothem). The
peg need not be released. Success held for ``successHoldSteps`` steps ends the episode when
``terminateOnSuccess``.

Wrist force-torque (``ft``): the ``wrist_force`` / ``wrist_torque`` sensors at the flange, rotated
into the world frame, with the static load of the hand and fingers removed (a tared sensor), and
negated: the wrench the environment exerts on the hand through the held peg. A held peg's weight
reads -m g in z; pressing the peg down on a surface reads a positive z force.

Simulation: as FrankaStack (the task config's ``sim`` block); peg contacts are stiffer than the
defaults and the Newton line search gets 50 iterations, so that a squeezed peg stays in the fingers.

Observation layout (identical for every shape and start, so a skill transfers between them):
  proprio (22): see franka_base
  peg (19):  peg position (3), quaternion (4, wxyz), tip position (3), tip -> hole top centre (3),
             end effector -> peg grasp point (3), peg yaw error to the hole modulo the shape's
             symmetry (1, rad, 0 for round), peg radius (1), peg length (1)
  hole (9):  hole top centre (3), hole quaternion (4, wxyz), inner apothem (1), insertDepth (1)
  ft (6):    external force (3) x ftScale[0], torque about the flange (3) x ftScale[1], world frame
  task (13): shape one-hot over SHAPE_NAMES (11), start one-hot (2: hand, table)
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict

import mujoco
import numpy as np
import torch

from ..controllers.kinematics import quat_from_rotation, rotation_from_quat
from ..utils.torch_jit_utils import yaw_from_quat
from .franka_base import (GRIP_MAX, PROPRIO_SIZE, FrankaBase, TaskConfigError, base_spec, parse_choice,
                          prism_vertices, regular_polygon, write_scene)

VARIANTS = ("hand", "table")
# every shape the task knows, in the fixed order of the one-hot (so that obs sizes never change)
SHAPE_NAMES = ("round", "square", "ngon3") + tuple(f"ngon{k}" for k in range(5, 13))
ROUND_PEG_SIDES = 32
ROUND_HOLE_WALLS = 24
REWARD_TERMS = ("reach", "grasp", "lift", "align", "insert", "success")
MIN_CLEARANCE = 0.0003
PEG_RGBA = (0.9, 0.6, 0.1, 1)
HOLE_RGBA = (0.6, 0.6, 0.65, 1)
WALL_THICKNESS = 0.008        # m, each hole wall
PLATE_HALF_HEIGHT = 0.005     # m, hole fixture base plate (the hole's floor is its top)
HOLE_MASS = 3.0               # kg, base plate (heavy: insertion forces do not shift it)
# Contact parameters; geom priority makes the peg's rule its contacts with the fingers and the table,
# the walls' the peg-wall contacts. Stiff solref: the light peg's soft contacts would give way under
# the fingers' squeeze by a fair part of the clearance. Torsional friction (a pad's contact patch)
# keeps the peg from pivoting about the finger axis when its tip drags on the rim.
PEG_CONTACT = dict(priority=1, condim=4, friction=[1.0, 0.02, 0.0001], solref=[0.004, 1.0],
                   solimp=[0.95, 0.99, 0.001, 0.5, 2.0])
WALL_CONTACT = dict(priority=2, condim=3, friction=[0.3, 0.005, 0.0001], solref=[0.004, 1.0],
                    solimp=[0.95, 0.99, 0.001, 0.5, 2.0])
LS_ITERATIONS = 50            # Newton line-search iterations (panda.xml: 20), see mjcf_path
GRASP_BELOW_TOP = 0.02        # m from the peg's top to the grasp point (the TCP when held)
PAD_BELOW_TCP = 0.005         # m the finger pads reach past the TCP


def shape_sides(shape: str) -> int:
    """Number of sides of a shape's polygon (0 for round)."""
    return 0 if shape == "round" else 4 if shape == "square" else int(shape[4:])


def parse_shapes(env: dict) -> list:
    value = env.get("pegShapes", ["round"])
    names = [value] if isinstance(value, str) else list(value)
    out = []
    for v in names:
        name = "square" if v == "ngon4" else v
        if name not in SHAPE_NAMES:
            hint = ""
            m = re.fullmatch(r"ngon(\d+)", str(v))
            if m:
                hint = f" ({v}: N must be 3..12)"
            raise TaskConfigError(f"task.env.pegShapes: unknown shape {v!r}{hint}; choose from round, square "
                                  "or ngon<N> for a regular N-gon with N in 3..12 (e.g. ngon3, ngon6)")
        if name not in out:
            out.append(name)
    if not out:
        raise TaskConfigError("task.env.pegShapes is empty; give at least one of round, square, ngon<N>")
    return out


def peg_polygon(shape: str, radius: float) -> np.ndarray:
    """(K, 2) cross-section of the peg in its body frame; polygons have a face normal along +y."""
    if shape == "round":
        return regular_polygon(ROUND_PEG_SIDES, radius * math.cos(math.pi / ROUND_PEG_SIDES), phase=0.0)
    return regular_polygon(shape_sides(shape), radius, phase=math.pi / 2)


def peg_vertices(shape: str, radius: float, length: float, chamfer: float) -> np.ndarray:
    """Peg prism along body z (tip = bottom face at -length / 2) with a 45 degree tip chamfer."""
    poly = peg_polygon(shape, radius)
    verts = prism_vertices(poly, length / 2)
    if chamfer > 0:
        n = len(poly)
        scale = 1.0 - chamfer / radius
        tip = np.c_[poly * scale, np.full(n, -length / 2)]
        ring = np.c_[poly, np.full(n, -length / 2 + chamfer)]
        verts = np.vstack([tip, ring, verts[n:]])
    return verts


def hole_walls(shape: str, apothem: float) -> list:
    """[(centre xy (2,), yaw)] of the walls whose inner faces form the hole's polygon."""
    n = ROUND_HOLE_WALLS if shape == "round" else shape_sides(shape)
    phase = 0.0 if shape == "round" else math.pi / 2
    out = []
    for k in range(n):
        ang = phase + 2 * math.pi * k / n
        r = apothem + WALL_THICKNESS / 2
        out.append((np.array([r * math.cos(ang), r * math.sin(ang)]), ang))
    return out


def hole_wall_half_length(shape: str, apothem: float) -> float:
    n = ROUND_HOLE_WALLS if shape == "round" else shape_sides(shape)
    # long enough that the outer faces meet too; the overhang lies behind the neighbouring wall
    return (apothem + WALL_THICKNESS) * math.tan(math.pi / n) + 1e-4


def park_spot(k: int, kind: str, peg_length: float) -> list:
    """Where the k-th shape's peg or hole fixture waits on the floor (z = -0.75) when unused."""
    if kind == "peg":
        return [1.3, -0.8 + 0.2 * k, -0.75 + peg_length / 2 + 1e-3]
    return [1.6, -0.8 + 0.2 * k, -0.75]


class FrankaPegInHole(FrankaBase):
    """Insert a peg into a hole with a Panda; see the module docstring for shapes, variants, success."""

    variant_names = VARIANTS
    group_names = SHAPE_NAMES
    reward_defaults = dict(zip(REWARD_TERMS, (0.1, 0.2, 0.2, 0.3, 0.5, 5.0)))
    reward_terms = REWARD_TERMS
    obs_units = {"proprio": "arm joints (rad), arm joint velocities (rad/s * dofVelocityScale), finger "
                            "opening (m per finger), TCP position (m), TCP quaternion (wxyz)",
                 "peg": "position (m), quaternion (wxyz), tip position (m), tip -> hole top (m), TCP -> "
                        "grasp point (m), yaw error (rad), radius (m), length (m)",
                 "hole": "top centre (m), quaternion (wxyz), inner apothem (m), insertDepth (m)",
                 "ft": "tared wrist force (N * ftScale[0]) and torque (Nm * ftScale[1]), world frame",
                 "task": "shape one-hot (11), start one-hot (2: hand, table)"}

    def __init__(self, cfg, rl_device, sim_device, graphics_device_id, headless,
                 virtual_screen_capture=False, force_render=False, auto_reset=True):
        env = cfg["env"]
        self.shapes = parse_shapes(env)
        self.start_choice = parse_choice(env, "pegStart", VARIANTS, "hand")
        self.peg_radius = float(env.get("pegRadius", 0.012))
        self.peg_length = float(env.get("pegLength", 0.08))
        self.peg_mass = float(env.get("pegMass", 0.05))
        self.peg_chamfer = float(env.get("pegChamfer", 0.001))
        self.clearance = float(env.get("clearance", 0.001))
        self.hole_depth = float(env.get("holeDepth", 0.03))
        self.insert_depth = float(env.get("insertDepth", 0.02))
        self.hole_x = tuple(float(v) for v in env.get("holePosX", (0.50, 0.60)))
        self.hole_y = tuple(float(v) for v in env.get("holePosY", (-0.12, 0.12)))
        self.hole_yaw_range = float(env.get("holeYawRange", 0.5))
        self.peg_x = tuple(float(v) for v in env.get("pegPosX", (0.33, 0.40)))
        self.peg_y = tuple(float(v) for v in env.get("pegPosY", (-0.15, 0.15)))
        self.in_hand_offset = float(env.get("pegInHandOffset", 0.003))
        self.in_hand_tilt = float(env.get("pegInHandTilt", 0.02))
        self.lift_height = float(env.get("liftHeight", 0.015))
        ft_scale = env.get("ftScale", (0.1, 1.0))
        ft_scale = [ft_scale] * 2 if isinstance(ft_scale, (int, float)) else list(ft_scale)
        if len(ft_scale) != 2:
            raise TaskConfigError(f"task.env.ftScale must be one number or [force, torque], got {ft_scale}")
        self.ft_scale = [float(v) for v in ft_scale]
        self._check_geometry()
        self.hole_apothem = self.peg_radius + self.clearance
        self.hole_top_local = 2 * PLATE_HALF_HEIGHT + self.hole_depth      # mouth above the fixture origin
        super().__init__(cfg, rl_device, sim_device, graphics_device_id, headless,
                         virtual_screen_capture, force_render, auto_reset)
        m, dev, n = self.engine.model, self.device, self.num_envs
        ns = len(self.shapes)
        jq = lambda name: m.jnt_qposadr[m.joint(name).id]
        self.peg_qadr = torch.tensor([jq(f"peg_{s}_joint") for s in self.shapes], device=dev)      # (S,)
        self.hole_qadr = torch.tensor([jq(f"hole_{s}_joint") for s in self.shapes], device=dev)    # (S,)
        self.shape_slot = torch.tensor([SHAPE_NAMES.index(s) for s in self.shapes], device=dev)    # (S,)
        self.shape_order = torch.tensor([shape_sides(s) for s in self.shapes], device=dev)          # (S,)
        # grasp geometry per shape: finger opening that touches the peg, peg centre offset along body y
        opening, y_off = [], []
        for s in self.shapes:
            poly = peg_polygon(s, self.peg_radius)
            ext_pos, ext_neg = poly[:, 1].max(), -poly[:, 1].min()
            opening.append(0.5 * (ext_pos + ext_neg))
            y_off.append(0.5 * (ext_neg - ext_pos))
        self.shape_opening = torch.tensor(opening, dtype=torch.float32, device=dev)                # (S,)
        self.shape_y_off = torch.tensor(y_off, dtype=torch.float32, device=dev)
        # parking spots on the floor beyond the table's far edge (x > 0.9), as placed by mjcf_path
        self.park_peg = torch.tensor([park_spot(k, "peg", self.peg_length) for k in range(ns)], device=dev)
        self.park_hole = torch.tensor([park_spot(k, "hole", self.peg_length) for k in range(ns)], device=dev)
        self.start_ids = torch.tensor([VARIANTS.index(v) for v in self.start_choice], device=dev)
        self.shape_idx = torch.zeros(n, dtype=torch.long, device=dev)      # index into self.shapes
        # wrist F/T: sensor addresses and the hand subtree's static load (mass, COM in the hand frame)
        self.ft_force_adr = int(m.sensor("wrist_force").adr[0])
        self.ft_torque_adr = int(m.sensor("wrist_torque").adr[0])
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        hand = m.body("panda_hand").id
        self.hand_mass = float(m.body_subtreemass[hand])
        rot = d.xmat[hand].reshape(3, 3)
        com = rot.T @ (d.subtree_com[hand] - d.site_xpos[m.site("ft_site").id])
        self.hand_com = torch.tensor(com, dtype=torch.float32, device=dev)
        self.gravity = float(-self.sim_params.gravity[2])

    def _check_geometry(self) -> None:
        r, c = self.peg_radius, self.clearance
        if not 0.004 <= r <= 0.03:
            raise TaskConfigError(f"task.env.pegRadius={r} m: use 0.004..0.03 m (the fingers open 4 cm each)")
        if c < MIN_CLEARANCE - 1e-12:
            raise TaskConfigError(f"task.env.clearance={c} m is below {MIN_CLEARANCE} m (0.3 mm per side), the "
                                  "tightest fit the contact model resolves at this timestep; use >= 0.0003")
        if c > min(0.01, 0.5 * r):
            raise TaskConfigError(f"task.env.clearance={c} m per side is not a fit for a {r} m peg; use "
                                  f"0.0003..{min(0.01, 0.5 * r):.4f} m (default 0.001)")
        if not 0 <= self.peg_chamfer <= 0.3 * r:
            raise TaskConfigError(f"task.env.pegChamfer={self.peg_chamfer} m: use 0..{0.3 * r:.4f} m "
                                  "(30% of pegRadius)")
        if not 0.005 <= self.hole_depth <= 0.1:
            raise TaskConfigError(f"task.env.holeDepth={self.hole_depth} m: use 0.005..0.1 m")
        if not 0 < self.insert_depth <= self.hole_depth:
            raise TaskConfigError(f"task.env.insertDepth={self.insert_depth} m must be in (0, holeDepth="
                                  f"{self.hole_depth}]")
        reach = self.peg_length - GRASP_BELOW_TOP - PAD_BELOW_TCP
        if reach - self.insert_depth < 0.01:
            raise TaskConfigError(f"task.env.pegLength={self.peg_length} m is too short: the fingers would hit the "
                                  f"hole at insertDepth={self.insert_depth}; use pegLength >= "
                                  f"{self.insert_depth + GRASP_BELOW_TOP + PAD_BELOW_TCP + 0.01:.3f} m")
        if self.peg_mass <= 0:
            raise TaskConfigError(f"task.env.pegMass must be positive, got {self.peg_mass}")
        for key, rng in (("holePosX", self.hole_x), ("holePosY", self.hole_y), ("pegPosX", self.peg_x),
                         ("pegPosY", self.peg_y)):
            if len(rng) != 2 or rng[0] > rng[1]:
                raise TaskConfigError(f"task.env.{key} must be [low, high], got {list(rng)}")

    # ---- scene --------------------------------------------------------------------------
    def mjcf_path(self):
        spec = base_spec()
        # the stiff finger-peg contacts need more line search than panda.xml's 20 to hold the peg
        spec.option.ls_iterations = max(spec.option.ls_iterations, LS_ITERATIONS)
        r, length = self.peg_radius, self.peg_length
        apothem = r + self.clearance
        for k, shape in enumerate(self.shapes):
            # hole fixture: body origin on the hole axis at the bottom of its base plate
            hole = spec.worldbody.add_body(name=f"hole_{shape}", pos=park_spot(k, "hole", length))
            hole.add_freejoint(name=f"hole_{shape}_joint")
            walls = hole_walls(shape, apothem)
            half_len = hole_wall_half_length(shape, apothem)
            plate = max(np.linalg.norm(xy) for xy, _ in walls) + half_len + 0.005
            hole.add_geom(name=f"hole_{shape}_plate", type=mujoco.mjtGeom.mjGEOM_BOX, mass=HOLE_MASS,
                          size=[plate, plate, PLATE_HALF_HEIGHT], pos=[0, 0, PLATE_HALF_HEIGHT],
                          rgba=HOLE_RGBA, friction=[1.0, 0.005, 0.0001])
            zc = 2 * PLATE_HALF_HEIGHT + self.hole_depth / 2
            for i, (xy, yaw) in enumerate(walls):
                hole.add_geom(name=f"hole_{shape}_wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX,
                              size=[WALL_THICKNESS / 2, half_len, self.hole_depth / 2],
                              pos=[xy[0], xy[1], zc], quat=[math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)],
                              mass=0.01, rgba=HOLE_RGBA, **WALL_CONTACT)
            hole.add_site(name=f"hole_{shape}_top", pos=[0, 0, self.hole_top_local], size=[0.003] * 3,
                          rgba=[0, 1, 0, 1], group=3)
            # peg: body origin at its centre, body z along the peg, tip (bottom face centre) at -length / 2
            peg = spec.worldbody.add_body(name=f"peg_{shape}", pos=park_spot(k, "peg", length))
            peg.add_freejoint(name=f"peg_{shape}_joint")
            spec.add_mesh(name=f"peg_{shape}_mesh",
                          uservert=peg_vertices(shape, r, length, self.peg_chamfer).ravel().tolist())
            peg.add_geom(name=f"peg_{shape}_geom", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"peg_{shape}_mesh",
                         mass=self.peg_mass, rgba=PEG_RGBA, **PEG_CONTACT)
            peg.add_site(name=f"peg_{shape}_tip", pos=[0, 0, -length / 2], size=[0.003] * 3, rgba=[1, 0, 1, 1],
                         group=3)
        return write_scene(spec, "franka_peg_in_hole")

    def obs_layout(self):
        return OrderedDict(proprio=PROPRIO_SIZE, peg=19, hole=9, ft=6, task=len(SHAPE_NAMES) + len(VARIANTS))

    # ---- object state -------------------------------------------------------------------
    def _free_qpos(self, qadr: torch.Tensor) -> torch.Tensor:
        idx = qadr[self.shape_idx][:, None] + torch.arange(7, device=self.device)        # (N, 7)
        return torch.gather(self.engine.qpos, 1, idx)

    def peg_pose(self) -> torch.Tensor:
        """Free-joint qpos (N, 7) of each env's active peg (centre position, quaternion wxyz)."""
        return self._free_qpos(self.peg_qadr)

    def hole_pose(self) -> torch.Tensor:
        """Free-joint qpos (N, 7) of each env's active hole fixture (origin at the plate's bottom)."""
        return self._free_qpos(self.hole_qadr)

    def peg_points(self, pose: torch.Tensor | None = None):
        """Peg tip (N, 3), grasp point (N, 3) and axis (N, 3, tip -> top) in the world."""
        pose = self.peg_pose() if pose is None else pose
        axis = rotation_from_quat(pose[:, 3:7])[:, :, 2]
        tip = pose[:, 0:3] - axis * (self.peg_length / 2)
        grasp = pose[:, 0:3] + axis * (self.peg_length / 2 - GRASP_BELOW_TOP)
        return tip, grasp, axis

    def hole_top(self, pose: torch.Tensor | None = None) -> torch.Tensor:
        """Centre of the hole's mouth (N, 3) in the world."""
        pose = self.hole_pose() if pose is None else pose
        return pose[:, 0:3] + rotation_from_quat(pose[:, 3:7])[:, :, 2] * self.hole_top_local

    def symmetry_order(self) -> torch.Tensor:
        """Rotational symmetry order of each env's peg (N,), 0 for round."""
        return self.shape_order[self.shape_idx]

    def grasp_half_width(self) -> torch.Tensor:
        """Finger opening (N,) that touches each env's peg."""
        return self.shape_opening[self.shape_idx]

    def wrist_wrench(self) -> torch.Tensor:
        """External wrench on the hand (N, 6): force (N) and torque about the flange (N m), world frame,
        with the static load of the hand and fingers removed (see the module docstring). Zero in an
        episode's first observation: the engine's sensordata of a just-reset env is the old episode's."""
        sd = self.engine.sensordata
        _, rot = self.ee_pose()                                   # hand frame == ee_site frame
        f = torch.einsum("nij,nj->ni", rot, sd[:, self.ft_force_adr:self.ft_force_adr + 3])
        t = torch.einsum("nij,nj->ni", rot, sd[:, self.ft_torque_adr:self.ft_torque_adr + 3])
        w = compute_wrist_wrench(f, t, rot, self.hand_com, self.hand_mass * self.gravity)
        return torch.where(self.progress_buf[:, None] > 0, w, torch.zeros_like(w))

    # ---- step hooks ---------------------------------------------------------------------
    def success_and_reward(self, reward_type: str):
        """(success (N,), reward (N,), weighted terms (N, 6) in REWARD_TERMS order) of the current
        state under ``reward_type``."""
        peg, hole = self.peg_pose(), self.hole_pose()
        tip, grasp, _ = self.peg_points(peg)
        top = self.hole_top(hole)
        ee_pos, _ = self.ee_pose()
        success = peg_in_hole_success(tip, top, self.hole_apothem, self.insert_depth)
        rew, terms = peg_in_hole_reward(ee_pos, grasp, self.finger_opening(), self.grasp_half_width(), tip, top,
                                        self.hole_apothem, self.insert_depth, self.lift_height, success,
                                        self.variant_id == VARIANTS.index("table"), self.reward_scale_vec,
                                        reward_type)
        return success, rew, terms

    def reward_for(self, reward_type: str) -> torch.Tensor:
        """Reward of the current state under any reward type (zero-shot exploration statistics)."""
        return self.success_and_reward(reward_type)[1]

    def exploration_features(self) -> dict:
        return super().exploration_features() | {"objects": self.peg_pose()[:, 0:3]}

    def post_physics_step(self):
        success, rew, terms = self.success_and_reward(self.reward_type)
        self.record_step(success, rew, terms)

    def reset_idx(self, env_ids):
        n, dev = len(env_ids), self.device
        arm = self.home_arm(n)
        # logs the ending episodes under their own (start, shape): before the new ones are drawn
        self.reset_task_state(env_ids, arm)
        self.shape_idx[env_ids] = torch.randint(len(self.shapes), (n,), device=dev)
        self.group_id[env_ids] = self.shape_slot[self.shape_idx[env_ids]]
        self.variant_id[env_ids] = self.start_ids[torch.randint(len(self.start_ids), (n,), device=dev)]
        shape = self.shape_idx[env_ids]
        in_hand = self.variant_id[env_ids] == VARIANTS.index("hand")
        m = self.engine.model
        qpos = torch.zeros(n, m.nq, device=dev)
        qpos[:, self.arm_qadr] = arm
        # every peg and hole parked, then the env's own placed
        unit = torch.tensor([1.0, 0, 0, 0], device=dev)
        for qadr, park in ((self.peg_qadr, self.park_peg), (self.hole_qadr, self.park_hole)):
            idx = qadr[:, None] + torch.arange(7, device=dev)
            qpos[:, idx.reshape(-1)] = torch.cat([park, unit.expand(len(park), 4)], -1).reshape(-1)
        u = lambda lo_hi: lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(n, device=dev)
        hole_yaw = (torch.rand(n, device=dev) * 2 - 1) * self.hole_yaw_range
        hole = torch.stack([u(self.hole_x), u(self.hole_y), torch.zeros(n, device=dev),
                            torch.cos(hole_yaw / 2), torch.zeros(n, device=dev), torch.zeros(n, device=dev),
                            torch.sin(hole_yaw / 2)], -1)
        # table start: upright on the table, any yaw
        peg_yaw = (torch.rand(n, device=dev) * 2 - 1) * math.pi
        table_peg = torch.stack([u(self.peg_x), u(self.peg_y), torch.full((n,), self.peg_length / 2 + 5e-4, device=dev),
                                 torch.cos(peg_yaw / 2), torch.zeros(n, device=dev), torch.zeros(n, device=dev),
                                 torch.sin(peg_yaw / 2)], -1)
        hand_peg = self._in_hand_pose(arm, shape)
        peg = torch.where(in_hand[:, None], hand_peg, table_peg)
        open_ = torch.full((n,), GRIP_MAX, device=dev)
        fingers = torch.where(in_hand, self.shape_opening[shape] - 2e-4, open_)
        qpos[:, self.finger_qadr] = fingers[:, None]
        rows = torch.arange(n, device=dev)[:, None]
        qpos[rows, self.peg_qadr[shape][:, None] + torch.arange(7, device=dev)] = peg
        qpos[rows, self.hole_qadr[shape][:, None] + torch.arange(7, device=dev)] = hole
        grip = torch.where(in_hand, torch.zeros_like(open_), open_)          # squeezing / open from the start
        self.engine.ctrl[env_ids, self.grip_act] = grip.to(self.engine.ctrl)
        self.engine.reset_envs(env_ids, qpos, torch.zeros(n, m.nv, device=dev))

    def _in_hand_pose(self, arm_q: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        """Peg pose (n, 7) clamped between the fingers of the arm at arm_q, with offset and tilt noise."""
        n, dev = len(arm_q), self.device
        tcp, rot = self.kin.forward(arm_q, jacobian=False)
        tcp, rot = tcp.float(), rot.float()
        # peg body in the tool frame: turned by pi about tool x (peg z up when the tool points down),
        # tilted about the finger axis (tool y) around the grasp point
        tilt = (torch.rand(n, device=dev) * 2 - 1) * self.in_hand_tilt
        c, s = torch.cos(tilt), torch.sin(tilt)
        o, z = torch.ones_like(c), torch.zeros_like(c)
        flip = torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]], device=dev)
        tilt_rot = torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(n, 3, 3)     # about body y
        r_local = flip @ tilt_rot
        centre = r_local @ torch.tensor([0.0, 0.0, -(self.peg_length / 2 - GRASP_BELOW_TOP)], device=dev)
        noise = (torch.rand(n, 2, device=dev) * 2 - 1) * self.in_hand_offset
        offset = torch.stack([noise[:, 0], -self.shape_y_off[shape], noise[:, 1]], -1)  # tool frame
        pos = tcp + torch.einsum("nij,nj->ni", rot, centre + offset)
        return torch.cat([pos, quat_from_rotation(rot @ r_local)], -1)

    def compute_observations(self):
        peg, hole = self.peg_pose(), self.hole_pose()
        tip, grasp, _ = self.peg_points(peg)
        top = self.hole_top(hole)
        ee_pos, _ = self.ee_pose()
        yaw_err = peg_yaw_error(peg[:, 3:7], hole[:, 3:7], self.symmetry_order())
        n = self.num_envs
        peg_obs = torch.cat([peg, tip, top - tip, grasp - ee_pos, yaw_err[:, None],
                             torch.full((n, 1), self.peg_radius, device=self.device),
                             torch.full((n, 1), self.peg_length, device=self.device)], -1)
        hole_obs = torch.cat([top, hole[:, 3:7], torch.full((n, 1), self.hole_apothem, device=self.device),
                              torch.full((n, 1), self.insert_depth, device=self.device)], -1)
        w = self.wrist_wrench()
        ft = torch.cat([w[:, 0:3] * self.ft_scale[0], w[:, 3:6] * self.ft_scale[1]], -1)
        task = torch.cat([torch.nn.functional.one_hot(self.group_id, len(SHAPE_NAMES)).float(),
                          torch.nn.functional.one_hot(self.variant_id, len(VARIANTS)).float()], -1)
        self.obs_buf[:] = torch.cat([self.proprio_obs(), peg_obs, hole_obs, ft, task], dim=-1)


# ---- batched math -------------------------------------------------------------------------
@torch.jit.script
def compute_wrist_wrench(force_w: torch.Tensor, torque_w: torch.Tensor, hand_rot: torch.Tensor,
                         hand_com: torch.Tensor, hand_weight: float) -> torch.Tensor:
    """Sensor wrench (world frame: what link7 exerts on the hand) -> external wrench on the hand, tared.

    At rest the flange carries the hand's weight: force = +W z, torque = com x (W z)."""
    up = torch.zeros_like(force_w)
    up[:, 2] = hand_weight
    com = torch.einsum("nij,j->ni", hand_rot, hand_com)
    return torch.cat([up - force_w, torch.cross(com, up, dim=-1) - torque_w], dim=-1)


@torch.jit.script
def peg_yaw_error(peg_quat: torch.Tensor, hole_quat: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Turn (N,) about world z from the peg's yaw to the hole's, modulo 2 pi / order (0 for round)."""
    period = 2.0 * math.pi / order.clamp_min(1).float()
    d = torch.remainder(yaw_from_quat(hole_quat) - yaw_from_quat(peg_quat) + period / 2, period) - period / 2
    return torch.where(order > 0, d, torch.zeros_like(d))


@torch.jit.script
def peg_in_hole_success(tip: torch.Tensor, hole_top: torch.Tensor, hole_apothem: float,
                        insert_depth: float) -> torch.Tensor:
    """The tip is ``insert_depth`` below the hole's mouth and laterally inside the hole."""
    depth = hole_top[:, 2] - tip[:, 2]
    lateral = torch.norm(tip[:, 0:2] - hole_top[:, 0:2], dim=-1)
    return (depth >= insert_depth) & (lateral < hole_apothem)


@torch.jit.script
def peg_in_hole_reward(ee_pos: torch.Tensor, grasp: torch.Tensor, opening: torch.Tensor,
                       half_width: torch.Tensor, tip: torch.Tensor, hole_top: torch.Tensor,
                       hole_apothem: float, insert_depth: float, lift_height: float, success: torch.Tensor,
                       is_table: torch.Tensor, scales: torch.Tensor, reward_type: str):
    """Reward and per-term weighted values (N, 6) in REWARD_TERMS order.

    reach / grasp / lift count for the table start only (the hand start begins with them done)."""
    n = ee_pos.shape[0]
    d_reach = torch.norm(ee_pos - grasp, dim=-1)
    reached = d_reach < 0.02
    grasped = reached & (opening < half_width + 0.004)
    lateral = torch.norm(tip[:, 0:2] - hole_top[:, 0:2], dim=-1)
    depth = hole_top[:, 2] - tip[:, 2]
    in_hole = (lateral < hole_apothem) & (depth > 0.0)
    lifted = grasped & ((tip[:, 2] > lift_height) | in_hole)
    # distance to the hole's axis, plus the height above a hover point 1 cm over the mouth
    d_align = torch.sqrt(lateral * lateral + torch.clamp(tip[:, 2] - hole_top[:, 2] - 0.01, min=0.0) ** 2)
    aligned = (lateral < hole_apothem) & (depth > -0.02)
    progress = torch.clamp(depth / insert_depth, 0.0, 1.0) * in_hole.float()
    table = is_table.float()
    if reward_type == "dense":
        lift_frac = torch.clamp(tip[:, 2] / 0.05, 0.0, 1.0)
        stage = torch.stack([(1.0 - torch.tanh(10.0 * d_reach)) * table, grasped.float() * table,
                             torch.maximum(lift_frac, in_hole.float()) * grasped.float() * table,
                             1.0 - torch.tanh(10.0 * d_align), progress], dim=-1)
    elif reward_type == "staged":
        stage = torch.stack([reached.float() * table, grasped.float() * table, lifted.float() * table,
                             aligned.float(), (progress >= 0.5).float()], dim=-1)
    else:
        stage = torch.zeros(n, 5, device=ee_pos.device)
    terms = torch.cat([stage, success.float()[:, None]], dim=-1) * scales
    return terms.sum(-1), terms
