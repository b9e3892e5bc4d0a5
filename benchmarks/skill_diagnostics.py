#!/usr/bin/env python
"""Skill diagnostics for one or several LLCs: z usage, KL per dimension, per-skill end states and names.

See isaacgymenvs_hrl/skills/diagnostics.py for what each number means. Library names or files:

    python benchmarks/skill_diagnostics.py franka/stack_helms franka/stack_ldse franka/stack_npmp \\
        franka/stack_mrs --dataset franka=datasets/stack.hdf5 --encoder-dir llcs --num-envs 8 --steps 100
    python benchmarks/skill_diagnostics.py humanoid/walk_bc humanoid/walk_npmp humanoid/walk_ldse \\
        --dataset humanoid=datasets/walk.hdf5 --encoder-dir llcs

``--dataset FAMILY=PATH`` gives the dataset per robot family (the one the LLC was trained on);
``--encoder-dir`` is searched for ``<llc stem>.encoder.pt`` (LDSE's posterior, not shipped in the
library). Rollouts (Franka only) run in the dataset's stored task config with ``--num-envs`` envs.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:            # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

import torch                             # noqa: E402

from isaacgymenvs_hrl.datasets import load_dataset   # noqa: E402
from isaacgymenvs_hrl.errors import UserError        # noqa: E402
from isaacgymenvs_hrl.hrl import load_llc            # noqa: E402
from isaacgymenvs_hrl.skills.diagnostics import diagnose, markdown   # noqa: E402


def _pairs(items, what):
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{what} expects NAME=PATH, got '{item}'")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def _task(meta: dict, num_envs: int, steps: int, threads: int, seed: int):
    from isaacgymenvs_hrl.skills.rollout_videos import build_task
    if not meta.get("task") or not meta.get("task_config"):
        return None
    cfg = copy.deepcopy(meta["task_config"])
    cfg["env"].update(episodeLength=steps + 1, terminateOnSuccess=False)
    cfg.setdefault("sim", {}).setdefault("mujoco", {})["num_threads"] = threads
    task = build_task(meta["task"], num_envs, cfg, seed)
    return task if hasattr(task, "grasp") else None


def summary_row(name: str, d: dict) -> str:
    z = d["z_usage"]
    f = lambda key, fmt=".4f": "n/a" if z.get(key) is None else format(z[key], fmt)
    kl = "n/a" if "kl_per_dim" not in z else \
        f"{z['kl_total']:.3f} [" + " ".join(f"{v:.2f}" for v in z["kl_per_dim"]) + "]"
    trainer = ", ".join(f"{k.replace('val_', '')} {v:.3g}" for k, v in z.get("trainer_kl", {}).items()) or "n/a"
    ratio = f("ratio", ".2f") + (" (fit)" if z.get("shuffled_of") == "fitted" else "")
    ro, gc = d.get("rollouts"), d.get("grasp_coverage") or {}
    mi = "n/a" if not ro else \
        f"{ro['mi_bits_kmeans']:.2f} / {ro['mi_bits_kmeans_permuted']:.2f} / {ro['mi_bits_max']:.2f}"
    hl = [v["grasp_fraction"] for k, v in gc.items() if k.startswith("random high level")]
    flat = gc.get("random flat actions", {}).get("grasp_fraction", 0.0)
    grasp = "n/a" if not gc else f"{max(hl) if hl else 0:.4f} / {flat:.4f}"
    return (f"| {name} | {z['algorithm']} | {z['latent_dim']} | {z['k']} | {f('mse_true')} | {f('mse_zero')} | "
            f"{f('mse_shuffled')} | {f('mse_prior')} | {f('mse_fitted')} | {ratio} | {kl} | {trainer} | {mi} "
            f"| {grasp} |")


HEADER = ("| LLC | algo | d | k | mse true | mse zero | mse shuffled | mse prior | mse fitted | ratio shuf/true "
          "| KL total [per dim] | trainer KL | MI bits (kmeans / permuted / max) | grasp steps (random HL / flat) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("llcs", nargs="+", help="library names or LLC files")
    p.add_argument("--dataset", nargs="*", default=[], metavar="FAMILY=PATH")
    p.add_argument("--encoder", nargs="*", default=[], metavar="LLC=PATH", help="LDSE encoder per LLC")
    p.add_argument("--encoder-dir", help="folder searched for <llc stem>.encoder.pt")
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--steps", type=int, default=100, help="control steps per held condition")
    p.add_argument("--num-latents", type=int, default=6, help="fixed random high-level actions (continuous)")
    p.add_argument("--windows", type=int, default=2000, help="dataset windows for z usage")
    p.add_argument("--no-rollouts", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    datasets, encoders = _pairs(args.dataset, "--dataset"), _pairs(args.encoder, "--encoder")
    loaded, results, rows = {}, {}, []
    for name in args.llcs:
        t0 = time.perf_counter()
        llc = load_llc(name)
        family = llc.spec["task_family"]
        if family not in datasets:
            raise UserError(f"{name}: no dataset for family '{family}'; pass --dataset {family}=PATH")
        if family not in loaded:
            data, meta = load_dataset(datasets[family])
            task = None if args.no_rollouts else _task(meta, args.num_envs, args.steps, args.threads, args.seed)
            loaded[family] = (data, meta, task)
        data, meta, task = loaded[family]
        enc = encoders.get(name)
        if enc is None and args.encoder_dir:
            stem = Path(getattr(llc, "path", name)).name.replace(".llc.pt", "")
            cand = Path(args.encoder_dir) / f"{stem}.encoder.pt"
            enc = str(cand) if cand.is_file() else None
        diag = diagnose(llc, data, task, steps=args.steps, num_latents=args.num_latents,
                        max_windows=args.windows, seed=args.seed, encoder=enc)
        diag["seconds"] = round(time.perf_counter() - t0, 1)
        results[name] = diag
        print(f"\n# {name} ({diag['seconds']} s)\n{markdown(diag)}", flush=True)
        rows.append(summary_row(name, diag))
    print("\n" + HEADER + "\n" + "\n".join(rows), flush=True)
    for _, _, task in loaded.values():
        if task is not None:
            task.close()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:             # bad input: one line, not a traceback
        sys.exit(f"error: {exc}")
