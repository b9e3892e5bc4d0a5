"""Who picks a multi-resolution LLC's head: the high level (``task.env.llc.head: ''``, the default),
one fixed head (``head: <index>``: a single resolution), or a uniform draw at every decision
(``head: random``).

A ``multires`` high level's action is R+1 head scores (argmax: one of the R resolution heads, in the
order of the checkpoint's ``horizons``, or the last, unconditional head) then the latent z
(``LowLevelController.decode``). With a fixed or random head the high level chooses only z: this
wrapper gives rl-games a Box(d) action and writes the head's scores in front of it (a one-hot row)
before ``LatentSkillEnv`` decodes it, so the single-resolution and random-head arms of a study learn
the same latent with the same network as the meta-controller, without score dimensions that nothing
reads. Everything else (observations, rewards, resets, extras, whose ``skill`` is the head run) is
the wrapped env's.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..utils import spaces

RANDOM = "random"


def parse_head(value, mode: str, llc) -> int | str | None:
    """``task.env.llc.head`` checked against the LLC: None (the high level picks), a head index, or
    ``'random'``."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if mode != "multires":
        raise UserError(f"task.env.llc.head={value} picks a multi-resolution LLC's head, which only "
                        f"task.env.llc.mode=multires has (got {mode}): set task.env.llc.head='', or run a multires LLC "
                        "with task.env.llc.mode=multires (e.g. franka/stack_mrs on FrankaStack)")
    heads = len(llc.horizons) + 1
    names = ", ".join([f"{i} (h={h})" for i, h in enumerate(llc.horizons)] + [f"{heads - 1} (unconditional)"])
    if isinstance(value, str) and value.strip().lower() == RANDOM:
        return RANDOM
    try:
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError
        index = int(float(value))
    except (TypeError, ValueError, OverflowError):
        index = None
    if index is None or not 0 <= index < heads:
        raise UserError(f"task.env.llc.head={value} is not a head of {getattr(llc, 'path', 'this LLC')}: give one of "
                        f"{names}, random (a uniform draw per decision) or '' (the high level picks)")
    return index


class HeadChoice:
    """A multires ``LatentSkillEnv`` whose head is fixed (int) or drawn uniformly per env and
    decision (``'random'``); the high level's action is the latent alone."""

    def __init__(self, env, head: int | str):
        self.env = env
        self.head = head
        self.num_heads = len(env.llc.horizons) + 1
        d = int(env.action_space.shape[0]) - self.num_heads
        self.action_space = spaces.Box(-1.0, 1.0, (d,), dtype=np.float32)
        self.num_actions = d

    def __getattr__(self, name):            # everything not overridden here is the wrapped env's
        if name == "env":                   # (unpickling: no recursion before __init__ ran)
            raise AttributeError(name)
        return getattr(self.env, name)

    def heads(self, n: int, device) -> torch.Tensor:
        """The head each of ``n`` envs runs for this decision."""
        if self.head == RANDOM:
            return torch.randint(self.num_heads, (n,), device=device)
        return torch.full((n,), int(self.head), dtype=torch.long, device=device)

    def step(self, hl_actions, on_control_step=None):
        z = torch.as_tensor(hl_actions, device=self.env.device).float().view(self.env.num_envs, -1)
        if z.shape[1] != self.num_actions:
            raise UserError(f"a high-level action of {z.shape[1]} numbers for a head-fixed multires env, which takes "
                            f"the latent alone ({self.num_actions}); task.env.llc.head={self.head} picks the head")
        scores = torch.nn.functional.one_hot(self.heads(len(z), z.device), self.num_heads).to(z)
        return self.env.step(torch.cat([scores, z], dim=-1), on_control_step)

    def __repr__(self) -> str:
        return f"HeadChoice(head={self.head}, {self.env!r})"


def apply_head_choice(env, settings: dict):
    """``env`` (a ``LatentSkillEnv``) as ``task.env.llc.head`` says: itself, or inside ``HeadChoice``."""
    head = parse_head(settings.get("head"), settings.get("mode", "continuous"), env.llc)
    return env if head is None else HeadChoice(env, head)
