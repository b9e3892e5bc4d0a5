"""``hrl-skills``: dataset -> LLC checkpoint + report folder.

    hrl-skills algo=bc dataset=datasets/HumanoidLocomotion.hdf5 output=llcs/walk_bc.llc.pt
    hrl-skills algo=ldse|helms|mrs|npmp dataset=... output=... skills.epochs=10
    torchrun --standalone --nproc_per_node=2 -m isaacgymenvs_hrl.skills_cli algo=ldse dataset=... output=...

``algo=`` picks the algorithm and its settings (cfg/skills/<algo>.yaml, overridable as
``skills.<field>=...``); ``skills=<algo>`` is the older spelling of the same choice. Under torchrun
the ranks train data-parallel (``skills.common.Distributed``) and rank 0 writes the files.

The report folder holds the loss curves, metrics.json and, for latent-skill algorithms, a 2-D PCA
projection of the inferred latents (coloured by skill, horizon or episode); HeLMS adds its skill
usage histogram and transition heatmaps; with ``report.videos`` (default on, when the dataset names
its task) MP4s of rollouts with each discrete skill or latent cluster held fixed.
"""
from __future__ import annotations

import copy
import importlib
import json
import shutil
import traceback
from dataclasses import fields
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401
import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE
from isaacgymenvs_hrl.skills.common import distributed, shutdown_distributed
from isaacgymenvs_hrl.utils.config import register_resolvers, to_dict

register_resolvers()

# algo -> (module, config dataclass, train function); each train(data, meta, cfg, output) writes the LLC
ALGORITHMS = {
    "ldse": ("isaacgymenvs_hrl.skills.ldse", "LDSEConfig", "train_ldse"),
    "helms": ("isaacgymenvs_hrl.skills.helms", "HeLMSConfig", "train_helms"),
    "mrs": ("isaacgymenvs_hrl.skills.mrs", "MRSConfig", "train_mrs"),
    "npmp": ("isaacgymenvs_hrl.skills.npmp", "NPMPConfig", "train_npmp"),
}


def write_report(report_dir: Path, result: dict, output: str, videos=None, sections=(), shown: str | None = None) -> None:
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
        from isaacgymenvs_hrl.skills.common import pca_2d
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


def video_recorder(cfg: DictConfig, meta: dict, result: dict, output: str, log=print):
    """The ``videos`` callback of ``write_report`` for ``cfg.report`` (None when switched off).

    A missing task name or a renderer that cannot start leaves a note in index.md and a warning,
    not a failed run: the checkpoint is already written."""
    rep = cfg.get("report") or {}
    if not rep.get("videos", False):
        return None
    task_name = rep.get("task") or meta.get("task")

    def record(report_dir: Path):
        if not task_name:
            note = ("no videos: the dataset's metadata names no task; set report.task=<task> to record "
                    "rollouts with each skill held fixed")
            log(f"warning: {note}")
            return [], note
        from isaacgymenvs_hrl.skills.rollout_videos import record_skill_videos
        extra = result.get("report") or {}
        same_task = task_name == meta.get("task")
        try:
            entries = record_skill_videos(
                output, task_name, report_dir / "videos", task_config=meta.get("task_config") if same_task else None,
                latents=extra.get("latents"), labels=extra.get("labels"), steps=int(rep.get("video_steps", 100)),
                num_envs=int(rep.get("video_envs", 2)), width=int(rep.get("video_width", 160)),
                height=int(rep.get("video_height", 120)), max_videos=int(rep.get("max_videos", 6)),
                seed=int(cfg.seed), log=log)
            return entries, ""
        except Exception as exc:                  # the LLC is written; a video problem must not lose it
            note = f"no videos: recording in task {task_name} failed ({type(exc).__name__}: {exc})"
            log(f"warning: {note}")
            if not isinstance(exc, UserError):
                log(traceback.format_exc())
            return [], note
    return record


