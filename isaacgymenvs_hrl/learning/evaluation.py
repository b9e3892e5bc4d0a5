"""What a trained policy does, in the task's own terms: a deterministic rollout of the untrained and
the trained policy side by side (falls, targets reached, tracking errors per episode), printed at
the end of ``hrl-train eval_summary=True``, with an MP4 of the trained one.

Both rollouts start every env from a reset and run one episode length (``max_episode_length``
steps of the env: macro steps for a hierarchical task). Every episode that ends inside that window
counts: falls are terminations that are not time-outs, the other columns are the task's own
``extras["episode"]`` scalars averaged over those episodes; ``falls_per_env`` divides by the
number of envs.
"""
from __future__ import annotations

import torch

from ..utils.render import FastRenderer
from ..utils.video import write_mp4
from .runs import build_network, deterministic_actor, env_sizes, load_network


@torch.no_grad()
def rollout_summary(env, act, steps: int | None = None, frame=None, clip: bool = True) -> dict:
    """Run ``act(obs) -> actions`` (clipped to [-1, 1] with ``clip``, as rl-games' player does) for
    ``steps`` env steps from a reset; ``frame()`` after every step (video)."""
    steps = int(steps or env.max_episode_length)
    n = env.num_envs
    obs = env.reset()["obs"]
    ep_return = torch.zeros(n)
    total = {"episodes": 0, "falls": 0.0, "return": 0.0, "length": 0.0}
    sums, length = {}, torch.zeros(n)
    for _ in range(steps):
        actions = act(obs)
        if clip:
            actions = actions.clamp(-1.0, 1.0)
        obs_dict, rew, done, extras = env.step(actions)
        obs = obs_dict["obs"]
        if frame is not None:
            frame()
        ep_return += rew.cpu()
        length += 1
        done = done.cpu().bool()
        k = int(done.sum())
        if k:
            timeout = extras["time_outs"].cpu().bool()
            total["episodes"] += k
            total["falls"] += float((done & ~timeout).sum())
            total["return"] += float(ep_return[done].sum())
            total["length"] += float(length[done].sum())
            ep_return[done], length[done] = 0.0, 0.0
            for key, v in (extras.get("episode") or {}).items():
                if torch.is_tensor(v) and v.numel() == 1 and not key.startswith("rew_"):
                    sums[key] = sums.get(key, 0.0) + float(v) * k
    e = max(total["episodes"], 1)
    out = {"episodes": total["episodes"], "falls_per_episode": total["falls"] / e,
           "return_per_episode": total["return"] / e, "length_per_episode": total["length"] / e,
           "falls_per_env": total["falls"] / n}
    for key, s in sums.items():
        if key != "episode_length":                 # the same as length_per_episode, in control steps
            out[f"{key}_per_episode"] = s / e
    return out


def format_summary(before: dict, after: dict, steps: int, dt: float) -> str:
    keys = [k for k in after if k != "episodes" and k in before]
    width = max(len(k) for k in keys)
    lines = [f"What the policy does (deterministic, every env from a reset, {steps} steps = {steps * dt:.0f} s):",
             f"  {'':<{width}}  {'untrained':>10}  {'trained':>10}",
             f"  {'episodes ended':<{width}}  {before['episodes']:>10d}  {after['episodes']:>10d}"]
    lines += [f"  {k:<{width}}  {before[k]:>10.3f}  {after[k]:>10.3f}" for k in keys]
    return "\n".join(lines)


# written by hrl-train beside nn/ when the actor was fitted before PPO (bc_init, task.env.llc.match_init)
START_WEIGHTS = "start_weights.pth"


def latest_checkpoint(run_dir) -> str | None:
    from pathlib import Path
    files = sorted(Path(run_dir, "nn").glob("*.pth"), key=lambda p: p.stat().st_mtime)
    return str(files[-1]) if files else None


def summarize_run(make_env, params: dict, run_dir: str, seed: int, video: bool = True, log=print) -> dict:
    """Untrained vs trained policy of a finished ``hrl-train`` run (the newest checkpoint in nn/):
    prints the table, writes ``eval_summary.json`` and, with a GL context, ``videos/trained.mp4``.
    "Untrained" is the network PPO started from: random weights, or the fitted start where the run
    kept one (``START_WEIGHTS``)."""
    import json
    import os

    ckpt_path = latest_checkpoint(run_dir)
    if ckpt_path is None:
        log("no checkpoint in the run folder: nothing to summarize")
        return {}
    env = make_env()
    num_obs, num_actions, discrete = env_sizes(env)
    torch.manual_seed(seed)
    start = os.path.join(run_dir, START_WEIGHTS)
    fitted = os.path.isfile(start)
    untrained = load_network(params, num_obs, num_actions, start) if fitted else build_network(params, num_obs, num_actions)
    trained = load_network(params, num_obs, num_actions, ckpt_path)
    steps = int(env.max_episode_length)
    def policy(net):
        act = deterministic_actor(net)
        return (lambda obs: act(obs).argmax(-1)) if discrete else act
    before = rollout_summary(env, policy(untrained), steps, clip=not discrete)
    frames, frame = [], None
    task = getattr(env, "task", env)
    renderer = None
    if video:
        try:
            renderer = FastRenderer(task, 320, 240)
            frame = lambda: frames.append(renderer(0))
        except Exception as exc:               # no GL: the numbers still matter
            log(f"(no video: {type(exc).__name__}: {str(exc).splitlines()[0]})")
    after = rollout_summary(env, policy(trained), steps, frame, clip=not discrete)
    dt = float(getattr(env, "dt", 0.0))
    log("\n" + format_summary(before, after, steps, dt)
        + (f"\n  (untrained: the fitted start network, {START_WEIGHTS})" if fitted else ""))
    result = {"checkpoint": ckpt_path, "steps": steps, "untrained": before, "trained": after,
              "untrained_from": START_WEIGHTS if fitted else "random weights"}
    if frames:
        path = write_mp4(os.path.join(run_dir, "videos", "trained.mp4"), frames, max(1, int(round(1 / dt))))
        result["video"] = str(path)
        log(f"video of env 0 under the trained policy: {path}")
    if renderer is not None:
        renderer.close()
    with open(os.path.join(run_dir, "eval_summary.json"), "w") as f:
        json.dump(result, f, indent=1)
    env.close()
    return result


