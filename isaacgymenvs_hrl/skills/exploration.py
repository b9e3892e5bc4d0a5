"""Zero-shot exploration: what a frozen LLC does under a random high level, before any RL.

The statistic of HeLMS' Table 1: run each candidate behaviour (random flat actions, a BC policy,
or a random high level over an LLC) from the task's initial states for one episode and measure
  - reward per control step under the task's dense and staged rewards, and
  - state coverage: the variance over an episode of the arm joints, the grasp state (finger
    opening) and the object positions, averaged over dimensions and envs.
A good skill space explores more and reaches more reward than random actions. For discrete skills,
``per_skill`` holds each skill fixed for a whole episode: distinct skills end in different places
(``distinctness``: spread of the per-skill mean end states over the mean within-skill spread, over
joints, fingers and objects; per feature too, including the hand's place relative to the objects).

Works for the Franka tasks (arm joints, finger opening; objects: FrankaStack's three objects or the
peg). Random high-level actions are uniform over the high-level action space, held for k steps.
"""
from __future__ import annotations

import torch

from ..errors import UserError
from ..hrl.latent_skill_env import LatentSkillEnv
from ..hrl.llc import LowLevelController


def random_hl_action(llc: LowLevelController, mode: str, n: int, gen: torch.Generator, skill=None) -> torch.Tensor:
    """Uniform sample of the high-level action space; ``skill`` fixes the discrete skill."""
    if mode == "discrete":
        if skill is not None:
            return torch.full((n,), int(skill), dtype=torch.long)
        return torch.randint(llc.num_skills, (n,), generator=gen)
    dim = int(llc.hl_action_space(mode).shape[0])
    return torch.rand(n, dim, generator=gen) * 2 - 1


class PriorHighLevel:
    """A high level that samples the LLC's own priors (HeLMS' zero-shot protocol): the discrete
    skill from the learned skill prior p(y_t | y_{t-1}, x_t) at each decision when the LLC ships
    one (it reads the task's state through ``task``), else from the state-free transition prior
    over the k steps of one decision (P^k, the first one uniform); latents from N(0, I) or, in
    mixture mode, from the chosen skill's prior component."""

    def __init__(self, llc: LowLevelController, mode: str, n: int, k: int, gen: torch.Generator, task=None):
        self.llc, self.mode, self.n, self.gen, self.task = llc, mode, n, gen, task
        lat = llc.spec["latent"]
        trans = lat.get("transition_prior")
        self.trans_k = None if trans is None else torch.linalg.matrix_power(torch.as_tensor(trans, dtype=torch.float64), k).float()
        self.state_prior = llc.skill_prior is not None and task is not None
        self.skill = None

    def episodes_ended(self, done: torch.Tensor) -> None:
        """The next decision of these envs is an episode's first."""
        if self.skill is not None:
            self.skill = torch.where(done.to(self.skill.device).bool(), -1, self.skill)

    def _next_skill(self) -> torch.Tensor:
        k, llc = self.llc.num_skills, self.llc
        if self.state_prior:
            mid_obs = self.task.obs_slice(self.task.obs_processed, llc.mid_obs_names).to(llc.prior_mean.device)
            probs = llc.skill_log_prior(mid_obs, self.skill).exp().cpu()
            self.skill = torch.multinomial(probs, 1, generator=self.gen).squeeze(-1)
        elif self.skill is None or self.trans_k is None:
            self.skill = torch.randint(k, (self.n,), generator=self.gen)
        else:
            first = self.skill < 0
            self.skill = torch.multinomial(self.trans_k[self.skill.clamp_min(0)], 1, generator=self.gen).squeeze(-1)
            self.skill = torch.where(first, torch.randint(k, (self.n,), generator=self.gen), self.skill)
        return self.skill

    def __call__(self) -> torch.Tensor:
        llc, n, d = self.llc, self.n, self.llc.latent_dim
        z = torch.randn(n, d, generator=self.gen)
        if self.mode == "discrete":
            return self._next_skill()
        if self.mode == "mixture":
            y = self._next_skill()
            z = (llc.prior_mean[y] + llc.prior_std[y] * z) if llc.prior_mean.numel() else z
            logits = torch.nn.functional.one_hot(y, llc.num_skills).float()
            slots = torch.zeros(n, llc.num_skills, d)
            slots[torch.arange(n), y] = z / llc.latent_scale
            return torch.cat([logits, slots.flatten(1)], -1)
        if self.mode == "multires":
            r = len(llc.horizons) + 1
            return torch.cat([torch.rand(n, r, generator=self.gen), z / llc.latent_scale], -1)
        return z / llc.latent_scale


