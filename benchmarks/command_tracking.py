"""What a walking policy does for fixed commands: the achieved forward speed and yaw rate of the
HumanoidLocomotion teacher (an rl-games policy) or of a command-conditioned LLC (walk_bc).

    python benchmarks/command_tracking.py humanoid/teacher
    python benchmarks/command_tracking.py humanoid/walk_bc
    python benchmarks/command_tracking.py humanoid/teacher --commands -0.4,0,0 0,0.4,0 0,-0.4,0 1,0,1.5

Each command runs in ``--envs`` envs from a reset; the first ``--settle`` steps are skipped and the
achieved (vx, vy, yaw rate) is averaged over the rest. Yaw > 0 is a left turn. An LLC's latent is
the command mapped through its own ``latent.meaning`` (center, half range).
"""
from __future__ import annotations

import argparse
import re
import sys

import torch

import isaacgymenvs_hrl
from isaacgymenvs_hrl.utils.task_config import compose_config

COMMANDS = [(0.5, 0.0, 0.5), (0.5, 0.0, -0.5), (0.5, 0.0, 0.0), (1.0, 0.0, 0.0), (0.5, 0.0, 1.0),
            (0.5, 0.0, -1.0), (0.0, 0.0, 0.8), (0.0, 0.0, -0.8)]


def actor(name: str, task):
    """obs -> actions for a library name or path: an LLC file (.llc.pt) or an rl-games policy."""
    from isaacgymenvs_hrl.hrl.library import resolve
    path = str(resolve(name))
    if path.endswith(".llc.pt"):
        from isaacgymenvs_hrl.hrl.llc_checkpoint import load_llc
        llc = load_llc(path)
        meaning = llc.spec["latent"]["meaning"]
        center, half = torch.tensor(meaning["center"]), torch.tensor(meaning["half_range"])
        width = sum(n for _, n in llc.spec["obs"]["policy"])
        return lambda obs, cmd: llc(obs[:, :width], ((cmd - center) / half).clamp(-1, 1))
    from isaacgymenvs_hrl.learning.runs import load_rlgames_policy
    policy = load_rlgames_policy(path, task.num_obs, task.num_actions)

    def act(obs, cmd):
        obs = obs.clone()
        obs[:, -3:] = cmd
        return policy(obs)[0]
    return act


@torch.no_grad()
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("policy", help="library name or path: humanoid/teacher, humanoid/walk_bc, a .pth or .llc.pt")
    p.add_argument("--envs", type=int, default=8, help="envs per command")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--settle", type=int, default=50)
    p.add_argument("--commands", nargs="+", metavar="VX,VY,YAW", help="commands to run instead of the default eight")
    argv = sys.argv[1:] if argv is None else argv
    # argparse takes "-0.4,0,0" for an option; a leading space keeps it a value
    args = p.parse_args([" " + a if re.match(r"-\d", a) else a for a in argv])
    commands = [tuple(float(v) for v in c.split(",")) for c in args.commands] if args.commands else COMMANDS
    if any(len(c) != 3 for c in commands):
        p.error("--commands takes VX,VY,YAW triples, e.g. --commands 0.5,0,0 -0.4,0,0")
    cmds = torch.tensor(commands)
    n = len(cmds) * args.envs
    cfg = compose_config(["task=HumanoidLocomotion", "task.env.commandResampleTime=1000"])
    task = isaacgymenvs_hrl.make(0, "HumanoidLocomotion", n, "cpu", "cpu", cfg=cfg)
    act = actor(args.policy, task)
    rep = cmds.repeat(args.envs, 1)
    obs = task.reset()["obs"]
    achieved, falls = [], 0
    for t in range(args.steps):
        task.commands[:] = rep
        out, _, done, _ = task.step(act(obs, rep))
        obs, falls = out["obs"], falls + int(done.sum())
        if t >= args.settle:
            achieved.append(task.achieved_command(task.engine.qpos, task.engine.qvel))
    mean = torch.stack(achieved).mean(0).view(args.envs, len(cmds), 3).mean(0)
    print(f"{args.policy}: achieved per command ({args.envs} envs each, steps {args.settle}-{args.steps}); "
          f"{falls} falls")
    print("| command (vx, vy, yaw rate) | vx | vy | yaw rate |\n|---|---|---|---|")
    for c, a in zip(commands, mean.tolist()):
        print(f"| {c} | {a[0]:+.2f} | {a[1]:+.2f} | {a[2]:+.2f} |")


if __name__ == "__main__":
    main()