def exploration_reporter(cfg: DictConfig, meta: dict, output: str, log=print):
    """A ``sections`` callback: zero-shot exploration of the LLC in its task (random flat actions vs
    a random high level; see skills/exploration.py), saved as exploration.json; None when off."""
    rep = cfg.get("report") or {}
    task_name = rep.get("task") or meta.get("task")
    if not rep.get("exploration", False) or not task_name:
        return None

    def section(report_dir: Path) -> str:
        from isaacgymenvs_hrl.hrl import load_llc
        from isaacgymenvs_hrl.skills.exploration import exploration_table
        from isaacgymenvs_hrl.skills.rollout_videos import build_task
        steps = int(rep.get("exploration_steps", 100))
        task_cfg = copy.deepcopy(meta.get("task_config")) if task_name == meta.get("task") else None
        if task_cfg:
            task_cfg["env"].update(episodeLength=steps + 1, terminateOnSuccess=False)
        try:
            task = build_task(task_name, int(rep.get("exploration_envs", 8)), task_cfg, int(cfg.seed))
            if not hasattr(task, "reward_for"):
                return f"\n## Zero-shot exploration\n\nnot measured: {task_name} has no reward_for (Franka tasks only)\n"
            rows, md = exploration_table(task, load_llc(output), steps, int(cfg.seed))
            task.close()
        except Exception as exc:                  # the LLC is written; a report problem must not lose it
            log(f"warning: zero-shot exploration in {task_name} failed ({type(exc).__name__}: {exc})")
            return f"\n## Zero-shot exploration\n\nfailed: {type(exc).__name__}: {exc}\n"
        (report_dir / "exploration.json").write_text(json.dumps(rows, indent=2))
        return (f"\n## Zero-shot exploration ({task_name}, {task.num_envs} envs x {steps} control steps)\n\n"
                "Reward per control step and variance over the episode (coverage).\n\n" + md)
    return section


def diagnostics_reporter(cfg: DictConfig, meta: dict, output: str, log=print):
    """A ``sections`` callback: skills/diagnostics.py on the written LLC; None when report.diagnostics=false."""
    rep = cfg.get("report") or {}
    if not rep.get("diagnostics", True):
        return None

    def section(report_dir: Path) -> str:
        from isaacgymenvs_hrl.skills.diagnostics import report_section
        try:
            return report_section(output, cfg.dataset, meta, report_dir, task_name=rep.get("task"),
                                  envs=int(rep.get("exploration_envs", 8)),
                                  steps=int(rep.get("exploration_steps", 100)), seed=int(cfg.seed))
        except Exception as exc:                  # the LLC is written; a report problem must not lose it
            log(f"warning: skill diagnostics failed ({type(exc).__name__}: {exc})")
            return f"\n## Skill diagnostics\n\nfailed: {type(exc).__name__}: {exc}\n"
    return section


def make_config(cls, params: dict):
    """The algorithm's config dataclass, each value checked against its field's type (and epochs >= 1)."""
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        import difflib
        near = {u: difflib.get_close_matches(u, sorted(known), n=1) for u in unknown}
        hint = "; ".join(f"skills.{u}: did you mean skills.{m[0]}?" for u, m in near.items() if m)
        raise UserError(f"skills config: unknown field(s) {unknown} for {cls.__name__}"
                        + (f" ({hint})" if hint else f"; known fields: {sorted(known)}"))
    for name, value in params.items():
        _check_field(name, value, str(known[name].type))
    return cls(**params)


# float settings with a range: (low, high, low excluded, high excluded); others are finite numbers >= 0
_FLOAT_RANGES = {"lr": (0.0, 1.0, True, False), "learning_rate": (0.0, 1.0, True, False),
                 "val_fraction": (0.0, 1.0, False, True), "alpha": (0.0, 1.0, False, False),
                 "prior_stay": (0.0, 1.0, False, True), "fixed_std": (0.0, None, True, False),
                 "action_std": (0.0, None, True, False), "latent_scale": (0.0, None, True, False)}


