"""HeLMS: hierarchical latent mixture skills (after Rao et al., 2022).

Three levels, each seeing less than the one above (information asymmetry):

    high level  q(y_t | y_{t-1}, x_t^+)   categorical skill; K gated heads, one per previous skill
                                           (plus one for t = 0); reads the mid observation x_t and
                                           the next ``lookahead`` ones (posterior only, never deployed)
    mid level   q(z_t | y_t, x_t)          one diagonal Gaussian per skill (ComponentEncoder) on
                                           proprio + object poses
    low level   p(a_t | z_t, s_t)          SkillPolicy on proprio only; Gaussian with fixed std

Priors: p(y_t | y_{t-1}, x_t) and p(y_0 | x_0) from ``SkillPrior`` on the mid observation without
look-ahead (``prior_reads_state``, HeLMS' high level; it ships in the LLC, and a high level sampled
from it explores zero-shot), else p(y_0) uniform and p(y_t | y_{t-1}) = softmax(W onehot(y_{t-1}) + b);
p(z_t) = N(0, I).
The ELBO of a sequence marginalizes y exactly with the forward-filtered q(y_t | x_{1:t}):

    alpha_0 = q(y_0 | x_0),    alpha_t(j) = sum_i alpha_{t-1}(i) q(y_t = j | y_{t-1} = i, x_t)
    ELBO = sum_t sum_j alpha_t(j) [ E_{q(z|j, x_t)} log p(a_t | z, s_t) - beta_z KL(q(z|j, x_t) || N(0, I)) ]
           - beta_y [ KL(alpha_0 || uniform) + sum_{t>0} sum_i alpha_{t-1}(i) KL(q(.|i, x_t) || p(.|i)) ]

which with beta_z = beta_y = 1 is the exact ELBO of the Markov-chain posterior over y_{1:T} (the KL
between two Markov chains splits into per-step KLs weighted by the marginals). Sequences are
windows of ``seq_len`` steps inside one episode; each starts from the uniform prior.

The LLC supports three modes: continuous (the high level emits z directly), discrete (the high
level picks y; the frozen mid level's mean for that y is z) and mixture (K scores and K latents;
latent.mixture.prior_mean/prior_std are each component's posterior q(z | y = k, x) aggregated over
the dataset, weighted by the filtered q(y_t = k | x_{1:t})). Latent normalization is 'none': the
low level is trained on raw z. The mid level needs object poses, so the default mid slices are
[proprio, objects], and a dataset without an ``objects`` slice is an error.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..datasets.hdf5 import DatasetError, episode_ids, take_slices
from ..datasets.windows import lookahead_indices, require_windows, window_indices, window_starts
from ..errors import UserError
from ..hrl.llc import standardize
from ..hrl.networks import ComponentEncoder, SkillPolicy, SkillPrior, mlp
from .common import gaussian_log_prob, kl_standard_normal, llc_spec, mean_std, rsample
from .trainer import LatentSkillConfig, SkillTrainer


# ============================================================================================
# Config
# ============================================================================================
@dataclass
class HeLMSConfig(LatentSkillConfig):
    """policy_obs: the slices the low level p(a | z, s) reads (proprio only: it must transfer across
    tasks); hidden: the low level's sizes; latent_scale: the high-level action multiplier in the
    continuous and mixture modes; an item is a sequence."""
    mid_obs: list = field(default_factory=lambda: ["proprio", "objects"])
    """slices the mid level q(z | y, x) and the high-level posterior read (object poses needed)"""
    num_skills: int = 6
    """K: number of discrete skills"""
    lookahead: int = 3
    """future mid observations the high-level posterior q(y_t | y_{t-1}, x_t^+) sees"""
    seq_len: int = 32
    """steps per training sequence (forward filtering runs over it)"""
    seq_stride: int = 8
    """step between the starts of consecutive sequences of an episode"""
    beta_z: float = 0.1
    """weight of KL(q(z | y, x) || N(0, I))"""
    beta_y: float = 0.3
    """weight of the categorical KL to the transition prior"""
    prior_reads_state: bool = True
    """the learned skill prior is p(y_t | y_{t-1}, x_t) on the mid observation (no look-ahead);
    False: a state-free transition matrix p(y_t | y_{t-1}) with a uniform p(y_0)"""
    prior_stay: float = 0.0
    """0: learn the transition prior; in (0, 1): fix p(y_t = y_{t-1}) to it (switches uniform over
    the other skills, state-free, overrides prior_reads_state), so that a switch costs KL and skills
    last about 1 / (1 - prior_stay) steps"""
    usage_entropy: float = 0.5
    """weight of the entropy of the batch's mean skill marginal, added to the ELBO: a learned state
    prior removes the uniform p(y_0) that kept every skill in use, and skills can then go unused"""
    switch_cost: float = 0.3
    """weight of the posterior's expected number of skill switches per step: a state prior learns
    to predict any switching code (skills that alternate every step cost no KL), so skills last
    only if switching itself costs"""
    action_std: float = 0.2
    """std of the low level's Gaussian p(a | z, s) (actions are in [-1, 1])"""
    mid_hidden: list = field(default_factory=lambda: [256, 256])
    """hidden sizes of the mid level and of the high-level posterior"""
    batch_size: int = 32
    """sequences per gradient step"""


