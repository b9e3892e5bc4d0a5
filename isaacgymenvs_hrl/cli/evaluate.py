"""``hrl-eval``: a trained policy over exactly N episodes, in the task's own terms.

The policy is an rl-games checkpoint of an hrl-train run (its ``config.yaml`` beside ``nn/`` says how
the task, the network and, for a hierarchical run, the frozen LLC were built) or a skill library
policy (``humanoid/teacher``). Actions are deterministic (the mean, or the most likely skill).

    hrl-eval runs/<run>/nn/FrankaStack.pth --episodes 200
    hrl-eval runs/<run>/nn/HumanoidLocationHRL.pth --episodes 64 --num-envs 32 --json eval.json
    hrl-eval runs/<run>/nn/FrankaStack.pth --override task.env.episodeLength=100 task.physics_engine=mjwarp

Prints the success rate where the task has one (Franka: the goal held), targets reached per episode
(HumanoidLocation), the share of episodes that failed (ended neither by time-out nor by success: a
humanoid's falls), and mean return and length.
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from ..errors import UserError, exit_on_user_error
from ..learning.runs import read_run_config
from ..tools.evaluate import apply_overrides, format_result, load_policy


def main(argv=None) -> None:
    evaluate(argv)


@exit_on_user_error
def evaluate(argv=None) -> dict:
    """hrl-eval's work; returns the result (main returns nothing: a console script exits with it)."""
    ap = argparse.ArgumentParser(prog="hrl-eval", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("checkpoint", help="rl-games .pth of an hrl-train run, or a skill library policy name")
    ap.add_argument("--episodes", type=int, default=100, help="episodes to count (exactly)")
    ap.add_argument("--num-envs", type=int, default=32, help="envs stepped together (at most --episodes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="sim and rl device (cuda:0 with task.physics_engine=mjwarp)")
    ap.add_argument("--override", nargs="*", default=[],
                    help="settings on the run's config, e.g. task.env.episodeLength=100")
    ap.add_argument("--json", metavar="PATH", help="also write the result and every episode's record")
    args = ap.parse_args(argv)
    for key in ("episodes", "num_envs"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key.replace('_', '-')} must be a positive integer, got {getattr(args, key)}")

    from ..hrl.env_factory import build_env, is_hierarchical
    from ..hrl.library import resolve
    from ..learning.evaluation import evaluate_episodes
    from ..utils.config import check_device, check_task_cfg
    from ..utils.seeding import set_seed

    checkpoint = Path(resolve(args.checkpoint, kind="policy"))
    if not checkpoint.is_file():
        raise UserError(f"checkpoint not found: {args.checkpoint}")
    device = check_device(args.device, "--device")
    cfg = apply_overrides(read_run_config(checkpoint), args.override)
    task_cfg = copy.deepcopy(cfg["task"])
    task_cfg["env"]["numEnvs"] = min(args.num_envs, args.episodes)
    check_task_cfg(task_cfg)
    torch.set_num_threads(1)
    set_seed(args.seed)
    env = build_env(task_cfg, device, device, auto_reset=is_hierarchical(task_cfg))
    act, discrete = load_policy(checkpoint, cfg["train"]["params"], env)
    result = evaluate_episodes(env, act, args.episodes, clip=not discrete)
    env.close()
    label = cfg.get("task_name", task_cfg["name"])
    if is_hierarchical(task_cfg):
        label += f" (LLC {task_cfg['env']['llc']['checkpoint']})"
    print(format_result(result, label))
    if args.json:
        from ..utils.atomic import commit, tmp_path
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path(out)
        tmp.write_text(json.dumps({"checkpoint": str(checkpoint), "args": vars(args), **result}, indent=1))
        commit(tmp, out)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
