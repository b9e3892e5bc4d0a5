"""Franka stacking of three coloured objects, with RGB-stacking-like object sets and variants.

Object sets (``objectSets``, sampled per env): shapes of (red, green, blue)
  cubes:     5 cm cubes
  cylinders: 16-sided prisms, 5 cm wide and high
  boxes:     red tall box (4 x 4 x 8 cm), green and blue flat boxes (6 x 6 x 3 cm)
  slanted:   convex wedges with slanted faces (trapezoid / parallelogram cross-sections, flat tops)
  mixed:     red cylinder, green trapezoid, blue flat box
All envs share one model: the scene holds one body per (colour, shape) used by the selected sets;
an env's unused bodies are parked on the floor beside the table, out of reach.

Variants (``variants``, sampled per env): ``<top>_on_<bottom>`` for the six ordered colour pairs,
and ``pyramid`` (red placed beside green, blue on top of both).

Success (geometric): the top object rests on the bottom one (centre within the bottom's top face
half-width in xy, height gap within ``stackHeightTol`` of touching) and the gripper is at least
``releaseDistance`` from it. Success held for ``successHoldSteps`` steps ends the episode when
``terminateOnSuccess``.

Observation layout:
  proprio (22): see franka_base
  objects (45): per colour (r, g, b): position (3), quaternion (4, wxyz), half height, half width;
                end effector -> object vectors (3 x 3); red->green, red->blue, green->blue (3 x 3)
                (fields objects.poses, objects.ee_to_obj, objects.obj_to_obj)
  task (13):    variant one-hot (7), object-set one-hot (5), pyramid side (+-1 in y, 0 otherwise)
  grasp_yaw (6): per colour, sin and cos of the object's grasp symmetry order times (object yaw - tool
                yaw): the turn to the nearest grasp face as a smooth function, which a network does
                not easily get from the two quaternions (order 0, any yaw: 0 and 1)

Grasp sensor (``grasp()``, not an observation slice, so datasets and LLCs keep their layout): an
env is in a grasp when both finger bodies touch the same active object. One MuJoCo ``contact``
sensor per (finger, object body) pair reports whether such a contact exists (``extras["grasp"]``
each step); both backends (C MuJoCo, MuJoCo Warp) compute it inside ``mj_step``, so it lags
``qpos`` by one physics step (see sim/engine.py) and reads False on an episode's first
observation. Zero-shot exploration gets it as the ``grasped`` feature (0/1); its mean over steps
is HeLMS' grasp coverage.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import mujoco
import numpy as np
import torch

from ..controllers.arm_action import tool_yaw
from ..utils.torch_jit_utils import yaw_from_quat
from .base.markers import BOX, Marker
from .demo_states import DemoStates
from .franka_base import (GRIP_MAX, PROPRIO_SIZE, FrankaBase, TaskConfigError, base_spec, parse_choice,
                          prism_vertices, regular_polygon, side_prism_vertices, write_scene)

COLORS = ("red", "green", "blue")
RGBA = {"red": (0.85, 0.1, 0.1, 1), "green": (0.1, 0.75, 0.1, 1), "blue": (0.1, 0.2, 0.9, 1)}
VARIANTS = ("red_on_blue", "red_on_green", "green_on_red", "green_on_blue", "blue_on_red",
            "blue_on_green", "pyramid")
# shape -> (half height, half width of the top face, grasp symmetry order (0 = any yaw))
SHAPES = {
    "cube": (0.025, 0.025, 4),
    "cylinder": (0.025, 0.025, 0),
    "tall_box": (0.04, 0.02, 4),
    "flat_box": (0.015, 0.03, 4),
    "trapezoid": (0.025, 0.015, 2),
    "parallelogram": (0.025, 0.015, 2),
}
OBJECT_SETS = {
    "cubes": ("cube", "cube", "cube"),
    "cylinders": ("cylinder", "cylinder", "cylinder"),
    "boxes": ("tall_box", "flat_box", "flat_box"),
    "slanted": ("trapezoid", "parallelogram", "trapezoid"),
    "mixed": ("cylinder", "trapezoid", "flat_box"),
}
SET_NAMES = tuple(OBJECT_SETS)
OBJECT_MASS = 0.07
REWARD_TERMS = ("reach", "grasp", "lift", "place", "release", "success")
FINGER_BODIES = ("leftfinger", "rightfinger")


def add_shape(spec: mujoco.MjSpec, body, name: str, shape: str, rgba) -> None:
    """One object geom of ``shape`` centred on the body origin (flat bottom at -half height)."""
    common = dict(name=f"{name}_geom", rgba=rgba, mass=OBJECT_MASS, condim=4,
                  friction=[1.0, 0.005, 0.0001], solref=[0.01, 1.0], solimp=[0.95, 0.99, 0.001, 0.5, 2.0])
    hh = SHAPES[shape][0]
    if shape in ("cube", "tall_box", "flat_box"):
        hw = SHAPES[shape][1]
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[hw, hw, hh], **common)
        return
    if shape == "cylinder":
        verts = prism_vertices(regular_polygon(16, 0.025), hh)
    elif shape == "trapezoid":
        verts = side_prism_vertices([(-0.03, -hh), (0.03, -hh), (0.015, hh), (-0.015, hh)], 0.025)
    else:   # parallelogram
        verts = side_prism_vertices([(-0.025, -hh), (0.015, -hh), (0.025, hh), (-0.015, hh)], 0.025)
    spec.add_mesh(name=f"{name}_mesh", uservert=verts.ravel().tolist())
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"{name}_mesh", **common)


class FrankaStack(FrankaBase):
    """Stack coloured objects with a Panda; see the module docstring for sets, variants, success."""

    variant_names = VARIANTS
    group_names = SET_NAMES
    # objects.ee_to_obj lets a low level read where the objects are from the hand (a field a
    # skill's low level may take, like proprio.joint_pos) without the objects' absolute poses
    obs_fields = {**FrankaBase.obs_fields,
                  "objects": (("poses", 27), ("ee_to_obj", 9), ("obj_to_obj", 9))}
    # the objects that object_qpos(), object_dims() and grasped_colour() index, in order: skill
    # diagnostics name a skill's end state by them ("reach red", "lift blue")
    object_names = COLORS
    reward_defaults = dict(zip(REWARD_TERMS, (0.1, 0.2, 0.3, 0.5, 2.0, 20.0)))
    reward_terms = REWARD_TERMS
    obs_units = {"proprio": "arm joints (rad), arm joint velocities (rad/s * dofVelocityScale), finger "
                            "opening (m per finger), TCP position (m), TCP quaternion (wxyz)",
                 "objects": "per colour r, g, b: position (m), quaternion (wxyz), half height (m), half "
                            "width (m); TCP -> object vectors (m); red->green, red->blue, green->blue (m)",
                 "task": "variant one-hot (7), object-set one-hot (5), pyramid side (+-1)",
                 "grasp_yaw": "per colour r, g, b: sin, cos of symmetry order * (object yaw - tool yaw)"}
    # per-step signals reported in extras, not in the observation (obs_units covers obs slices only)
    extras_units = {"grasp": "(N,) bool: both fingers in contact with one active object (MuJoCo contact "
                             "sensors, one physics step old); grasp() / grasped_colour() (0 r, 1 g, 2 b, -1)"}

    def __init__(self, cfg, rl_device, sim_device, graphics_device_id, headless,
                 virtual_screen_capture=False, force_render=False, auto_reset=True):
        env = cfg["env"]
        self.set_choice = parse_choice(env, "objectSets", SET_NAMES, "cubes", {"all": SET_NAMES})
        # HeLMS' all_pairs: the six ordered pairs (over objectSets=all, all five sets)
        self.variant_choice = parse_choice(env, "variants", VARIANTS, "red_on_blue", {"all_pairs": VARIANTS[:6]})
        # (colour, shape) pairs the scene needs, in a fixed order
        self.object_bodies = sorted({(c, OBJECT_SETS[s][i]) for s in self.set_choice
                                     for i, c in enumerate(COLORS)}, key=lambda p: (COLORS.index(p[0]), p[1]))
        self.stack_height_tol = float(env.get("stackHeightTol", 0.01))
        self.release_distance = float(env.get("releaseDistance", 0.06))
        self.spawn_x = tuple(env.get("spawnX", (0.42, 0.58)))
        self.spawn_y_gap = float(env.get("spawnYGap", 0.15))
        demo = env.get("demoResets") or {}
        self.demo_fraction = float(demo.get("fraction", 0.0))
        self.demo_path = str(demo.get("path", "") or "")
        if self.demo_fraction > 0 and not self.demo_path:
            raise TaskConfigError("task.env.demoResets.fraction > 0 needs demoResets.path (an hrl-collect "
                                  "dataset of FrankaStack)")
        self.demo_states = None       # loaded after the scene exists (its state widths are checked)
        self.demo_variant = self.demo_group = self.demo_side = None   # per dataset row, from its task slice
        super().__init__(cfg, rl_device, sim_device, graphics_device_id, headless,
                         virtual_screen_capture, force_render, auto_reset)
        m, dev, n = self.engine.model, self.device, self.num_envs
        nb = len(self.object_bodies)
        self.body_qadr = torch.tensor([m.jnt_qposadr[m.joint(f"{c}_{s}_joint").id] for c, s in self.object_bodies],
                                      device=dev)                                    # (B,)
        self.body_dadr = torch.tensor([m.jnt_dofadr[m.joint(f"{c}_{s}_joint").id] for c, s in self.object_bodies],
                                      device=dev)
        # grasp sensor: sensordata address per (object body, finger), (B, 2)
        self.contact_adr = torch.tensor([[int(m.sensor(f"{c}_{s}_{f}_contact").adr[0]) for f in FINGER_BODIES]
                                         for c, s in self.object_bodies], device=dev)
        shape_info = torch.tensor([SHAPES[s] for _, s in self.object_bodies], dtype=torch.float32, device=dev)
        self.body_hh, self.body_hw, self.body_sym = shape_info[:, 0], shape_info[:, 1], shape_info[:, 2].long()
        # parking spots on the floor beyond the table's far edge (x > 0.9)
        k = torch.arange(nb, device=dev, dtype=torch.float32)
        self.park_pos = torch.stack([1.3 + 0.15 * (k % 6), -0.8 + 0.3 * torch.div(k, 6, rounding_mode="floor"),
                                     -0.75 + self.body_hh + 0.001], dim=-1)           # (B, 3)
        index = {p: i for i, p in enumerate(self.object_bodies)}
        self.set_ids = torch.tensor([SET_NAMES.index(s) for s in self.set_choice], device=dev)
        self.variant_ids = torch.tensor([VARIANTS.index(v) for v in self.variant_choice], device=dev)
        # set id -> body index per colour (sets not selected map to body 0; never sampled)
        table = torch.zeros(len(SET_NAMES), 3, dtype=torch.long, device=dev)
        for s in self.set_choice:
            for i, c in enumerate(COLORS):
                table[SET_NAMES.index(s), i] = index[(c, OBJECT_SETS[s][i])]
        self.set_bodies = table
        # variant id -> (top colour, bottom colour); pyramid: (blue, red) with its own predicate
        pairs = [(COLORS.index(v.split("_on_")[0]), COLORS.index(v.split("_on_")[1])) if v != "pyramid" else (2, 0)
                 for v in VARIANTS]
        self.variant_pairs = torch.tensor(pairs, device=dev)                            # (7, 2)
        self.active_body = torch.zeros(n, 3, dtype=torch.long, device=dev)              # (N, 3) body per colour
        self.pyramid_side = torch.zeros(n, device=dev)
        if self.demo_fraction > 0:
            self.demo_states = self._load_demo_states()

    def _load_demo_states(self) -> DemoStates:
        """Load the dataset and decode each row's variant, object set and pyramid side once (the
        task slice is laid out by compute_observations)."""
        m = self.engine.model
        demo = DemoStates(self.demo_path, "FrankaStack", m.nq, m.nv, self.device)
        nv = len(VARIANTS)
        self.demo_variant = demo.task_obs[:, :nv].argmax(-1)
        self.demo_group = demo.task_obs[:, nv:nv + len(SET_NAMES)].argmax(-1)
        self.demo_side = demo.task_obs[:, -1]
        extra = [SET_NAMES[i] for i in set(self.demo_group.tolist()) - set(self.set_ids.tolist())] + \
            [VARIANTS[i] for i in set(self.demo_variant.tolist()) - set(self.variant_ids.tolist())]
        if extra:
            raise TaskConfigError(f"task.env.demoResets.path={self.demo_path} holds episodes of {extra}, which "
                                  f"this task does not sample (objectSets {self.set_choice}, variants "
                                  f"{self.variant_choice}); collect the dataset with the same settings")
        return demo

    # ---- scene --------------------------------------------------------------------------
    def mjcf_path(self):
        spec = base_spec()
        for k, (color, shape) in enumerate(self.object_bodies):
            name = f"{color}_{shape}"
            body = spec.worldbody.add_body(name=name, pos=[1.3 + 0.15 * (k % 6), -0.8 + 0.3 * (k // 6),
                                                           -0.75 + SHAPES[shape][0] + 0.001])
            body.add_freejoint(name=f"{name}_joint")
            add_shape(spec, body, name, shape, RGBA[color])
            body.add_site(name=f"{name}_site", size=[0.005, 0.005, 0.005], group=3)
            for finger in FINGER_BODIES:      # grasp sensor: does this finger touch this object?
                spec.add_sensor(name=f"{name}_{finger}_contact", type=mujoco.mjtSensor.mjSENS_CONTACT,
                                objtype=mujoco.mjtObj.mjOBJ_BODY, objname=f"panda_{finger}",
                                reftype=mujoco.mjtObj.mjOBJ_BODY, refname=name,
                                intprm=[1 << int(mujoco.mjtConDataField.mjCONDATA_FOUND), 0, 1])
        return write_scene(spec, "franka_stack")

    def obs_layout(self):
        return OrderedDict(proprio=PROPRIO_SIZE, objects=45, task=len(VARIANTS) + len(SET_NAMES) + 1,
                           grasp_yaw=6)

    # ---- object state -------------------------------------------------------------------
    def object_qpos(self) -> torch.Tensor:
        """Free-joint qpos (N, 3, 7) of the active red, green, blue objects (pos, quat wxyz)."""
        idx = self.body_qadr[self.active_body][..., None] + torch.arange(7, device=self.device)   # (N, 3, 7)
        return torch.gather(self.engine.qpos, 1, idx.reshape(self.num_envs, -1)).reshape(self.num_envs, 3, 7)

    def object_dims(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Half heights (N, 3), top half widths (N, 3), grasp symmetry orders (N, 3) per colour."""
        return self.body_hh[self.active_body], self.body_hw[self.active_body], self.body_sym[self.active_body]

    def plan(self):
        """Current pick-and-place subtask per env: picked colour (N,), target centre of the picked
        object (N, 3), subtasks already done (N,), subtasks in total (N,)."""
        pose = self.object_qpos()
        hh, hw, _ = self.object_dims()
        return stack_plan(pose[:, :, 0:3], hh, hw, self.variant_pairs[self.variant_id],
                          self.variant_id == VARIANTS.index("pyramid"), self.pyramid_side,
                          self.stack_height_tol)

    # ---- step hooks ---------------------------------------------------------------------
    def success_and_reward(self, reward_type: str):
        """(success (N,), reward (N,), weighted terms (N, 6) in REWARD_TERMS order) of the current
        state under ``reward_type``."""
        pose = self.object_qpos()
        hh, hw, _ = self.object_dims()
        ee_pos, _ = self.ee_pose()
        pick, target, done_sub, total_sub = self.plan()
        success = stack_success(pose[:, :, 0:3], hh, hw, ee_pos, self.variant_pairs[self.variant_id],
                                self.variant_id == VARIANTS.index("pyramid"), self.stack_height_tol,
                                self.release_distance)
        grip_command = self.engine.ctrl[:, self.grip_act].to(ee_pos) / GRIP_MAX   # 0 closed .. 1 open
        rew, terms = stack_reward(pose[:, :, 0:3], hh, hw, ee_pos, self.finger_opening(), grip_command, pick,
                                  target, done_sub, total_sub, success, self.reward_scale_vec, reward_type,
                                  self.release_distance)
        return success, rew, terms

    def reward_for(self, reward_type: str) -> torch.Tensor:
        """Reward of the current state under any reward type (zero-shot exploration statistics)."""
        return self.success_and_reward(reward_type)[1]

    def grasped_colour(self) -> torch.Tensor:
        """(N,) colour index (0 red, 1 green, 2 blue) of the active object both fingers touch, -1
        for none (if two were, the first). Contact sensors, so squeezing air or one-sided pushes
        do not count, whatever the finger opening says."""
        adr = self.contact_adr[self.active_body].view(self.num_envs, 6)                  # (N, 3 colours x 2 fingers)
        touch = (torch.gather(self.engine.sensordata, 1, adr) > 0).view(self.num_envs, 3, 2)
        both = touch.all(-1) & (self.progress_buf > 0)[:, None]    # sensors of a fresh reset are stale
        first = both.float().argmax(-1)
        return torch.where(both.any(-1), first, torch.full_like(first, -1))

    def grasp(self) -> torch.Tensor:
        """(N,) bool: both fingers touch one object (HeLMS' grasp state)."""
        return self.grasped_colour() >= 0

    def exploration_features(self) -> dict:
        """``hand``: where the hand is relative to the task (TCP height, TCP to each object), the
        end-state descriptors a skill is named by (reach red, lift...)."""
        obj = self.object_qpos()[:, :, 0:3]
        tcp = self.ee_pose()[0]
        hand = torch.cat([tcp[:, 2:3], (obj - tcp[:, None]).norm(dim=-1)], -1)
        return super().exploration_features() | {"objects": obj.flatten(1), "hand": hand,
                                                 "grasped": self.grasp().float()[:, None]}

    def post_physics_step(self):
        self.record_step(*self.success_and_reward(self.reward_type))
        self.extras["grasp"] = self.grasp()

    def reset_idx(self, env_ids):
        n, dev = len(env_ids), self.device
        m = self.engine.model
        qpos, qvel = torch.zeros(n, m.nq, device=dev), torch.zeros(n, m.nv, device=dev)
        arm = self.home_arm(n)
        if self.demo_states is not None:
            from_demo, rows = self.demo_states.sample(n, self.demo_fraction, dev)
            arm = torch.where(from_demo[:, None], self.demo_states.qpos[rows][:, self.arm_qadr], arm)
        qpos[:, self.arm_qadr] = arm
        self.reset_task_state(env_ids, arm)   # logs the ending episodes: before new draws
        self.group_id[env_ids] = self.set_ids[torch.randint(len(self.set_ids), (n,), device=dev)]
        self.variant_id[env_ids] = self.variant_ids[torch.randint(len(self.variant_ids), (n,), device=dev)]
        self.active_body[env_ids] = self.set_bodies[self.group_id[env_ids]]
        qpos[:, self.finger_qadr] = 0.04
        # every object body parked, then the env's three active ones placed on the table
        park = torch.cat([self.park_pos, torch.tensor([1.0, 0, 0, 0], device=dev).expand(len(self.park_pos), 4)], -1)
        park_idx = self.body_qadr[:, None] + torch.arange(7, device=dev)                 # (B, 7)
        qpos[:, park_idx.reshape(-1)] = park.reshape(-1)
        slots = torch.argsort(torch.rand(n, 3, device=dev), dim=-1).float() - 1.0         # (n, 3) in {-1, 0, 1}
        y = slots * self.spawn_y_gap + (torch.rand(n, 3, device=dev) * 2 - 1) * 0.02
        x = self.spawn_x[0] + (self.spawn_x[1] - self.spawn_x[0]) * torch.rand(n, 3, device=dev)
        yaw = (torch.rand(n, 3, device=dev) * 2 - 1) * math.pi
        hh = self.body_hh[self.active_body[env_ids]]
        pose = torch.stack([x, y, hh + 0.001, torch.cos(yaw / 2), torch.zeros_like(yaw), torch.zeros_like(yaw),
                            torch.sin(yaw / 2)], dim=-1)                                 # (n, 3, 7)
        idx = self.body_qadr[self.active_body[env_ids]][..., None] + torch.arange(7, device=dev)
        qpos.scatter_(1, idx.reshape(n, -1), pose.reshape(n, -1))
        self.pyramid_side[env_ids] = torch.where(y[:, 0] > y[:, 1], 1.0, -1.0) * \
            (self.variant_id[env_ids] == VARIANTS.index("pyramid")).float()
        if self.demo_states is not None:
            self.demo_start[env_ids] = from_demo
            ids, rows = env_ids[from_demo], rows[from_demo]
            qpos[from_demo], qvel[from_demo] = self.demo_states.qpos[rows], self.demo_states.qvel[rows]
            self.variant_id[ids] = self.demo_variant[rows]
            self.group_id[ids] = self.demo_group[rows]
            self.active_body[ids] = self.set_bodies[self.group_id[ids]]
            self.pyramid_side[ids] = self.demo_side[rows]
        self.engine.reset_envs(env_ids, qpos, qvel)

    def visual_markers(self, env_id):
        """The goal of the current subtask: the picked object's size and colour, see-through, where its
        centre must go."""
        pick, target, _, _ = self.plan()
        hh, hw, _ = self.object_dims()
        c = int(pick[env_id])
        h, w = float(hh[env_id, c]), float(hw[env_id, c])
        return [Marker(BOX, tuple(target[env_id].tolist()), (w, w, h), (*RGBA[COLORS[c]][:3], 0.35))]

    def compute_observations(self):
        pose = self.object_qpos()
        hh, hw, sym = self.object_dims()
        ee_pos, ee_rot = self.ee_pose()
        objects = compute_stack_object_obs(pose, hh, hw, ee_pos)
        task = torch.cat([torch.nn.functional.one_hot(self.variant_id, len(VARIANTS)).float(),
                          torch.nn.functional.one_hot(self.group_id, len(SET_NAMES)).float(),
                          self.pyramid_side[:, None]], dim=-1)
        grasp_yaw = compute_grasp_yaw_obs(pose, sym.to(pose.dtype), tool_yaw(ee_rot))
        self.obs_buf[:] = torch.cat([self.proprio_obs(), objects, task, grasp_yaw], dim=-1)