class _Recorder:
    """Per control step: both shaped rewards (whatever the task's own) and the state features."""

    def __init__(self, task):
        if not hasattr(type(task), "exploration_features") or not hasattr(type(task), "reward_for"):
            raise UserError(f"zero-shot exploration needs a task with shaped reward types and state "
                            f"features (FrankaStack, FrankaPegInHole); {type(task).__name__} has none")
        self.task, self.feats, self.dense, self.staged, self.sparse = task, {}, [], [], []

    def __call__(self, *_):
        task = self.task
        self.dense.append(task.reward_for("dense"))
        self.staged.append(task.reward_for("staged"))
        self.sparse.append(task.reward_for("sparse") > 0)
        for k, v in task.exploration_features().items():
            self.feats.setdefault(k, []).append(v)

    def stats(self, steps: int) -> dict:
        out = {"dense_reward": float(torch.stack(self.dense[:steps]).mean()),
               "staged_reward": float(torch.stack(self.staged[:steps]).mean()),
               "sparse_successes": int(torch.stack(self.sparse[:steps]).any(0).sum()),   # episodes
               "episodes": int(self.dense[0].shape[0])}
        ends = {}
        for k, seq in self.feats.items():
            x = torch.stack(seq[:steps])                             # (T, N, D)
            if k == "grasped":                                       # a 0/1 event: its frequency
                out["grasp_fraction"] = float(x.mean())
                continue
            out[f"coverage_{k}"] = float(x.var(0).mean())
            ends[k] = x[-1]                                          # (N, D)
        return out | {"_end": ends}


@torch.no_grad()
def explore_flat(task, policy, steps: int) -> dict:
    """Random flat actions (policy None) or a flat policy obs -> actions, for ``steps`` control
    steps from a reset; returns mean rewards per step and coverage (mean per-dimension variance)."""
    gen = torch.Generator().manual_seed(0)
    record = _Recorder(task)
    obs = task.reset()["obs"]
    for _ in range(steps):
        actions = torch.rand(task.num_envs, task.num_actions, generator=gen) * 2 - 1 if policy is None \
            else policy(obs)
        obs = task.step(actions)[0]["obs"]
        record()
        obs = task.reset_done()[0]["obs"]
    stats = record.stats(steps)
    stats.pop("_end")
    return stats


@torch.no_grad()
def explore_llc(task, llc: LowLevelController, mode: str, steps: int, k: int | None = None,
                seed: int = 0, skill=None, sampling: str = "uniform") -> dict:
    """A random high level over ``llc`` (through LatentSkillEnv): a new high-level action every k
    control steps, for ``steps`` control steps from a reset. ``sampling``: "uniform" over the
    high-level action space, or "prior" (``PriorHighLevel``)."""
    if sampling not in ("uniform", "prior"):
        raise UserError(f"exploration sampling must be 'uniform' or 'prior', got {sampling!r}")
    env = LatentSkillEnv(task, llc, mode=mode, steps=k, reward="sum")
    gen = torch.Generator().manual_seed(seed)
    prior = PriorHighLevel(llc, mode, task.num_envs, env.steps, gen, task) \
        if sampling == "prior" and skill is None else None
    record = _Recorder(task)
    env.reset()
    for _ in range(-(-int(steps) // env.steps)):
        hl = prior() if prior is not None else random_hl_action(llc, mode, task.num_envs, gen, skill)
        done = env.step(hl, on_control_step=record)[2]
        if prior is not None:
            prior.episodes_ended(done)
    return record.stats(steps)


def explore_skills(task, llc: LowLevelController, steps: int, seed: int = 0) -> dict:
    """Each discrete skill held for a whole episode: its coverage and rewards, and how distinct the
    skills' end states are (between-skill spread / mean within-skill spread, per end-state dim,
    averaged over all dims and, in ``distinctness_by_feature``, over each feature's dims)."""
    per_skill, ends = {}, []
    for y in range(llc.num_skills):
        stats = explore_llc(task, llc, "discrete", steps, seed=seed, skill=y)
        ends.append(stats.pop("_end"))
        per_skill[y] = stats

    def ratio(end: torch.Tensor) -> torch.Tensor:              # (K, N, D) -> (D,)
        return end.mean(1).std(0) / end.std(1).mean(0).clamp_min(1e-6)
    by_feature = {k: float(ratio(torch.stack([e[k] for e in ends])).mean()) for k in sorted(ends[0])}
    # the overall score is over the state itself (joints, fingers, objects); ``hand`` describes it
    state = [k for k in sorted(ends[0]) if k != "hand"]
    every = ratio(torch.stack([torch.cat([e[k] for k in state], -1) for e in ends]))
    return {"per_skill": per_skill, "distinctness": float(every.mean()), "distinctness_by_feature": by_feature}


COLUMNS = ("dense_reward", "staged_reward", "sparse_successes", "coverage_joints", "coverage_grasp",
           "coverage_objects", "grasp_fraction")


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
          + "".join(f"| {name} | " + " | ".join(f"{s.get(c, float('nan')):.4g}" for c in COLUMNS) + " |\n" for name, s in rows.items()))
    return rows, md + extra
