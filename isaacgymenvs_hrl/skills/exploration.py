"""Zero-shot exploration: what a frozen LLC does under a random high level, before any RL.

The statistic of HeLMS' Table 1: run each candidate behaviour (random flat actions, a BC policy,
or a random high level over an LLC) from the task's initial states for one episode and measure
  - reward per control step under the task's dense and staged rewards, and
  - state coverage: the variance over an episode of the arm joints, the grasp state (finger
    opening) and the object positions, averaged over dimensions and envs.
A good skill space explores more and reaches more reward than random actions. For discrete skills,
``per_skill`` holds each skill fixed for a whole episode: distinct skills end in different places
(``distinctness``: spread of the per-skill mean end states over the mean within-skill spread).

Works for the Franka tasks (arm joints, finger opening; objects: FrankaStack's three objects or the
peg). Random high-level actions are uniform over the high-level action space, held for k steps.
"""
from __future__ import annotations

import torch

from ..hrl.llc import LowLevelController


def state_features(task) -> dict[str, torch.Tensor]:
    """Named state features (N, D) whose variance over an episode is the coverage."""
    feats = {"joints": task.arm_q(), "grasp": task.finger_opening()[:, None]}
    if hasattr(task, "object_qpos"):
        feats["objects"] = task.object_qpos()[:, :, 0:3].flatten(1)
    elif hasattr(task, "peg_pose"):
        feats["objects"] = task.peg_pose()[:, 0:3]
    return feats


def random_hl_action(llc: LowLevelController, mode: str, n: int, gen: torch.Generator, skill=None) -> torch.Tensor:
    """Uniform sample of the high-level action space; ``skill`` fixes the discrete skill."""
    if mode == "discrete":
        if skill is not None:
            return torch.full((n,), int(skill), dtype=torch.long)
        return torch.randint(llc.num_skills, (n,), generator=gen)
    dim = int(llc.hl_action_space(mode).shape[0])
    return torch.rand(n, dim, generator=gen) * 2 - 1


@torch.no_grad()
def rollout_stats(task, act, steps: int) -> dict:
    """Run ``act(t) -> actions (N, A)`` for ``steps`` control steps from a reset, without early
    termination; returns mean rewards per step and coverage (mean per-dimension variance)."""
    task.reset_idx(torch.arange(task.num_envs, device=task.device))
    task.compute_observations()
    feats, dense, staged = {}, [], []
    for t in range(steps):
        task.step(act(t))
        dense.append(task.reward_for("dense"))        # both shaped rewards, whatever the task's own
        staged.append(task.reward_for("staged"))
        for k, v in state_features(task).items():
            feats.setdefault(k, []).append(v)
    stats = {"dense_reward": float(torch.stack(dense).mean()), "staged_reward": float(torch.stack(staged).mean())}
    ends = {}
    for k, seq in feats.items():
        x = torch.stack(seq)                                     # (T, N, D)
        stats[f"coverage_{k}"] = float(x.var(0).mean())
        ends[k] = x[-1]                                          # (N, D)
    return stats | {"_end": torch.cat([ends[k] for k in sorted(ends)], -1)}


def explore_flat(task, policy, steps: int) -> dict:
    """Random flat actions (policy None) or a flat policy obs -> actions."""
    gen = torch.Generator().manual_seed(0)

    def act(t):
        if policy is None:
            return torch.rand(task.num_envs, task.num_actions, generator=gen) * 2 - 1
        return policy(task.obs_buf)
    stats = rollout_stats(task, act, steps)
    stats.pop("_end")
    return stats


def explore_llc(task, llc: LowLevelController, mode: str, steps: int, k: int | None = None,
                seed: int = 0, skill=None) -> dict:
    """A random high level over ``llc``: a new uniform high-level action every k control steps."""
    k = int(k or llc.spec["default_steps"])
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def act(t):
        if t % k == 0:
            hl = random_hl_action(llc, mode, task.num_envs, gen, skill)
            mid = task.obs_slice(task.obs_buf, llc.mid_obs_names) if llc.mid_obs_names else None
            state["z"], state["head"], _ = llc.decode(mode, hl, mid)
        return llc(task.obs_slice(task.obs_buf, llc.obs_names), state["z"], state["head"])
    return rollout_stats(task, act, steps)


def explore_skills(task, llc: LowLevelController, steps: int, seed: int = 0) -> dict:
    """Each discrete skill held for a whole episode: its coverage and rewards, and how distinct the
    skills' end states are (between-skill spread / mean within-skill spread, per end-state dim)."""
    per_skill, ends = {}, []
    for y in range(llc.num_skills):
        stats = explore_llc(task, llc, "discrete", steps, seed=seed, skill=y)
        ends.append(stats.pop("_end"))
        per_skill[y] = stats
    end = torch.stack(ends)                                      # (K, N, D)
    within = end.std(1).mean(0).clamp_min(1e-6)                  # (D,)
    between = end.mean(1).std(0)                                 # (D,)
    return {"per_skill": per_skill, "distinctness": float((between / within).mean())}


COLUMNS = ("dense_reward", "staged_reward", "coverage_joints", "coverage_grasp", "coverage_objects")


def exploration_table(task, llc: LowLevelController, steps: int, seed: int = 0) -> tuple[dict, str]:
    """Random flat actions vs a random high level in each of the LLC's modes (plus each discrete
    skill held): (rows, markdown table) for the skills report."""
    rows = {"random flat actions": explore_flat(task, None, steps)}
    for mode in llc.modes:
        stats = explore_llc(task, llc, mode, steps, seed=seed)
        stats.pop("_end")
        rows[f"random high level ({mode})"] = stats
    extra = ""
    if "discrete" in llc.modes:
        skills = explore_skills(task, llc, steps, seed=seed)
        for y, s in skills["per_skill"].items():
            rows[f"skill {y} held"] = s
        extra = f"\nDistinctness of the skills' end states (between / within spread): {skills['distinctness']:.2f}\n"
    md = ("| behaviour | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS) + "\n"
          + "".join(f"| {name} | " + " | ".join(f"{s[c]:.4g}" for c in COLUMNS) + " |\n" for name, s in rows.items()))
    return rows, md + extra
