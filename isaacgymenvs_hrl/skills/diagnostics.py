"""Diagnostics of a learned skill space: does the low level use its latent, and what does each skill do.

A skill space whose low level ignores z (posterior collapse) leaves a high level nothing to choose,
and skills that all end in the same place give it nothing to explore with. Measured here:

1. **z usage** on dataset windows of k consecutive rows (k = the LLC's default_steps, one
   high-level decision): action MSE of the frozen LLC with
     true     the posterior latent (per algorithm, below; absent when no posterior is shipped),
     zero     z = 0 (the policy's input; for multires: the matched head with z = 0),
     shuffled the true latents permuted across windows (or the fitted ones, without a posterior),
     prior    a random high-level action (what a random high level sends),
     fitted   one high-level action per window fitted to the window's actions (gradient descent
              for continuous latents, the best of K skills for discrete ones): the best any high
              level holding one action for k steps can reach.
   ``ratio`` = shuffled / true (or shuffled / fitted): about 1 means the low level ignores z.
2. **KL per latent dimension** of the posterior to N(0, I), and the active dimensions
   (Var_x E[z | x] > 0.01, Burda et al. 2016), where a posterior exists; the trainer's own total
   KL is copied from the LLC's metrics.
3. **Rollouts** (Franka tasks): each discrete skill, or each of a few fixed random high-level
   actions, held for a whole episode from the same initial states; per condition the end state
   (TCP height, finger opening, TCP -> object distances, object heights above the table, grasp),
   the fraction of steps in a grasp, a name from ``name_end_state``'s rules, and the mutual
   information between the condition and the end state (k-means cells and names), with the same
   estimate under permuted labels as the small-sample bias.

Posteriors, per algorithm (what the shipped files allow):
  bc     the conditioning slice normalized as in skills/bc.py (the latent is the command): exact
  ldse   the segment encoder q(z | s, a), read from ``<llc>.encoder.pt`` (or ``encoder=``): exact
  helms  the mid level q(z | y, x) is in the LLC, the high-level posterior q(y | x^+) is not; y
         per row is the skill whose mean z best explains the row's action (the posterior under a
         uniform skill prior and a Gaussian action likelihood): optimistic by construction
  npmp, mrs  their encoders are not saved: no posterior; only zero / prior / fitted are measured
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..datasets.hdf5 import episode_ids
from ..errors import UserError
from ..hrl.latent_skill_env import LatentSkillEnv
from ..hrl.llc import LowLevelController, normalize_latent
from .common import take_slices
from .exploration import random_hl_action
from .segments import window_indices, window_starts

COLOURS = ("red", "green", "blue")
ACTIVE_VAR = 0.01          # a latent dimension whose posterior mean varies less is inactive


# ============================================================================================
# z usage on dataset rows
# ============================================================================================
def _algorithm(llc: LowLevelController) -> str:
    return str(llc.spec.get("provenance", {}).get("algorithm", "external"))


def _slices(data: dict, names) -> torch.Tensor:
    missing = [n for n in names if n not in data["obs"]]
    if missing:
        raise UserError(f"diagnostics: the dataset lacks observation slices {missing} that the LLC reads "
                        f"(it has {sorted(data['obs'])}); pass the dataset the LLC was trained on")
    return take_slices(data, names)


def _windows(data: dict, k: int, max_windows: int, gen: torch.Generator) -> torch.Tensor:
    starts = window_starts(episode_ids(data), k, k)
    if len(starts) == 0:
        raise UserError(f"diagnostics: no episode of the dataset has {k} steps (the LLC's k)")
    pick = torch.randperm(len(starts), generator=gen)[:max_windows].sort().values.numpy()
    return torch.from_numpy(window_indices(starts[pick], k))                            # (W, k)


def find_encoder(llc: LowLevelController, encoder=None):
    """The LDSE encoder file: ``encoder`` if given, else next to the LLC, else the trainer's path."""
    from .ldse import encoder_path
    if encoder:
        if not Path(encoder).is_file():
            raise UserError(f"diagnostics: encoder file not found: {encoder}")
        return Path(encoder)
    for cand in (encoder_path(getattr(llc, "path", "") or "x.llc.pt"),
                 Path(str(llc.spec.get("provenance", {}).get("encoder", "")))):
        if cand.name and cand.is_file():
            return cand
    return None