# ---- batched math -------------------------------------------------------------------------
@torch.jit.script
def compute_stack_object_obs(pose: torch.Tensor, hh: torch.Tensor, hw: torch.Tensor,
                             ee_pos: torch.Tensor) -> torch.Tensor:
    pos = pose[:, :, 0:3]                                                  # (N, 3, 3)
    per_obj = torch.cat([pose, hh[:, :, None], hw[:, :, None]], dim=-1).flatten(1)   # (N, 27)
    ee_rel = (pos - ee_pos[:, None, :]).flatten(1)                        # (N, 9)
    pairs = torch.cat([pos[:, 1] - pos[:, 0], pos[:, 2] - pos[:, 0], pos[:, 2] - pos[:, 1]], dim=-1)
    return torch.cat([per_obj, ee_rel, pairs], dim=-1)


@torch.jit.script
def compute_grasp_yaw_obs(pose: torch.Tensor, order: torch.Tensor, ee_yaw: torch.Tensor) -> torch.Tensor:
    """(N, 6): per object sin, cos of order * (object yaw - tool yaw); pose (N, 3, 7), order (N, 3)."""
    yaw = yaw_from_quat(pose[:, :, 3:7].reshape(-1, 4)).view(pose.shape[0], -1)          # (N, 3)
    turn = order * (yaw - ee_yaw[:, None])
    return torch.stack([torch.sin(turn), torch.cos(turn)], dim=-1).flatten(1)