# ============================================================================================
# Forward filtering and the ELBO terms (pure functions, tested against brute-force enumeration)
# ============================================================================================
def forward_filter(init_log_q: torch.Tensor, trans_log_q: torch.Tensor) -> torch.Tensor:
    """Marginals q(y_t | x_{1:t}) of a Markov chain: init (B, K), transitions (B, T-1, K, K) with
    [b, t, i, j] = log q(y_{t+1} = j | y_t = i). Returns (B, T, K) probabilities."""
    alpha = [init_log_q.exp()]
    trans = trans_log_q.exp()
    for t in range(trans.shape[1]):
        alpha.append(torch.einsum("bi,bij->bj", alpha[-1], trans[:, t]))
    return torch.stack(alpha, 1)


def elbo_terms(init_log_q, trans_log_q, trans_log_p, log_lik, kl_z, init_log_p=None) -> dict:
    """Per-step ELBO terms of a sequence, each (B, T):

    recon  sum_j alpha_t(j) log_lik[t, j]           (log_lik: (B, T, K) expected log-likelihoods)
    kl_z   sum_j alpha_t(j) kl_z[t, j]              (kl_z: (B, T, K) Gaussian KLs per component)
    kl_y   KL(alpha_0 || p(y_0)) at t = 0, sum_i alpha_{t-1}(i) KL(q(.|i) || p(.|i)) after;
           trans_log_p (K, K) or (B, T-1, K, K): [i, j] = log p(y_t = j | y_{t-1} = i);
           init_log_p (B, K) = log p(y_0), uniform when None
    and ``marginals`` alpha (B, T, K).
    """
    k = init_log_q.shape[-1]
    alpha = forward_filter(init_log_q, trans_log_q)
    log_p0 = -math.log(k) if init_log_p is None else init_log_p
    kl_y0 = (init_log_q.exp() * (init_log_q - log_p0)).sum(-1)                            # (B,)
    kl_rows = (trans_log_q.exp() * (trans_log_q - trans_log_p)).sum(-1)                   # (B, T-1, K)
    kl_y = torch.cat([kl_y0[:, None], (alpha[:, :-1] * kl_rows).sum(-1)], 1)
    return {"recon": (alpha * log_lik).sum(-1), "kl_z": (alpha * kl_z).sum(-1), "kl_y": kl_y,
            "marginals": alpha}


