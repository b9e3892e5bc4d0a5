#!/usr/bin/env python
"""Zero-shot exploration (HeLMS' Table 1): random high level over each LLC vs random flat vs BC.

Every row starts from the task's initial states and runs one full episode (no early termination)
on ``--num-envs`` envs; reward is per control step under the task's dense and staged rewards, and
coverage is the per-dimension variance over the episode of the arm joints, the finger opening and
the object positions (see isaacgymenvs_hrl/skills/exploration.py). For LLCs with discrete skills,
each skill is also held fixed for a whole episode (per-skill rows and distinctness), and the skill
usage over the training data is read from the LLC's report (metrics.json, ``skill_usage``).

A high level samples the LLC's priors (``PriorHighLevel``: HeLMS' protocol) unless an item ends in
``:uniform`` (uniform over the high-level action space). HeLMS' protocol is 1000 episodes a row:

    python benchmarks/exploration.py --bc franka/stack_bc --num-envs 1000 --steps 200 \\
        --llc ldse=franka/stack_ldse:continuous helms-cat=franka/stack_helms:discrete \\
              helms-cat=franka/stack_helms:discrete:uniform helms-mix=franka/stack_helms:mixture \\
              mrs=franka/stack_mrs:multires npmp=franka/stack_npmp:continuous
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

import isaacgymenvs_hrl                  # noqa: E402,F401
from isaacgymenvs_hrl.utils.config import to_dict   # noqa: E402
from isaacgymenvs_hrl.hrl import load_llc, validate_llc_for_task   # noqa: E402
from isaacgymenvs_hrl.skills.exploration import COLUMNS, explore_flat, explore_llc, explore_skills   # noqa: E402
MIN_USAGE = 0.02          # a skill used on under 2% of the training steps counts as collapsed


def build_task(task: str, num_envs: int, steps: int, overrides: list[str], seed: int):
    from experts import compose          # the sibling benchmark's Hydra composition

    from isaacgymenvs_hrl.skills.rollout_videos import build_task as build_llc_task

    cfg = compose(task, [f"task.env.episodeLength={steps + 1}", "task.env.terminateOnSuccess=False", *overrides])
    return build_llc_task(cfg.task_name, num_envs, to_dict(cfg.task), seed)


def skill_usage(llc_path: str) -> list | None:
    from isaacgymenvs_hrl.hrl.library import load_manifest
    shipped = load_manifest().get(llc_path)
    if shipped is not None:                  # a library name: the manifest keeps the trainer's metrics
        return shipped.get("metrics", {}).get("skill_usage")
    metrics = Path(str(Path(llc_path).with_suffix("")) + "_report") / "metrics.json"
    if not metrics.is_file() and llc_path.endswith(".llc.pt"):
        metrics = Path(llc_path[:-len(".llc.pt")] + ".llc_report") / "metrics.json"
    return json.loads(metrics.read_text()).get("skill_usage") if metrics.is_file() else None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="FrankaStack")
    p.add_argument("--override", nargs="*", default=[], help="Hydra overrides of the task, e.g. task.env.objectSets=[cubes]")
    p.add_argument("--llc", nargs="*", default=[], metavar="NAME=PATH:MODE[:uniform]",
                   help="an LLC file or library name, its mode, and optionally uniform high-level sampling")
    p.add_argument("--bc", metavar="PATH", help="a plain BC LLC (latent dim 0), run as a flat policy")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--steps", type=int, default=200, help="control steps per episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    log = lambda s="": print(s, flush=True)
    task = build_task(args.task, args.num_envs, args.steps, args.override, args.seed)
    rows, extra = {}, {}
    t0 = time.perf_counter()
    rows["random flat actions"] = explore_flat(task, None, args.steps)
    log(f"random flat: {rows['random flat actions']}")
    if args.bc:
        bc = load_llc(args.bc)
        validate_llc_for_task(bc, task, "continuous", None)
        zero = torch.zeros(task.num_envs, 0)
        rows["BC"] = explore_flat(task, lambda obs: bc(task.obs_slice(obs, bc.obs_names), zero), args.steps)
        log(f"BC: {rows['BC']}")
    for item in args.llc:
        name, rest = item.split("=", 1)
        path, mode = rest.split(":", 1)
        mode, sampling = mode.split(":") if ":" in mode else (mode, "prior")
        llc = load_llc(path)
        validate_llc_for_task(llc, task, mode, None)
        stats = explore_llc(task, llc, mode, args.steps, seed=args.seed, sampling=sampling)
        stats.pop("_end")
        rows[f"{name} ({sampling} HL, {mode}, k={llc.spec['default_steps']})"] = stats
        log(f"{name}: {stats}")
        if mode == "discrete" and name not in extra:
            skills = explore_skills(task, llc, args.steps, seed=args.seed)
            usage = skill_usage(path)
            extra[name] = {"distinctness": skills["distinctness"], "by_feature": skills["distinctness_by_feature"],
                           "skill_usage": usage,
                           "collapsed": None if usage is None else [i for i, u in enumerate(usage) if u < MIN_USAGE]}
            for y, s in skills["per_skill"].items():
                rows[f"  {name} skill {y} held" + (f" (usage {100 * usage[y]:.0f}%)" if usage else "")] = s
    wall = time.perf_counter() - t0

    hdr = f"{'behaviour':<48}" + "".join(f"{c.replace('_reward', '/step').replace('coverage_', 'cov ').replace('_', ' '):>17}"
                                         for c in COLUMNS)
    log("")
    log(f"Zero-shot exploration on {args.task} ({args.num_envs} envs x {args.steps} control steps, seed {args.seed})")
    log(hdr)
    log("-" * len(hdr))
    for name, s in rows.items():
        log(f"{name:<48}" + "".join(f"{s.get(c, float('nan')):>17.4g}" for c in COLUMNS))
    log("-" * len(hdr))
    for name, e in extra.items():
        used = "unknown (no report)" if e["collapsed"] is None else \
            ("all used" if not e["collapsed"] else f"COLLAPSED skills {e['collapsed']}")
        parts = ", ".join(f"{k} {v:.2f}" for k, v in e["by_feature"].items())
        log(f"{name}: distinctness (between / within skill spread of end states) {e['distinctness']:.2f} ({parts}); "
            f"usage on the data {e['skill_usage']}: {used} (threshold {100 * MIN_USAGE:.0f}%)")
    log(f"wall {wall:.0f} s")
    task.close()
    results = {"args": vars(args), "rows": rows, "skills": extra, "wall_s": wall}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
