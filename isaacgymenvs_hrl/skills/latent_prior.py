"""A learned state-conditioned latent prior p(z | x) = N(mu(x), sigma(x)) for a continuous LLC.

A high level anchored to it (``task.env.llc.prior=True``, mode continuous) runs
z = mu(x_0) + sigma(x_0) * prior_scale * a, so its untrained policy (a ~ N(0, 1 / prior_scale^2))
draws the latents the skills take in the dataset's states instead of N(0, I). HeLMS has such a
prior built in (its mid level and skill prior); LDSE and NPMP learn only a state-free N(0, I) and
get one here, fitted after the fact by maximum likelihood to the latents the LLC itself assigns to
the dataset's segments:

  encoder  LDSE: the segment encoder shipped beside the LLC (``<name>.encoder.pt``, the one skill
           matching uses), its posterior mean of every segment of H steps: what the policy was
           cloned on.
  policy   an LLC without its encoder (NPMP's is not shipped): the latent under which the frozen
           policy best reproduces the segment's k actions with the latent held, as a high level
           holds it: argmin_z sum_t |pi(s_t, z) - a_t|^2 / (2 action_std^2) + |z|^2 / 2 (the
           posterior mode under the N(0, I) marginal the skills were trained towards).

Segments start every ``stride`` steps inside an episode; the prior reads its observation slices at
the segment's first step (by default every slice the dataset stores: what the high level sees). The
fit holds out whole episodes and keeps the epoch with the best held-out NLL, which it reports next
to N(0, I)'s and a state-free Gaussian's. MRS has no place for it: its latent means something
different under every resolution head and its high level picks the head too (mode multires).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..datasets.hdf5 import DatasetError, dataset_views, episode_ids, take_slices
from ..datasets.windows import require_windows, window_indices, window_starts
from ..errors import UserError
from ..hrl.llc import LowLevelController, normalize_latent
from ..hrl.networks import LatentPrior
from ..hrl.segment_encoder import SkillMatcher
from .common import LOG_2PI, mean_std, seeded

SOURCES = ("auto", "encoder", "policy")


@dataclass
class LatentPriorConfig:
    obs: list = field(default_factory=list)
    """observation slices the prior reads ([]: every slice the dataset stores, what the high level sees)"""
    source: str = "auto"
    """latents to fit: 'encoder' (the LLC's segment encoder), 'policy' (inverted through the frozen
    policy) or 'auto' (the encoder where one is given, else the policy)"""
    stride: int = 0
    """steps between the starts of consecutive segments of an episode (0: the segment length)"""
    hidden: list = field(default_factory=lambda: [256, 256])
    activation: str = "elu"
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    val_fraction: float = 0.1
    """share of the episodes held out"""
    invert_iters: int = 150
    """source 'policy': Adam steps on every segment's latent"""
    invert_lr: float = 0.05
    action_std: float = 0.0
    """source 'policy': std of the action likelihood (0: the LLC's training config's, else 0.2)"""
    seed: int = 0


def check_config(cfg: LatentPriorConfig) -> None:
    if cfg.source not in SOURCES:
        raise UserError(f"source={cfg.source!r}: choose one of {', '.join(SOURCES)}")
    for key, low in (("epochs", 1), ("batch_size", 1), ("invert_iters", 1), ("stride", 0)):
        if int(getattr(cfg, key)) < low:
            raise UserError(f"{key} must be an integer >= {low}, got {getattr(cfg, key)}")
    if not 0.0 < cfg.val_fraction < 1.0 or cfg.lr <= 0 or cfg.invert_lr <= 0 or cfg.action_std < 0:
        raise UserError(f"val_fraction must be in (0, 1), lr and invert_lr > 0, action_std >= 0 (got "
                        f"{cfg.val_fraction}, {cfg.lr}, {cfg.invert_lr}, {cfg.action_std})")