# ============================================================================================
# Model
# ============================================================================================
class HeLMSModel(nn.Module):
    def __init__(self, policy_dim: int, mid_dim: int, action_dim: int, cfg: HeLMSConfig):
        super().__init__()
        k = cfg.num_skills
        self.k = k
        # high level: K + 1 gated heads (index K = the first step of a sequence)
        self.posterior = mlp([mid_dim * (1 + cfg.lookahead), *cfg.mid_hidden, (k + 1) * k], cfg.activation)
        self.mid = ComponentEncoder(mid_dim, k, cfg.latent_dim, tuple(cfg.mid_hidden), cfg.activation)
        self.policy = SkillPolicy(policy_dim, cfg.latent_dim, action_dim, tuple(cfg.hidden), cfg.activation)
        self.transition_prior = nn.Linear(k, k)                 # logits of p(y_t | y_{t-1} = one-hot)
        self.skill_prior = SkillPrior(mid_dim, k, tuple(cfg.mid_hidden), cfg.activation) \
            if cfg.prior_reads_state and cfg.prior_stay == 0 else None
        if not 0.0 <= cfg.prior_stay < 1.0:
            raise UserError(f"skills.prior_stay must be in [0, 1) (0: learned prior), got {cfg.prior_stay}")
        stay = torch.full((k, k), (1.0 - cfg.prior_stay) / max(k - 1, 1)).fill_diagonal_(cfg.prior_stay)
        self.register_buffer("fixed_log_prior", stay.log() if cfg.prior_stay > 0 else torch.zeros(0))

    def transition_log_prior(self) -> torch.Tensor:
        """(K, K): [i, j] = log p(y_t = j | y_{t-1} = i)."""
        if self.fixed_log_prior.numel():
            return self.fixed_log_prior
        eye = torch.eye(self.k, device=self.transition_prior.weight.device)
        return torch.log_softmax(self.transition_prior(eye), -1)


def helms_losses(model: HeLMSModel, cfg: HeLMSConfig, pol_obs, mid_obs, hi_obs, act) -> dict:
    """Negative per-step ELBO for sequences: pol_obs (B, T, P), mid_obs (B, T, M), hi_obs (B, T, H),
    act (B, T, A), observations already standardized."""
    b, t, k = act.shape[0], act.shape[1], model.k
    logits = model.posterior(hi_obs).view(b, t, k + 1, k)
    init_log_q = torch.log_softmax(logits[:, 0, k], -1)                                   # (B, K)
    trans_log_q = torch.log_softmax(logits[:, 1:, :k], -1)                                # (B, T-1, K, K)
    means, log_stds = model.mid(mid_obs.reshape(b * t, -1))                               # (B*T, K, d)
    z = rsample(means, log_stds)
    obs_k = pol_obs.reshape(b * t, 1, -1).expand(-1, k, -1).reshape(b * t * k, -1)
    a_mean = model.policy(obs_k, z.reshape(b * t * k, -1)).clamp(-1.0, 1.0).view(b, t, k, -1)
    log_lik = gaussian_log_prob(act[:, :, None], a_mean, torch.tensor(math.log(cfg.action_std)))
    kl_z = kl_standard_normal(means, log_stds).view(b, t, k)
    if model.skill_prior is not None:
        log_p = model.skill_prior(mid_obs.reshape(b * t, -1)).view(b, t, k + 1, k)
        trans_log_p = log_p[:, 1:, :k]                                                     # (B, T-1, K, K)
        terms = elbo_terms(init_log_q, trans_log_q, trans_log_p, log_lik, kl_z, log_p[:, 0, k])
    else:
        trans_log_p = model.transition_log_prior()                                         # (K, K)
        terms = elbo_terms(init_log_q, trans_log_q, trans_log_p, log_lik, kl_z)
    recon, klz, kly = terms["recon"].mean(), terms["kl_z"].mean(), terms["kl_y"].mean()
    alpha = terms["marginals"]
    mse = (alpha[..., None] * (a_mean - act[:, :, None]) ** 2).sum(2).mean()
    usage = alpha.mean((0, 1))
    usage_entropy = -(usage * usage.clamp_min(1e-8).log()).sum()
    stay = torch.diagonal(trans_log_q, dim1=-2, dim2=-1).exp()                            # (B, T-1, K)
    switches = (alpha[:, :-1] * (1.0 - stay)).sum(-1).mean()
    return {"loss": -recon + cfg.beta_z * klz + cfg.beta_y * kly - cfg.usage_entropy * usage_entropy
            + cfg.switch_cost * switches,
            "nll": -recon, "kl_z": klz,
            "kl_y": kly, "action_mse": mse, "switches": switches, "trans_log_p": trans_log_p, "marginals": alpha, "means": means.view(b, t, k, -1),
            "log_stds": log_stds.view(b, t, k, -1)}


