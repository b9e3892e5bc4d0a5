"""``hrl-study``: the project's experiments as Hydra multiruns, and their report.

    hrl-study list                                           # the experiments (cfg/study/*.yaml)
    hrl-study run peg_transfer                               # every cell: arm x setting x seed
    hrl-study run peg_transfer seed=0 arm=flat,ldse hydra/launcher=joblib hydra.launcher.n_jobs=2
    hrl-study run peg_transfer hydra/launcher=submitit_slurm hydra.launcher.partition=gpu   # SLURM
    hrl-study report studies/peg_transfer studies/object_transfer --out docs/results.md

``run`` is a Hydra app over ``cfg/study/<experiment>.yaml``: its ``hydra.sweeper.params`` is the grid
(a command-line ``arm=...``, ``setting=...`` or ``seed=...`` replaces that axis), each job is one
cell (isaacgymenvs_hrl/study/cells.py) in ``<out>/<arm>/<setting>/s<seed>``. Any Hydra launcher runs
the jobs: the basic one in turn, ``hydra/launcher=joblib`` in parallel on this machine,
``hydra/launcher=submitit_slurm`` on a SLURM cluster (``pip install 'isaacgymenvs_hrl[sweep]'``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError, exit_on_user_error
from ..paths import CFG_DIR
from ..utils.task_config import HYDRA_VERSION_BASE

STUDY_DIR = CFG_DIR / "study"


def experiments() -> list:
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))


def cell_job(cfg: DictConfig) -> dict:
    """One Hydra job = one cell; runs in the launcher's process (a joblib worker, a SLURM job)."""
    from hydra.core.hydra_config import HydraConfig

    from ..study.cells import flatten, plan, run_cell

    hc = HydraConfig.get()
    c = OmegaConf.to_container(cfg, resolve=True)
    b = c["budget"]
    try:
        p = plan(c["study"], str(c["arm"]), str(c["setting"]), int(c["seed"]), c["arms"], c["settings"],
                 int(b["env_steps"]), int(b["num_envs"]), int(b["horizon"]),
                 float(b["max_time"]) if b.get("max_time") not in (None, "") else None,
                 flatten(c.get("hrl_train") or {}))
        return run_cell(hc.runtime.output_dir, c["study"], str(c["arm"]), str(c["setting"]), int(c["seed"]), p,
                        list(hc.overrides.task))
    except UserError as exc:       # Hydra runs the other cells, then reports the first failure
        raise CellError(str(exc)) from None


class CellError(UserError):
    """A cell that could not run or failed; its message says which and why."""


def run(experiment: str, overrides: list) -> None:
    import hydra

    if experiment not in experiments():
        raise UserError(f"no study '{experiment}': choose one of {', '.join(experiments())} (cfg/study/*.yaml)")
    sys.argv = [sys.argv[0], *overrides]
    hydra.main(version_base=HYDRA_VERSION_BASE, config_path=str(STUDY_DIR), config_name=experiment)(cell_job)()


@exit_on_user_error
def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and len(argv) >= 2 and not argv[1].startswith("-"):
        return run(argv[1], argv[2:])
    ap = argparse.ArgumentParser(prog="hrl-study", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the experiments (cfg/study/*.yaml)")
    r = sub.add_parser("run", help="hrl-study run EXPERIMENT [HYDRA OVERRIDES...]: sweep the experiment's cells")
    r.add_argument("experiment", nargs="?")
    rep = sub.add_parser("report", help="tables (markdown) and learning curves (PNG) from finished sweeps")
    rep.add_argument("sweeps", nargs="+", help="sweep folders (the experiments' out=...)")
    rep.add_argument("--out", default="docs/results.md", help="the markdown file to write")
    rep.add_argument("--img", default=None, help="folder of the PNGs (default: <out without .md>_img)")
    rep.add_argument("--title", default="Study results")
    rep.add_argument("--notes", default=None, help="markdown placed after the title (what held, what did not)")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for name in experiments():
            first = (STUDY_DIR / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
            print(f"{name:20s} {first}")
    elif args.cmd == "run":
        raise UserError(f"hrl-study run needs an experiment: one of {', '.join(experiments())}")
    else:
        from ..study.report import write_report
        out = write_report(args.sweeps, args.out, args.img, args.title,
                           command=" ".join(["hrl-study", *argv]), notes=args.notes)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
