"""hrl-train on 1 rank against N ranks (``multi_gpu=True`` under torchrun): env steps per second and
wall clock to a fixed return.

Each setting trains the same task for the same wall clock (``max_time``) from the same seed. Every
rank steps ``--num-envs`` envs of its own (IsaacGymEnvs' way of scaling out: N ranks collect N times
the samples per epoch and average their gradients), and the MuJoCo thread pool of each rank gets
cores / N threads, so the settings share the machine alike. Read from rank 0's TensorBoard file:

- env steps/s: the frames of every rank between the first and the last epoch, over their wall time;
- wall clock to the target: from the launch (imports and env building included) to the first epoch
  whose mean episode return (rl-games' ``rewards/step``, the last 100 episodes of rank 0) reaches
  ``--target``, and the frames by then.

    python benchmarks/multi_rank.py                                   # HumanoidLocationHRL, 1 and 2 ranks, 120 s each
    python benchmarks/multi_rank.py --ranks 1 2 4 --max-time 600 --target 60 --json results/multi_rank.json
    python benchmarks/multi_rank.py --device cuda:0 --ranks 1 2      # one GPU per rank (NCCL)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train(ranks: int, args, work: Path) -> dict:
    """One hrl-train run (a plain process for 1 rank, torchrun otherwise); its numbers."""
    from isaacgymenvs_hrl.tools.plot import read_scalars

    cwd = work / f"ranks{ranks}"
    cwd.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // ranks)
    overrides = [f"task={args.task}", f"num_envs={args.num_envs}", f"max_time={args.max_time}",
                 "max_iterations=1000000", f"seed={args.seed}", f"num_threads={threads}", "torch_threads=1",
                 f"rl_device={args.device}", f"experiment=ranks{ranks}", "headless=True", *args.overrides]
    launch = [sys.executable, "-m", "isaacgymenvs_hrl.train"]
    if ranks > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
                  "-m", "isaacgymenvs_hrl.train", "multi_gpu=True"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    start = time.time()
    res = subprocess.run(launch + overrides, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.time() - start
    (cwd / "out.txt").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise SystemExit(f"{ranks} rank(s) failed (rc {res.returncode}); see {cwd / 'out.txt'}")
    run_dir = max((cwd / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    scalars = read_scalars([run_dir])
    epochs = scalars["info/epochs"]                      # (frame, wall time, epoch)
    returns = scalars.get("rewards/step", [])            # (frame, wall time, mean return)
    (f0, w0, _), (f1, w1, e1) = epochs[0], epochs[-1]
    hit = next(((f, w) for f, w, v in returns if v >= args.target), None)
    return {"ranks": ranks, "envs_per_rank": args.num_envs, "mujoco_threads_per_rank": threads, "epochs": int(e1),
            "frames": int(f1), "env_steps_per_s": (f1 - f0) / max(w1 - w0, 1e-9), "wall_s": wall,
            "final_return": returns[-1][2] if returns else None,
            "best_return": max(v for _, _, v in returns) if returns else None,
            "target": args.target, "wall_to_target_s": hit[1] - start if hit else None,
            "frames_to_target": int(hit[0]) if hit else None, "run_dir": str(run_dir)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="HumanoidLocationHRL")
    p.add_argument("--num-envs", type=int, default=64, help="envs per rank")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--max-time", type=float, default=120.0, help="seconds of training per setting")
    p.add_argument("--target", type=float, default=30.0, help="mean episode return to reach")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="rl_device: cpu (gloo) or cuda:0 (one GPU per rank, NCCL)")
    p.add_argument("--work", default="/tmp/multi_rank_bench", help="folder for the runs")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("overrides", nargs="*", help="more hrl-train overrides, for every setting")
    args = p.parse_args()
    work = Path(args.work)
    rows = [train(r, args, work) for r in args.ranks]
    print(f"{args.task}, {args.num_envs} envs per rank, {args.max_time:.0f} s of training each, "
          f"{os.cpu_count()} cores, target return {args.target}")
    print(f"{'ranks':>5} {'epochs':>6} {'env steps':>9} {'steps/s':>8} {'wall s':>6} {'final ret':>9} "
          f"{'best ret':>8} {'to target s':>11} {'frames then':>11}")
    for r in rows:
        fmt = lambda v, spec: "-" if v is None else format(v, spec)      # noqa: E731
        print(f"{r['ranks']:>5} {r['epochs']:>6} {r['frames']:>9} {r['env_steps_per_s']:>8.0f} {r['wall_s']:>6.0f} "
              f"{fmt(r['final_return'], '9.1f')} {fmt(r['best_return'], '8.1f')} "
              f"{fmt(r['wall_to_target_s'], '11.0f')} {fmt(r['frames_to_target'], '11d')}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
