"""The architectures an LLC checkpoint can name; each is rebuilt from its spec dict alone."""
from __future__ import annotations

import torch
from torch import nn

from .llc import standardize

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU}


def mlp(sizes, activation: str = "elu", last_activation: bool = False) -> nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class SkillPolicy(nn.Module):
    """pi(a | s, z), with ``num_heads`` output heads sharing one backbone.

    One head: a plain latent-conditioned policy (LDSE, NPMP, BC). Several heads (multi-resolution
    skills): heads 0..R-1 are skills of different horizons, the last head ignores z (unconditional).
    """

    def __init__(self, obs_dim: int, latent_dim: int, action_dim: int, hidden=(256, 256),
                 activation: str = "elu", num_heads: int = 1, unconditional_head: bool = False):
        super().__init__()
        self.latent_dim, self.action_dim, self.num_heads = latent_dim, action_dim, num_heads
        self.unconditional_head = unconditional_head
        self.backbone = mlp([obs_dim + latent_dim, *hidden], activation, last_activation=True)
        self.heads = nn.Linear(hidden[-1], action_dim * num_heads)

    def forward(self, obs: torch.Tensor, z: torch.Tensor, head: torch.Tensor | None = None) -> torch.Tensor:
        if self.unconditional_head and head is not None:
            # the unconditional head sees z = 0 whatever the high level sent
            z = torch.where((head == self.num_heads - 1)[:, None], torch.zeros_like(z), z)
        out = self.heads(self.backbone(torch.cat([obs, z], dim=-1)))     # (N, H * A)
        if self.num_heads == 1:
            return out
        out = out.view(-1, self.num_heads, self.action_dim)
        idx = torch.zeros(len(out), dtype=torch.long, device=out.device) if head is None else head.long()
        return out.gather(1, idx.view(-1, 1, 1).expand(-1, 1, self.action_dim)).squeeze(1)


class ComponentEncoder(nn.Module):
    """Mid level of HeLMS: q(z | y, x) for every component y at once -> means and log-stds (N, K, d)."""

    def __init__(self, obs_dim: int, num_components: int, latent_dim: int, hidden=(256, 256),
                 activation: str = "elu"):
        super().__init__()
        self.k, self.d = num_components, latent_dim
        self.net = mlp([obs_dim, *hidden, 2 * num_components * latent_dim], activation)

    def forward(self, obs: torch.Tensor):
        out = self.net(obs).view(-1, self.k, 2, self.d)
        return out[:, :, 0], out[:, :, 1].clamp(-5.0, 2.0)


class SkillPrior(nn.Module):
    """HeLMS' high level p(y_t | y_{t-1}, x_t) -> log-probabilities (N, K + 1, K): row i follows
    skill i, row K starts an episode. It reads the state, so it knows which skill comes next
    (grasp once the hand is at a cube), not only how often skills follow each other."""

    def __init__(self, obs_dim: int, num_skills: int, hidden=(256, 256), activation: str = "elu"):
        super().__init__()
        self.k = num_skills
        self.net = mlp([obs_dim, *hidden, (num_skills + 1) * num_skills], activation)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(obs).view(-1, self.k + 1, self.k), -1)


class LatentPrior(nn.Module):
    """A state-conditioned prior over a continuous LLC's latent, p(z | x) = N(mu(x), sigma(x)), on raw
    observations (its normalizer is part of its weights): the latent the LLC's skills take from a
    state, so a high level can start at it (skills/latent_prior.py fits it)."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden=(256, 256), activation: str = "elu"):
        super().__init__()
        self.d = latent_dim
        # what a checkpoint's architecture.latent_prior records to rebuild it
        self.config = {"obs_dim": int(obs_dim), "latent_dim": int(latent_dim), "hidden": [int(h) for h in hidden],
                       "activation": activation}
        self.net = mlp([obs_dim, *hidden, 2 * latent_dim], activation)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std (N, d), the log-std clamped to [-5, 2] as every latent Gaussian here."""
        x = standardize(obs, self.obs_mean, self.obs_std)
        mean, log_std = self.net(x).chunk(2, -1)
        return mean, log_std.clamp(-5.0, 2.0)


ARCHITECTURES = {"skill_policy": SkillPolicy, "component_encoder": ComponentEncoder, "skill_prior": SkillPrior,
                 "latent_prior": LatentPrior}


def build(spec: dict) -> nn.Module:
    """Rebuild a module from ``{"type": name, **kwargs}``."""
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    return ARCHITECTURES[spec["type"]](**kwargs)
