"""z usage: does a low-level controller use its latent? Measured on dataset windows, for any LLC.

A skill space whose low level ignores z (posterior collapse) leaves a high level nothing to choose.
On windows of k consecutive dataset rows (k = the LLC's default_steps, one high-level decision),
the action MSE of the frozen LLC with
  true     the posterior latent (per algorithm, below; absent when no posterior is shipped),
  zero     z = 0 (the policy's input; for multires: the matched head with z = 0),
  shuffled the true latents permuted across windows (or the fitted ones, without a posterior),
  prior    a random high-level action (what a random high level sends),
  fitted   one high-level action per window fitted to the window's actions (gradient descent
           for continuous latents, the best of K skills for discrete ones): the best any high
           level holding one action for k steps can reach.
``ratio`` = shuffled / true (or shuffled / fitted): about 1 means the low level ignores z. Where a
posterior exists, also the KL per latent dimension to N(0, I) and the active dimensions
(Var_x E[z | x] > 0.01, Burda et al. 2016); the trainer's own total KL is copied from the LLC's metrics.

Posteriors, per algorithm (what the shipped files allow):
  bc     the conditioning slice normalized as in skills/bc.py (the latent is the command): exact
  ldse   the segment encoder q(z | s, a), read from ``<llc>.encoder.pt`` (or ``encoder=``): exact
  helms  the mid level q(z | y, x) is in the LLC, the high-level posterior q(y | x^+) is not; y
         per row is the skill whose mean z best explains the row's action (the posterior under a
         uniform skill prior and a Gaussian action likelihood): optimistic by construction
  npmp, mrs  their encoders are not saved: no posterior; only zero / prior / fitted are measured
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..datasets.hdf5 import episode_ids, take_slices
from ..datasets.windows import window_indices, window_starts
from ..errors import UserError
from ..hrl.llc import LowLevelController, normalize_latent
from ..hrl.segment_encoder import SkillMatcher, encoder_path
from .exploration import random_hl_action

ACTIVE_VAR = 0.01          # a latent dimension whose posterior mean varies less is inactive


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
        m = SkillMatcher.load(path)
        obs, act = _slices(data, llc.obs_names)[win], torch.from_numpy(data["actions"].astype(np.float32))[win]
        mean, log_std = m.posterior(obs, act)
        z = normalize_latent(mean, llc.normalization)[:, None].expand(-1, k, -1)
        return {"z": z, "kind": f"exact: LDSE encoder over the k={k} window ({path.name}, trained on h={m.horizon})",
                "kl_per_dim": _kl_per_dim(mean, log_std), "mean": mean}
    if algo == "helms" and llc.mid is not None:
        obs, act = _slices(data, llc.obs_names)[win].flatten(0, 1), torch.from_numpy(
            data["actions"].astype(np.float32))[win].flatten(0, 1)
        mid = _slices(data, llc.mid_obs_names)[win].flatten(0, 1)
        with torch.no_grad():
            means, log_stds = llc.mid_latents(mid)                                  # (R, K, d)
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


def llc_mode(llc: LowLevelController) -> str:
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
    mode = llc_mode(llc)
    head = _head(llc, w * k)
    perm = torch.randperm(w, generator=gen)
    rep = lambda z: z.repeat_interleave(k, 0)                                             # (W, d) -> (W*k, d)
    out["mse_zero"] = _mse(llc, fo, fa, torch.zeros(w * k, d), head)
    if "discrete" in llc.modes:          # what a discrete high level can do: one skill per window
        hl = random_hl_action(llc, "discrete", w, gen)
        mid = _slices(data, llc.mid_obs_names)[win[:, 0]]               # decided at the window's start
        with torch.no_grad():
            means, _ = llc.mid_latents(mid)                                        # (W, K, d)
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

