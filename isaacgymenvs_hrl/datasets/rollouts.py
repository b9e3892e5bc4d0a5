"""Rolling a policy out in a task into D4RL-style arrays (what ``hrl-collect`` writes), and the two
transforms it can apply to them: hindsight relabelling of a command slice and mirroring."""
from __future__ import annotations

import sys

import numpy as np
import torch


def collect(task, policy, num_episodes: int, noise: float = 0.0, deterministic: bool = True,
            progress: bool = True):
    """Step all envs until ``num_episodes`` episodes have finished; keep only complete episodes."""
    from tqdm import tqdm

    n = task.num_envs
    obs = task.reset()["obs"]
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "infos.qpos", "infos.qvel")
    steps = {k: [] for k in keys}
    finished = 0
    bar = tqdm(total=num_episodes, desc="episodes", disable=not progress, file=sys.stdout)
    while finished < num_episodes:
        # the simulator state behind each observation (D4RL's infos/qpos, infos/qvel): tasks can
        # restart episodes from it (FrankaStack's demoResets)
        qpos, qvel = task.engine.qpos.clone(), task.engine.qvel.clone()
        if policy is None:
            actions = torch.rand(n, task.num_actions, device=obs.device) * 2 - 1
        else:
            out = policy(obs)                 # rl-games: (mu, sigma); scripted expert: actions
            if isinstance(out, tuple):
                mu, sigma = out
                actions = mu if deterministic else mu + sigma * torch.randn_like(mu)
            else:
                actions = out
        if noise > 0:
            actions = actions + noise * torch.randn_like(actions)
        actions = actions.clamp(-1.0, 1.0)
        next_obs, rew, done, extras = task.step(actions)
        timeout = extras["time_outs"].bool()
        for key, value in (("observations", obs), ("actions", actions), ("rewards", rew),
                           ("terminals", done.bool() & ~timeout), ("timeouts", timeout),
                           ("infos.qpos", qpos), ("infos.qvel", qvel)):
            steps[key].append(value.detach().cpu().clone())
        new = int(done.sum())
        finished += new
        bar.update(min(new, num_episodes - bar.n))
        obs = next_obs["obs"]
    bar.close()
    # (T, N, ...) -> env-major, the first num_episodes complete episodes only (the last step can end
    # more episodes than were still wanted)
    arrays = {k: torch.stack(v, 1).numpy() for k, v in steps.items()}           # (N, T, ...)
    ends = np.logical_or(arrays["terminals"], arrays["timeouts"])                 # (N, T)
    env_ids, times = np.nonzero(ends.T)[::-1]                                     # in order of ending
    keep = np.full(n, -1)
    for e, t in zip(env_ids[:num_episodes], times[:num_episodes]):
        keep[e] = max(keep[e], t)
    out = {k: [] for k in arrays}
    for e in range(n):
        if keep[e] >= 0:
            for k in arrays:
                out[k].append(arrays[k][e, : keep[e] + 1])
    return {k: np.concatenate(v).astype(bool if k in ("terminals", "timeouts") else np.float32)
            for k, v in out.items()}


def relabel_command(data: dict, achieved: np.ndarray, start: int, steps: int) -> dict:
    """Hindsight relabelling: the command slice ``[start, start + 3)`` becomes the mean of what was
    achieved over the next ``steps`` steps of the same episode, so a command-conditioned LLC learns
    what the actions do rather than what the teacher was asked (a teacher that drifts under a
    zero yaw command would otherwise teach that drift as 'straight')."""
    ends = np.nonzero(np.logical_or(data["terminals"], data["timeouts"]))[0]
    t = np.arange(len(achieved))
    episode_end = ends[np.searchsorted(ends, t)] + 1                  # one past the episode's last step
    stop = np.minimum(t + steps, episode_end)
    csum = np.concatenate([np.zeros((1, achieved.shape[1])), np.cumsum(achieved, 0, dtype=np.float64)])
    mean = (csum[stop] - csum[t]) / (stop - t)[:, None]
    out = dict(data)
    out["observations"] = data["observations"].copy()
    out["observations"][:, start:start + achieved.shape[1]] = mean
    return out


def with_mirror(data: dict, maps: dict) -> dict:
    """The data followed by its reflection through the sagittal plane (episodes stay whole)."""
    keys = {"observations": "obs", "actions": "actions", "infos.qpos": "qpos", "infos.qvel": "qvel"}
    mirrored = {k: (v[:, maps[keys[k]][0].numpy()] * maps[keys[k]][1].numpy() if k in keys else v)
                for k, v in data.items()}
    return {k: np.concatenate([data[k], mirrored[k]]).astype(data[k].dtype) for k in data}
