"""High level over each shipped humanoid LLC against flat PPO from scratch, at equal environment
steps (control steps), on HumanoidLocation and HumanoidHeading; each run ends with hrl-train's
deterministic evaluation (``eval_summary=True``), and this script prints one table.

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
COLUMNS = ("targets_reached_per_episode", "heading_error_per_episode", "speed_error_per_episode",
           "falls_per_episode", "return_per_episode")


def conditions(task: str, hl_iters: int, k: int = 5, max_time: float | None = None, llcs=LLCS, flat=True):
    """Equal control steps (``hl_iters`` high-level epochs against ``k`` times as many flat ones), or
    with ``max_time`` equal wall clock: every run trains for that many seconds."""
    budget = (lambda iters: [f"max_iterations={iters}"]) if max_time is None else \
        (lambda iters: ["max_iterations=1000000", f"max_time={max_time:g}"])
    suffix = "" if max_time is None else f" ({max_time:g} s)"
    for llc in llcs:
        yield f"{task} HL over {llc}{suffix}", [f"task={task}HRL", f"task.env.llc.checkpoint={llc}",
                                                f"task.env.llc.steps={k}", *budget(hl_iters)]
    if flat:
        yield f"{task} flat PPO{suffix}", [f"task={task}", "num_envs=64", "train.params.config.minibatch_size=512",
                                           *budget(hl_iters * k)]


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


def table(results: list) -> str:
    cols = [c for c in COLUMNS if any(c in r["trained"] for r in results)]
    head = "| condition | seed | wall (s) | epochs | " + " | ".join(c.replace("_per_episode", "") for c in cols) + " |"
    lines = [head, "|" + "---|" * (4 + len(cols))]
    for r in results:
        cells = [f"{r['untrained'][c]:.2f} -> {r['trained'][c]:.2f}" if c in r["trained"] else "" for c in cols]
        lines.append(f"| {r['name']} | {r['seed']} | {r['wall_s']:.0f} | {r.get('epochs') or ''} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def across_seeds(results: list) -> str:
    """Trained numbers per condition over its seeds: mean +- standard deviation (n = seeds)."""
    cols = [c for c in COLUMNS if any(c in r["trained"] for r in results)]
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
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--max-time", type=float, default=None,
                   help="equal wall clock instead: every run trains this many seconds (hrl-train max_time)")
    p.add_argument("--llcs", nargs="*", default=list(LLCS), help="library names or paths of the LLCs")
    p.add_argument("--no-flat", dest="flat", action="store_false", help="only the high levels")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, one thread each when > 1")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)
    runs = [(name, cmd, seed) for seed in args.seeds for task in args.tasks
            for name, cmd in conditions(task, args.hl_iters, max_time=args.max_time, llcs=args.llcs,
                                                   flat=args.flat)]
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
    log("\nuntrained -> trained, deterministic, every env from a reset for one episode length:\n" + text)


if __name__ == "__main__":
    main()
