"""Command-conditioned humanoid locomotion: track a planar velocity and yaw-rate command.

The teacher task for humanoid offline data. Each episode samples a command (vx, vy in the heading
frame, yaw rate), resampled every ``commandResampleTime`` seconds. Falling (torso below
``terminationHeight``) ends the episode with ``deathCost``.

Observation layout:
  proprio (52): torso height, gravity in the torso frame (3), torso linear velocity in the heading
                frame (3), torso angular velocity in the torso frame (3), joint positions (21),
                joint velocities (21)
  task (3):     command (vx, vy, yaw rate)
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Tuple

import numpy as np
import torch

from ..paths import asset_path
from ..utils.torch_jit_utils import heading_and_tilt, quat_from_yaw, world_to_heading
from .base.vec_task import TaskConfigError, VecTask

REWARD_TERMS = ("lin_vel", "progress", "yaw_rate", "alive", "upright", "effort", "energy", "death")


# PD gains by joint-name prefix (Nm/rad); damping kv = kp * pdDampingRatio. The MJCF's motor gear
# becomes the servo's torque limit, so both control types share one actuator model.
DEFAULT_PD_STIFFNESS = {"abdomen": 300.0, "right_hip": 300.0, "left_hip": 300.0, "right_knee": 300.0,
                        "left_knee": 300.0, "right_ankle": 100.0, "left_ankle": 100.0,
                        "right_shoulder": 60.0, "left_shoulder": 60.0, "right_elbow": 60.0,
                        "left_elbow": 60.0}


class HumanoidLocomotion(VecTask):
    """controlType ``pd`` (default): actions are joint-target offsets from the standing pose, scaled
    by ``actionScale`` rad and tracked by MuJoCo position servos at the physics rate. ``torque``:
    actions are motor torques / gear, as in IsaacGymEnvs' Humanoid."""

    task_family = "humanoid"     # which LLCs fit: checked against LLC checkpoints
    default_control = "pd"
    reward_terms = REWARD_TERMS
    obs_units = {"proprio": "torso height (m), gravity in the torso frame (unit), torso linear velocity "
                            "in the heading frame (m/s), torso angular velocity (rad/s * angularVelocityScale), "
                            "joint positions (rad), joint velocities (rad/s * dofVelocityScale)",
                 "task": "command: vx, vy (m/s, heading frame), yaw rate (rad/s)"}

    def __init__(self, cfg, rl_device, sim_device, graphics_device_id, headless,
                 virtual_screen_capture=False, force_render=False, auto_reset=True):
        env = cfg["env"]
        self.asset_file = env.get("asset", {}).get("assetFileName", "mjcf/humanoid.xml")
        self.control_mode = env.get("controlType", self.default_control)
        if self.control_mode not in ("pd", "torque"):
            raise TaskConfigError(f"task.env.controlType must be 'pd' or 'torque', got {self.control_mode!r}")
        self.control_type = "joint_position" if self.control_mode == "pd" else "torque"
        self.action_semantics = ("21 joint-target offsets from the standing pose, action * actionScale rad, "
                                 "in [-1, 1]" if self.control_mode == "pd" else
                                 "21 motor torques as a fraction of each motor's gear, in [-1, 1]")
        self.action_scale = float(env.get("actionScale", 0.5))
        self.pd_stiffness = {**DEFAULT_PD_STIFFNESS, **env.get("pdStiffness", {})}
        self.pd_damping_ratio = float(env.get("pdDampingRatio", 0.1))
        self.power_scale = float(env.get("powerScale", 1.0))
        self.termination_height = float(env.get("terminationHeight", 0.8))
        self.dof_vel_scale = float(env.get("dofVelocityScale", 0.1))
        self.ang_vel_scale = float(env.get("angularVelocityScale", 0.25))
        cmd = env.get("command", {})
        self.cmd_low = torch.tensor([cmd.get("vx", [0.0, 1.0])[0], cmd.get("vy", [-0.3, 0.3])[0],
                                     cmd.get("yaw_rate", [-0.5, 0.5])[0]])
        self.cmd_high = torch.tensor([cmd.get("vx", [0.0, 1.0])[1], cmd.get("vy", [-0.3, 0.3])[1],
                                      cmd.get("yaw_rate", [-0.5, 0.5])[1]])
        self.standing_prob = float(cmd.get("standing_prob", 0.1))
        self.resample_time = float(env.get("commandResampleTime", 4.0))
        self.reset_noise = float(env.get("resetJointNoise", 0.1))
        scales = env.get("rewardScales", {})
        self.reward_scales = {k: float(scales.get(k, v)) for k, v in dict(
            lin_vel=1.0, progress=0.5, yaw_rate=1.0, alive=0.25, upright=0.1, effort=-0.005, energy=-0.02,
            death=float(env.get("deathCost", -2.0))).items()}
        super().__init__(cfg, rl_device, sim_device, graphics_device_id, headless,
                         virtual_screen_capture, force_render, auto_reset)

        m, dev, n = self.engine.model, self.device, self.num_envs
        self.num_dof = m.nq - 7
        key = m.key("stand").id if m.nkey else None
        q0 = torch.tensor(m.key_qpos[key] if key is not None else m.qpos0, dtype=torch.float32)
        self.default_qpos = q0.to(dev)                                   # (nq,)
        self.dof_low = torch.tensor(m.jnt_range[1:, 0], dtype=torch.float32, device=dev)
        self.dof_high = torch.tensor(m.jnt_range[1:, 1], dtype=torch.float32, device=dev)
        # actuator i drives qpos[7 + act_dof[i]]; in the shipped MJCF actuator i drives joint i
        self.act_dof = torch.tensor(m.jnt_qposadr[m.actuator_trnid[:, 0]] - 7, device=dev)
        self.act_in_dof_order = bool(torch.equal(self.act_dof.cpu(), torch.arange(self.num_dof)))
        self.kp = torch.tensor(m.actuator_gainprm[:, 0], dtype=torch.float32, device=dev)
        self.kv = torch.tensor(-m.actuator_biasprm[:, 2], dtype=torch.float32, device=dev)
        self.torque_limit = torch.tensor(self.motor_gear, dtype=torch.float32, device=dev)
        self.neg_torque_limit = -self.torque_limit
        # pd servo targets in actuator order: the standing pose and the joint limits
        self.ctrl_target0 = self.default_qpos[7:][self.act_dof]
        self.ctrl_low, self.ctrl_high = self.dof_low[self.act_dof], self.dof_high[self.act_dof]
        self.commands = torch.zeros(n, 3, device=dev)                    # (N, 3) vx, vy, yaw rate
        self.cmd_low, self.cmd_high = self.cmd_low.to(dev), self.cmd_high.to(dev)
        self.resample_steps = max(1, int(round(self.resample_time / self.dt)))
        self.actions = torch.zeros(n, self.num_actions, device=dev)
        self.reward_scale_vec = torch.tensor([self.reward_scales[k] for k in REWARD_TERMS], device=dev)
        self.episode_sums = torch.zeros(n, len(self.reward_terms), device=dev)    # (N, terms)
        self.extras["episode"] = {}

    def configure_model(self, model):
        """In pd mode, turn each motor into a position servo whose torque limit is the motor's gear."""
        import mujoco
        self.motor_gear = model.actuator_gear[:, 0].copy()
        if self.control_mode != "pd":
            return
        for i in range(model.nu):
            joint = model.actuator_trnid[i, 0]
            name = model.joint(joint).name
            prefix = next((p for p in self.pd_stiffness if name.startswith(p)), None)
            if prefix is None:
                raise TaskConfigError(f"no PD stiffness for joint '{name}': add it to task.env.pdStiffness")
            kp = self.pd_stiffness[prefix]
            model.actuator_gaintype[i] = mujoco.mjtGain.mjGAIN_FIXED
            model.actuator_gainprm[i, :] = 0.0
            model.actuator_gainprm[i, 0] = kp
            model.actuator_biastype[i] = mujoco.mjtBias.mjBIAS_AFFINE
            model.actuator_biasprm[i, :] = 0.0
            model.actuator_biasprm[i, 1:3] = (-kp, -kp * self.pd_damping_ratio)
            model.actuator_forcerange[i] = (-self.motor_gear[i], self.motor_gear[i])
            model.actuator_forcelimited[i] = 1
            model.actuator_gear[i, 0] = 1.0
            model.actuator_ctrlrange[i] = model.jnt_range[joint]
            model.actuator_ctrllimited[i] = 1

    def mjcf_path(self):
        return str(asset_path(self.asset_file))

    def actor_groups(self):
        # IsaacGymEnvs names this actor "humanoid": its randomization_params use that name.
        groups = super().actor_groups()
        groups["humanoid"] = groups["robot"]
        return groups

    def obs_layout(self):
        m = self.engine.model
        return OrderedDict(proprio=1 + 3 + 3 + 3 + (m.nq - 7) + (m.nv - 6), task=3)

    def mirror_maps(self) -> dict:
        """(index, sign) pairs that reflect qpos, qvel, observations and actions through the sagittal
        (x-z) plane: ``mirrored[..., k] = sign[k] * x[..., index[k]]``. The MJCF is left-right
        symmetric, so the mirror of a recorded trajectory is a trajectory too; hrl-collect
        ``mirror=True`` uses it to give a teacher's data both turning directions equally."""
        m = self.engine.model
        names = [m.joint(j).name for j in range(1, m.njnt)]
        swap = {"left_": "right_", "right_": "left_"}
        partner = [re.sub(r"^(left_|right_)", lambda g: swap[g.group(1)], n) for n in names]
        missing = [p for p in partner if p not in names]
        axes = np.abs(m.jnt_axis[1:])
        if missing or not np.allclose(np.sort(axes, axis=1)[:, :2], 0.0):
            raise TaskConfigError(f"{self.asset_file} is not mirror-symmetric by joint names and principal "
                                  f"axes (no partner for {missing}); mirroring needs left_/right_ pairs")
        dof = [names.index(p) for p in partner]
        dof_sign = [1.0 if axes[j, 1] > 0.5 else -1.0 for j in range(len(names))]   # roll/yaw flip
        act_joint = list(m.actuator_trnid[:, 0] - 1)
        act = [act_joint.index(dof[j]) for j in act_joint]
        act_sign = [dof_sign[j] for j in act_joint]
        nd = len(names)

        def shifted(offset, idx):
            return [offset + i for i in idx]
        obs_idx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] + shifted(10, dof) + shifted(10 + nd, dof) + [10 + 2 * nd + i for i in range(3)]
        obs_sign = [1, 1, -1, 1, 1, -1, 1, -1, 1, -1] + dof_sign + dof_sign + [1, -1, -1]
        pairs = {"qpos": ([0, 1, 2, 3, 4, 5, 6] + shifted(7, dof), [1, -1, 1, 1, -1, 1, -1] + dof_sign),
                 "qvel": ([0, 1, 2, 3, 4, 5] + shifted(6, dof), [1, -1, 1, -1, 1, -1] + dof_sign),
                 "obs": (obs_idx, obs_sign), "actions": (act, act_sign)}
        return {k: (torch.tensor(i), torch.tensor(s, dtype=torch.float32)) for k, (i, s) in pairs.items()}

    @staticmethod
    def achieved_command(qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
        """What the humanoid did, in the command's terms (N, 3); hrl-collect ``hindsight_steps``
        relabels the command slice with it."""
        return achieved_velocity(qpos, qvel)

    # ---- step hooks ---------------------------------------------------------------------
    def pre_physics_step(self, actions):
        self.actions = actions.clone()
        if self.control_mode == "pd":
            torch.clamp(self.ctrl_target0 + actions * self.action_scale, self.ctrl_low, self.ctrl_high,
                        out=self.engine.ctrl)
        else:
            torch.mul(actions, self.power_scale, out=self.engine.ctrl)

    def joint_torques(self) -> torch.Tensor:
        """Actuator torques (N, nu) implied by the last ctrl and the current state."""
        ctrl = self.engine.ctrl
        if self.control_mode != "pd":
            return ctrl * self.torque_limit
        q, qd = self.actuated(self.engine.qpos[:, 7:]), self.actuated(self.engine.qvel[:, 6:])
        tau = self.kp * (ctrl - q) - self.kv * qd
        return torch.clamp(tau, self.neg_torque_limit, self.torque_limit)

    def actuated(self, dof_values: torch.Tensor) -> torch.Tensor:
        """Per-joint values (N, num_dof) in actuator order (N, nu)."""
        return dof_values if self.act_in_dof_order else dof_values[:, self.act_dof]

    def post_physics_step(self):
        qpos, qvel = self.engine.qpos, self.engine.qvel
        resample = (self.progress_buf % self.resample_steps) == 0
        rew, terms, fallen = compute_locomotion_reward(
            qpos, qvel, self.actions, self.joint_torques(), self.actuated(qvel[:, 6:]), self.commands,
            self.termination_height, self.reward_scale_vec)
        self.rew_buf.copy_(rew)
        self.reset_buf.copy_(fallen)
        self.episode_sums += terms
        ids = torch.gt(resample, fallen).nonzero().squeeze(-1)          # resample & ~fallen
        if len(ids):
            self._sample_commands(ids)

    def reset_idx(self, env_ids):
        n, q0 = len(env_ids), self.default_qpos
        yaw = (torch.rand(n, device=self.device) * 2 - 1) * torch.pi
        noise = (torch.rand(n, self.num_dof, device=self.device) * 2 - 1) * self.reset_noise
        # the standing pose's root position, the drawn heading, the noised joints
        qpos = torch.cat([q0[:3].expand(n, 3), quat_from_yaw(yaw),
                          torch.clamp(q0[7:] + noise, self.dof_low, self.dof_high)], dim=-1)
        qvel = (torch.rand(n, self.engine.model.nv, device=self.device) * 2 - 1) * 0.1
        self.engine.reset_envs(env_ids, qpos, qvel)
        self._log_episodes(env_ids)
        self.progress_buf.index_fill_(0, env_ids, 0)
        self.actions.index_fill_(0, env_ids, 0.0)
        self._sample_commands(env_ids)

    def _log_episodes(self, env_ids):
        """Per-step mean of each reward term over the episodes that just ended."""
        length = self.log_episode_terms(env_ids, self.episode_sums, self.reward_terms)
        self.extras["episode"]["episode_length"] = length.mean()

    def _sample_commands(self, env_ids):
        n = len(env_ids)
        cmd = self.cmd_low + (self.cmd_high - self.cmd_low) * torch.rand(n, 3, device=self.device)
        standing = torch.rand(n, device=self.device) < self.standing_prob
        self.commands[env_ids] = cmd.masked_fill_(standing[:, None], 0.0)

    def compute_observations(self):
        self.obs_buf.copy_(compute_locomotion_observations(
            self.engine.qpos, self.engine.qvel, self.commands, self.dof_vel_scale, self.ang_vel_scale))


# ---- batched math -------------------------------------------------------------------------
@torch.jit.script
def compute_locomotion_observations(qpos: torch.Tensor, qvel: torch.Tensor, commands: torch.Tensor,
                                    dof_vel_scale: float, ang_vel_scale: float) -> torch.Tensor:
    # narrow: one view op, where x[:, a:b] is two in TorchScript
    yaw, tilt = heading_and_tilt(qpos.narrow(1, 3, 4))                  # torso; tilt = -gravity direction
    lin_vel_h = world_to_heading(qvel.narrow(1, 0, 3), yaw)              # (N, 3)
    ang_vel_b = qvel.narrow(1, 3, 3) * ang_vel_scale                     # MuJoCo: free joint w is local
    return torch.cat([qpos.narrow(1, 2, 1), -tilt, lin_vel_h, ang_vel_b, qpos.narrow(1, 7, qpos.size(1) - 7),
                      qvel.narrow(1, 6, qvel.size(1) - 6) * dof_vel_scale, commands], dim=-1)


@torch.jit.script
def torso_motion(qpos: torch.Tensor, qvel: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The torso's (vx, vy) in the heading frame (N, 2), its world yaw rate (N,) and its tilt (N, 3),
    world z in the torso frame."""
    yaw, tilt = heading_and_tilt(qpos.narrow(1, 3, 4))
    lin_vel_h = world_to_heading(qvel.narrow(1, 0, 3), yaw).narrow(1, 0, 2)
    yaw_rate_w = (tilt * qvel.narrow(1, 3, 3)).sum(-1)                 # world z of the local angular velocity
    return lin_vel_h, yaw_rate_w, tilt


@torch.jit.script
def achieved_velocity(qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
    """(vx, vy) of the torso in the heading frame and its world yaw rate, (N, 3): what the command
    (vx, vy, yaw rate) asks for."""
    lin_vel_h, yaw_rate_w, _ = torso_motion(qpos, qvel)
    return torch.cat([lin_vel_h, yaw_rate_w.unsqueeze(-1)], dim=-1)


@torch.jit.script
def compute_locomotion_reward(qpos: torch.Tensor, qvel: torch.Tensor, actions: torch.Tensor,
                              torques: torch.Tensor, act_vel: torch.Tensor, commands: torch.Tensor,
                              termination_height: float, scales: torch.Tensor):
    """Reward, per-term weighted values (N, terms) in REWARD_TERMS order, and the fall mask.
    ``act_vel`` (N, nu): velocities of the actuated joints."""
    lin_vel_h, yaw_rate_w, tilt = torso_motion(qpos, qvel)
    fallen = qpos.select(1, 2) < termination_height
    cmd_xy = commands.narrow(1, 0, 2)
    lin_err = torch.sum((lin_vel_h - cmd_xy) ** 2, dim=-1)
    yaw_err = (yaw_rate_w - commands.select(1, 2)) ** 2
    # velocity along the commanded direction, up to the commanded speed: a dense push to walk,
    # where the tracking kernel alone lets standing still collect exp(-|cmd|^2 / 0.25)
    speed = torch.norm(cmd_xy, dim=-1)
    along = torch.sum(lin_vel_h * cmd_xy, dim=-1) / speed.clamp_min(0.1)
    progress = torch.where(speed > 0.05, torch.minimum(along, speed) - speed, 0.0)
    terms = torch.stack([
        torch.exp(-4.0 * lin_err),                                                  # exp(-err / 0.25)
        progress,
        torch.exp(-4.0 * yaw_err),
        torch.ones_like(lin_err),
        tilt.select(1, 2),                                                          # torso z . world z
        torch.sum(actions ** 2, dim=-1),
        0.001 * torch.sum(torch.abs(torques * act_vel), dim=-1),                    # kW
        fallen.float(),
    ], dim=-1) * scales
    return terms.sum(-1), terms, fallen
