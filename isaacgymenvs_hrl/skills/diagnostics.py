"""Diagnostics of a learned skill space for the skills report: one call and its markdown.

``diagnose`` measures z usage on the dataset (skills/z_usage.py, any LLC) and, in a task that names
its objects' end-state features (skills/end_states.py), what each skill does there and how often a
random high level grasps; ``markdown`` and ``summary`` turn the numbers into index.md tables and a
few metrics.json entries; ``report_section`` does all of it for hrl-skills' report.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from ..datasets import load_dataset
from ..hrl.llc import LowLevelController
from ..hrl.llc_checkpoint import load_llc
from ..tasks import isaacgym_task_map
from .end_states import grasp_coverage, object_names, skill_rollouts
from .z_usage import z_usage


def diagnose(llc: LowLevelController, data: dict, task=None, *, steps: int = 100, num_latents: int = 6,
             max_windows: int = 2000, seed: int = 0, encoder=None) -> dict:
    """z usage (always) and, given a task that names its objects (``object_names``) built with
    auto_reset=False and terminateOnSuccess=False, the skill rollouts and grasp coverage."""
    out = {"z_usage": z_usage(llc, data, max_windows=max_windows, seed=seed, encoder=encoder)}
    if task is not None and object_names(task) and llc.latent_dim > 0:
        out["rollouts"] = skill_rollouts(task, llc, steps, num_latents, seed)
        out["grasp_coverage"] = grasp_coverage(task, None, steps, seed) | grasp_coverage(task, llc, steps, seed)
    return out


def _f(x, fmt=".4g"):
    return "n/a" if x is None else format(x, fmt)


def markdown(diag: dict) -> str:
    """The diagnostics as a markdown section (tables) for index.md."""
    z = diag["z_usage"]
    lines = ["\n## Skill diagnostics\n", f"Posterior: {z['posterior']}. Windows of k={z['k']} rows: {z['windows']} "
             f"(action variance {z['action_var']:.4g}).\n",
             "| mse true | mse zero | mse shuffled | mse prior | mse fitted | ratio shuffled/true | active dims |",
             "|---|---|---|---|---|---|---|",
             f"| {_f(z.get('mse_true'))} | {_f(z.get('mse_zero'))} | {_f(z.get('mse_shuffled'))} | "
             f"{_f(z.get('mse_prior'))} | {_f(z.get('mse_fitted'))} | {_f(z.get('ratio'), '.3f')}"
             f"{' (of fitted)' if z.get('shuffled_of') == 'fitted' else ''} | "
             f"{z.get('active_dims', 'n/a')}/{z['latent_dim']} |"]
    if "kl_per_dim" in z:
        lines.append(f"\nKL per dimension (nats): {', '.join(f'{v:.3f}' for v in z['kl_per_dim'])}; "
                     f"total {z['kl_total']:.3f}")
    if z.get("trainer_kl"):
        lines.append(f"\nTrainer's KL (validation): {z['trainer_kl']}")
    ro = diag.get("rollouts")
    if ro:
        lines += [f"\n{ro['mode']} conditions held for {ro['steps']} steps on {ro['envs']} envs. MI(condition; end "
                  f"state): k-means {ro['mi_bits_kmeans']:.2f} bits (permuted {ro['mi_bits_kmeans_permuted']:.2f}), "
                  f"names {ro['mi_bits_names']:.2f} bits (permuted {ro['mi_bits_names_permuted']:.2f}), max "
                  f"{ro['mi_bits_max']:.2f}.\n",
                  "| condition | name | TCP z | opening | " + " | ".join(f"d {o}" for o in ro["objects"]) + " | "
                  + " | ".join(f"h {o}" for o in ro["objects"]) + " | grasp steps | staged/step |",
                  "|---|---|" + "---|" * (4 + 2 * len(ro["objects"]))]
        for c, r in ro["per_condition"].items():
            per_object = [r[f"dist_{o}"] for o in ro["objects"]] + [r[f"height_{o}"] for o in ro["objects"]]
            lines.append(f"| {c} | {r['name']} | {r['tcp_z']:.3f} | {r['opening']:.4f} | "
                         + "".join(f"{v:.3f} | " for v in per_object)
                         + f"{r['grasp_fraction']:.3f} | {r['staged_reward']:.3f} |")
    gc = diag.get("grasp_coverage")
    if gc:
        lines += ["\n| behaviour | grasp steps | staged/step |", "|---|---|---|"]
        lines += [f"| {k} | {v['grasp_fraction']:.4f} | {v['staged_reward']:.4f} |" for k, v in gc.items()]
    return "\n".join(lines) + "\n"


def summary(diag: dict) -> dict:
    """The few numbers of ``diag`` worth a line in metrics.json."""
    z = diag["z_usage"]
    keys = ("posterior", "mse_true", "mse_zero", "mse_shuffled", "mse_prior", "mse_fitted", "ratio", "shuffled_of",
            "kl_per_dim", "kl_total", "active_dims", "mse_fitted_skill", "mse_prior_skill")
    out = {f"z_{k}" if not k.startswith(("kl", "active")) else k: z[k] for k in keys if k in z}
    ro = diag.get("rollouts")
    if ro:
        out |= {k: ro[k] for k in ("mi_bits_kmeans", "mi_bits_kmeans_permuted", "mi_bits_names",
                                   "mi_bits_names_permuted", "mi_bits_max", "distinct_names")}
        out["skill_names"] = {c: r["name"] for c, r in ro["per_condition"].items()}
    if diag.get("grasp_coverage"):
        out["grasp_fraction"] = {k: v["grasp_fraction"] for k, v in diag["grasp_coverage"].items()}
    return out


def report_section(llc_path, dataset, meta: dict, report_dir, *, task_name=None, envs: int = 8,
                   steps: int = 100, seed: int = 0, max_windows: int = 2000) -> str:
    """For hrl-skills' report: run ``diagnose`` on the written LLC and its dataset (rollouts in
    ``task_name``, default the dataset's task, when that task names its objects), write
    diagnostics.json, add ``summary`` to metrics.json under "diagnostics" and return the markdown."""
    from .rollout_videos import build_task
    report_dir = Path(report_dir)
    llc = load_llc(llc_path)
    data, _ = load_dataset(dataset)
    task = None
    task_name = task_name or meta.get("task")
    if object_names(isaacgym_task_map.get(task_name)) and llc.latent_dim > 0:
        cfg = copy.deepcopy(meta.get("task_config")) if task_name == meta.get("task") else None
        if cfg:
            cfg["env"].update(episodeLength=steps + 1, terminateOnSuccess=False)
        task = build_task(task_name, envs, cfg, seed)
    try:
        diag = diagnose(llc, data, task, steps=steps, seed=seed, max_windows=max_windows)
    finally:
        if task is not None:
            task.close()
    (report_dir / "diagnostics.json").write_text(json.dumps(diag, indent=2, default=float))
    metrics = report_dir / "metrics.json"
    if metrics.is_file():
        merged = json.loads(metrics.read_text()) | {"diagnostics": summary(diag)}
        metrics.write_text(json.dumps(merged, indent=2, default=float))
    return markdown(diag)