@torch.jit.script
def _gather_colour(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (N, 3, ...) picked at colour idx (N,) -> (N, ...)."""
    return x[torch.arange(x.shape[0], device=x.device), idx]


@torch.jit.script
def _rests_on(top: torch.Tensor, bot: torch.Tensor, top_hh: torch.Tensor, bot_hh: torch.Tensor,
              bot_hw: torch.Tensor, tol: float) -> torch.Tensor:
    xy_ok = torch.norm(top[:, 0:2] - bot[:, 0:2], dim=-1) < bot_hw
    z_ok = torch.abs(top[:, 2] - bot[:, 2] - top_hh - bot_hh) < tol
    return xy_ok & z_ok


@torch.jit.script
def pyramid_base_done(pos: torch.Tensor, hh: torch.Tensor, hw: torch.Tensor, tol: float) -> torch.Tensor:
    """Red and green both on the table and side by side (gap under 1.5 cm)."""
    on_table = (torch.abs(pos[:, 0:2, 2] - hh[:, 0:2]) < tol).all(-1)
    gap = torch.norm(pos[:, 0, 0:2] - pos[:, 1, 0:2], dim=-1) - hw[:, 0] - hw[:, 1]
    return on_table & (gap < 0.015) & (gap > -0.01)


@torch.jit.script
def stack_plan(pos: torch.Tensor, hh: torch.Tensor, hw: torch.Tensor, pair: torch.Tensor,
               is_pyramid: torch.Tensor, side: torch.Tensor, tol: float):
    n = pos.shape[0]
    ar = torch.arange(n, device=pos.device)
    top, bot = pair[:, 0], pair[:, 1]
    target = pos[ar, bot].clone()
    target[:, 2] = target[:, 2] + hh[ar, bot] + hh[ar, top] + 0.002
    base = pyramid_base_done(pos, hh, hw, tol)
    # pyramid step 1: red beside green (at y offset ``side``); step 2: blue onto their midpoint
    beside = pos[:, 1].clone()
    beside[:, 1] = beside[:, 1] + side * (hw[:, 0] + hw[:, 1] + 0.004)
    beside[:, 2] = hh[:, 0] + 0.002
    mid = 0.5 * (pos[:, 0] + pos[:, 1])
    mid[:, 2] = torch.maximum(pos[:, 0, 2] + hh[:, 0], pos[:, 1, 2] + hh[:, 1]) + hh[:, 2] + 0.002
    pyr_target = torch.where(base[:, None], mid, beside)
    pyr_pick = torch.where(base, torch.full_like(top, 2), torch.zeros_like(top))
    pick = torch.where(is_pyramid, pyr_pick, top)
    target = torch.where(is_pyramid[:, None], pyr_target, target)
    done = (is_pyramid & base).long()
    total = torch.where(is_pyramid, torch.full_like(top, 2), torch.ones_like(top))
    return pick, target, done, total


@torch.jit.script
def stack_success(pos: torch.Tensor, hh: torch.Tensor, hw: torch.Tensor, ee_pos: torch.Tensor,
                  pair: torch.Tensor, is_pyramid: torch.Tensor, tol: float,
                  release_distance: float) -> torch.Tensor:
    n = pos.shape[0]
    ar = torch.arange(n, device=pos.device)
    top, bot = pair[:, 0], pair[:, 1]
    top_pos = pos[ar, top]
    stacked = _rests_on(top_pos, pos[ar, bot], hh[ar, top], hh[ar, bot], hw[ar, bot], tol)
    released = torch.norm(ee_pos - top_pos, dim=-1) > release_distance
    # pyramid: blue over the red/green midpoint, resting on the higher of the two
    mid = 0.5 * (pos[:, 0] + pos[:, 1])
    support = torch.maximum(pos[:, 0, 2] + hh[:, 0], pos[:, 1, 2] + hh[:, 1])
    blue_ok = (torch.norm(pos[:, 2, 0:2] - mid[:, 0:2], dim=-1) < 0.02) & \
        (torch.abs(pos[:, 2, 2] - hh[:, 2] - support) < tol)
    pyramid = pyramid_base_done(pos, hh, hw, tol) & blue_ok & \
        (torch.norm(ee_pos - pos[:, 2], dim=-1) > release_distance)
    return torch.where(is_pyramid, pyramid, stacked & released)


@torch.jit.script
def stack_reward(pos: torch.Tensor, hh: torch.Tensor, hw: torch.Tensor, ee_pos: torch.Tensor,
                 opening: torch.Tensor, grip_command: torch.Tensor, pick: torch.Tensor, target: torch.Tensor,
                 done_sub: torch.Tensor, total_sub: torch.Tensor, success: torch.Tensor, scales: torch.Tensor,
                 reward_type: str, release_distance: float):
    """Reward and per-term weighted values (N, 6) in REWARD_TERMS order."""
    n = pos.shape[0]
    ar = torch.arange(n, device=pos.device)
    obj = pos[ar, pick]
    obj_hh, obj_hw = hh[ar, pick], hw[ar, pick]
    d_reach = torch.norm(ee_pos - obj, dim=-1)
    reached = d_reach < 0.02
    grasped = reached & (opening < obj_hw + 0.004)
    lifted = grasped & (obj[:, 2] > obj_hh + 0.03)
    d_place = torch.norm(obj - target, dim=-1)
    # placed: resting at the target, centre within 2 cm of it in xy and 1 cm in height
    placed = (torch.norm(obj[:, 0:2] - target[:, 0:2], dim=-1) < 0.02) & (torch.abs(obj[:, 2] - target[:, 2]) < 0.01)
    # a placed object counts as reached, grasped and lifted: letting go over the target costs no reward
    if reward_type == "dense":
        # two-scale kernels: the wide one keeps a slope at the home pose, the narrow one pays precision
        lift_frac = torch.clamp((obj[:, 2] - obj_hh) / 0.05, 0.0, 1.0)
        reach = 1.0 - 0.5 * (torch.tanh(3.0 * d_reach) + torch.tanh(15.0 * d_reach))
        place = 1.0 - 0.5 * (torch.tanh(3.0 * d_place) + torch.tanh(15.0 * d_place))
        done = placed.float()
        # release, once placed: half for commanding the fingers open (an object blocks the opening
        # itself), half for backing the hand off to release_distance, each capped
        release = 0.5 * (grip_command + torch.clamp(d_reach / release_distance, 0.0, 1.0)) * done
        stage = torch.stack([torch.maximum(reach, done), torch.maximum(grasped.float(), done),
                             torch.maximum(lift_frac * grasped.float(), done),
                             place * (lifted | placed).float(), release], dim=-1)
    elif reward_type == "staged":
        stage = torch.stack([reached | placed, grasped | placed, lifted | placed, placed,
                             placed & (d_reach > release_distance)], dim=-1).float()
    else:
        stage = torch.zeros(n, 5, device=pos.device)
    if reward_type != "sparse":   # finished pick-and-place subtasks (pyramid base) count in full
        stage = (stage + done_sub.float()[:, None]) / total_sub.float()[:, None]
    terms = torch.cat([stage, success.float()[:, None]], dim=-1) * scales
    return terms.sum(-1), terms