def check_dataset(llc: LowLevelController, meta: dict, obs: list) -> None:
    """The dataset must come from the LLC's robot, rate and controller and hold every slice read."""
    spec = llc.spec
    for key, want in (("task_family", spec["task_family"]), ("control_type", spec["action"]["control_type"])):
        have = meta.get(key, (meta.get("spec") or {}).get(key))
        if have is not None and have != want:
            raise DatasetError(f"the dataset's {key} is {have!r}, the LLC's {want!r}: fit the prior on the "
                               "dataset the LLC was trained on (its provenance names it)")
    dt = meta.get("control_dt")
    if dt is not None and not math.isclose(float(dt), float(spec["control_dt"]), rel_tol=1e-6):
        raise DatasetError(f"the dataset's control_dt is {dt} s, the LLC's {spec['control_dt']} s: fit the "
                           "prior on the dataset the LLC was trained on (its provenance names it)")
    have = dataset_views(meta)
    lacking = [n for n in [*llc.obs_names, *obs] if n not in have]
    if lacking:
        raise DatasetError(f"the dataset has no observation slice(s) {lacking} (it has {list(have)}); pass "
                           "obs=[...] with slices it has, or the dataset the LLC was trained on")


# ---- the latents the LLC assigns to segments ----------------------------------------------------
def encoder_latents(matcher: SkillMatcher, data: dict, obs_names, stride: int) -> tuple[np.ndarray, torch.Tensor]:
    """Segment starts (W,) and the encoder's posterior means (W, d) of every H-step segment."""
    h = matcher.horizon
    ep = episode_ids(data)
    starts = window_starts(ep, h, stride or h)
    require_windows(starts, h, data, "latent prior", "collect longer episodes")
    idx = torch.from_numpy(window_indices(starts, h))
    obs = take_slices(data, obs_names)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    z = torch.cat([matcher(obs[b], act[b]) for b in idx.split(4096)])
    return starts, z


