"""High level over each shipped LLC against flat PPO from scratch, at equal environment steps
(control steps) or equal wall clock, on HumanoidLocation, HumanoidHeading and FrankaStack; each run
ends with hrl-train's deterministic evaluation (``eval_summary=True``), and this script prints one
table (``--png`` also draws the training success against control steps and against wall clock).

    python benchmarks/hrl_vs_flat.py --work stack --tasks FrankaStack --reward dense --max-time 720 \
        --seeds 0 1 2 --jobs 2 --png docs/results/img/stack_dense.png

    python benchmarks/hrl_vs_flat.py --work hrl_vs_flat --hl-iters 100 --seeds 0 1 2 --jobs 2
    python benchmarks/hrl_vs_flat.py --work hrl_vs_flat --max-time 600 --seeds 0 --jobs 2   # equal wall clock
    python benchmarks/hrl_vs_flat.py --work hrl_vs_flat --report-only      # table of finished runs
    python benchmarks/hrl_vs_flat.py --tasks HumanoidHeading --llcs humanoid/omni_bc --no-flat

With 64 envs and horizon 32, a high-level epoch is 2048 macro steps = 10240 control steps (k = 5),
a flat epoch 2048 control steps: the flat run gets ``5 x hl_iters`` epochs, the same control steps.
Each run's wall clock (training and evaluation) is printed beside its numbers; with ``--jobs N`` the
runs go N at a time, each on one thread (physics and torch), so compare wall clocks within one job count.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

LLCS = ("humanoid/walk_bc", "humanoid/walk_npmp", "humanoid/walk_ldse")
# FrankaStackHRL's own defaults: franka/stack_helms, discrete, anchored to its skill prior
TASK_LLCS = {"FrankaStack": ("franka/stack_helms",)}
COLUMNS = ("success_per_episode", "targets_reached_per_episode", "heading_error_per_episode",
           "speed_error_per_episode", "falls_per_episode", "return_per_episode")


def conditions(task: str, hl_iters: int, k: int = 5, max_time: float | None = None, llcs=None, flat=True,
               reward: str | None = None, hl_overrides=()):
    """Equal control steps (``hl_iters`` high-level epochs against ``k`` times as many flat ones), or
    with ``max_time`` equal wall clock: every run trains for that many seconds. ``reward`` sets
    FrankaStack's task.env.rewardType (dense, staged, sparse) for both arms; ``hl_overrides`` are
    more hrl-train overrides for the high levels only (named in the condition)."""
    budget = (lambda iters: [f"max_iterations={iters}"]) if max_time is None else \
        (lambda iters: ["max_iterations=1000000", f"max_time={max_time:g}"])
    suffix = "" if max_time is None else f" ({max_time:g} s)"
    shared = [f"task.env.rewardType={reward}"] if reward else []
    if reward:
        suffix = f", {reward}{suffix}"
    variant = "".join(f", {o.partition('=')[0].rsplit('.', 1)[-1]}={o.partition('=')[2]}" for o in hl_overrides)
    for llc in (TASK_LLCS.get(task, LLCS) if llcs is None else llcs):
        yield f"{task} HL over {llc}{'' if k == 5 else f', k={k}'}{variant}{suffix}", [
            f"task={task}HRL", f"task.env.llc.checkpoint={llc}", f"task.env.llc.steps={k}", *shared,
            *hl_overrides, *budget(hl_iters)]
    if flat:
        size = [] if task in TASK_LLCS else ["num_envs=64", "train.params.config.minibatch_size=512"]
        yield f"{task} flat PPO{suffix}", [f"task={task}", *size, *shared, *budget(hl_iters * k)]


def plot_curves(work: Path, runs: list, png: Path, window: int = 10) -> None:
    """Training success (Episode/success, the epoch's ended episodes) against control steps and
    against wall clock, every run of every condition, a trailing mean over ``window`` epochs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml
    from isaacgymenvs_hrl.tools.plot import read_scalars

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {}
    for name, _, seed in runs:
        folders = sorted((run_dir(work, name, seed) / "runs").glob("*"))
        if not folders:
            continue
        points = read_scalars(folders[-1:]).get("Episode/success", [])
        if not points:
            continue
        cfg = yaml.safe_load((folders[-1] / "config.yaml").read_text())
        conf, env = cfg["train"]["params"]["config"], cfg["task"]["env"]
        k = int(env["llc"]["steps"] or 5) if env.get("llc", {}).get("checkpoint") else 1
        per_epoch = int(env["numEnvs"]) * int(conf["horizon_length"]) * k
        # a trailing mean: each point averages the window of epochs that ends there (no zero padding
        # pulling the ends down)
        w = min(window, len(points))
        value = np.convolve([p[2] for p in points], np.ones(w) / w, mode="valid")
        epochs = np.array([p[0] for p in points], dtype=float)[w - 1:]
        wall = (np.array([p[1] for p in points]) - points[0][1])[w - 1:]
        color = colors.setdefault(name, f"C{len(colors)}")
        label = name if seed == runs[0][2] else None
        axes[0].plot(epochs * per_epoch / 1e6, value, color=color, label=label, lw=1)
        axes[1].plot(wall / 60, value, color=color, label=label, lw=1)
    axes[0].set_xlabel("control steps (millions)")
    axes[1].set_xlabel("wall clock (minutes)")
    for ax in axes:
        ax.set_ylabel("training success (episodes that ended)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def run_dir(work: Path, name: str, seed: int) -> Path:
    # the folder name is also the run's experiment= name: Hydra's override grammar rejects ( ) and spaces
    return work / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name.replace("/", "-")).strip("_") + f"_s{seed}")


