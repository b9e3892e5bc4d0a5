"""How a flat HumanoidHeading policy moves: does it walk sideways or backwards, how fast does it
turn? Tells which skills a low level would need to match it.

    python benchmarks/heading_gait.py runs/HumanoidHeading_.../nn/HumanoidHeading.pth --envs 64

Deterministic actions, every env from a reset for ``--steps`` control steps. Reported over the steps
where the torso moves faster than 0.1 m/s: the share whose velocity points more than 45 deg (sideways)
or more than 135 deg (backwards) off the torso's heading, the yaw rate's mean magnitude (turning
plus the torso's twist within a stride), the heading's net change over 1 s (mean and 90th
percentile: the turn rate), the mean speed, and the falls per env.
"""
from __future__ import annotations

import argparse

import torch

import isaacgymenvs_hrl
from isaacgymenvs_hrl.learning.runs import load_rlgames_policy
from isaacgymenvs_hrl.controllers.arm_action import wrap_angle
from isaacgymenvs_hrl.tasks.humanoid_locomotion import achieved_velocity
from isaacgymenvs_hrl.utils.torch_jit_utils import yaw_from_quat
from isaacgymenvs_hrl.utils.task_config import compose_config


@torch.no_grad()
def gait(path: str, num_envs: int, steps: int, seed: int) -> dict:
    cfg = compose_config(["task=HumanoidHeading", "task.sim.mujoco.num_threads=1"])
    task = isaacgymenvs_hrl.make(seed, "HumanoidHeading", num_envs, "cpu", "cpu", cfg=cfg)
    policy = load_rlgames_policy(path, task.num_obs, task.num_actions)
    obs = task.reset()["obs"]
    velocities, yaws, dones, falls = [], [], [], 0
    for _ in range(steps):
        obs_dict, _, done, extras = task.step(policy(obs)[0])
        obs = obs_dict["obs"]
        velocities.append(achieved_velocity(task.engine.qpos, task.engine.qvel))      # (N, 3) vx, vy, yaw rate
        yaws.append(yaw_from_quat(task.engine.qpos[:, 3:7]))
        dones.append(done.bool())
        falls += int((done & ~extras["time_outs"].bool()).sum())
    v = torch.cat(velocities)
    # turn rate: the heading's net change over one second, in windows without a reset (the yaw
    # rate itself also counts the torso's twist within each stride)
    window = int(round(1.0 / task.dt))
    yaw = torch.stack(yaws)                                                       # (T, N)
    step = wrap_angle(yaw[1:] - yaw[:-1])
    heading = torch.cat([yaw[:1], yaw[:1] + torch.cumsum(step, 0)])
    reset = torch.cumsum(torch.stack(dones).float(), 0)
    clean = reset[window:] == reset[:-window]
    turn = ((heading[window:] - heading[:-window]).abs() / (window * task.dt))[clean]
    speed = v[:, :2].norm(dim=-1)
    moving = speed > 0.1
    off = torch.atan2(v[:, 1], v[:, 0]).abs()[moving]
    return {"sideways": float((off > torch.pi / 4).float().mean()), "backwards": float((off > 3 * torch.pi / 4).float().mean()),
            "twist": float(v[:, 2].abs().mean()), "turn_mean": float(turn.mean()), "turn_p90": float(turn.quantile(0.9)),
            "speed": float(speed.mean()), "falls_per_env": falls / num_envs}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("policies", nargs="+", help="rl-games checkpoints (.pth) of flat HumanoidHeading policies")
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print("| policy | sideways (>45 deg) | backwards (>135 deg) | mean abs yaw rate | turn rate over 1 s: mean | p90 | speed (m/s) | falls per env |")
    print("|---|---|---|---|---|---|---|---|")
    for path in a.policies:
        r = gait(path, a.envs, a.steps, a.seed)
        print(f"| {path} | {r['sideways']:.2f} | {r['backwards']:.2f} | {r['twist']:.2f} | {r['turn_mean']:.2f} | "
              f"{r['turn_p90']:.2f} | {r['speed']:.2f} | {r['falls_per_env']:.2f} |")


if __name__ == "__main__":
    main()
