"""A frozen low-level controller: decode the high-level action into a latent, then act.

High-level action per mode (what rl-games' policy emits every k steps):
  continuous  Box(d)            latent z, normalized per the checkpoint (sphere, tanh, clip or none)
  discrete    Discrete(K)       skill y; the frozen mid level maps (y, observation) to z (HeLMS-cat)
  mixture     Box(K + K*d)      K component scores (argmax picks y) then one latent per component;
                                z = latent of the chosen component (HeLMS-mix)
  multires    Box(R+1 + d)      R+1 head scores (argmax picks a resolution head or the last,
                                unconditional head) then the latent z (multi-resolution skills)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..utils import spaces

MODES = ("continuous", "discrete", "mixture", "multires")


def normalize_latent(z: torch.Tensor, how: str) -> torch.Tensor:
    if how == "sphere":
        return z / z.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    if how == "tanh":
        return torch.tanh(z)
    if how == "clip":
        return z.clamp(-1.0, 1.0)
    return z


def standardize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The LLC's input normalization, which every skill trainer applies to its data: clamp to +-5 std."""
    return ((x - mean) / std).clamp(-5.0, 5.0)


class LowLevelController(nn.Module):
    """Rebuilt from a checkpoint by ``load_llc``; see ``llc_checkpoint`` for the spec's fields."""

    def __init__(self, spec: dict, policy: nn.Module, mid: nn.Module | None = None,
                 obs_mean: torch.Tensor | None = None, obs_std: torch.Tensor | None = None,
                 mid_obs_mean: torch.Tensor | None = None, mid_obs_std: torch.Tensor | None = None,
                 skill_prior: nn.Module | None = None, latent_prior: nn.Module | None = None):
        super().__init__()
        self.spec = spec
        self.policy, self.mid, self.skill_prior = policy, mid, skill_prior
        # a fitted p(z | x) on obs.latent_prior (continuous LLCs without a mid level; skills/latent_prior.py)
        self.latent_prior = latent_prior
        lat = spec["latent"]
        self.latent_dim = int(lat["dim"])
        self.normalization = lat.get("normalization", "none")
        self.latent_scale = float(lat.get("scale", 1.0))
        self.modes = tuple(lat["modes"])
        self.num_skills = int(lat.get("discrete", lat.get("mixture", {})).get("k", 0))
        self.horizons = list(lat.get("multires", {}).get("horizons", []))
        self.action_scale = float(spec["action"].get("scale", 1.0))
        self.squash = spec["action"].get("squash", "clip")
        self.obs_names = [n for n, _ in spec["obs"]["policy"]]
        self.mid_obs_names = [n for n, _ in spec["obs"].get("mid", [])]
        self.latent_prior_obs_names = [n for n, _ in spec["obs"].get("latent_prior", [])]
        for name, t in (("obs_mean", obs_mean), ("obs_std", obs_std),
                        ("mid_obs_mean", mid_obs_mean), ("mid_obs_std", mid_obs_std)):
            self.register_buffer(name, t if t is not None else torch.zeros(0), persistent=True)
        mix = lat.get("mixture", {})
        self.register_buffer("prior_mean", torch.as_tensor(mix.get("prior_mean", []), dtype=torch.float32))
        self.register_buffer("prior_std", torch.as_tensor(mix.get("prior_std", []), dtype=torch.float32))

    # ---- high-level action spaces -----------------------------------------------------------
    def decision_steps(self, steps=None) -> int:
        """k, control steps per high-level decision: ``steps``, or the checkpoint's ``default_steps``
        where it is None or '' (0 is an error, not the default)."""
        k = int(self.spec["default_steps"] if steps is None or steps == "" else steps)
        if k < 1:
            raise UserError(f"task.env.llc.steps must be >= 1, got {k}")
        return k

    def hl_action_space(self, mode: str) -> spaces.Space:
        d = self.latent_dim
        if mode == "continuous":
            return spaces.Box(-1.0, 1.0, (d,), dtype=np.float32)
        if mode == "discrete":
            return spaces.Discrete(self.num_skills)
        if mode == "mixture":
            return spaces.Box(-1.0, 1.0, (self.num_skills * (1 + d),), dtype=np.float32)
        return spaces.Box(-1.0, 1.0, (len(self.horizons) + 1 + d,), dtype=np.float32)

    # ---- decoding ---------------------------------------------------------------------------
    def _norm(self, x, mean, std):
        return x if mean.numel() == 0 else standardize(x, mean, std)

    def decode(self, mode: str, hl_action: torch.Tensor, mid_obs: torch.Tensor | None = None):
        """(z (N, d), head (N,) or None, choice (N,) or None) for a batch of high-level actions."""
        d = self.latent_dim
        if mode == "continuous":
            return normalize_latent(hl_action * self.latent_scale, self.normalization), None, None
        if mode == "discrete":
            y = hl_action.long().view(-1)
            means, _ = self.mid(self._norm(mid_obs, self.mid_obs_mean, self.mid_obs_std))   # (N, K, d)
            return means.gather(1, y.view(-1, 1, 1).expand(-1, 1, d)).squeeze(1), None, y
        if mode == "mixture":
            k = self.num_skills
            y = hl_action[:, :k].argmax(-1)
            zs = hl_action[:, k:].view(-1, k, d) * self.latent_scale
            return zs.gather(1, y.view(-1, 1, 1).expand(-1, 1, d)).squeeze(1), None, y
        r = len(self.horizons) + 1
        head = hl_action[:, :r].argmax(-1)
        return normalize_latent(hl_action[:, r:] * self.latent_scale, self.normalization), head, head

    def mid_latents(self, mid_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mid level's Gaussian q(z | y, x) for every skill y on raw mid observations: means and
        log-stds (N, K, d). Needs an LLC with a mid level (HeLMS)."""
        return self.mid(self._norm(mid_obs, self.mid_obs_mean, self.mid_obs_std))

    def skill_prior_rows(self, mid_obs: torch.Tensor) -> torch.Tensor:
        """Every row of the learned skill prior, log p(y_t | y_{t-1} = i, x_t) (N, K + 1, K); row K
        is an episode's first decision. Needs an LLC with a skill prior (HeLMS)."""
        return self.skill_prior(self._norm(mid_obs, self.mid_obs_mean, self.mid_obs_std))

    def skill_log_prior(self, mid_obs: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """log p(y_t | y_{t-1}, x_t) (N, K) for each env's previous skill; ``previous`` None (or -1
        per env) is an episode's first decision."""
        rows = self.skill_prior_rows(mid_obs)                                                # (N, K+1, K)
        prev = torch.full((len(rows),), self.num_skills, dtype=torch.long, device=rows.device) \
            if previous is None else torch.where(previous < 0, self.num_skills, previous.long())
        return rows[torch.arange(len(rows), device=rows.device), prev]

    @property
    def has_latent_prior(self) -> bool:
        """Whether the LLC ships a state-conditioned latent prior p(z | x) to anchor a continuous high
        level to (HeLMS: the mid level's component of the skill prior's most likely skill; LDSE, NPMP:
        a fitted ``latent_prior``)."""
        return (self.mid is not None and self.skill_prior is not None) or self.latent_prior is not None

    def fitted_latent_prior(self, prior_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fitted prior N(mu(x), sigma(x)) on the raw obs.latent_prior slices: mean and std (N, d),
        in the units the policy's latent normalization reads (``prior_latent`` applies it)."""
        mean, log_std = self.latent_prior(prior_obs)
        return mean, log_std.exp()

    def prior_latent(self, prior_obs: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """z = normalize(mu_p(x) + sigma_p(x) * shift): the policy's latent at ``shift`` prior stds
        from the fitted prior's mean (N, d)."""
        mean, std = self.fitted_latent_prior(prior_obs)
        return normalize_latent(mean + std * shift, self.normalization)

    def prior_skill(self, mid_obs: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """The skill prior's most likely next skill (N,)."""
        return self.skill_log_prior(mid_obs, previous).argmax(-1)

    def skill_latent(self, mid_obs: torch.Tensor, skill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mid level's Gaussian q(z | y, x) of one skill per env: mean and std (N, d)."""
        means, log_stds = self.mid_latents(mid_obs)
        idx = skill.long().view(-1, 1, 1).expand(-1, 1, self.latent_dim)
        return means.gather(1, idx).squeeze(1), log_stds.gather(1, idx).squeeze(1).exp()

    def forward(self, obs: torch.Tensor, z: torch.Tensor, head: torch.Tensor | None = None) -> torch.Tensor:
        a = self.policy(self._norm(obs, self.obs_mean, self.obs_std), z, head) if head is not None \
            else self.policy(self._norm(obs, self.obs_mean, self.obs_std), z)
        a = torch.tanh(a) if self.squash == "tanh" else a.clamp(-1.0, 1.0)
        return a * self.action_scale