def _check_field(name: str, value, annotation: str) -> None:
    """One ``skills.<name>`` value against its type and range (sizes and counts are >= 1)."""
    from isaacgymenvs_hrl.utils.config import as_bool, as_float, as_int, check_device
    key = f"skills.{name}"
    kind = annotation.replace("typing.", "").split("[")[0].strip()
    if kind == "int":
        as_int(value, key, low={"seed": None, "num_skills": 2}.get(name, 1))
    elif kind == "float":
        low, high, low_open, high_open = _FLOAT_RANGES.get(name, (0.0, None, False, False))
        as_float(value, key, low=low, high=high, low_open=low_open, high_open=high_open)
    elif kind == "bool":
        as_bool(value, key)
    elif kind in ("list", "tuple", "List", "Tuple", "Sequence"):
        if not isinstance(value, (list, tuple)) or not value:
            raise UserError(f"{key} must be a non-empty list, e.g. {key}=[64,64], got {value!r}")
        if name.endswith("_obs") or name == "condition_on":
            bad = [v for v in value if not isinstance(v, str)]
            if bad:
                raise UserError(f"{key} must list observation slice names, got {value!r}")
        else:                                   # layer widths, horizons
            for i, v in enumerate(value):
                as_int(v, f"{key}[{i}]", low=1)
    elif name == "device":
        check_device(value, key)


def check_llc_output(output: str) -> None:
    """The new LLC must load (finite weights) and have finite, positive normalizers."""
    import torch

    from isaacgymenvs_hrl.hrl import load_llc
    llc = load_llc(output)
    for name, buf in llc.named_buffers():
        if buf.is_floating_point() and not torch.isfinite(buf).all():
            raise UserError(f"training produced an LLC whose {name} holds NaN or infinite values (the data or "
                            "the optimisation diverged)")
        if name.endswith("std") and buf.numel() and (buf <= 0).any():
            raise UserError(f"training produced an LLC whose {name} has zero or negative entries (a constant "
                            "observation column?); its actions would be NaN")


def check_metrics(metrics: dict) -> None:
    """A final loss that is NaN or infinite means the fit diverged, whatever the weights look like."""
    import math
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise UserError(f"training diverged ({', '.join(f'{k}={v}' for k, v in bad.items())}): the LLC would "
                        "produce NaN or meaningless actions; check the dataset's value ranges or lower skills.lr")


def _warn_on_conflicting_choice() -> None:
    """``algo=ldse skills=helms``: the explicit skills= choice wins; say so."""
    try:
        from hydra.core.hydra_config import HydraConfig
        choices = HydraConfig.get().runtime.choices
    except Exception:
        return
    if choices.get("algo") and choices.get("skills") and choices["algo"] != choices["skills"]:
        print(f"warning: skills={choices['skills']} overrides algo={choices['algo']}; training "
              f"{choices['skills']}", flush=True)


