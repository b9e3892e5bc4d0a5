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
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, exit_on_user_error

# The randomization of the "randomized" conditions (IsaacGymEnvs schema, actor "robot" = every body
# of the scene but the world); re-drawn per env at every reset.
DR_PARAMS = {
    "frequency": 1,
    "observations": {"range": [0.0, 0.01], "operation": "additive", "distribution": "gaussian"},
    "actions": {"range": [0.0, 0.02], "operation": "additive", "distribution": "gaussian"},
    "sim_params": {"gravity": {"range": [0.0, 0.2], "operation": "additive", "distribution": "gaussian"}},
    "actor_params": {"robot": {
        "rigid_body_properties": {"mass": {"range": [0.8, 1.2], "operation": "scaling",
                                           "distribution": "uniform", "setup_only": True}},
        "rigid_shape_properties": {"friction": {"range": [0.7, 1.3], "operation": "scaling",
                                                "distribution": "uniform"}},
        "dof_properties": {"stiffness": {"range": [0.8, 1.2], "operation": "scaling", "distribution": "uniform"},
                           "damping": {"range": [0.8, 1.2], "operation": "scaling", "distribution": "uniform"}}}},
}
# The latency of the "latency" conditions, in control steps (task.env.latency schema).
LATENCY = {"action_delay": [1, 2], "observation_delay": 1}
CONDITIONS = {"nominal": (False, False), "randomized": (True, False), "latency": (False, True),
              "randomized+latency": (True, True)}


def load_policy(spec: str, workdir: Path):
    """(kind, task config dict, policy or None, label) for a checkpoint, an exported file or expert:<Task>."""
    from ..export import ExportedPolicy, export_policy, load_run
    from ..export.run import read_run_config

    if spec.startswith("expert:"):
        from ..utils.task_config import load_task_config
        name = spec.split(":", 1)[1]
        return "expert", {"task_name": name, "task": load_task_config(name)}, None, f"{name} scripted expert"
    path = Path(spec)
    if path.suffix == ".pth":
        run = load_run(path)
        out, _ = export_policy(run, workdir / f"{path.stem}.onnx", fmt="onnx", part="full")
        run.task.close()
        cfg, label = run.config, f"{run.config['task_name']} {path.name}"
    else:
        out = path
        cfg = read_run_config(ExportedPolicy(out).meta["checkpoints"]["policy"]["path"])
        label = f"{cfg['task_name']} {path.name}"
    return "exported", cfg, ExportedPolicy(out), label


@torch.no_grad()
def evaluate(kind: str, cfg: dict, policy, backend: str, randomize: bool, latency: bool,
             num_envs: int, steps: int, seed: int, episode_length: int | None, device: str = "cpu") -> dict:
    from ..export.run import build_task
    from ..tasks.base.latency import Latency

    over = {"task": {"randomize": bool(randomize), "randomization_params": copy.deepcopy(DR_PARAMS)}}
    if episode_length:
        over["env"] = {"episodeLength": int(episode_length)}
    torch.manual_seed(seed)
    task = build_task(cfg, num_envs=num_envs, physics_engine=backend, task_overrides=over, auto_reset=True,
                      device=device)
    n = task.num_envs
    lat = Latency(LATENCY, n, task.device, task.sim_params.substeps,
                  generator=torch.Generator().manual_seed(seed)) if latency else None
    if kind == "expert":
        from ..experts import make_expert
        act = make_expert(task, 0.0, seed)
    else:
        policy.reset(n)
        act = lambda o: torch.from_numpy(policy.act(o.cpu().numpy()))
    obs = task.reset()["obs"]
    if lat is not None:
        obs = lat.delay_observations(obs)
    ep_ret = torch.zeros(n)
    ep_len = torch.zeros(n)
    returns, lengths, fails = [], [], 0
    t0 = time.time()
    for _ in range(steps):
        a = act(obs).to(task.device).float()
        if lat is not None:
            a = lat.delay_actions(a)
        obs_dict, rew, done, extras = task.step(a)
        obs = obs_dict["obs"]
        ep_ret += rew.cpu()
        ep_len += 1
        done = done.cpu().bool()
        ids = done.nonzero().view(-1)
        if lat is not None:
            lat.reset(ids)
            obs = lat.delay_observations(obs)
        if len(ids):
            if kind != "expert":
                policy.reset(rows=ids.numpy())
            returns += ep_ret[ids].tolist()
            lengths += ep_len[ids].tolist()
            failed = done & ~extras["time_outs"].cpu().bool()
            if "successes" in extras:               # Franka: success also ends an episode early
                failed &= ~(extras["successes"].cpu() > 0)
            fails += int(failed.sum())
            ep_ret[ids] = 0.0
            ep_len[ids] = 0.0
    res = {"episodes": len(returns), "return": float(np.mean(returns)) if returns else float("nan"),
           "length": float(np.mean(lengths)) if lengths else float("nan"),
           "fail_rate": fails / len(returns) if returns else float("nan"),
           "seconds": time.time() - t0}
    if hasattr(task, "stats_episodes") and int(task.stats_episodes.sum()) > 0:
        res["success"] = float(task.stats_successes.sum()) / float(task.stats_episodes.sum())
    task.close()
    return res


def table(rows: list) -> str:
    lines = ["| policy | trained on | condition | backend | episodes | return | length | fail rate | success |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = f"{r['success']:.2f}" if "success" in r else "-"
        lines.append(f"| {r['policy']} | {r['trained_on']} | {r['condition']} | {r['backend']} | {r['episodes']} | "
                     f"{r['return']:.1f} | {r['length']:.0f} | {r['fail_rate']:.2f} | {s} |")
    return "\n".join(lines)


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
