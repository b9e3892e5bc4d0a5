#!/usr/bin/env python
"""Cost of one high-level step (``LatentSkillEnv.step``, k control steps run by a frozen LLC) versus
k plain ``VecTask.step`` calls with precomputed actions, side by side in one process.

    python benchmarks/hrl_overhead.py                         # N=256, k=5, HumanoidLocation, CPU
    python benchmarks/hrl_overhead.py --json /tmp/hrl.json    # also write every round as JSON
    python benchmarks/hrl_overhead.py --profile               # plus a cProfile of the HL step
    python benchmarks/hrl_overhead.py --torch-threads 0       # torch's default thread count

Both sides run the same physics: the base task replays the exact actions the LLC produced in a
recording pass (same seed, same initial states), so the only difference is what the hierarchy adds
(decoding, k LLC forward passes on the observation slices, reward aggregation, the end-of-macro-step
reset bookkeeping). Rounds alternate their order; the report gives the median of the per-round
ratios. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:            # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import mujoco                            # noqa: E402
import numpy as np                       # noqa: E402
import torch                             # noqa: E402

from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc, save_llc   # noqa: E402
from isaacgymenvs_hrl.hrl.networks import build                      # noqa: E402
from isaacgymenvs_hrl.tasks import isaacgym_task_map                 # noqa: E402

TARGET_RATIO = 1.2


def machine_info(threads: int) -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "mujoco": mujoco.__version__, "numpy": np.__version__, "engine_threads": threads}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["processor"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def make_task(args, auto_reset: bool = True):
    cfg = {"name": args.task, "physics_engine": "mujoco",
           "env": {"numEnvs": args.num_envs, "episodeLength": 1000, "clipActions": 1.0, "clipObservations": 10.0},
           "sim": {"dt": 0.02, "substeps": args.substeps, "mujoco": {"num_threads": args.threads}}}
    torch.manual_seed(args.seed)
    return isaacgym_task_map[args.task](cfg, "cpu", "cpu", -1, True, auto_reset=auto_reset)


def make_llc(task, args, directory: str):
    """A realistic-size skill policy on the task's proprio slice, saved and loaded as a checkpoint."""
    proprio = task.obs_slices["proprio"].stop - task.obs_slices["proprio"].start
    pol = {"type": "skill_policy", "obs_dim": proprio, "latent_dim": args.latent, "action_dim": task.num_actions,
           "hidden": list(args.hidden)}
    spec = {"task_family": task.spec.task_family, "obs": {"policy": [["proprio", proprio]]},
            "action": {"dim": task.num_actions, "control_type": task.spec.control_type},
            "latent": {"dim": args.latent, "normalization": "sphere", "modes": ["continuous"]},
            "default_steps": args.k, "control_dt": task.spec.control_dt, "architecture": {"policy": pol},
            "provenance": {"algorithm": "benchmark (random weights)"}}
    torch.manual_seed(args.seed)
    path = save_llc(Path(directory) / "llc.pt", spec, build(pol))
    return load_llc(path)


class Timed:
    """Wraps ``task.step`` to sum its wall time (how much of the HL step is the base task)."""

    def __init__(self, task):
        self.task, self.inner, self.total = task, task.step, 0.0
        task.step = self

    def __call__(self, actions):
        t = time.perf_counter()
        out = self.inner(actions)
        self.total += time.perf_counter() - t
        return out


def run_hl(env, hl_actions, seed):
    """One round: reset (seeded), then one LatentSkillEnv.step per high-level action."""
    torch.manual_seed(seed)
    env.reset()
    resets = 0
    t = time.perf_counter()
    for hl in hl_actions:
        _, _, done, _ = env.step(hl)
        resets += int(done.sum())
    return time.perf_counter() - t, resets


def run_base(task, actions, seed):
    """One round: reset (seeded), then one VecTask.step per precomputed action (auto-resets on)."""
    torch.manual_seed(seed)
    task.reset()
    resets = 0
    t = time.perf_counter()
    for a in actions:
        _, _, done, _ = task.step(a)
        resets += int(done.sum())
    return time.perf_counter() - t, resets


