"""``hrl-import-dataset``: a D4RL file or a Minari dataset into this project's HDF5 format.

    hrl-import-dataset source=~/.minari/datasets/mujoco/walker2d/expert-v0 output=datasets/walker.hdf5
    hrl-import-dataset source=hopper-medium-v2.hdf5 output=datasets/hopper.hdf5 control_dt=0.008 control_type=torque
    hrl-import-dataset source=walk_d4rl.hdf5 output=datasets/walk.hdf5 task=HumanoidLocomotion

What is read and how the observation layout is chosen: ``datasets/importers.py``.
"""
from __future__ import annotations

import sys

from ..datasets.hdf5 import load_dataset
from ..datasets.importers import import_dataset
from ..errors import UserError, exit_on_user_error
from ..utils.config import as_bool


USAGE = """usage: hrl-import-dataset source=PATH output=PATH [format=auto|d4rl|minari] [task=NAME]
                          [obs_layout=[[name,size],...]] [control_dt=SECONDS] [control_type=TYPE]
                          [task_family=NAME] [infos=false]

  source   a D4RL-style .hdf5 file or a Minari dataset directory (holding data/main_data.hdf5)
  task     a project task whose observation layout, control_dt, control_type and family the data has
  infos    also copy D4RL infos/* per-step arrays (as infos.<name>)
"""
CLI_KEYS = {"source", "output", "format", "task", "obs_layout", "control_dt", "control_type", "task_family",
            "infos"}


def parse_args(argv: list[str]) -> dict:
    from omegaconf import OmegaConf
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise UserError(f"arguments are key=value; got {bad}\n{USAGE}")
    try:
        args = OmegaConf.to_container(OmegaConf.from_dotlist(list(argv)), resolve=True)
    except Exception as exc:
        raise UserError(f"cannot parse the arguments ({exc})\n{USAGE}") from None
    unknown = sorted(set(args) - CLI_KEYS)
    if unknown:
        raise UserError(f"unknown argument(s) {unknown}; known: {sorted(CLI_KEYS)}\n{USAGE}")
    for key in ("source", "output"):
        if not args.get(key):
            raise UserError(f"{key}=PATH is required\n{USAGE}")
    if args.get("task"):                       # checked before the source is read
        import difflib

        from ..paths import CFG_DIR
        tasks = sorted(p.stem for p in (CFG_DIR / "task").glob("*.yaml"))
        if args["task"] not in tasks:
            near = difflib.get_close_matches(str(args["task"]), tasks, n=1)
            raise UserError(f"task={args['task']} is not a task of this project; available: {', '.join(tasks)}"
                            + (f" (did you mean {near[0]}?)" if near else ""))
    return args


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return
    args = parse_args(argv)
    path, meta = import_dataset(
        args["source"], args["output"], fmt=str(args.get("format") or "auto"), task=args.get("task") or None,
        obs_layout=args.get("obs_layout") or None, control_dt=args.get("control_dt"),
        control_type=args.get("control_type"), task_family=args.get("task_family"),
        include_infos=as_bool(args.get("infos", False), "infos"))
    data, _ = load_dataset(path)
    ends = int(data["terminals"].sum() + data["timeouts"].sum())
    print(f"wrote {path}: {len(data['actions'])} steps, {ends} episodes, obs_layout {meta['obs_layout']}, "
          f"{data['actions'].shape[1]} actions (source: {meta['source']['format']})")
    lacking = [k for k in ("control_dt", "control_type") if meta.get(k) is None]
    if lacking:
        print(f"note: the dataset has no {' or '.join(lacking)}; hrl-skills needs them: import again with "
              "control_dt=... control_type=... (or task=<project task>)")


if __name__ == "__main__":
    main()
