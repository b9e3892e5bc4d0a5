"""``hrl-skills``: dataset -> LLC checkpoint + report folder.

    hrl-skills algo=bc dataset=datasets/HumanoidLocomotion.hdf5 output=llcs/walk_bc.llc.pt
    hrl-skills algo=ldse|helms|mrs|npmp dataset=... output=... skills.epochs=10
    torchrun --standalone --nproc_per_node=2 -m isaacgymenvs_hrl.cli.skills algo=ldse dataset=... output=...

``algo=`` picks the algorithm (skills/algorithms.py) and its settings (cfg/skills/<algo>.yaml,
overridable as ``skills.<field>=...``); ``skills=<algo>`` is the older spelling of the same choice.
Under torchrun the ranks train data-parallel and rank 0 writes the files.

The LLC (with any file its algorithm writes beside it, e.g. LDSE's encoder) and its report folder
(skills/report.py) are staged, checked and committed together (utils/atomic.py): a killed run leaves
the previous set or the new one, never a mix.
"""
from __future__ import annotations

import math
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from isaacgymenvs_hrl.datasets import load_dataset
from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.hrl import load_llc
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.skills.algorithms import algorithm, make_config
from isaacgymenvs_hrl.skills.common import distributed, shutdown_distributed
from isaacgymenvs_hrl.skills.report import diagnostics_section, exploration_section, video_recorder, write_report
from isaacgymenvs_hrl.utils import atomic
from isaacgymenvs_hrl.utils.config import as_bool, as_int, register_resolvers, to_dict
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE

register_resolvers()


# ============================================================================================
# Checks of the settings and of what training produced
# ============================================================================================
def check_settings(cfg: DictConfig) -> None:
    """The command's own numbers and switches (the algorithm's are checked by ``make_config``)."""
    if OmegaConf.is_missing(cfg, "dataset") or not cfg.dataset:
        raise UserError("dataset= is required: hrl-skills algo=bc dataset=PATH/TO/data.hdf5 output=llcs/x.llc.pt "
                        "(make one with hrl-collect or hrl-import-dataset)")
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


def check_llc_output(output) -> None:
    """The new LLC must load (finite weights) and have finite, positive normalizers."""
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


# ============================================================================================
# Training, report and commit
# ============================================================================================
def _fit(cfg: DictConfig, dist, output: str):
    """Load the dataset and train the chosen algorithm, which writes the LLC to ``output``."""
    cls, train = algorithm(cfg.skills.algo)
    algo_cfg = make_config(cls, {k: v for k, v in to_dict(cfg.skills).items() if k != "algo"})
    data, meta = load_dataset(cfg.dataset)
    meta["path"] = str(cfg.dataset)
    log = tqdm.write if dist.is_main else (lambda *_: None)
    return train(data, meta, algo_cfg, output, log=log, progress=dist.is_main), meta


def _train(cfg: DictConfig, dist) -> None:
    """Train into a staging folder, check, write the report into another, then commit the LLC (and
    what its algorithm wrote beside it) and the report together."""
    check_settings(cfg)
    if int(cfg.get("torch_threads", 0) or 0) > 0:
        torch.set_num_threads(int(cfg.torch_threads))
    if dist.is_main:
        _warn_on_conflicting_choice()
    output = atomic.check_writable(cfg.output, "output", example="skill.llc.pt")       # before any training
    report = Path(cfg.report_dir or str(output.with_suffix("")) + "_report")
    atomic.check_not_input(output, {"dataset": cfg.dataset})
    atomic.check_not_input(report, {"dataset": cfg.dataset, "output": output}, "report_dir")
    if report.exists() and not report.is_dir():
        raise UserError(f"report_dir={report} is a file; give a folder (default: <output>_report)")
    algorithm(cfg.skills.algo)                                                           # a known name
    if not dist.is_main:                       # the other ranks train their share and write nothing
        result, _ = _fit(cfg, dist, str(output))
        print(f"rank {dist.rank}/{dist.world_size}: parameters sha256 {result.get('param_digest')}", flush=True)
        return
    for done in atomic.finish_commits(output.parent):
        print(f"note: completed {done}, whose commit a killed run left half done")
    atomic.remove_stale_staging(report)
    atomic.remove_stale_tmp(output.parent)
    with atomic.staging(output) as stage:
        staged = stage / output.name
        try:
            result, meta = _fit(cfg, dist, str(staged))
            check_llc_output(staged)
            check_metrics(result.get("metrics") or {})
        except UserError as exc:
            if output.exists():
                raise UserError(f"{exc}; the previous {cfg.output} was kept") from None
            raise
        if dist.enabled:
            print(f"rank {dist.rank}/{dist.world_size}: parameters sha256 {result.get('param_digest')}", flush=True)
        with atomic.staging(report, unit=output) as report_stage:
            settings = to_dict(cfg.get("report") or {})
            sections = [s for s in (exploration_section(settings, meta, str(staged), cfg.seed),
                                    diagnostics_section(settings, cfg.dataset, meta, str(staged), cfg.seed)) if s]
            write_report(report_stage, result, str(staged),
                         video_recorder(settings, meta, result, str(staged), cfg.seed), sections, shown=str(cfg.output))
            beside = [(f, output.parent / f.name) for f in atomic.staged_files(stage) if f != staged]
            atomic.commit_together([(staged, output), *beside, (report_stage, report)])
    print(f"wrote {cfg.output} and {report}/ ({result['metrics']})")


@hydra.main(version_base=HYDRA_VERSION_BASE, config_name="skills_config", config_path=str(CFG_DIR))
@exit_on_user_error
def main_hydra(cfg: DictConfig) -> None:
    dist = distributed(str(cfg.skills.get("device", "cpu")))
    try:
        _train(cfg, dist)
    finally:
        shutdown_distributed()


def main() -> None:
    main_hydra()


if __name__ == "__main__":
    main()