def llc_forward_cost(llc, task, latent_dim: int, reps: int = 200) -> float:
    """Seconds per LLC forward pass (N envs) on its own, outside any env."""
    obs = task.obs_slice(task.obs_processed, llc.obs_names).clone()
    z = torch.nn.functional.normalize(torch.randn(task.num_envs, latent_dim), dim=-1)
    with torch.no_grad():
        for _ in range(10):
            llc(obs, z)
        t = time.perf_counter()
        for _ in range(reps):
            llc(obs, z)
    return (time.perf_counter() - t) / reps


def bench(args, log) -> dict:
    base_task, hl_task = make_task(args), make_task(args, auto_reset=False)
    with tempfile.TemporaryDirectory() as d:
        llc = make_llc(hl_task, args, d)
    env = LatentSkillEnv(hl_task, llc, mode="continuous", steps=args.k, reward="mean")
    n, k, m = args.num_envs, args.k, args.macro_steps
    g = torch.Generator().manual_seed(args.seed)
    hl_actions = [torch.rand(n, args.latent, generator=g) * 2 - 1 for _ in range(m)]

    # recording pass: the exact actions the LLC sends, replayed by the base side
    recorded = []
    hook = llc.register_forward_hook(lambda mod, inp, out: recorded.append(out.clone()))
    run_hl(env, hl_actions, args.seed + 1)
    hook.remove()
    assert len(recorded) == m * k, len(recorded)
    log(f"recorded {len(recorded)} LLC action batches of shape {tuple(recorded[0].shape)}")

    # warm-up (torch.jit.script functions, allocator, rollout buffers), untimed
    run_hl(env, hl_actions[: max(1, m // 4)], args.seed + 1)
    run_base(base_task, recorded[: max(1, m // 4) * k], args.seed + 1)

    timer = Timed(hl_task)
    rounds = []
    for r in range(args.rounds):
        order = ("hl", "base") if r % 2 == 0 else ("base", "hl")
        res = {}
        for side in order:
            if side == "hl":
                timer.total = 0.0
                wall, resets = run_hl(env, hl_actions, args.seed + 1)
                res["hl_s"], res["hl_resets"], res["hl_task_step_s"] = wall, resets, timer.total
            else:
                wall, resets = run_base(base_task, recorded, args.seed + 1)
                res["base_s"], res["base_resets"] = wall, resets
        res["ratio"] = res["hl_s"] / res["base_s"]
        res["hl_outside_task_step_s"] = res["hl_s"] - res["hl_task_step_s"]
        rounds.append(res)
        log(f"round {r + 1}/{args.rounds} ({order[0]} first): HL {res['hl_s']:.3f} s, base {res['base_s']:.3f} s, "
            f"ratio {res['ratio']:.3f}; HL outside task.step {res['hl_outside_task_step_s']:.3f} s")

    med = lambda key: statistics.median(r[key] for r in rounds)
    fwd = llc_forward_cost(llc, hl_task, args.latent)
    out = {
        "num_envs": n, "k": k, "macro_steps_per_round": m, "control_steps_per_round": m * k,
        "rounds": rounds, "ratio": med("ratio"),
        "ratio_of_medians": med("hl_s") / med("base_s"),
        "hl_s_per_macro_step": med("hl_s") / m, "base_s_per_k_steps": med("base_s") / m,
        "hl_overhead_s_per_macro_step": med("hl_outside_task_step_s") / m,
        "hl_task_step_share": statistics.median(r["hl_task_step_s"] / r["hl_s"] for r in rounds),
        # HL step / the k task.step calls inside it: same timed loop, so far less sensitive to load
        "in_run_ratio": statistics.median(r["hl_s"] / r["hl_task_step_s"] for r in rounds),
        "llc_forward_s": fwd,
        "llc_params": sum(p.numel() for p in llc.parameters()),
        "hl_reset_rate": rounds[0]["hl_resets"] / (n * m),
        "base_reset_rate": rounds[0]["base_resets"] / (n * m * k),
    }
    if args.profile:
        out["profile"] = profile_hl(env, hl_actions, args.seed + 1, log)
    return out


def profile_hl(env, hl_actions, seed, log) -> str:
    prof = cProfile.Profile()
    torch.manual_seed(seed)
    env.reset()
    prof.enable()
    for hl in hl_actions:
        env.step(hl)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
    log("\ncProfile of LatentSkillEnv.step (top 25 by own time):")
    log(s.getvalue())
    return s.getvalue()


def print_report(results: dict, log) -> None:
    mi, r = results["machine"], results["bench"]
    log("")
    log("=" * 100)
    log(f"HRL overhead: {results['args']['task']}  |  {mi['processor']}")
    log(f"cpu_count={mi['cpu_count']} affinity={mi['cpu_affinity']} engine_threads={mi['engine_threads']} "
        f"torch_threads={mi['torch_threads']} | python {mi['python']} torch {mi['torch']} mujoco {mi['mujoco']}")
    log(f"LLC: SkillPolicy hidden={results['args']['hidden']} latent={results['args']['latent']} "
        f"({r['llc_params']:,} parameters), continuous mode, sphere latents, reward=mean")
    log("=" * 100)
    hdr = (f"{'run':<40}{'N':>6}{'k':>4}{'ms per HL step':>16}{'env-steps/s':>14}{'resets/ctrl':>13}{'ratio':>7}")
    log(hdr)
    log("-" * len(hdr))
    n, k = r["num_envs"], r["k"]
    base_ms, hl_ms = 1e3 * r["base_s_per_k_steps"], 1e3 * r["hl_s_per_macro_step"]
    log(f"{'base: k x VecTask.step (replayed actions)':<40}{n:>6}{k:>4}{base_ms:>16.2f}"
        f"{n * k / r['base_s_per_k_steps']:>14,.0f}{100 * r['base_reset_rate']:>12.2f}%{'':>7}")
    log(f"{'HL: LatentSkillEnv.step (LLC inside)':<40}{n:>6}{k:>4}{hl_ms:>16.2f}"
        f"{n * k / r['hl_s_per_macro_step']:>14,.0f}{100 * r['hl_reset_rate'] / k:>12.2f}%{r['ratio']:>7.3f}")
    log("-" * len(hdr))
    ok = "OK" if r["ratio"] <= TARGET_RATIO else "ABOVE TARGET"
    log(f"HL step / k base steps = {r['ratio']:.3f}  [target <= {TARGET_RATIO}: {ok}]  (median of "
        f"{len(r['rounds'])} interleaved rounds x {r['macro_steps_per_round']} HL steps; ratio of medians "
        f"{r['ratio_of_medians']:.3f})")
    log(f"  inside the HL step: base task.step {100 * r['hl_task_step_share']:.1f}% of the wall time; "
        f"the rest (decode, {k} LLC forwards, aggregation, resets) = "
        f"{1e3 * r['hl_overhead_s_per_macro_step']:.2f} ms per HL step")
    log(f"  in-run ratio (HL step / its own {k} task.step calls, same timed loop, robust to load) = "
        f"{r['in_run_ratio']:.3f}")
    log(f"  one LLC forward alone at N={n}: {1e3 * r['llc_forward_s']:.3f} ms "
        f"(x{k} = {1e3 * k * r['llc_forward_s']:.2f} ms per HL step)")
    if r["ratio"] > TARGET_RATIO and mi["torch_threads"] > 1:
        log(f"  hint: torch runs the LLC on {mi['torch_threads']} intra-op threads next to MuJoCo's "
            f"{mi['engine_threads']} rollout threads; where they share cores the small-MLP forward waits "
            "on busy cores. Compare with --torch-threads 1.")
    log(f"total wall time {results['wall_s']:.1f} s")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="HumanoidLocation", choices=sorted(isaacgym_task_map))
    p.add_argument("--num-envs", type=int, default=256)
    p.add_argument("--k", type=int, default=5, help="control steps per high-level step")
    p.add_argument("--macro-steps", type=int, default=6, help="high-level steps per timed round")
    p.add_argument("--rounds", type=int, default=15, help="interleaved HL/base rounds")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="LLC hidden layer sizes")
    p.add_argument("--latent", type=int, default=8, help="LLC latent dimension")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="C MuJoCo threads")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads (torch.set_num_threads), 1 as hrl-train's default "
                        "torch_threads; 0 keeps torch's default")
    p.add_argument("--substeps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="cProfile the HL step after the timed rounds")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if min(args.num_envs, args.k, args.macro_steps, args.rounds, args.threads) < 1:
        p.error("--num-envs, --k, --macro-steps, --rounds and --threads must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    log = lambda s="": print(s, flush=True)
    t0 = time.perf_counter()
    results = {"args": vars(args), "machine": machine_info(args.threads)}
    results["bench"] = bench(args, log)
    results["wall_s"] = time.perf_counter() - t0
    print_report(results, log)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
