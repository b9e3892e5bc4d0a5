"""``hrl-sim2sim``: a policy trained on one backend, evaluated on both (mujoco <-> mjwarp, CPU here),
nominal, with domain randomization, with latency, and with both. One command, one table.

The policy that runs is the deployable artifact: an rl-games checkpoint is exported to ONNX first
(``hrl-export``'s code, into ``--workdir``) and stepped with onnxruntime, hold state included; a
Franka task can instead run its scripted expert (``expert:FrankaStack``), which reads privileged
state, so there only the physics, the randomization and the action delay act on it.

    hrl-sim2sim --policy runs/<run>/nn/<ckpt>.pth --policy expert:FrankaStack \
        --num-envs 8 --steps 300 --output results/sim_to_sim.md

Per condition and backend: episodes that ended in the window, their mean return and length, the
share that failed early (terminations that are neither time-outs nor successes: a humanoid's falls)
and, for Franka, the success rate (time-outs count as failures there).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from ..errors import UserError, exit_on_user_error
from ..tools.sim2sim import CONDITIONS, DR_PARAMS, LATENCY, evaluate, load_policy, table


@exit_on_user_error
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="hrl-sim2sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", action="append", required=True,
                    help="rl-games .pth of an hrl-train run, an hrl-export file, or expert:<FrankaTask>")
    ap.add_argument("--backends", default="mujoco,mjwarp")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300, help="control steps per condition")
    ap.add_argument("--episode-length", type=int, default=0, help="override task.env.episodeLength (0: keep)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="sim/rl device of the tasks (cuda:0: mjwarp on the GPU)")
    ap.add_argument("--workdir", default="", help="where checkpoints are exported (default: a temp folder)")
    ap.add_argument("--output", default="", help="write the table (Markdown) here, and its JSON beside it")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="sim_to_sim_"))
    workdir.mkdir(parents=True, exist_ok=True)
    for cond in args.conditions.split(","):
        if cond not in CONDITIONS:
            raise UserError(f"--conditions: unknown '{cond}'; choose from {', '.join(CONDITIONS)}")
    rows = []
    for spec in args.policy:
        kind, cfg, policy, label = load_policy(spec, workdir)
        trained_on = cfg["task"].get("physics_engine", "mujoco") if kind != "expert" else "-"
        for cond in args.conditions.split(","):
            rnd, lat = CONDITIONS[cond]
            for backend in args.backends.split(","):
                r = evaluate(kind, cfg, policy, backend, rnd, lat, args.num_envs, args.steps, args.seed,
                             args.episode_length or None, args.device)
                rows.append({"policy": label, "trained_on": trained_on, "condition": cond,
                             "backend": backend, **r})
                print(f"{label} | {cond} | {backend}: {r}", flush=True)
    md = table(rows)
    print(md)
    if args.output:
        from ..utils.atomic import commit, tmp_path
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        header = (f"{args.num_envs} envs x {args.steps} control steps per row, seed {args.seed}; "
                  f"randomization {json.dumps(DR_PARAMS)}; latency {json.dumps(LATENCY)}\n\n")
        for path, text in ((out, header + md + "\n"), (out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")):
            tmp = tmp_path(path)
            tmp.write_text(text)
            commit(tmp, path)
        print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
