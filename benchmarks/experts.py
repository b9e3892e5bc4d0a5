#!/usr/bin/env python
"""Scripted-expert (or trained policy) success per task, variant, object set and peg shape (CPU, real MuJoCo).

Each suite builds the task from its Hydra config plus overrides (as ``hrl-collect`` does) and runs
the batched expert until every env has finished ``--episodes-per-env`` episodes. Exactly those first
episodes are counted, per (variant, group) cell, from the task's own end-of-episode record
(``log_episodes``, which also feeds TensorBoard). Stopping instead once "enough" episodes had ended
would over-count the quick successes: failures run to ``episodeLength`` (and count as failures).
The ``default`` suite of each task is its config as shipped; the issue's target is >= 90% there.

    python benchmarks/experts.py                              # every suite, ~10-20 min on 2 cores
    python benchmarks/experts.py --suites FrankaStack:default --episodes-per-env 5
    python benchmarks/experts.py --json results/experts.json
    # the same table for a trained rl-games policy (deterministic mean action) instead of the expert
    python benchmarks/experts.py --suites FrankaStack:default --policy runs/<run>/nn/<ckpt>.pth \
        --override task.env.episodeLength=100
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:            # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import torch                             # noqa: E402

import isaacgymenvs_hrl                  # noqa: E402
from isaacgymenvs_hrl.experts import make_expert   # noqa: E402

TARGET = 0.9
ALL_SETS = "[cubes,cylinders,boxes,slanted,mixed]"
ALL_VARIANTS = "[red_on_blue,red_on_green,green_on_red,green_on_blue,blue_on_red,blue_on_green,pyramid]"
# name -> (task, Hydra overrides)
SUITES = {
    "FrankaStack:default": ("FrankaStack", []),
    "FrankaStack:sets": ("FrankaStack", [f"task.env.objectSets={ALL_SETS}"]),
    "FrankaStack:variants": ("FrankaStack", [f"task.env.variants={ALL_VARIANTS}"]),
    "FrankaStack:all": ("FrankaStack", [f"task.env.objectSets={ALL_SETS}", f"task.env.variants={ALL_VARIANTS}"]),
    "FrankaPegInHole:default": ("FrankaPegInHole", []),
    "FrankaPegInHole:shapes": ("FrankaPegInHole", ["task.env.pegShapes=[round,square,ngon3,ngon6]",
                                                   "task.env.pegStart=[hand,table]"]),
    "FrankaPegInHole:tight": ("FrankaPegInHole", ["task.env.pegShapes=[round,square]", "task.env.pegStart=[hand,table]",
                                                  "task.env.clearance=0.0003"]),
}


def compose(task: str, overrides: list[str]):
    from isaacgymenvs_hrl.utils.task_config import compose_config
    return compose_config([f"task={task}", *overrides])


def run_suite(name: str, num_envs: int, per_env: int, seed: int, noise: float, log, policy_path=None,
              extra_overrides=()) -> dict:
    task_name, overrides = SUITES[name]
    cfg = compose(task_name, [*overrides, *extra_overrides])
    task = isaacgymenvs_hrl.make(seed, task_name, num_envs, "cpu", "cpu", cfg=cfg)
    if policy_path:
        from isaacgymenvs_hrl.learning.runs import load_rlgames_policy
        net = load_rlgames_policy(policy_path, task.num_obs, task.num_actions)
        expert = lambda obs: net(obs)[0].clamp(-1.0, 1.0)
    else:
        expert = make_expert(task, noise=noise, seed=seed)
    finished = torch.zeros(num_envs, dtype=torch.long)
    cells: dict[tuple[str, str], list[int]] = {}
    log_episodes = task.log_episodes

    def record(env_ids):          # the task's end-of-episode hook, before the env's next draw
        ids = env_ids[(task.progress_buf[env_ids] > 0) & (finished[env_ids] < per_env)]
        for i in ids.tolist():
            cell = cells.setdefault((task.variant_names[int(task.variant_id[i])],
                                     task.group_names[int(task.group_id[i])]), [0, 0])
            cell[0] += int(task.episode_success[i])
            cell[1] += 1
        finished[ids] += 1
        log_episodes(env_ids)
    task.log_episodes = record                   # instance attribute; the class is untouched

    t0 = time.perf_counter()
    obs = task.reset()
    steps = 0
    while (finished < per_env).any():
        obs, _, _, _ = task.step(expert(obs["obs"]))
        steps += 1
    wall = time.perf_counter() - t0
    suc = sum(s for s, _ in cells.values())
    eps = sum(e for _, e in cells.values())
    task.close()
    res = {"task": task_name, "overrides": overrides, "num_envs": num_envs, "control_steps": steps,
           "wall_s": wall, "env_steps_per_s": steps * num_envs / wall, "successes": suc, "episodes": eps,
           "rate": suc / max(1, eps), "cells": {f"{v}/{g}": c for (v, g), c in cells.items()}}
    log(f"[{name}] {suc}/{eps} = {100 * res['rate']:.1f}% in {steps} control steps x {num_envs} envs, "
        f"{wall:.0f} s")
    return res


def print_report(results: dict, log) -> None:
    log("")
    hdr = f"{'suite':<24}{'variant':<16}{'group':<12}{'success':>12}{'rate':>8}"
    log(hdr)
    log("-" * len(hdr))
    for name, res in results["suites"].items():
        for cell, (s, e) in sorted(res["cells"].items()):
            v, g = cell.split("/")
            log(f"{name:<24}{v:<16}{g:<12}{f'{s}/{e}':>12}{100 * s / max(1, e):>7.1f}%")
        log(f"{name:<24}{'all':<16}{'':<12}{res['successes']:>6}/{res['episodes']:<5}{100 * res['rate']:>7.1f}%"
            f"   ({res['wall_s']:.0f} s, {res['env_steps_per_s']:.0f} env-steps/s)")
        log("-" * len(hdr))
    for name, res in results["suites"].items():
        if name.endswith(":default") and not results["args"].get("policy"):
            ok = "OK" if res["rate"] >= TARGET else "BELOW TARGET"
            log(f"{name}: {100 * res['rate']:.1f}% over {res['episodes']} episodes [target >= {100 * TARGET:.0f}%: {ok}]")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--suites", nargs="+", default=list(SUITES), choices=list(SUITES))
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--episodes-per-env", type=int, default=3, help="first episodes of every env that count")
    p.add_argument("--noise", type=float, default=0.0, help="expert action noise (std)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", metavar="CKPT", help="an rl-games checkpoint (hrl-train run) instead of the expert")
    p.add_argument("--override", nargs="*", default=[], help="more Hydra overrides for every suite")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    log = lambda s="": print(s, flush=True)
    results = {"args": vars(args), "suites": {}}
    for name in args.suites:
        results["suites"][name] = run_suite(name, args.num_envs, args.episodes_per_env, args.seed,
                                            args.noise, log, args.policy, args.override)
    print_report(results, log)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
        log(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