def inverted_latents(llc: LowLevelController, data: dict, steps: int, stride: int, action_std: float,
                     iters: int, lr: float, log=print) -> tuple[np.ndarray, torch.Tensor]:
    """Segment starts (W,) and, per k-step segment, the latent held over it under which the frozen
    policy best reproduces the segment's actions (the posterior mode under N(0, I); module docstring)."""
    ep = episode_ids(data)
    starts = window_starts(ep, steps, stride or steps)
    require_windows(starts, steps, data, "latent prior", "collect longer episodes")
    idx = torch.from_numpy(window_indices(starts, steps))
    obs = take_slices(data, llc.obs_names)
    act = torch.from_numpy(data["actions"].astype(np.float32)).clamp(-1.0, 1.0)
    out, residual = [], []
    for chunk in idx.split(8192):
        o, a = obs[chunk], act[chunk]                                        # (B, k, S), (B, k, A)
        z = torch.zeros(len(chunk), llc.latent_dim, requires_grad=True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(iters):
            zz = normalize_latent(z, llc.normalization)[:, None].expand(-1, steps, -1)
            pred = llc(o.reshape(-1, o.shape[-1]), zz.reshape(-1, zz.shape[-1])) / llc.action_scale
            err = ((pred.view_as(a) - a) ** 2).sum((1, 2)) / (2 * action_std ** 2)
            loss = (err + 0.5 * (z ** 2).sum(-1)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append(z.detach())
        residual.append(err.detach() * 2 * action_std ** 2 / a[0].numel())
    z = torch.cat(out)
    log(f"latent prior: {len(z)} segments of {steps} steps inverted through the policy (action MSE "
        f"{torch.cat(residual).mean():.4f} at the fitted latents)")
    return starts, z


# ---- the fit ---------------------------------------------------------------------------------------
def gaussian_nll(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """-log N(z; mean, exp(log_std)^2) summed over the latent's dimensions (N,)."""
    return (0.5 * ((z - mean) / log_std.exp()) ** 2 + log_std + 0.5 * LOG_2PI).sum(-1)


def fit_latent_prior(llc: LowLevelController, data: dict, meta: dict, cfg: LatentPriorConfig,
                     encoder: str | Path | None = None, log=print) -> tuple[LatentPrior, list, dict]:
    """Fit p(z | x) to ``llc``'s latents of the dataset's segments: (prior, its observation slices
    [[name, size], ...], fit record for the checkpoint's provenance)."""
    check_config(cfg)
    if not llc.spec["latent"]["modes"] or "continuous" not in llc.spec["latent"]["modes"]:
        raise UserError(f"{getattr(llc, 'path', 'the LLC')} runs in modes {llc.spec['latent']['modes']}; a latent "
                        "prior anchors a continuous high level (MRS' multires latent means something else per head)")
    if llc.skill_prior is not None:
        raise UserError(f"{getattr(llc, 'path', 'the LLC')} has a skill prior, whose mid level already is its "
                        "latent prior (HeLMS); fit one only for LLCs without (LDSE, NPMP)")
    views = dataset_views(meta)
    obs = list(cfg.obs) or [n for n, _ in meta["obs_layout"]]
    check_dataset(llc, meta, obs)
    source = cfg.source if cfg.source != "auto" else ("encoder" if encoder else "policy")
    g = seeded(cfg.seed)
    if source == "encoder":
        if not encoder or not Path(encoder).is_file():
            raise UserError(f"source=encoder needs the LLC's segment encoder file (<name>.encoder.pt), "
                            f"{encoder or 'none'} was found; pass encoder=PATH or source=policy")
        matcher = SkillMatcher.load(encoder)
        starts, z = encoder_latents(matcher, data, llc.obs_names, cfg.stride)
        steps = matcher.horizon
    else:
        action_std = cfg.action_std or float(llc.spec.get("provenance", {}).get("config", {}).get("action_std") or 0.2)
        steps = llc.decision_steps()
        starts, z = inverted_latents(llc, data, steps, cfg.stride, action_std, cfg.invert_iters, cfg.invert_lr, log)
    if not torch.isfinite(z).all():
        raise UserError("the LLC assigned NaN or infinite latents to the dataset's segments; check the dataset's values")
    x = take_slices(data, obs)[torch.from_numpy(starts)]

    # hold out whole episodes: neighbouring segments of one episode are near copies
    ep = episode_ids(data)[starts]
    episodes = np.unique(ep)
    if len(episodes) < 2:
        raise DatasetError(f"the dataset has {len(episodes)} episode(s) with a whole segment; the held-out split "
                           "needs at least 2 (collect more episodes)")
    perm = torch.randperm(len(episodes), generator=g).numpy()
    n_val = min(len(episodes) - 1, max(1, int(round(len(episodes) * cfg.val_fraction))))
    val_mask = torch.from_numpy(np.isin(ep, episodes[perm[:n_val]]))
    train, val = (~val_mask).nonzero().view(-1), val_mask.nonzero().view(-1)

    prior = LatentPrior(x.shape[1], llc.latent_dim, tuple(cfg.hidden), cfg.activation)
    prior.obs_mean.copy_(x[train].mean(0))
    prior.obs_std.copy_(mean_std(x[train])[1])
    opt = torch.optim.Adam(prior.net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)

    def nll(items):
        return gaussian_nll(z[items], *prior(x[items])).mean()

    best, best_state, history = math.inf, None, []
    for epoch in range(cfg.epochs):
        prior.train()
        total = 0.0
        for b in torch.randperm(len(train), generator=g).split(cfg.batch_size):
            loss = nll(train[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prior.parameters(), 10.0)
            opt.step()
            total += loss.item() * len(b)
        sched.step()
        prior.eval()
        with torch.no_grad():
            v = nll(val).item()
        history.append((total / len(train), v))
        if v < best:
            best, best_state = v, {k: t.clone() for k, t in prior.state_dict().items()}
    prior.load_state_dict(best_state)
    prior.eval()
    with torch.no_grad():
        zero = torch.zeros(1, llc.latent_dim)
        g_mean, g_std = z[train].mean(0, keepdim=True), z[train].std(0, keepdim=True).clamp_min(1e-3)
        record = {
            "source": source, "segment_steps": int(steps), "stride": int(cfg.stride or steps),
            "segments": int(len(z)), "train_segments": int(len(train)), "val_segments": int(len(val)),
            "val_episodes": int(n_val), "obs": obs,
            "train_nll": round(nll(train).item(), 4), "val_nll": round(best, 4),
            "val_nll_standard_normal": round(gaussian_nll(z[val], zero, zero).mean().item(), 4),
            "val_nll_state_free": round(gaussian_nll(z[val], g_mean, g_std.log()).mean().item(), 4),
            "best_epoch": int(min(range(len(history)), key=lambda i: history[i][1]) + 1),
            "config": asdict(cfg)}
    log(f"latent prior: held-out NLL {record['val_nll']:.3f} nats per segment (N(0, I): "
        f"{record['val_nll_standard_normal']:.3f}, a state-free Gaussian: {record['val_nll_state_free']:.3f}) "
        f"over {len(val)} segments of {n_val} episodes")
    return prior, [[n, int(views[n].stop - views[n].start)] for n in obs], record