# ============================================================================================
# Training
# ============================================================================================
def check_objects(meta: dict, cfg: HeLMSConfig) -> None:
    have = [n for n, _ in meta.get("obs_layout", [])]
    if "objects" in cfg.mid_obs and "objects" not in have:       # a clear word on the common case
        raise DatasetError(
            f"HeLMS: the dataset {meta.get('path') or ''} has no 'objects' observation slice (it has {have}); "
            "HeLMS's mid level q(z | y, x) reads object poses (skills.mid_obs=[proprio, objects]). "
            "Collect the dataset from a task with an objects slice (a manipulation task), or name "
            "slices the dataset has, e.g. skills.mid_obs=[proprio,task], to train without objects")


def train_helms(data: dict, meta: dict, cfg: HeLMSConfig, output: str, log=print, progress: bool = True) -> dict:
    """Fit, write the LLC checkpoint (continuous, discrete and mixture modes) to ``output``;
    returns metrics, loss history and report data."""
    check_objects(meta, cfg)
    if cfg.num_skills < 2:
        raise UserError(f"skills.num_skills must be >= 2, got {cfg.num_skills}")
    if cfg.seq_len < 2 or cfg.lookahead < 0 or cfg.action_std <= 0:
        raise UserError(f"HeLMS needs seq_len >= 2, lookahead >= 0 and action_std > 0 (got "
                        f"{cfg.seq_len}, {cfg.lookahead}, {cfg.action_std})")
    trainer = SkillTrainer(cfg, meta, "HeLMS", list(cfg.policy_obs) + list(cfg.mid_obs), log, progress)
    dev = trainer.device

    # ---- data: sequences of seq_len steps, with lookahead for the high-level posterior -----------
    pol_raw, mid_raw = take_slices(data, cfg.policy_obs), take_slices(data, cfg.mid_obs)
    act = torch.from_numpy(data["actions"].astype(np.float32))
    ep = episode_ids(data)
    starts = window_starts(ep, cfg.seq_len, cfg.seq_stride)
    require_windows(starts, cfg.seq_len, data, "HeLMS", "lower skills.seq_len or collect longer episodes")
    idx = window_indices(starts, cfg.seq_len)                                         # (W, T)
    ahead = torch.from_numpy(lookahead_indices(ep, idx, cfg.lookahead))               # (W, T, L)
    idx = torch.from_numpy(idx)
    pol_mean, pol_std = mean_std(pol_raw)
    mid_mean, mid_std = mean_std(mid_raw)
    pol_n, mid_n = standardize(pol_raw, pol_mean, pol_std), standardize(mid_raw, mid_mean, mid_std)
    seq_pol, seq_mid, seq_act = pol_n[idx].to(dev), mid_n[idx].to(dev), act[idx].to(dev)
    seq_hi = torch.cat([mid_n[idx][:, :, None], mid_n[ahead]], 2).flatten(2).to(dev)  # (W, T, (1+L)*M)
    train, val = trainer.split(len(idx))
    batch = lambda b: (seq_pol[b], seq_mid[b], seq_hi[b], seq_act[b])

    # ---- model and training --------------------------------------------------------------------
    model = HeLMSModel(pol_raw.shape[1], mid_raw.shape[1], act.shape[1], cfg).to(dev)
    history = trainer.fit(model, lambda *b: helms_losses(model, cfg, *b), batch, train, val,
                          ("loss", "nll", "kl_z", "kl_y", "action_mse", "switches"))

    # ---- per-component marginal posteriors, skill usage and transitions over the dataset ---------
    model.eval()
    k, d = cfg.num_skills, cfg.latent_dim
    w_sum, m_sum, s2_sum = torch.zeros(k), torch.zeros(k, d), torch.zeros(k, d)
    counts = torch.zeros(k, k)
    prior_sum, prior_w = torch.zeros(k, k), torch.zeros(k, 1)   # the state prior's rows, weighted by q(y_{t-1})
    latents, labels = [], []
    with torch.no_grad():
        for b in torch.arange(len(idx)).split(256):
            out = helms_losses(model, cfg, *batch(b.to(dev)))
            alpha, means, stds = out["marginals"].cpu(), out["means"].cpu(), out["log_stds"].exp().cpu()
            w_sum += alpha.sum((0, 1))
            m_sum += (alpha[..., None] * means).sum((0, 1))
            s2_sum += (alpha[..., None] * (stds ** 2 + means ** 2)).sum((0, 1))
            y = alpha.argmax(-1)                                                          # (B, T)
            counts += torch.bincount((y[:, :-1] * k + y[:, 1:]).flatten(), minlength=k * k).view(k, k).float()
            if model.skill_prior is not None:
                rows = out["trans_log_p"].exp().cpu()                                     # (B, T-1, K, K)
                prior_sum += (alpha[:, :-1, :, None] * rows).sum((0, 1))
                prior_w += alpha[:, :-1].sum((0, 1))[:, None]
            latents.append(means.gather(2, y[..., None, None].expand(-1, -1, 1, d)).squeeze(2).flatten(0, 1))
            labels.append(y.flatten())
    w = w_sum.clamp_min(1e-6)[:, None]
    prior_mean = m_sum / w
    prior_std = (s2_sum / w - prior_mean ** 2).clamp_min(1e-6).sqrt()
    usage = (w_sum / w_sum.sum()).tolist()
    # the state prior's transitions averaged over the data, for reports; PriorHighLevel samples the prior itself
    trans_p = prior_sum / prior_w.clamp_min(1e-6) if model.skill_prior is not None \
        else model.transition_log_prior().exp().detach().cpu()
    labels = torch.cat(labels).numpy()

    # ---- checkpoint -------------------------------------------------------------------------------
    metrics = trainer.metrics(
        history, sequences=int(len(idx)), samples=int(len(act)), skill_usage=[round(u, 4) for u in usage],
        skills_used=int((np.bincount(labels, minlength=k) > 0).sum()))
    spec = llc_spec(
        meta, policy_obs=cfg.policy_obs, mid_obs=cfg.mid_obs, action_dim=act.shape[1],
        default_steps=cfg.default_steps,
        latent={"dim": d, "normalization": "none", "scale": cfg.latent_scale,
                "modes": ["continuous", "discrete", "mixture"], "discrete": {"k": k},
                "mixture": {"k": k, "prior_mean": prior_mean.tolist(), "prior_std": prior_std.tolist()},
                "transition_prior": trans_p.tolist()},
        architecture={"policy": {"type": "skill_policy", "obs_dim": int(pol_raw.shape[1]), "latent_dim": d,
                                 "action_dim": int(act.shape[1]), "hidden": list(cfg.hidden),
                                 "activation": cfg.activation},
                      "mid": {"type": "component_encoder", "obs_dim": int(mid_raw.shape[1]),
                              "num_components": k, "latent_dim": d, "hidden": list(cfg.mid_hidden),
                              "activation": cfg.activation}}
        | ({"skill_prior": {"type": "skill_prior", "obs_dim": int(mid_raw.shape[1]), "num_skills": k,
                            "hidden": list(cfg.mid_hidden), "activation": cfg.activation}}
           if model.skill_prior is not None else {}),
        algorithm="helms", metrics=metrics, config=asdict(cfg))
    report = {"latents": torch.cat(latents).numpy(), "labels": labels, "label_name": "skill (argmax q(y|x))",
              "usage": np.asarray(usage), "transitions": (counts / counts.sum(1, keepdim=True).clamp_min(1)).numpy(),
              "transition_prior": trans_p.numpy()}
    return trainer.finish(output, spec, model, history, metrics, report, model.policy.cpu(), model.mid.cpu(),
                          obs_mean=pol_mean, obs_std=pol_std, mid_obs_mean=mid_mean, mid_obs_std=mid_std,
                          skill_prior=None if model.skill_prior is None else model.skill_prior.cpu())
