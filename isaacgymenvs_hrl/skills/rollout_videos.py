"""Videos of an LLC's rollouts with the skill held fixed: one MP4 per discrete skill or latent cluster.

For the report of ``hrl-skills``: the LLC is run in its task (built from the dataset's metadata, or
named with ``report.task``) on a few envs, with one high-level action held for the whole rollout,
and the envs are rendered side by side with MuJoCo's offscreen renderer. What is held fixed:

  discrete  (HeLMS)      y = 0 .. K-1; the frozen mid level turns (y, observation) into z every k steps
  mixture   (no discrete) component y with its aggregated posterior mean latent
  multires  (MRS)        k-means clusters of the training latents, each with the head of the horizon
                         most of its members came from (without latents: every head with z = 0)
  continuous (LDSE, NPMP, BC)  k-means clusters of the training latents (their centroids), or a
                         few fixed prior samples when no latents are given; latent dim 0: one video

A latent z from the training report becomes the high-level action z / latent.scale: every LLC
normalization (tanh, clip, none, sphere) then feeds the policy what it was trained on.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..hrl import env_factory
from ..hrl.latent_skill_env import LatentSkillEnv
from ..hrl.llc import LowLevelController
from ..hrl.llc_checkpoint import load_llc
from ..tasks import isaacgym_task_map
from ..utils.render import FastRenderer
from ..utils.video import write_mp4


# ---- what to hold fixed ---------------------------------------------------------------------------
def kmeans(x: np.ndarray, k: int, iters: int = 30, seed: int = 0, max_points: int = 5000):
    """k-means clusters of the rows of ``x`` (k-means++ start) on at most ``max_points`` rows.

    Returns centroids (k', d) and shares (k',), largest cluster first (k' <= k when there are
    fewer distinct points), the cluster of every row used (M,) and those rows' indices in ``x`` (M,)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    rows = rng.permutation(len(x))[:max_points]
    x = x[rows]
    k = max(1, min(int(k), len(np.unique(x, axis=0))))
    centers = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None] - np.asarray(centers)[None]) ** 2).sum(-1).min(1)
        if d2.sum() <= 0:
            break
        centers.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    c = np.asarray(centers)
    for _ in range(iters):
        assign = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(len(c))])
        if np.allclose(new, c):
            break
        c = new
    assign = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    shares = np.bincount(assign, minlength=len(c)) / len(x)
    order = np.argsort(-shares, kind="stable")
    return c[order], shares[order], np.argsort(order)[assign], rows


def skill_conditions(llc: LowLevelController, latents=None, labels=None, max_videos: int = 6,
                     seed: int = 0) -> list[dict]:
    """The high-level actions to hold fixed: [{"name", "title", "mode", "hl": (A,) tensor}, ...]."""
    modes, d, scale = llc.modes, llc.latent_dim, llc.latent_scale
    max_videos = max(1, int(max_videos))
    have_latents = latents is not None and len(latents) > 0 and d > 0
    out = []
    if "discrete" in modes:
        for y in range(min(llc.num_skills, max_videos)):
            out.append({"name": f"skill_{y}", "title": f"discrete skill y = {y}", "mode": "discrete",
                        "hl": torch.tensor([y])})
        return out
    if "mixture" in modes:
        k = llc.num_skills
        for y in range(min(k, max_videos)):
            scores = torch.full((k,), -1.0)
            scores[y] = 1.0
            zs = torch.zeros(k, d)
            zs[y] = llc.prior_mean[y] / scale
            out.append({"name": f"skill_{y}", "title": f"mixture component y = {y} at its mean latent",
                        "mode": "mixture", "hl": torch.cat([scores, zs.flatten()])})
        return out
    if "multires" in modes:
        r = len(llc.horizons) + 1
        if not have_latents:
            for head in range(min(r, max_videos)):
                what = f"horizon {llc.horizons[head]}" if head < len(llc.horizons) else "unconditional"
                out.append({"name": f"head_{head}", "title": f"head {head} ({what}), z = 0", "mode": "multires",
                            "hl": torch.cat([_one_hot(head, r), torch.zeros(d)])})
            return out
        centers, shares, assign, rows = kmeans(latents, max_videos, seed=seed)
        labels = None if labels is None else np.asarray(labels)
        for c, (z, share) in enumerate(zip(centers, shares)):
            head = 0
            if labels is not None and len(labels) == len(latents):
                members = labels[rows][assign == c]
                if len(members):
                    values, counts = np.unique(members, return_counts=True)
                    common = int(values[counts.argmax()])
                    head = llc.horizons.index(common) if common in llc.horizons else 0
            out.append({"name": f"cluster_{c}", "title": f"latent cluster {c} ({share:.0%} of latents), head {head} "
                        f"(horizon {llc.horizons[head]})", "mode": "multires",
                        "hl": torch.cat([_one_hot(head, r), torch.as_tensor(z, dtype=torch.float32) / scale])})
        return out
    # continuous
    if d == 0:
        return [{"name": "policy", "title": "policy (no latent)", "mode": "continuous", "hl": torch.zeros(0)}]
    if have_latents:
        centers, shares, _, _ = kmeans(latents, max_videos, seed=seed)
        return [{"name": f"cluster_{c}", "title": f"latent cluster {c} ({share:.0%} of latents)",
                 "mode": "continuous", "hl": torch.as_tensor(z, dtype=torch.float32) / scale}
                for c, (z, share) in enumerate(zip(centers, shares))]
    g = torch.Generator().manual_seed(seed)
    uniform = llc.normalization in ("clip", "sphere")
    return [{"name": f"sample_{i}", "title": f"fixed prior sample {i}", "mode": "continuous",
             "hl": (torch.rand(d, generator=g) * 2 - 1) if uniform else torch.randn(d, generator=g) / scale}
            for i in range(max_videos)]


