"""Scripted experts: batched torch state machines over the end-effector controller.

``make_expert(task, noise, seed)`` returns the task's expert, a callable obs -> actions (N, A) that
reads the task's privileged state (object poses) and keeps per-env phase state.
"""
from __future__ import annotations

from ..errors import UserError


def make_expert(task, noise: float = 0.0, seed: int = 0):
    """The scripted expert of ``task`` with Gaussian action noise ``noise`` (std, in action units)."""
    from ..tasks.franka_peg_in_hole import FrankaPegInHole
    from ..tasks.franka_stack import FrankaStack
    from .insertion import InsertionExpert
    from .stacking import StackingExpert

    if isinstance(task, FrankaStack):
        return StackingExpert(task, noise, seed)
    if isinstance(task, FrankaPegInHole):
        return InsertionExpert(task, noise, seed)
    raise UserError(f"no scripted expert for task {type(task).__name__}: policy=expert supports "
                    "FrankaStack and FrankaPegInHole; use policy=random or an rl-games checkpoint")