def _kl_per_dim(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(0, 1)) per dimension, averaged over rows: (d,) nats."""
    return (0.5 * (mean ** 2 + (2 * log_std).exp() - 1.0) - log_std).mean(0)


def posterior(llc: LowLevelController, data: dict, win: torch.Tensor, encoder=None) -> dict:
    """The latent the LLC was trained with on each window row, (W, k, d), and what it is; see the
    module docstring. Keys: z (or None), kind, kl_per_dim (or None), mean (W*k or W, d) or None."""
    algo, w, k = _algorithm(llc), win.shape[0], win.shape[1]
    if algo == "bc":
        meaning = llc.spec["latent"].get("meaning") or {}
        if not meaning.get("slices"):
            return {"z": None, "kind": "none (plain BC, no latent)", "kl_per_dim": None, "mean": None}
        cond = _slices(data, meaning["slices"])[win]
        c, h = torch.tensor(meaning["center"]), torch.tensor(meaning["half_range"])
        z = ((cond - c) / h).clamp(-1, 1)
        return {"z": z, "kind": "exact: the normalized command (bc.py)", "kl_per_dim": None, "mean": z.flatten(0, 1)}
    if algo == "ldse":
        path = find_encoder(llc, encoder)
        if path is None:
            return {"z": None, "kind": "none: the LDSE encoder file is not shipped (pass encoder=)",
                    "kl_per_dim": None, "mean": None}
        from .ldse import SkillMatcher
        from .common import standardize
        m = SkillMatcher.load(path)
        obs, act = _slices(data, llc.obs_names)[win], torch.from_numpy(data["actions"].astype(np.float32))[win]
        with torch.no_grad():
            mean, log_std = m.encoder(torch.cat([standardize(obs, m.obs_mean, m.obs_std), act], -1))
        z = normalize_latent(mean, llc.normalization)[:, None].expand(-1, k, -1)
        return {"z": z, "kind": f"exact: LDSE encoder over the k={k} window ({path.name}, trained on h={m.horizon})",
                "kl_per_dim": _kl_per_dim(mean, log_std), "mean": mean}
    if algo == "helms" and llc.mid is not None:
        obs, act = _slices(data, llc.obs_names)[win].flatten(0, 1), torch.from_numpy(
            data["actions"].astype(np.float32))[win].flatten(0, 1)
        mid = _slices(data, llc.mid_obs_names)[win].flatten(0, 1)
        with torch.no_grad():
            means, log_stds = llc.mid(llc._norm(mid, llc.mid_obs_mean, llc.mid_obs_std))       # (R, K, d)
            kk = means.shape[1]
            a = llc(obs.repeat_interleave(kk, 0), means.flatten(0, 1)).view(-1, kk, act.shape[-1])
            y = ((a - act[:, None]) ** 2).sum(-1).argmin(-1)                                   # (R,)
        pick = lambda t: t.gather(1, y.view(-1, 1, 1).expand(-1, 1, t.shape[-1])).squeeze(1)
        mean, log_std = pick(means), pick(log_stds)
        return {"z": mean.view(w, k, -1), "kind": "optimistic: mid level q(z|y,x) at the y that best explains "
                "the action (q(y|x+) is not shipped)", "kl_per_dim": _kl_per_dim(mean, log_std), "mean": mean,
                "skill": y.view(w, k)}
    return {"z": None, "kind": f"none: the {algo} encoder is not saved with the LLC", "kl_per_dim": None,
            "mean": None}


def _mode(llc: LowLevelController) -> str:
    for mode in ("continuous", "multires", "discrete", "mixture"):
        if mode in llc.modes:
            return mode
    raise UserError(f"diagnostics: LLC modes {llc.modes} not understood")


def _head(llc: LowLevelController, n: int):
    """For multires: the head whose horizon is closest to k (the decision period), else None."""
    if not llc.horizons:
        return None
    k = int(llc.spec["default_steps"])
    r = int(np.argmin([abs(h - k) for h in llc.horizons]))
    return torch.full((n,), r, dtype=torch.long)


def fit_latents(llc: LowLevelController, obs: torch.Tensor, act: torch.Tensor, iters: int = 150,
                lr: float = 0.1, seed: int = 0) -> torch.Tensor:
    """One continuous high-level latent per window fitted to its actions: obs (W, k, S) raw,
    act (W, k, A) -> the decoded z (W, d). The action stays inside the high level's box [-1, 1]
    (tanh), then goes through the LLC's own scale and normalization."""
    w, k = obs.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    p = (0.1 * torch.randn(w, llc.latent_dim, generator=gen)).requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr)
    head = _head(llc, w * k)
    flat_obs, flat_act = obs.flatten(0, 1), act.flatten(0, 1)
    decode = lambda: normalize_latent(torch.tanh(p) * llc.latent_scale, llc.normalization)
    for _ in range(iters):
        z = decode().repeat_interleave(k, 0)
        loss = ((llc(flat_obs, z, head) - flat_act) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return decode().detach()


@torch.no_grad()
def _mse(llc, obs, act, z, head=None) -> float:
    """Mean action error over rows: obs (R, S), act (R, A), z (R, d)."""
    return float(((llc(obs, z, head) - act) ** 2).mean())


def z_usage(llc: LowLevelController, data: dict, max_windows: int = 2000, seed: int = 0, encoder=None,
            fit_iters: int = 150) -> dict:
    """Action MSE with the true / zero / shuffled / prior / fitted latent on dataset windows, the
    ratio shuffled / true, KL per dimension and active dimensions (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    k = int(llc.spec["default_steps"])
    win = _windows(data, k, max_windows, gen)
    w = win.shape[0]
    obs = _slices(data, llc.obs_names)[win]                                              # (W, k, S)
    act = torch.from_numpy(data["actions"].astype(np.float32))[win]                      # (W, k, A)
    fo, fa = obs.flatten(0, 1), act.flatten(0, 1)
    d = llc.latent_dim
    out = {"algorithm": _algorithm(llc), "latent_dim": d, "k": k, "windows": int(w), "rows": int(w * k),
           "action_var": float(fa.var(0).mean())}
    post = posterior(llc, data, win, encoder)
    out["posterior"] = post["kind"]
    if d == 0:
        out["mse_true"] = _mse(llc, fo, fa, torch.zeros(len(fo), 0))
        return out
    mode = _mode(llc)
    head = _head(llc, w * k)
    perm = torch.randperm(w, generator=gen)
    rep = lambda z: z.repeat_interleave(k, 0)                                             # (W, d) -> (W*k, d)
    out["mse_zero"] = _mse(llc, fo, fa, torch.zeros(w * k, d), head)
    if "discrete" in llc.modes:          # what a discrete high level can do: one skill per window
        hl = random_hl_action(llc, "discrete", w, gen)
        mid = _slices(data, llc.mid_obs_names)[win[:, 0]]               # decided at the window's start
        with torch.no_grad():
            means, _ = llc.mid(llc._norm(mid, llc.mid_obs_mean, llc.mid_obs_std))         # (W, K, d)
            out["mse_prior_skill"] = _mse(llc, fo, fa, rep(means[torch.arange(w), hl]))
            per_skill = torch.stack([((llc(fo, rep(means[:, y])) - fa) ** 2).view(w, k, -1).mean((1, 2))
                                     for y in range(llc.num_skills)], 1)                  # (W, K)
        best = per_skill.argmin(1)
        out["mse_fitted_skill"] = float(per_skill.min(1).values.mean())
        out["mse_worst_skill"] = float(per_skill.max(1).values.mean())
        out["fitted_skill"] = "best of the K skills per window (discrete mode, z from the window's first row)"
        out["skill_usage_fitted"] = [round(float(u), 4) for u in torch.bincount(best, minlength=llc.num_skills) / w]
    if mode == "discrete":
        fitted = means[torch.arange(w), best]
        out["mse_prior"], out["mse_fitted"] = out["mse_prior_skill"], out["mse_fitted_skill"]
    else:
        hl = random_hl_action(llc, "continuous" if mode != "multires" else mode, w, gen)
        if mode == "multires":
            z_prior = normalize_latent(hl[:, len(llc.horizons) + 1:] * llc.latent_scale, llc.normalization)
            out["head"] = f"horizon {llc.horizons[int(head[0])]} (closest to k={k})"
            out["mse_unconditional_head"] = _mse(llc, fo, fa, torch.zeros(w * k, d),
                                                 torch.full((w * k,), len(llc.horizons), dtype=torch.long))
        else:
            z_prior = llc.decode("continuous", hl)[0]
        out["mse_prior"] = _mse(llc, fo, fa, rep(z_prior), head)
        fitted = fit_latents(llc, obs, act, iters=fit_iters, seed=seed)
        out["mse_fitted"] = _mse(llc, fo, fa, rep(fitted), head)
        out["fitted"] = f"one high-level action per window, {fit_iters} Adam steps on the action MSE"
    if post["z"] is not None:
        z = post["z"].flatten(0, 1)
        out["mse_true"] = _mse(llc, fo, fa, z, head)
        out["mse_shuffled"] = _mse(llc, fo, fa, post["z"][perm].flatten(0, 1), head)
        out["ratio"] = out["mse_shuffled"] / max(out["mse_true"], 1e-12)
        out["shuffled_of"] = "true"
    else:
        out["mse_shuffled"] = _mse(llc, fo, fa, rep(fitted[perm]), head)
        out["ratio"] = out["mse_shuffled"] / max(out["mse_fitted"], 1e-12)
        out["shuffled_of"] = "fitted"
    if post["kl_per_dim"] is not None:
        out["kl_per_dim"] = [round(float(x), 4) for x in post["kl_per_dim"]]
        out["kl_total"] = float(post["kl_per_dim"].sum())
    if post["mean"] is not None:
        var = post["mean"].var(0)
        out["posterior_mean_var"] = [round(float(x), 4) for x in var]
        out["active_dims"] = int((var > ACTIVE_VAR).sum())
    metrics = llc.spec.get("provenance", {}).get("metrics", {}) or {}
    out["trainer_kl"] = {key: metrics[key] for key in metrics if "kl" in key and key.startswith("val")}
    return out


# ============================================================================================
# Rollouts with a skill held: end states, names, mutual information
# ============================================================================================
def name_end_state(grasped: int, lifted: bool, raised: list, near: int, near_dist: float, pushed: int,
                   tcp_move: np.ndarray, closed: bool) -> str:
    """A name for one env's end state, by the first rule that holds:
        lift C    both fingers touch object C (grasp sensor) and C is > 3 cm above the table
        grasp C   both fingers touch object C
        place C   object C rests > 2 cm above the table (on another object), not in the hand
        reach C   the TCP is within 5 cm of object C's centre
        push C    object C moved > 3 cm from its start
        stay      the TCP moved < 5 cm
        move D    otherwise: D is the main axis of the TCP's motion (+x fwd, -x back, +y left,
                  -y right, up, down)
    ``closed`` (opening < 1 cm per finger) is appended to reach / stay / move."""
    if grasped >= 0:
        return f"{'lift' if lifted else 'grasp'} {COLOURS[grasped]}"
    if any(raised):
        return f"place {COLOURS[int(np.argmax(raised))]}"
    suffix = ", closed" if closed else ""
    if near_dist < 0.05:
        return f"reach {COLOURS[near]}{suffix}"
    if pushed >= 0:
        return f"push {COLOURS[pushed]}"
    if np.linalg.norm(tcp_move) < 0.05:
        return "stay" + suffix
    axis = int(np.argmax(np.abs(tcp_move)))
    sign = tcp_move[axis] > 0
    return "move " + [("+x fwd", "-x back"), ("+y left", "-y right"), ("up", "down")][axis][0 if sign else 1] + suffix


def mutual_information(labels: np.ndarray, cells: np.ndarray) -> float:
    """Plug-in I(label; cell) in bits from paired samples."""
    lab, li = np.unique(labels, return_inverse=True)
    cel, ci = np.unique(cells, return_inverse=True)
    joint = np.zeros((len(lab), len(cel)))
    np.add.at(joint, (li, ci), 1.0)
    joint /= joint.sum()
    pl, pc = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pl @ pc)[nz])).sum())


class _EndStates:
    """Per control step (the first ``steps``): grasp and staged reward; the end-state features at
    control step ``steps`` itself, before LatentSkillEnv resets envs at the end of a macro step."""

    def __init__(self, task, steps: int):
        self.task, self.steps, self.grasp, self.staged, self.end = task, int(steps), [], [], None
        self.start_tcp = task.ee_pose()[0].clone()
        self.start_obj = task.object_qpos()[:, :, 0:3].clone()

    def __call__(self, *_):
        if len(self.grasp) >= self.steps:
            return
        self.grasp.append(self.task.grasp().float())
        self.staged.append(self.task.reward_for("staged"))
        if len(self.grasp) == self.steps:
            self.end = self._snapshot()

    def finish(self) -> dict:
        return self.end if self.end is not None else self._snapshot()

    def _snapshot(self) -> dict:
        task = self.task
        tcp = task.ee_pose()[0]
        obj = task.object_qpos()[:, :, 0:3]
        hh = task.object_dims()[0]
        return {"tcp": tcp, "opening": task.finger_opening(), "dist": (obj - tcp[:, None]).norm(dim=-1),
                "height": obj[:, :, 2] - hh, "grasped": task.grasped_colour(),
                "moved": (obj - self.start_obj).norm(dim=-1), "tcp_move": tcp - self.start_tcp,
                "grasp_fraction": torch.stack(self.grasp).mean(0), "staged": torch.stack(self.staged).mean(0)}


@torch.no_grad()
def rollout_held(task, llc: LowLevelController, mode: str, hl: torch.Tensor, steps: int, seed: int = 0) -> dict:
    """One high-level action (or skill) ``hl`` (broadcast to all envs) held for ``steps`` control
    steps from a reset drawn with ``seed`` (the same initial states for every condition). The
    task's episodes must last at least ``steps`` control steps (episodeLength > steps)."""
    if task.max_episode_length < steps:
        raise UserError(f"skill rollouts of {steps} steps need task.env.episodeLength > {steps}, "
                        f"got {task.max_episode_length}")
    torch.manual_seed(seed)
    env = LatentSkillEnv(task, llc, mode=mode, reward="sum")
    env.reset()
    rec = _EndStates(task, steps)
    n = task.num_envs
    hl = hl.expand(n) if mode == "discrete" else hl.expand(n, -1)
    for _ in range(-(-int(steps) // env.steps)):
        env.step(hl, on_control_step=rec)
    return rec.finish()


def _names(end: dict) -> list:
    out = []
    moved = end["moved"].numpy()
    for e in range(len(end["tcp"])):
        g = int(end["grasped"][e])
        near = int(end["dist"][e].argmin())
        pushed = int(moved[e].argmax()) if moved[e].max() > 0.03 else -1
        raised = [bool(h > 0.02) and g != j and float(end["dist"][e, j]) > 0.04
                  for j, h in enumerate(end["height"][e].tolist())]
        out.append(name_end_state(g, g >= 0 and float(end["height"][e, g]) > 0.03, raised, near,
                                  float(end["dist"][e, near]), pushed, end["tcp_move"][e].numpy(),
                                  float(end["opening"][e]) < 0.01))
    return out


def skill_rollouts(task, llc: LowLevelController, steps: int = 100, num_latents: int = 6, seed: int = 0) -> dict:
    """Each discrete skill held (discrete LLCs), else ``num_latents`` fixed random high-level
    actions held (continuous, multires): per-condition end-state statistics and names, and the
    mutual information between the condition and the end state."""
    for attr in ("grasp", "object_qpos", "ee_pose"):
        if not hasattr(task, attr):
            raise UserError(f"skill rollouts need FrankaStack (objects, grasp sensor); got {type(task).__name__}")
    mode = "discrete" if "discrete" in llc.modes else _mode(llc)
    gen = torch.Generator().manual_seed(seed + 1)
    if mode == "discrete":
        conds = [(f"skill {y}", torch.tensor([y])) for y in range(llc.num_skills)]
    else:
        hls = random_hl_action(llc, mode, num_latents, gen)
        conds = [(f"latent {i}", hls[i:i + 1]) for i in range(num_latents)]
    rows, feats, labels, names = {}, [], [], []
    for c, (label, hl) in enumerate(conds):
        end = rollout_held(task, llc, mode, hl, steps, seed)
        env_names = _names(end)
        top, count = Counter(env_names).most_common(1)[0]
        rows[label] = {"name": f"{top} ({count}/{len(env_names)})", "tcp_z": float(end["tcp"][:, 2].mean()),
                       "opening": float(end["opening"].mean()),
                       **{f"dist_{col}": float(end["dist"][:, j].mean()) for j, col in enumerate(COLOURS)},
                       **{f"height_{col}": float(end["height"][:, j].mean()) for j, col in enumerate(COLOURS)},
                       "grasp_end": float((end["grasped"] >= 0).float().mean()),
                       "grasp_fraction": float(end["grasp_fraction"].mean()),
                       "staged_reward": float(end["staged"].mean()), "env_names": env_names}
        feats.append(torch.cat([end["tcp"], end["opening"][:, None], end["dist"], end["height"],
                                (end["grasped"] >= 0).float()[:, None]], -1))
        labels += [c] * len(env_names)
        names += env_names
    from .rollout_videos import kmeans
    x = torch.cat(feats).numpy()
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    labels = np.asarray(labels)
    _, _, cells, used = kmeans(x, len(conds), seed=seed)
    lab = labels[used]
    rng = np.random.default_rng(seed)
    perm_mi = lambda cl, ce: float(np.mean([mutual_information(rng.permutation(cl), ce) for _ in range(20)]))
    names = np.asarray(names)
    return {"mode": mode, "steps": int(steps), "envs": int(task.num_envs), "per_condition": rows,
            "mi_bits_kmeans": mutual_information(lab, cells), "mi_bits_kmeans_permuted": perm_mi(lab, cells),
            "mi_bits_names": mutual_information(labels, names), "mi_bits_names_permuted": perm_mi(labels, names),
            "mi_bits_max": math.log2(len(conds)), "distinct_names": int(len(set(r["name"].split(" (")[0]
                                                                             for r in rows.values())))}


@torch.no_grad()
def grasp_coverage(task, llc: LowLevelController | None, steps: int = 100, seed: int = 0) -> dict:
    """Fraction of control steps in a grasp (HeLMS Table 1's grasp coverage) and staged reward per
    step: random flat actions (``llc`` None) or a random high level in each of the LLC's modes
    (a new uniform high-level action every k steps)."""
    out = {}
    gen = torch.Generator().manual_seed(seed)
    if llc is None:
        torch.manual_seed(seed)
        task.reset()
        grasp, staged = [], []
        for _ in range(steps):
            task.step(torch.rand(task.num_envs, task.num_actions, generator=gen) * 2 - 1)
            grasp.append(task.grasp().float())
            staged.append(task.reward_for("staged"))
        return {"random flat actions": {"grasp_fraction": float(torch.stack(grasp).mean()),
                                        "staged_reward": float(torch.stack(staged).mean())}}
    for mode in llc.modes:
        torch.manual_seed(seed)
        env = LatentSkillEnv(task, llc, mode=mode, reward="sum")
        env.reset()
        rec = _EndStates(task, steps)
        for _ in range(-(-int(steps) // env.steps)):
            env.step(random_hl_action(llc, mode, task.num_envs, gen), on_control_step=rec)
        out[f"random high level ({mode})"] = {"grasp_fraction": float(torch.stack(rec.grasp).mean()),
                                              "staged_reward": float(torch.stack(rec.staged).mean())}
    return out


# ============================================================================================
# One call for the skills report
# ============================================================================================
def diagnose(llc: LowLevelController, data: dict, task=None, *, steps: int = 100, num_latents: int = 6,
             max_windows: int = 2000, seed: int = 0, encoder=None) -> dict:
    """z usage (always) and, given a Franka task built with auto_reset=False and
    terminateOnSuccess=False, the skill rollouts and grasp coverage."""
    out = {"z_usage": z_usage(llc, data, max_windows=max_windows, seed=seed, encoder=encoder)}
    if task is not None and hasattr(task, "grasp") and llc.latent_dim > 0:
        out["rollouts"] = skill_rollouts(task, llc, steps, num_latents, seed)
        out["grasp_coverage"] = grasp_coverage(task, None, steps, seed) | grasp_coverage(task, llc, steps, seed)
    return out


def _f(x, fmt=".4g"):
    return "n/a" if x is None else format(x, fmt)


def markdown(diag: dict) -> str:
    """The diagnostics as a markdown section (tables) for index.md."""
    z = diag["z_usage"]
    lines = ["\n## Skill diagnostics\n", f"Posterior: {z['posterior']}. Windows of k={z['k']} rows: {z['windows']} "
             f"(action variance {z['action_var']:.4g}).\n",
             "| mse true | mse zero | mse shuffled | mse prior | mse fitted | ratio shuffled/true | active dims |",
             "|---|---|---|---|---|---|---|",
             f"| {_f(z.get('mse_true'))} | {_f(z.get('mse_zero'))} | {_f(z.get('mse_shuffled'))} | "
             f"{_f(z.get('mse_prior'))} | {_f(z.get('mse_fitted'))} | {_f(z.get('ratio'), '.3f')}"
             f"{' (of fitted)' if z.get('shuffled_of') == 'fitted' else ''} | "
             f"{z.get('active_dims', 'n/a')}/{z['latent_dim']} |"]
    if "kl_per_dim" in z:
        lines.append(f"\nKL per dimension (nats): {', '.join(f'{v:.3f}' for v in z['kl_per_dim'])}; "
                     f"total {z['kl_total']:.3f}")
    if z.get("trainer_kl"):
        lines.append(f"\nTrainer's KL (validation): {z['trainer_kl']}")
    ro = diag.get("rollouts")
    if ro:
        lines += [f"\n{ro['mode']} conditions held for {ro['steps']} steps on {ro['envs']} envs. MI(condition; end "
                  f"state): k-means {ro['mi_bits_kmeans']:.2f} bits (permuted {ro['mi_bits_kmeans_permuted']:.2f}), "
                  f"names {ro['mi_bits_names']:.2f} bits (permuted {ro['mi_bits_names_permuted']:.2f}), max "
                  f"{ro['mi_bits_max']:.2f}.\n",
                  "| condition | name | TCP z | opening | d red | d green | d blue | h red | h green | h blue "
                  "| grasp steps | staged/step |", "|---|---|" + "---|" * 10]
        for c, r in ro["per_condition"].items():
            lines.append(f"| {c} | {r['name']} | {r['tcp_z']:.3f} | {r['opening']:.4f} | {r['dist_red']:.3f} | "
                         f"{r['dist_green']:.3f} | {r['dist_blue']:.3f} | {r['height_red']:.3f} | "
                         f"{r['height_green']:.3f} | {r['height_blue']:.3f} | {r['grasp_fraction']:.3f} | "
                         f"{r['staged_reward']:.3f} |")
    gc = diag.get("grasp_coverage")
    if gc:
        lines += ["\n| behaviour | grasp steps | staged/step |", "|---|---|---|"]
        lines += [f"| {k} | {v['grasp_fraction']:.4f} | {v['staged_reward']:.4f} |" for k, v in gc.items()]
    return "\n".join(lines) + "\n"


def summary(diag: dict) -> dict:
    """The few numbers of ``diag`` worth a line in metrics.json."""
    z = diag["z_usage"]
    keys = ("posterior", "mse_true", "mse_zero", "mse_shuffled", "mse_prior", "mse_fitted", "ratio", "shuffled_of",
            "kl_per_dim", "kl_total", "active_dims", "mse_fitted_skill", "mse_prior_skill")
    out = {f"z_{k}" if not k.startswith(("kl", "active")) else k: z[k] for k in keys if k in z}
    ro = diag.get("rollouts")
    if ro:
        out |= {k: ro[k] for k in ("mi_bits_kmeans", "mi_bits_kmeans_permuted", "mi_bits_names",
                                   "mi_bits_names_permuted", "mi_bits_max", "distinct_names")}
        out["skill_names"] = {c: r["name"] for c, r in ro["per_condition"].items()}
    if diag.get("grasp_coverage"):
        out["grasp_fraction"] = {k: v["grasp_fraction"] for k, v in diag["grasp_coverage"].items()}
    return out


def report_section(llc_path, dataset, meta: dict, report_dir, *, task_name=None, envs: int = 8,
                   steps: int = 100, seed: int = 0, max_windows: int = 2000) -> str:
    """For hrl-skills' report: run ``diagnose`` on the written LLC and its dataset (rollouts in the
    dataset's task when it is a Franka task), write diagnostics.json, add ``summary`` to
    metrics.json under "diagnostics" and return the markdown section."""
    import copy
    import json

    from ..datasets import load_dataset
    from ..hrl import load_llc
    from .rollout_videos import build_task
    report_dir = Path(report_dir)
    llc = load_llc(llc_path)
    data, _ = load_dataset(dataset)
    task = None
    task_name = task_name or meta.get("task")
    if task_name in ("FrankaStack",) and llc.latent_dim > 0:
        cfg = copy.deepcopy(meta.get("task_config")) if task_name == meta.get("task") else None
        if cfg:
            cfg["env"].update(episodeLength=steps + 1, terminateOnSuccess=False)
        task = build_task(task_name, envs, cfg, seed)
    try:
        diag = diagnose(llc, data, task, steps=steps, seed=seed, max_windows=max_windows)
    finally:
        if task is not None:
            task.close()
    (report_dir / "diagnostics.json").write_text(json.dumps(diag, indent=2, default=float))
    metrics = report_dir / "metrics.json"
    if metrics.is_file():
        merged = json.loads(metrics.read_text()) | {"diagnostics": summary(diag)}
        metrics.write_text(json.dumps(merged, indent=2, default=float))
    return markdown(diag)
