#!/usr/bin/env python
"""Env-steps/s of the manipulation tasks for two checkouts (or two settings), interleaved in one run.

Two source trees cannot share one Python process, so each measurement is a short worker
subprocess (``--worker``) importing the package from its tree; the runs of the sides alternate
round by round so that load on the machine hits both alike, and the median per side is reported.

    git worktree add /tmp/before <old commit>
    python benchmarks/speed_before_after.py --before-tree /tmp/before
    python benchmarks/speed_before_after.py --before-tree . --after-override task.sim.substeps=10
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(task_name: str, num_envs: int, steps: int, warmup: int, seed: int, overrides: list[str],
           actor: str = "random") -> None:
    import torch
    import isaacgymenvs_hrl
    from isaacgymenvs_hrl.utils.task_config import compose_config
    torch.set_num_threads(1)
    cfg = compose_config([f"task={task_name}", *overrides])
    task = isaacgymenvs_hrl.make(seed, task_name, num_envs, "cpu", "cpu", cfg=cfg)
    gen = torch.Generator().manual_seed(seed)
    obs = task.reset()
    if actor == "expert":       # grasps, carries and stacks: the objects move, as in training
        from isaacgymenvs_hrl.experts import make_expert
        expert = make_expert(task, noise=0.0, seed=seed)
    stepping = 0.0          # time inside task.step alone: the expert's own compute is not the env's
    for i in range(warmup + steps):
        if i == warmup:
            t0, stepping = time.perf_counter(), 0.0
        act = expert(obs["obs"]) if actor == "expert" else torch.rand(num_envs, task.num_actions, generator=gen) * 2 - 1
        t_step = time.perf_counter()
        obs, *_ = task.step(act)
        stepping += time.perf_counter() - t_step
    print(json.dumps({"env_steps_per_s": steps * num_envs / stepping,
                      "with_actor_steps_per_s": steps * num_envs / (time.perf_counter() - t0)}))


def measure(tree: Path, task_name: str, args, overrides: list[str]) -> dict:
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(ROOT / 'benchmarks')!r}); "
            f"import speed_before_after as s; s.worker({task_name!r}, {args.num_envs}, {args.steps}, "
            f"{args.warmup}, {args.seed}, {overrides!r}, {args.actor!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tree)
    if out.returncode:
        raise SystemExit(f"worker failed in {tree}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before-tree", required=True, type=Path, help="checkout measured as 'before'")
    p.add_argument("--after-tree", type=Path, default=ROOT)
    p.add_argument("--before-override", nargs="*", default=[])
    p.add_argument("--after-override", nargs="*", default=[])
    p.add_argument("--tasks", nargs="+", default=["FrankaStack", "FrankaPegInHole"])
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--actor", choices=("random", "expert"), default="random",
                   help="random actions, or the task's scripted expert (objects grasped and carried)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    sides = {"before": (args.before_tree.resolve(), args.before_override),
             "after": (args.after_tree.resolve(), args.after_override)}
    runs = {t: {s: [] for s in sides} for t in args.tasks}
    for r in range(args.rounds):
        for task_name in args.tasks:
            for side, (tree, overrides) in sides.items():
                m = measure(tree, task_name, args, overrides)
                runs[task_name][side].append(m)
                print(f"round {r} {task_name:<16} {side:<7} {m['env_steps_per_s']:8.0f} env-steps/s "
                      f"({m['with_actor_steps_per_s']:.0f} with the actor)", flush=True)
    print(f"\nN={args.num_envs}, {args.actor} actions, median of {args.rounds} interleaved rounds; "
          f"env-steps/s inside task.step, and with the actor's compute counted")
    for side, (tree, overrides) in sides.items():
        print(f"  {side}: {tree} {' '.join(overrides)}")
    result = {}
    for task_name, by_side in runs.items():
        row = {"runs": by_side}
        for key, label in (("env_steps_per_s", "task.step"), ("with_actor_steps_per_s", "with actor")):
            b = statistics.median(m[key] for m in by_side["before"])
            a = statistics.median(m[key] for m in by_side["after"])
            row[key] = {"before": b, "after": a, "speedup": a / b}
            print(f"{task_name:<16} {label:<10} before {b:8.0f}  after {a:8.0f}  speedup {a / b:5.2f}x")
        result[task_name] = row
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                               "results": result}, indent=2))
    return result


if __name__ == "__main__":
    main()
