"""The segment encoder file shipped beside an LDSE LLC (``<name>.encoder.pt``) and what reads it.

LDSE trains a bidirectional-LSTM encoder q(z | segment of (s, a)); the LLC's skill policy was cloned
on its latents, so the same encoder can tell which skill a short stretch of behaviour is (skill
matching, diagnostics). The file belongs to the frozen-skill artifact like the LLC itself: it is
written by ``skills.ldse``, copied and hash-checked by the skill library, and read here.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..utils.atomic import commit, tmp_path
from .llc import standardize

ENCODER_FORMAT = "isaacgymenvs_hrl.ldse_encoder"


class SegmentEncoder(nn.Module):
    """q(z | segment): a bidirectional LSTM over per-step features (B, H, F) -> Gaussian (B, d).

    The last hidden states of the forward and the backward pass are joined and mapped to the mean
    and log-std (clamped to [-5, 2]) of a diagonal Gaussian.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden: int = 128):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _) = self.lstm(x)                                  # h: (2, B, hidden)
        mean, log_std = self.head(torch.cat([h[0], h[1]], -1)).chunk(2, -1)
        return mean, log_std.clamp(-5.0, 2.0)


def encoder_path(llc_file) -> Path:
    """``walk.llc.pt`` -> ``walk.encoder.pt``."""
    p = Path(llc_file)
    stem = p.name[:-len(".llc.pt")] if p.name.endswith(".llc.pt") else p.stem
    return p.with_name(stem + ".encoder.pt")


def save_encoder(path, encoder: SegmentEncoder, horizon: int, obs_mean: torch.Tensor, obs_std: torch.Tensor,
                 obs_names) -> Path:
    """Write the encoder file atomically (weights and plain tensors only: read with weights_only)."""
    path = Path(path)
    lstm = encoder.lstm
    tmp = tmp_path(path)
    torch.save({"format": ENCODER_FORMAT, "horizon": int(horizon),
                "architecture": {"input_dim": int(lstm.input_size), "latent_dim": int(encoder.head.out_features // 2),
                                 "hidden": int(lstm.hidden_size)},
                "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
                "obs_mean": obs_mean.cpu(), "obs_std": obs_std.cpu(), "obs_names": list(obs_names)}, tmp)
    commit(tmp, path)
    return path


class SkillMatcher:
    """Infers a skill latent from a short recent history with the trained LDSE encoder.

    ``matcher(obs, actions)`` takes raw observations (B, h, S) of the LLC's policy slices and the
    actions (B, h, A) taken at them (any h >= 1; the encoder saw h = horizon in training) and
    returns the posterior mean z (B, d). In continuous mode the LLC computes normalize(hl * scale),
    and the policy was cloned on normalize(z), so the high-level action that asks the LLC to
    continue the matched behaviour is z / latent_scale (z itself with the default scale 1).
    """

    def __init__(self, encoder: SegmentEncoder, obs_mean: torch.Tensor, obs_std: torch.Tensor, horizon: int):
        self.encoder, self.obs_mean, self.obs_std, self.horizon = encoder.eval(), obs_mean, obs_std, horizon

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.posterior(obs, actions)[0]

    @torch.no_grad()
    def posterior(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) (B, d) of q(z | obs, actions)."""
        if obs.ndim != 3 or actions.ndim != 3 or obs.shape[:2] != actions.shape[:2]:
            raise UserError(f"skill matching expects obs (B, h, {len(self.obs_mean)}) and actions (B, h, A) "
                            f"with the same B and h, got {tuple(obs.shape)} and {tuple(actions.shape)}")
        if obs.shape[-1] != len(self.obs_mean):
            raise UserError(f"skill matching: observations have {obs.shape[-1]} features, the encoder "
                            f"was trained on {len(self.obs_mean)}; pass the LLC's policy slices")
        x = torch.cat([standardize(obs.float(), self.obs_mean, self.obs_std), actions.float()], -1)
        return self.encoder(x)

    @classmethod
    def load(cls, path) -> "SkillMatcher":
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != ENCODER_FORMAT:
            raise UserError(f"{path} is not an LDSE encoder file (written as <llc name>.encoder.pt by "
                            "hrl-skills algo=ldse)")
        a = blob["architecture"]
        encoder = SegmentEncoder(a["input_dim"], a["latent_dim"], a["hidden"])
        encoder.load_state_dict(blob["encoder"])
        return cls(encoder, blob["obs_mean"], blob["obs_std"], int(blob["horizon"]))