@hydra.main(version_base=HYDRA_VERSION_BASE, config_name="skills_config", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    dist = distributed(str(cfg.skills.get("device", "cpu")))
    try:
        _train(cfg, dist)
    finally:
        shutdown_distributed()


def check_settings(cfg: DictConfig) -> None:
    """The command's own numbers and switches (the algorithm's are checked by ``make_config``)."""
    from isaacgymenvs_hrl.utils.config import as_bool, as_int
    as_int(cfg.get("torch_threads", 0) or 0, "torch_threads", low=0)
    as_int(cfg.seed, "seed")
    rep = cfg.get("report") or {}
    for key in ("videos", "exploration", "diagnostics"):
        if key in rep:
            as_bool(rep[key], f"report.{key}")
    for key, low in (("video_steps", 1), ("video_envs", 1), ("video_width", 16), ("video_height", 16),
                     ("max_videos", 1), ("exploration_envs", 1), ("exploration_steps", 1)):
        if key in rep:
            as_int(rep[key], f"report.{key}", low=low)


def _train(cfg: DictConfig, dist) -> None:
    """Train into a staging folder, check, write the report into another, then commit the LLC (and
    the LDSE encoder) and the report together: a kill leaves the previous set or the new one."""
    from omegaconf import OmegaConf

    from isaacgymenvs_hrl.utils import atomic
    if OmegaConf.is_missing(cfg, "dataset") or not cfg.dataset:
        raise UserError("dataset= is required: hrl-skills algo=bc dataset=PATH/TO/data.hdf5 output=llcs/x.llc.pt "
                        "(make one with hrl-collect or hrl-import-dataset)")
    check_settings(cfg)
    if int(cfg.get("torch_threads", 0) or 0) > 0:
        import torch
        torch.set_num_threads(int(cfg.torch_threads))
    if dist.is_main:
        _warn_on_conflicting_choice()
    output = atomic.check_writable(cfg.output, "output", example="skill.llc.pt")       # before any training
    report = Path(cfg.report_dir or str(output.with_suffix("")) + "_report")
    atomic.check_not_input(output, {"dataset": cfg.dataset})
    atomic.check_not_input(report, {"dataset": cfg.dataset, "output": output}, "report_dir")
    if report.exists() and not report.is_dir():
        raise UserError(f"report_dir={report} is a file; give a folder (default: <output>_report)")
    algo = cfg.skills.algo
    params = {k: v for k, v in to_dict(cfg.skills).items() if k != "algo"}
    if algo != "bc" and algo not in ALGORITHMS:
        raise UserError(f"skills algorithm '{algo}' is not implemented; available: {['bc', *ALGORITHMS]}")
    staged = output                        # ranks other than 0 write nothing
    if dist.is_main:
        for done in atomic.finish_commits(output.parent):
            print(f"note: completed {done}, whose commit a killed run left half done")
        atomic.remove_stale_staging(report)
        atomic.remove_stale_tmp(output.parent)
        stage = atomic.staging_dir(output)
        staged = stage / output.name
    try:
        result, meta = _fit(cfg, dist, algo, params, str(staged))
        if dist.is_main:
            check_llc_output(staged)
            check_metrics(result.get("metrics") or {})
    except BaseException as exc:
        if dist.is_main:
            shutil.rmtree(stage, ignore_errors=True)
            if isinstance(exc, UserError) and output.exists():
                raise UserError(f"{exc}; the previous {cfg.output} was kept") from None
        raise
    if dist.enabled:
        print(f"rank {dist.rank}/{dist.world_size}: parameters sha256 {result.get('param_digest')}", flush=True)
    if not dist.is_main:
        return
    report_stage = None
    try:
        report_stage = atomic.staging_dir(report)
        sections = [s for s in (exploration_reporter(cfg, meta, str(staged), log=print),
                                diagnostics_reporter(cfg, meta, str(staged), log=print)) if s]
        write_report(report_stage, result, str(staged), video_recorder(cfg, meta, result, str(staged), log=print),
                     sections, shown=str(cfg.output))
        pairs = [(staged, output), (report_stage, report)]
        if algo == "ldse":
            from isaacgymenvs_hrl.skills.ldse import encoder_path
            pairs.insert(1, (encoder_path(staged), encoder_path(output)))
        atomic.commit_together(pairs)
    finally:
        if not atomic.journal_path(output).exists():      # else a failed commit: the next run completes it
            shutil.rmtree(stage, ignore_errors=True)
            if report_stage is not None:
                shutil.rmtree(report_stage, ignore_errors=True)
    print(f"wrote {cfg.output} and {report}/ ({result['metrics']})")


def _fit(cfg: DictConfig, dist, algo: str, params: dict, output: str):
    """Load the dataset and train ``algo``; the algorithm writes the LLC to ``output``."""
    log = tqdm.write if dist.is_main else (lambda *_: None)
    if algo == "bc":
        from isaacgymenvs_hrl.skills.bc import BCConfig, train_bc
        bc_cfg = make_config(BCConfig, params)
        data, meta = load_dataset(cfg.dataset, require_slices=list(bc_cfg.policy_obs) + list(bc_cfg.condition_on))
        meta["path"] = str(cfg.dataset)
        result = train_bc(data, meta, bc_cfg, output, log=log)
    elif algo in ALGORITHMS:
        module, cls_name, fn_name = ALGORITHMS[algo]
        module = importlib.import_module(module)
        algo_cfg = make_config(getattr(module, cls_name), params)
        data, meta = load_dataset(cfg.dataset)
        meta["path"] = str(cfg.dataset)
        result = getattr(module, fn_name)(data, meta, algo_cfg, output, log=log, progress=dist.is_main)
    else:
        raise UserError(f"skills algorithm '{algo}' is not implemented; available: "
                        f"{['bc', *ALGORITHMS]}")
    return result, meta


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
