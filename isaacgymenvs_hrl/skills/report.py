"""The report folder of a trained LLC: loss curves, latent plots, metrics.json and index.md.

``write_report`` draws what every trainer's result holds (the loss history; the inferred latents,
HeLMS' skill usage and transitions where the result's "report" has them). The optional parts run
the written LLC in its task and add a section each: rollout videos with a skill held fixed, zero-shot
exploration, skill diagnostics. The LLC is complete before the report starts, so a part that fails
leaves a note in index.md and a warning, never a lost LLC. ``settings`` is the ``report:`` block of
cfg/skills_config.yaml as a plain dict.
"""
from __future__ import annotations

import copy
import json
import traceback
from pathlib import Path

import numpy as np

from ..errors import UserError
from .common import pca_2d


# ============================================================================================
# Figures, metrics.json and index.md
# ============================================================================================
def write_report(report_dir, result: dict, output: str, videos=None, sections=(), shown: str | None = None) -> None:
    """Figures, metrics.json and index.md into the (staging) folder ``report_dir``; ``output`` is the
    LLC file the reporters read, ``shown`` the name index.md gives it (default ``output``).
    ``videos(folder) -> (entries, note)`` records the rollout videos into ``folder/videos``
    (entries: [{"file", "title"}]; note: why there are none); each of ``sections(folder) -> markdown``
    adds a part to index.md. A report that fails is replaced by metrics.json and a note."""
    try:
        _write_report(Path(report_dir), result, shown or output, videos, sections)
    except Exception as exc:             # the LLC is checked; a report problem must not lose it
        note = f"the report could not be written ({type(exc).__name__}: {exc})"
        print(f"warning: {note}; the LLC is complete")
        (Path(report_dir) / "metrics.json").write_text(json.dumps(result["metrics"], indent=2))
        (Path(report_dir) / "index.md").write_text(f"# LLC report\n\ncheckpoint: `{shown or output}`\n\n{note}\n")


def _write_report(report_dir: Path, result: dict, output: str, videos=None, sections=()) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report_dir.mkdir(parents=True, exist_ok=True)
    history = result["history"]
    totals = {k: v for k, v in history.items() if k in ("train_loss", "val_loss")}
    terms = {k: v for k, v in history.items() if k.startswith("train_") and k not in totals}
    fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(10 if terms else 5, 3.5), squeeze=False)
    for key, values in totals.items():
        axes[0, 0].plot(range(1, len(values) + 1), values, label=key)
    axes[0, 0].set_xlabel("epoch"); axes[0, 0].set_ylabel("loss"); axes[0, 0].legend()
    axes[0, 0].set_yscale("log" if all(min(v) > 0 for v in totals.values()) else "symlog")
    if terms:
        for key, values in terms.items():
            axes[0, 1].plot(range(1, len(values) + 1), values, label=key[len("train_"):])
        axes[0, 1].set_xlabel("epoch"); axes[0, 1].set_ylabel("train term"); axes[0, 1].set_yscale("symlog")
        axes[0, 1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(report_dir / "losses.png", dpi=100)
    plt.close(fig)
    images = ["losses"]

    extra = result.get("report") or {}
    if "latents" in extra:
        z, labels = np.asarray(extra["latents"]), np.asarray(extra["labels"])
        keep = np.random.default_rng(0).permutation(len(z))[:5000]
        xy = pca_2d(z[keep])
        fig, ax = plt.subplots(figsize=(5, 4))
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels[keep], s=4, cmap="tab10" if labels.max() < 10 else "viridis")
        fig.colorbar(sc, ax=ax, label=extra.get("label_name", "label"))
        ax.set_xlabel("PC 1"); ax.set_ylabel("PC 2"); ax.set_title("latents (PCA)")
        fig.tight_layout()
        fig.savefig(report_dir / "latents_pca.png", dpi=100)
        plt.close(fig)
        images.append("latents_pca")
    if "usage" in extra:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(range(len(extra["usage"])), extra["usage"])
        ax.set_xlabel("skill y"); ax.set_ylabel("share of steps (filtered q(y|x))")
        fig.tight_layout()
        fig.savefig(report_dir / "skill_usage.png", dpi=100)
        plt.close(fig)
        images.append("skill_usage")
    if "transitions" in extra:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for ax, key, title in ((axes[0], "transitions", "empirical (argmax y) transitions"),
                               (axes[1], "transition_prior", "learned prior p(y_t | y_t-1), over the data")):
            im = ax.imshow(extra[key], vmin=0, vmax=1, cmap="magma")
            ax.set_xlabel("y_t"); ax.set_ylabel("y_t-1"); ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(report_dir / "transitions.png", dpi=100)
        plt.close(fig)
        images.append("transitions")
    (report_dir / "metrics.json").write_text(json.dumps(result["metrics"], indent=2))
    video_md = ""
    if videos is not None:
        entries, note = videos(report_dir)
        video_md = "\n## Rollouts with the skill held fixed\n\n" + (note + "\n" if note else "") + "".join(
            f"- {v['title']}: [{v['file']}]({v['file']})\n\n  <video src=\"{v['file']}\" controls muted></video>\n"
            for v in entries)
    video_md += "".join(section(report_dir) for section in sections)
    (report_dir / "index.md").write_text(
        f"# LLC report\n\ncheckpoint: `{output}`\n\n" + "".join(f"![{i}]({i}.png)\n\n" for i in images)
        + "\n".join(f"- {k}: {v}" for k, v in result["metrics"].items()) + "\n" + video_md)


