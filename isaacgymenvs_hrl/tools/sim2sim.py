"""What ``hrl-sim2sim`` (``cli/sim2sim.py``) runs: a policy (an exported hrl-train checkpoint or a scripted
expert) on each backend under each condition (nominal, randomized, latency, both), and the table."""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch


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