def run(work: Path, name: str, args: list, seed: int, log, one_thread: bool = False) -> dict | None:
    out = run_dir(work, name, seed)
    tag = out.name
    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["hrl-train", *args, f"seed={seed}", "eval_summary=True", f"experiment={tag}", "headless=True",
           *(["task.sim.mujoco.num_threads=1"] if one_thread else [])]
    log(f"+ {' '.join(cmd)}")
    t0 = time.time()
    res = subprocess.run(cmd, cwd=out, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.time() - t0
    (out / "log.txt").write_text(res.stdout + res.stderr)
    summaries = sorted(out.glob("runs/*/eval_summary.json"))
    if res.returncode != 0 or not summaries:
        log(f"  failed ({res.returncode}); see {out / 'log.txt'}")
        return None
    epochs = re.findall(r" epoch: (\d+)", res.stdout)
    result = {"name": name, "seed": seed, "wall_s": wall, "command": " ".join(cmd),
              "epochs": int(epochs[-1]) if epochs else None,
              **json.loads(summaries[-1].read_text())}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def columns(results: list) -> list:
    """The columns the results have; no falls where episodes end by success (FrankaStack: the
    evaluator counts every early end as a fall)."""
    cols = [c for c in COLUMNS if any(c in r["trained"] for r in results)]
    return [c for c in cols if not (c == "falls_per_episode" and "success_per_episode" in cols)]


def table(results: list) -> str:
    cols = columns(results)
    head = "| condition | seed | wall (s) | epochs | " + " | ".join(c.replace("_per_episode", "") for c in cols) + " |"
    lines = [head, "|" + "---|" * (4 + len(cols))]
    for r in results:
        cells = [f"{r['untrained'][c]:.2f} -> {r['trained'][c]:.2f}" if c in r["trained"] else "" for c in cols]
        lines.append(f"| {r['name']} | {r['seed']} | {r['wall_s']:.0f} | {r.get('epochs') or ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def across_seeds(results: list) -> str:
    """Trained numbers per condition over its seeds: mean +- standard deviation (n = seeds)."""
    cols = columns(results)
    names = list(dict.fromkeys(r["name"] for r in results))
    lines = ["| condition | seeds | wall (s) | " + " | ".join(c.replace("_per_episode", "") for c in cols) + " |",
             "|" + "---|" * (3 + len(cols))]
    for name in names:
        rows = [r for r in results if r["name"] == name]
        cells = []
        for c in cols:
            v = np.array([r["trained"][c] for r in rows if c in r["trained"]], dtype=float)
            cells.append(f"{v.mean():.2f} +- {v.std():.2f}" if len(v) else "")
        wall = np.mean([r["wall_s"] for r in rows])
        lines.append(f"| {name} | {len(rows)} | {wall:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="hrl_vs_flat")
    p.add_argument("--tasks", nargs="*", default=["HumanoidLocation", "HumanoidHeading"])
    p.add_argument("--hl-iters", type=int, default=100)
    p.add_argument("--k", type=int, default=5, help="control steps per high-level decision")
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--max-time", type=float, default=None,
                   help="equal wall clock instead: every run trains this many seconds (hrl-train max_time)")
    p.add_argument("--llcs", nargs="*", default=None, help="library names or paths of the LLCs "
                   "(default: the humanoid walking skills; FrankaStack: franka/stack_helms)")
    p.add_argument("--reward", default=None, choices=("dense", "staged", "sparse"),
                   help="FrankaStack's task.env.rewardType for both arms")
    p.add_argument("--hl-override", dest="hl_overrides", nargs="*", default=[],
                   help="more hrl-train overrides for the high levels, e.g. train.params.network.prior_floor=0.02")
    p.add_argument("--png", default=None, help="also draw the training success curves to this file")
    p.add_argument("--no-flat", dest="flat", action="store_false", help="only the high levels")
    p.add_argument("--no-hl", dest="llcs", action="store_const", const=[], help="only flat PPO")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, one thread each when > 1")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)
    runs = [(name, cmd, seed) for seed in args.seeds for task in args.tasks
            for name, cmd in conditions(task, args.hl_iters, k=args.k, max_time=args.max_time, llcs=args.llcs,
                                        flat=args.flat, reward=args.reward, hl_overrides=args.hl_overrides)]
    if args.report_only:
        found = [run_dir(work, name, seed) / "result.json" for name, _, seed in runs]
        results = [json.loads(f.read_text()) for f in found if f.is_file()]
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run, work, name, cmd, seed, log, args.jobs > 1) for name, cmd, seed in runs]
            results = []
            for f in futures:
                r = f.result()
                if r:
                    results.append(r)
                    log(table([r]).splitlines()[-1])
    text = table(results) + "\n\ntrained, over seeds:\n\n" + across_seeds(results) if results else "no results"
    (work / "table.md").write_text(text + "\n")
    if args.png:
        plot_curves(work, runs, Path(args.png))
        log(f"learning curves: {args.png}")
    log("\nuntrained -> trained, deterministic, every env from a reset for one episode length:\n" + text)


if __name__ == "__main__":
    main()
