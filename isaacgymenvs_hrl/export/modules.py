"""The exported computation as plain torch modules: traced once into ONNX or TorchScript.

Every module takes the task's observation as the policy sees it in simulation (``obs_processed``:
noised in training, clipped to ``clipObservations``) and re-applies the clip, so a robot can feed
its raw measurement. Nothing here keeps hidden state: the k-step latent hold is explicit.

  HighLevelActor   obs (B, O)                       -> hl_action (B, A) float, or (B,) int64 (discrete)
  SkillExecutor    obs, hl_action, latent, skill, step -> action, latent, skill, step     (LLC part)
  HierarchicalPolicy obs, latent, skill, step          -> action, latent, skill, step, hl_action

State, per env (row): ``latent`` (B, d) float32 = the decoded latent being held, ``skill`` (B,)
int64 = the held skill / head index (0 where the mode has none), ``step`` (B,) int64 = control
steps since the last high-level decision. ``step == 0`` means "decide now": a new episode starts
with zeros everywhere. Each call returns the next state; feed it back on the next control step.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _clip(obs: torch.Tensor, clip_obs: float) -> torch.Tensor:
    return obs if not math.isfinite(clip_obs) else obs.clamp(-clip_obs, clip_obs)


class InputNormalizer(nn.Module):
    """rl-games' ``RunningMeanStd`` in eval mode, from its buffers: (x - mean) / sqrt(var + eps),
    clamped to [-5, 5]. (rl-games keeps it as a scripted module, which the tracer cannot enter.)"""

    def __init__(self, net: nn.Module):
        super().__init__()
        rms = net.running_mean_std if getattr(net, "normalize_input", False) else None
        self.enabled = rms is not None
        if self.enabled and (getattr(rms, "per_channel", False) or getattr(rms, "norm_only", False)):
            raise ValueError("per-channel / norm-only input normalization is not exported")
        self.epsilon = float(rms.epsilon) if self.enabled else 0.0
        self.register_buffer("mean", rms.running_mean.detach().float().clone() if self.enabled else torch.zeros(0))
        self.register_buffer("var", rms.running_var.detach().float().clone() if self.enabled else torch.zeros(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        return ((x - self.mean) / torch.sqrt(self.var + self.epsilon)).clamp(-5.0, 5.0)


class HighLevelActor(nn.Module):
    """rl-games' actor as its deterministic player runs it: input normalization (the checkpoint's
    ``running_mean_std``), the actor MLP, then clamp(mu, -1, 1) (continuous: rl-games'
    ``clip_actions``) or argmax of the logits (discrete)."""

    def __init__(self, net: nn.Module, discrete: bool, obs_index: torch.Tensor, clip_obs: float):
        super().__init__()
        self.norm = InputNormalizer(net)
        self.a2c_network = net.a2c_network
        self.discrete, self.clip_obs = bool(discrete), float(clip_obs)
        self.register_buffer("obs_index", obs_index.long())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = _clip(obs, self.clip_obs).index_select(1, self.obs_index)
        out = self.a2c_network({"obs": self.norm(x)})
        if self.discrete:
            return out[0].argmax(-1)
        return out[0].clamp(-1.0, 1.0)


class SkillExecutor(nn.Module):
    """The frozen LLC with the hold: decode the high-level action when ``step == 0``, keep the
    latent (discrete: the skill, its latent decoded again every step) for the other k - 1 control
    steps, act every step (``LatentSkillEnv``'s loop)."""

    def __init__(self, llc: nn.Module, mode: str, steps: int, llc_index: torch.Tensor,
                 mid_index: torch.Tensor | None, clip_obs: float, pass_head: bool):
        super().__init__()
        self.llc, self.mode, self.k, self.clip_obs = llc, mode, int(steps), float(clip_obs)
        # LowLevelController.forward(obs, z) with head=None takes torch.zeros(len(obs)) for a
        # multi-head policy, which tracing freezes to one batch size; head 0 is the same computation
        self.pass_head = bool(pass_head)
        self.register_buffer("llc_index", llc_index.long())
        self.register_buffer("mid_index", (mid_index if mid_index is not None else torch.zeros(0)).long())

    def forward(self, obs, hl_action, latent, skill, step):
        obs = _clip(obs, self.clip_obs)
        mid = obs.index_select(1, self.mid_index) if self.mid_index.numel() else None
        z_new, head_new, choice_new = self.llc.decode(self.mode, hl_action, mid)
        decide = step == 0                                                       # (B,)
        latent = torch.where(decide[:, None], z_new.to(latent.dtype), latent)
        if choice_new is not None:
            skill = torch.where(decide, choice_new.long(), skill)
        if self.mode == "discrete":            # the skill is held; its latent follows the state every step
            # (0 * latent keeps the state input in the graph, so every mode has the same signature)
            latent = self.llc.decode("discrete", skill, mid)[0].to(latent.dtype) + 0.0 * latent
        llc_obs = obs.index_select(1, self.llc_index)
        if self.mode == "multires":
            action = self.llc(llc_obs, latent, skill)
        elif self.pass_head:
            action = self.llc(llc_obs, latent, torch.zeros_like(skill))
        else:
            action = self.llc(llc_obs, latent)
        return action, latent, skill, torch.remainder(step + 1, self.k)


class HierarchicalPolicy(nn.Module):
    """High level + LLC in one graph. The high level runs every step and its output is used only
    where ``step == 0`` (a select, so the graph has no control flow); ``hl_action`` is returned for
    logging."""

    def __init__(self, actor: HighLevelActor, executor: SkillExecutor):
        super().__init__()
        self.actor, self.executor = actor, executor

    def forward(self, obs, latent, skill, step):
        hl = self.actor(obs)
        action, latent, skill, step = self.executor(obs, hl, latent, skill, step)
        return action, latent, skill, step, hl
