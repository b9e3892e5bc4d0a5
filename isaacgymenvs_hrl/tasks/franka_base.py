"""Shared base of the Franka Panda tasks: scene building, arm control, proprioception, success stats.

Scenes are built in code with ``mujoco.MjSpec`` on top of ``assets/mjcf/franka/arm_table.xml``, so
config choices (object sets, peg shapes, clearances) change the geometry without copies of MJCF
files. The built scene is written once per distinct geometry to the temp folder, because the
engines load MJCF from a path.

The arm is driven through position servos; the Panda's own gravity compensation is modelled with
``gravcomp`` on the arm bodies, so joint targets are tracked without a steady sag.

Proprio observation (22): arm joint positions (7), arm joint velocities (7, x dofVelocityScale),
finger opening (1, m per finger), end-effector position (3, world), end-effector quaternion (4, wxyz).
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path

import mujoco
import numpy as np
import torch

from ..controllers import ArmActionMap, ChainKinematics
from ..controllers.kinematics import quat_from_rotation
from ..paths import asset_path
from .base.vec_task import TaskConfigError, VecTask

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
ARM_ACTUATORS = tuple(f"panda_actuator{i}" for i in range(1, 8))
GRIPPER_ACTUATOR = "panda_gripper"
HOME_Q = (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785)
GRIP_MAX = 0.04          # finger opening per finger, m
PROPRIO_SIZE = 22
REWARD_TYPES = ("dense", "staged", "sparse")


# ---- scene geometry helpers -----------------------------------------------------------------
def prism_vertices(polygon_xy: np.ndarray, half_height: float) -> np.ndarray:
    """Vertices (2K, 3) of a right prism over a convex polygon (K, 2) in the xy plane, along z."""
    poly = np.asarray(polygon_xy, dtype=np.float64)
    bottom = np.c_[poly, np.full(len(poly), -half_height)]
    top = np.c_[poly, np.full(len(poly), half_height)]
    return np.vstack([bottom, top])


def regular_polygon(n: int, apothem: float, phase: float = 0.0) -> np.ndarray:
    """(n, 2) corners of a regular n-gon whose edge midpoints are ``apothem`` from the centre;
    with phase 0 the first edge faces +x."""
    r = apothem / math.cos(math.pi / n)
    ang = phase + math.pi / n + 2 * math.pi * np.arange(n) / n
    return np.c_[r * np.cos(ang), r * np.sin(ang)]


def side_prism_vertices(polygon_xz: np.ndarray, half_depth: float) -> np.ndarray:
    """Vertices of a prism over a polygon in the xz plane extruded along y (e.g. a wedge)."""
    poly = np.asarray(polygon_xz, dtype=np.float64)
    return np.vstack([np.c_[poly[:, 0], np.full(len(poly), s * half_depth), poly[:, 1]] for s in (-1, 1)])


def write_scene(spec: mujoco.MjSpec, stem: str) -> str:
    """Compile ``spec`` (errors name the problem) and write it to a temp file named by its content."""
    try:
        spec.compile()
    except ValueError as exc:
        raise TaskConfigError(f"the {stem} scene does not compile: {exc}. Check the task's geometry "
                              "settings (sizes must be positive, clearances smaller than the walls)") from exc
    xml = spec.to_xml()
    folder = Path(tempfile.gettempdir()) / "isaacgymenvs_hrl_scenes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}_{hashlib.sha1(xml.encode()).hexdigest()[:12]}.xml"
    if not path.is_file():
        tmp = path.with_suffix(f".tmp{id(spec)}")
        tmp.write_text(xml)
        tmp.replace(path)
    return str(path)


def base_spec() -> mujoco.MjSpec:
    """Panda + table with gravity compensation on the arm bodies (the real arm's torque loop does it)."""
    spec = mujoco.MjSpec.from_file(str(asset_path("mjcf/franka/arm_table.xml")))
    for body in spec.bodies:
        if body.name.startswith("panda_"):
            body.gravcomp = 1.0
    return spec


class FrankaBase(VecTask):
    """Panda arm + gripper control and shared bookkeeping; subclasses add objects and the task."""

    # servo targets ramp over the control period: a jump every period shakes a grasped object loose
    default_ctrl_ramp_chunks = 10

    task_family = "franka"
    # an LLC that reads joint positions only cannot tell the task phase from the joint velocities,
    # so its latent has to carry it (docs/skills.md, "Information asymmetry")
    obs_fields = {"proprio": (("joint_pos", 7), ("joint_vel", 7), ("gripper", 1), ("ee_pos", 3), ("ee_quat", 4))}
    variant_names: tuple = ()
    reward_defaults: dict = {}    # reward term -> default scale (task.env.rewardScales overrides), in term order
    group_names: tuple = ()       # second axis of the success statistics (object set / peg shape)

    def __init__(self, cfg, rl_device, sim_device, graphics_device_id, headless,
                 virtual_screen_capture=False, force_render=False, auto_reset=True):
        env = cfg["env"]
        self.control_mode = env.get("controlType", "ee_delta")
        self.control_type = self.control_mode
        self.action_semantics = {
            "ee_delta": "TCP position step (x, y, z) * posActionScale m, yaw step * yawActionScale rad, gripper "
                        "(-1 closed .. 1 open), each in [-1, 1]",
            "ee_delta_pos": "TCP position step (x, y, z) * posActionScale m, gripper (-1 closed .. 1 open), "
                            "each in [-1, 1]",
            "joint_delta": "7 arm joint-target steps * jointActionScale rad, gripper (-1 closed .. 1 open), "
                           "each in [-1, 1]"}.get(self.control_mode, "")
        self.pos_scale = float(env.get("posActionScale", 0.03))
        self.yaw_scale = float(env.get("yawActionScale", 0.25))
        self.joint_scale = float(env.get("jointActionScale", 0.1))
        self.ik_iterations = int(env.get("ikIterations", 3))
        self.ik_damping = float(env.get("ikDamping", 0.05))
        self.arm_reset_noise = float(env.get("armResetNoise", 0.05))
        self.max_lead = float(env.get("maxTargetLead", 0.02))
        self.dof_vel_scale = float(env.get("dofVelocityScale", 0.1))
        self.reward_type = env.get("rewardType", "dense")
        if self.reward_type not in REWARD_TYPES:
            raise TaskConfigError(f"task.env.rewardType must be one of {', '.join(REWARD_TYPES)}, "
                                  f"got {self.reward_type!r}")
        self.terminate_on_success = bool(env.get("terminateOnSuccess", True))
        scales = env.get("rewardScales", {}) or {}
        self.reward_scales = {k: float(scales.get(k, v)) for k, v in self.reward_defaults.items()}
        # paid per step left when success ends an episode: every stage term (all but success) in full
        pay = bool(env.get("payRemainingOnSuccess", True)) and self.reward_type != "sparse"
        self.payout_per_step_left = sum(v for k, v in self.reward_scales.items() if k != "success") if pay else 0.0
        self.success_term = self.reward_terms.index("success")             # column of terms (N, T)
        self.success_hold_steps = int(env.get("successHoldSteps", 2))
        super().__init__(cfg, rl_device, sim_device, graphics_device_id, headless,
                         virtual_screen_capture, force_render, auto_reset)
        n, dev = self.num_envs, self.device
        self.actions = torch.zeros(n, self.num_actions, device=dev)
        self.success_streak = torch.zeros(n, dtype=torch.long, device=dev)
        self.episode_success = torch.zeros(n, dtype=torch.bool, device=dev)
        # episodes restarted from a demonstration state: logged apart, never in the success rates
        self.demo_start = torch.zeros(n, dtype=torch.bool, device=dev)
        self.variant_id = torch.zeros(n, dtype=torch.long, device=dev)
        self.group_id = torch.zeros(n, dtype=torch.long, device=dev)
        nv, ng = max(1, len(self.variant_names)), max(1, len(self.group_names))
        # finished episodes and successes per (variant, group), accumulated since construction
        self.stats_episodes = torch.zeros(nv, ng, dtype=torch.long, device=dev)
        self.stats_successes = torch.zeros(nv, ng, dtype=torch.long, device=dev)
        self.reward_scale_vec = torch.tensor(list(self.reward_scales.values()), device=dev)
        self.episode_sums = torch.zeros(n, len(self.reward_scales), device=dev)   # weighted terms per episode
        self.extras["episode"] = {}

    # ---- robot setup (runs inside VecTask.__init__, right after the engine exists) -----------
    def num_actions_from_model(self) -> int:
        m, dev = self.engine.model, self.device
        jid = [m.joint(j).id for j in ARM_JOINTS]
        self.arm_qadr = torch.tensor(m.jnt_qposadr[jid], device=dev)
        self.arm_dadr = torch.tensor(m.jnt_dofadr[jid], device=dev)
        self.finger_qadr = torch.tensor([m.jnt_qposadr[m.joint(j).id] for j in FINGER_JOINTS], device=dev)
        self.arm_act = torch.tensor([m.actuator(a).id for a in ARM_ACTUATORS], device=dev)
        self.grip_act = m.actuator(GRIPPER_ACTUATOR).id
        self.q_low = torch.tensor(m.jnt_range[jid, 0], dtype=torch.float32, device=dev)
        self.q_high = torch.tensor(m.jnt_range[jid, 1], dtype=torch.float32, device=dev)
        self.home_q = torch.tensor(HOME_Q, dtype=torch.float32, device=dev)
        self.kin = ChainKinematics(m, list(ARM_JOINTS), "ee_site", device=dev)
        self.ee_site = m.site("ee_site").id
        try:
            self.action_map = ArmActionMap(self.kin, self.control_mode, self.q_low, self.q_high, GRIP_MAX,
                                           self.pos_scale, self.yaw_scale, self.joint_scale,
                                           self.ik_iterations, self.ik_damping,
                                           max_lead=self.max_lead, num_envs=self.num_envs)
        except ValueError as exc:
            raise TaskConfigError(str(exc)) from None
        return self.action_map.num_actions

    # ---- robot state --------------------------------------------------------------------
    def arm_q(self) -> torch.Tensor:
        return self.engine.qpos[:, self.arm_qadr]                        # (N, 7)

    def ee_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """End-effector (TCP) position (N, 3) and rotation (N, 3, 3) from batched FK."""
        return self.kin.forward(self.arm_q(), jacobian=False)

    def finger_opening(self) -> torch.Tensor:
        return self.engine.qpos[:, self.finger_qadr].mean(-1)            # (N,) m per finger

    def proprio_obs(self) -> torch.Tensor:
        pos, rot = self.ee_pose()
        qd = self.engine.qvel[:, self.arm_dadr] * self.dof_vel_scale
        return torch.cat([self.arm_q(), qd, self.finger_opening()[:, None], pos,
                          quat_from_rotation(rot)], dim=-1)

    def exploration_features(self) -> dict:
        """Named state features (N, D) whose variance over an episode is zero-shot exploration's
        coverage: arm joints and finger opening; subclasses add their objects."""
        return {"joints": self.arm_q(), "grasp": self.finger_opening()[:, None]}

    def home_arm(self, n: int) -> torch.Tensor:
        """Home joint positions with uniform noise, (n, 7)."""
        noise = (torch.rand(n, 7, device=self.device) * 2 - 1) * self.arm_reset_noise
        return torch.maximum(torch.minimum(self.home_q + noise, self.q_high), self.q_low)

    # ---- step hooks ---------------------------------------------------------------------
    def pre_physics_step(self, actions):
        self.actions = actions.clone()
        target, grip = self.action_map(actions, self.arm_q())
        ctrl = self.engine.ctrl
        ctrl[:, self.arm_act] = target.to(ctrl)
        ctrl[:, self.grip_act] = grip.to(ctrl)

    def record_step(self, success: torch.Tensor, rew: torch.Tensor, terms: torch.Tensor) -> None:
        """Success streaks, terminations and reward of this step; ``terms`` (N, T) in ``reward_terms`` order.

        An episode ended by success is paid, on its last step, every stage term in full for each step
        left until the time limit, so that finishing never earns less (undiscounted) than hovering at
        the last stage. A learner that bootstraps at time-outs values hovering as if it never ended, so
        for RL training terminateOnSuccess=False (success absorbing) is the consistent choice."""
        self.success_streak = torch.where(success, self.success_streak + 1, torch.zeros_like(self.success_streak))
        held = self.success_streak >= self.success_hold_steps
        self.episode_success |= held
        ends = held & self.terminate_on_success
        if self.payout_per_step_left:
            left = (self.max_episode_length - self.progress_buf).clamp_min(0).float()
            payout = ends.float() * left * self.payout_per_step_left
            rew = rew + payout
            terms = terms.clone()
            terms[:, self.success_term] += payout
        self.rew_buf[:] = rew
        self.episode_sums += terms
        self.reset_buf[:] = ends.long()
        self.extras["successes"] = success.float()

    def log_episodes(self, env_ids: torch.Tensor) -> None:
        """Success rates of the episodes that just ended, overall and per variant and group; one host
        read (which rates had episodes) however many variants and groups there are."""
        ended = self.progress_buf[env_ids] > 0                           # skip the initial reset
        demo = self.demo_start[env_ids]
        won = self.episode_success[env_ids].float()
        standard = (ended & ~demo).float()
        nv, ng = self.stats_episodes.shape
        flat = self.variant_id[env_ids] * ng + self.group_id[env_ids]
        counts = torch.zeros(nv * ng, device=won.device).index_add_(0, flat, standard).view(nv, ng)
        wins = torch.zeros(nv * ng, device=won.device).index_add_(0, flat, standard * won).view(nv, ng)
        self.stats_episodes += counts.long()
        self.stats_successes += wins.long()
        demo_ended = (ended & demo).float()
        # all, per variant, per group (a task without names has one unnamed row or column)
        margins = lambda t: torch.cat([t.sum()[None], t.sum(1)[:len(self.variant_names)],
                                       t.sum(0)[:len(self.group_names)]])
        n = torch.cat([demo_ended.sum()[None], margins(counts)])
        k = torch.cat([(demo_ended * won).sum()[None], margins(wins)])
        names = ["success_demo_start", "success", *(f"success_{v}" for v in self.variant_names),
                 *(f"success_{g}" for g in self.group_names)]
        ep = self.extras["episode"]
        for name, rate, had in zip(names, k / n.clamp_min(1.0), (n > 0).tolist()):
            if had:
                ep[name] = rate

    def reset_task_state(self, env_ids: torch.Tensor, arm_q: torch.Tensor) -> None:
        """Episode bookkeeping for ``env_ids`` whose arm restarts at joint positions arm_q (n, 7):
        logs the ending episodes (reward terms, success), so call it before drawing the new ones."""
        self.log_episode_terms(env_ids, self.episode_sums, self.reward_terms)
        self.log_episodes(env_ids)
        self.action_map.reset(env_ids, arm_q)
        ctrl = self.engine.ctrl                      # servos start on the reset pose, no jump
        ctrl[env_ids[:, None], self.arm_act] = arm_q.to(ctrl)
        self.progress_buf[env_ids] = 0
        self.success_streak[env_ids] = 0
        self.episode_success[env_ids] = False
        self.actions[env_ids] = 0.0

    def success_table(self) -> dict:
        """{(variant, group): (successes, episodes)} for every pair with finished episodes."""
        out = {}
        eps, suc = self.stats_episodes.cpu(), self.stats_successes.cpu()
        for i, v in enumerate(self.variant_names or ("default",)):
            for j, g in enumerate(self.group_names or ("default",)):
                if eps[i, j] > 0:
                    out[(v, g)] = (int(suc[i, j]), int(eps[i, j]))
        return out


def parse_choice(env: dict, key: str, allowed: tuple, default, aliases: dict | None = None) -> list:
    """A config entry holding one name or a list of names, each from ``allowed`` or an alias
    (a name standing for several)."""
    aliases = aliases or {}
    value = env.get(key, default)
    names = [value] if isinstance(value, str) else list(value)
    names = [n for v in names for n in aliases.get(v, (v,))]
    bad = [v for v in names if v not in allowed]
    if not names or bad:
        raise TaskConfigError(f"task.env.{key}: unknown {bad or 'empty list'}; choose from "
                              f"{', '.join((*allowed, *aliases))}")
    return names
