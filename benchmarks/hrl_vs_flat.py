"""High level over each shipped humanoid LLC against flat PPO from scratch, at equal environment
steps (control steps), on HumanoidLocation and HumanoidHeading; each run ends with hrl-train's
deterministic evaluation (``eval_summary=True``), and this script prints one table.

    python benchmarks/hrl_vs_flat.py --work hrl_vs_flat --hl-iters 100 --seeds 0
    python benchmarks/hrl_vs_flat.py --work hrl_vs_flat --report-only      # table of finished runs

With 64 envs and horizon 32, a high-level epoch is 2048 macro steps = 10240 control steps (k = 5),
a flat epoch 2048 control steps: the flat run gets ``5 x hl_iters`` epochs, the same control steps.
Each run's wall clock is printed beside its numbers (training only, from rl-games' logs).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

LLCS = ("humanoid/walk_bc", "humanoid/walk_npmp", "humanoid/walk_ldse")
COLUMNS = ("targets_reached_per_episode", "heading_error_per_episode", "speed_error_per_episode",
           "falls_per_episode", "return_per_episode")


def conditions(task: str, hl_iters: int, k: int = 5):
    for llc in LLCS:
        yield f"{task} HL over {llc}", [f"task={task}HRL", f"task.env.llc.checkpoint={llc}",
                                        f"max_iterations={hl_iters}", f"task.env.llc.steps={k}"]
    yield f"{task} flat PPO", [f"task={task}", "num_envs=64", f"max_iterations={hl_iters * k}",
                               "train.params.config.minibatch_size=512"]


def run(work: Path, name: str, args: list, seed: int, log) -> dict | None:
    tag = name.replace(" ", "_").replace("/", "-") + f"_s{seed}"
    out = work / tag
    if (out / "result.json").is_file():
        return json.loads((out / "result.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    cmd = ["hrl-train", *args, f"seed={seed}", "eval_summary=True", f"experiment={tag}", "headless=True"]
    log(f"+ {' '.join(cmd)}")
    t0 = time.time()
    res = subprocess.run(cmd, cwd=out, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.time() - t0
    (out / "log.txt").write_text(res.stdout + res.stderr)
    summaries = sorted(out.glob("runs/*/eval_summary.json"))
    if res.returncode != 0 or not summaries:
        log(f"  failed ({res.returncode}); see {out / 'log.txt'}")
        return None
    result = {"name": name, "seed": seed, "wall_s": wall, "command": " ".join(cmd),
              **json.loads(summaries[-1].read_text())}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def table(results: list) -> str:
    cols = [c for c in COLUMNS if any(c in r["trained"] for r in results)]
    head = "| condition | seed | wall (s) | " + " | ".join(c.replace("_per_episode", "") for c in cols) + " |"
    lines = [head, "|" + "---|" * (3 + len(cols))]
    for r in results:
        cells = [f"{r['untrained'].get(c, float('nan')):.2f} -> {r['trained'].get(c, float('nan')):.2f}" for c in cols]
        lines.append(f"| {r['name']} | {r['seed']} | {r['wall_s']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="hrl_vs_flat")
    p.add_argument("--tasks", nargs="*", default=["HumanoidLocation", "HumanoidHeading"])
    p.add_argument("--hl-iters", type=int, default=100)
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)
    results = []
    for seed in args.seeds:
        for task in args.tasks:
            for name, cmd in conditions(task, args.hl_iters):
                if args.report_only:
                    f = work / (name.replace(" ", "_").replace("/", "-") + f"_s{seed}") / "result.json"
                    r = json.loads(f.read_text()) if f.is_file() else None
                else:
                    r = run(work, name, cmd, seed, log)
                if r:
                    results.append(r)
                    log(table([r]).splitlines()[-1])
    text = table(results)
    (work / "table.md").write_text(text + "\n")
    log("\nuntrained -> trained, deterministic, every env from a reset for one episode length:\n" + text)


if __name__ == "__main__":
    main()