# ============================================================================================
# Parts that run the LLC in its task
# ============================================================================================
def _task_name(settings: dict, meta: dict):
    return settings.get("task") or meta.get("task")


def video_recorder(settings: dict, meta: dict, result: dict, output: str, seed: int, log=print):
    """The ``videos`` callback of ``write_report`` (None when ``settings["videos"]`` is off).

    A missing task name or a renderer that cannot start leaves a note in index.md and a warning."""
    if not settings.get("videos", False):
        return None
    task_name = _task_name(settings, meta)

    def record(report_dir: Path):
        if not task_name:
            note = ("no videos: the dataset's metadata names no task; set report.task=<task> to record "
                    "rollouts with each skill held fixed")
            log(f"warning: {note}")
            return [], note
        from .rollout_videos import record_skill_videos
        extra = result.get("report") or {}
        same_task = task_name == meta.get("task")
        try:
            entries = record_skill_videos(
                output, task_name, report_dir / "videos", task_config=meta.get("task_config") if same_task else None,
                latents=extra.get("latents"), labels=extra.get("labels"), steps=int(settings.get("video_steps", 100)),
                num_envs=int(settings.get("video_envs", 2)), width=int(settings.get("video_width", 160)),
                height=int(settings.get("video_height", 120)), max_videos=int(settings.get("max_videos", 6)),
                seed=int(seed), log=log)
            return entries, ""
        except Exception as exc:                  # the LLC is written; a video problem must not lose it
            note = f"no videos: recording in task {task_name} failed ({type(exc).__name__}: {exc})"
            log(f"warning: {note}")
            if not isinstance(exc, UserError):
                log(traceback.format_exc())
            return [], note
    return record


def exploration_section(settings: dict, meta: dict, output: str, seed: int, log=print):
    """A ``sections`` callback: zero-shot exploration of the LLC in its task (random flat actions vs
    a random high level; see skills/exploration.py), saved as exploration.json; None when off."""
    task_name = _task_name(settings, meta)
    if not settings.get("exploration", False) or not task_name:
        return None

    def section(report_dir: Path) -> str:
        from ..hrl import load_llc
        from .exploration import exploration_table
        from .rollout_videos import build_task
        steps = int(settings.get("exploration_steps", 100))
        task_cfg = copy.deepcopy(meta.get("task_config")) if task_name == meta.get("task") else None
        if task_cfg:
            task_cfg["env"].update(episodeLength=steps + 1, terminateOnSuccess=False)
        try:
            task = build_task(task_name, int(settings.get("exploration_envs", 8)), task_cfg, int(seed))
            if not hasattr(task, "reward_for"):
                return f"\n## Zero-shot exploration\n\nnot measured: {task_name} has no reward_for (Franka tasks only)\n"
            rows, md = exploration_table(task, load_llc(output), steps, int(seed))
            task.close()
        except Exception as exc:                  # the LLC is written; a report problem must not lose it
            log(f"warning: zero-shot exploration in {task_name} failed ({type(exc).__name__}: {exc})")
            return f"\n## Zero-shot exploration\n\nfailed: {type(exc).__name__}: {exc}\n"
        (report_dir / "exploration.json").write_text(json.dumps(rows, indent=2))
        return (f"\n## Zero-shot exploration ({task_name}, {task.num_envs} envs x {steps} control steps)\n\n"
                "Reward per control step and variance over the episode (coverage).\n\n" + md)
    return section


def diagnostics_section(settings: dict, dataset: str, meta: dict, output: str, seed: int, log=print):
    """A ``sections`` callback: skills/diagnostics.py on the written LLC; None when
    ``settings["diagnostics"]`` is off."""
    if not settings.get("diagnostics", True):
        return None

    def section(report_dir: Path) -> str:
        from .diagnostics import report_section
        try:
            return report_section(output, dataset, meta, report_dir, task_name=settings.get("task"),
                                  envs=int(settings.get("exploration_envs", 8)),
                                  steps=int(settings.get("exploration_steps", 100)), seed=int(seed))
        except Exception as exc:                  # the LLC is written; a report problem must not lose it
            log(f"warning: skill diagnostics failed ({type(exc).__name__}: {exc})")
            return f"\n## Skill diagnostics\n\nfailed: {type(exc).__name__}: {exc}\n"
    return section
