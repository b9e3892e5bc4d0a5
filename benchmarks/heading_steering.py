"""What a walking skill allows on HumanoidHeading: a hand-written steering rule drives a
command-conditioned LLC (walk_bc) with no learning, so the heading error it gets is the skill's own
floor (turning lag plus gait sway), to set beside a trained high level and flat PPO.

    python benchmarks/heading_steering.py humanoid/walk_bc path/to/other_walk_bc.llc.pt --gain 2 --max-speed 0.45

A PPO teacher (.pth) runs too, but it was trained on commands held for 4 s and falls under one that
changes every step, so its number is not a floor.

Every control step the command is (min(target speed, max speed), 0, gain * angle to the target
direction); an LLC gets it through its latent range. Reported per policy: the mean heading error
over all steps, over the last second before each new target (what is left once turned: sway), and
falls per env per 20 s episode.
"""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import torch

import isaacgymenvs_hrl
from isaacgymenvs_hrl.tasks.humanoid_heading import compute_heading_reward
from isaacgymenvs_hrl.utils.task_config import compose_config
from command_tracking import actor


@torch.no_grad()
def steer(name: str, gain: float, max_speed: float, num_envs: int, steps: int, seed: int) -> dict:
    cfg = compose_config(["task=HumanoidHeading", "task.sim.mujoco.num_threads=1"])
    task = isaacgymenvs_hrl.make(seed, "HumanoidHeading", num_envs, "cpu", "cpu", cfg=cfg)
    # the teacher reads proprio + its 3 command numbers, not HumanoidHeading's 5 target numbers
    act = actor(name, SimpleNamespace(num_obs=task.num_obs - 5 + 3, num_actions=task.num_actions))
    obs = task.reset()["obs"]
    errors, settled, falls = [], [], 0
    for _ in range(steps):
        target = obs[:, -5:]                                   # direction (cos, sin), speed, facing
        angle = torch.atan2(target[:, 1], target[:, 0])
        cmd = torch.stack([target[:, 2].clamp(max=max_speed), torch.zeros_like(angle), gain * angle], -1)
        out, _, done, extras = task.step(act(torch.cat([obs[:, :-5], cmd], -1), cmd))
        obs = out["obs"]
        falls += int((done.bool() & ~extras["time_outs"].bool()).sum())
        error = compute_heading_reward(task.engine.qpos, task.engine.qvel, task.target_angle, task.target_speed,
                                       task.face_angle, task.termination_height, *task.heading_scales.values(),
                                       task.death_terms)[2][:, 0]       # the task's own heading error
        errors.append(error.mean())
        phase = (task.progress_buf % task.heading_steps).float() / task.heading_steps
        settled.append(error[phase >= 1 - 1 / task.heading_resample_time].mean())
    episodes = steps / task.max_episode_length
    return {"heading_error": float(torch.stack(errors).mean()),
            "settled_error": float(torch.stack(settled).nanmean()),
            "falls_per_episode": falls / num_envs / episodes}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("policies", nargs="+", help="library names or paths: humanoid/teacher, humanoid/walk_bc, .llc.pt")
    p.add_argument("--gain", type=float, default=2.0, help="commanded yaw rate per rad of direction error")
    p.add_argument("--max-speed", type=float, default=0.45, help="m/s; the forward command's cap")
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000, help="control steps (1000 = one 20 s episode)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(f"steering rule: gain {args.gain}, speed cap {args.max_speed} m/s, {args.envs} envs x {args.steps} steps\n")
    print("| policy | heading error (rad) | last second before a new target (rad) | falls per episode |\n|---|---|---|---|")
    for name in args.policies:
        r = steer(name, args.gain, args.max_speed, args.envs, args.steps, args.seed)
        print(f"| {name} | {r['heading_error']:.3f} | {r['settled_error']:.3f} | {r['falls_per_episode']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