# ---- exactly N episodes (hrl-eval) ----------------------------------------------------------------------
def episode_measures(task, env_ids: torch.Tensor) -> dict:
    """Per-env measures of the episodes of ``env_ids`` that end now, read before their reset clears
    them: ``success`` where the task tracks one (Franka: the goal was held), ``targets_reached``
    (HumanoidLocation)."""
    out = {}
    if hasattr(task, "episode_success"):
        out["success"] = task.episode_success[env_ids].float().cpu()
    if hasattr(task, "reached"):
        out["targets_reached"] = task.reached[env_ids].float().cpu()
    return out


@torch.no_grad()
def evaluate_episodes(env, act, num_episodes: int, clip: bool = True) -> dict:
    """Run ``act(obs) -> actions`` until exactly ``num_episodes`` episodes are counted.

    Every env runs its first ceil(N / num_envs) episodes, and the count takes all envs' first
    episodes, then all second ones, and so on: stopping once "enough" episodes had ended would
    over-count the short ones (falls, quick successes). A flat task must be built with
    ``auto_reset=False`` (its measures are read before the reset); a ``LatentSkillEnv`` reports
    every control step through ``on_control_step``.

    Returns the per-episode means (return, length, failed: ended neither by time-out nor success,
    and each of ``episode_measures``) and the list of episode records."""
    task = getattr(env, "task", env)
    hierarchical = task is not env
    if not hierarchical and task.auto_reset:
        raise ValueError("evaluate_episodes reads each episode's outcome before its reset: build the task "
                         "with auto_reset=False")
    n = env.num_envs
    per_env = -(-int(num_episodes) // n)
    done_count = torch.zeros(n, dtype=torch.long)
    ep_return, ep_length = torch.zeros(n), torch.zeros(n)
    records = []
    pending: dict[int, dict] = {}                  # env -> measures of the episode it just ended

    def read(ids):
        for key, values in episode_measures(task, ids).items():
            for i, v in zip(ids.tolist(), values.tolist()):
                pending.setdefault(i, {})[key] = v

    alive_before = [None]

    def on_control_step(i, actions, alive):       # hierarchical: catch envs ending mid macro step
        before = torch.ones_like(alive) if i == 0 else alive_before[0]
        ended = (before & ~alive).nonzero().view(-1)
        if len(ended):
            read(ended)
        alive_before[0] = alive.clone()

    obs = env.reset()["obs"]
    while bool((done_count < per_env).any()):
        actions = act(obs)
        if clip:
            actions = actions.clamp(-1.0, 1.0)
        if hierarchical:
            obs_dict, rew, done, extras = env.step(actions, on_control_step=on_control_step)
        else:
            obs_dict, rew, done, extras = env.step(actions)
        ep_return += rew.cpu()
        ep_length += 1
        ended = done.cpu().bool().nonzero().view(-1)
        if not hierarchical and len(ended):
            read(ended.to(task.device))
        timeouts = extras["time_outs"].cpu().bool()
        for i in ended.tolist():
            measures = pending.pop(i, {})
            if done_count[i] < per_env:
                failed = not bool(timeouts[i]) and not measures.get("success", 0.0) > 0
                records.append({"episode": int(done_count[i]), "env": i, "return": float(ep_return[i]),
                                "length": float(ep_length[i]), "failed": float(failed), **measures})
            done_count[i] += 1
        ep_return[ended], ep_length[ended] = 0.0, 0.0
        if not hierarchical and len(ended):
            obs_dict = env.reset(ended.to(task.device))
        obs = obs_dict["obs"]
    records = sorted(records, key=lambda r: (r["episode"], r["env"]))[:int(num_episodes)]
    keys = [k for k in records[0] if k not in ("episode", "env")] if records else []
    means = {k: sum(r[k] for r in records) / len(records) for k in keys}
    return {"episodes": len(records), **means, "records": records}