def _one_hot(i: int, n: int) -> torch.Tensor:
    v = torch.full((n,), -1.0)
    v[i] = 1.0
    return v


# ---- the task and the rollouts ----------------------------------------------------------------------
def build_task(task_name: str, num_envs: int, task_config: dict | None = None, seed: int = 0):
    """The task on CPU with ``num_envs`` envs and ``auto_reset=False`` (an LLC runs in it through
    LatentSkillEnv): from the dataset's stored task config when there is one (the exact settings
    the data was collected with), else from the project's config files."""
    from ..utils.task_config import load_task_config
    if task_name not in isaacgym_task_map:
        raise UserError(f"unknown task '{task_name}'; available: "
                        f"{', '.join(sorted(isaacgym_task_map))} (set report.task)")
    cfg = copy.deepcopy(task_config) if task_config else load_task_config(task_name)
    cfg.setdefault("env", {})["numEnvs"] = int(num_envs)
    torch.manual_seed(seed)
    return env_factory.build_task(cfg, "cpu", "cpu", auto_reset=False)


@torch.no_grad()
def rollout_frames(task, llc: LowLevelController, mode: str, hl: torch.Tensor, steps: int,
                   render) -> list[np.ndarray]:
    """Reset, then hold ``hl`` for ``steps`` control steps through LatentSkillEnv (re-decoded every
    k = default_steps steps); ``render(env_id)`` of every env each step, side by side."""
    env = LatentSkillEnv(task, llc, mode=mode, reward="sum")
    n = task.num_envs
    hl = hl.to(task.device).expand(n, *hl.shape)
    env.reset()
    frames = [np.concatenate([render(e) for e in range(n)], 1)]
    grab = lambda *_: frames.append(np.concatenate([render(e) for e in range(n)], 1))
    for _ in range(-(-int(steps) // env.steps)):
        env.step(hl, on_control_step=grab)
    return frames[:int(steps) + 1]


def record_skill_videos(llc, task_name: str, folder, *, task_config: dict | None = None, latents=None,
                        labels=None, steps: int = 100, num_envs: int = 2, width: int = 160, height: int = 120,
                        max_videos: int = 6, seed: int = 0, fps: int | None = None, log=print) -> list[dict]:
    """Record one MP4 per held-fixed skill (``skill_conditions``) into ``folder``.

    ``llc`` is a loaded LowLevelController or a checkpoint path. Returns [{"file", "title", "frames"}]
    with ``file`` relative to ``folder``'s parent (the report folder).
    """
    if not 1 <= int(num_envs) <= 4:
        raise UserError(f"report.video_envs must be 1..4, got {num_envs}")
    if int(steps) < 1:
        raise UserError(f"report.video_steps must be >= 1, got {steps}")
    if isinstance(llc, (str, os.PathLike)):
        llc = load_llc(llc)
    conditions = skill_conditions(llc, latents, labels, max_videos, seed)
    task = build_task(task_name, num_envs, task_config, seed)
    render = None
    try:
        llc = llc.to(task.device)
        render = FastRenderer(task, int(width), int(height))
        fps = fps or max(1, int(round(1.0 / task.dt)))
        folder = Path(folder)
        out = []
        for cond in conditions:
            torch.manual_seed(seed)                           # same initial states for every skill
            frames = rollout_frames(task, llc, cond["mode"], cond["hl"], steps, render)
            path = write_mp4(folder / f"{cond['name']}.mp4", frames, fps)
            out.append({"file": f"{folder.name}/{path.name}", "title": cond["title"], "frames": len(frames)})
            log(f"video {out[-1]['file']}: {cond['title']}, {len(frames)} frames")
        return out
    finally:
        if render is not None:
            render.close()
        task.close()
