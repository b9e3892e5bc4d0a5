"""Observation/action spaces that are gymnasium spaces and, when legacy ``gym`` is installed, gym spaces.

IsaacGymEnvs builds its spaces with ``gym.spaces`` (gym 0.23), and clients written for it check
``isinstance(env.action_space, gym.spaces.Box)``. A class derived from both libraries' ``Box`` passes
both checks; gymnasium's methods come first in the MRO, so behaviour is gymnasium's. Without gym
(or with a gym whose classes cannot be combined) the spaces are plain gymnasium spaces.
"""
from __future__ import annotations

import gymnasium


def _legacy_gym_spaces():
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import gym.spaces as legacy
    except Exception:         # not installed, or an old gym that no longer imports on this numpy
        return None
    return legacy


def _dual(name: str, modern: type, legacy_module) -> type:
    legacy = getattr(legacy_module, name, None) if legacy_module is not None else None
    if legacy is None or issubclass(modern, legacy):
        return modern
    try:
        return type(name + "Space", (modern, legacy), {
            "__module__": __name__, "__doc__": f"gymnasium.spaces.{name} that is also a gym.spaces.{name}"})
    except TypeError:
        return modern


_LEGACY = _legacy_gym_spaces()
BoxSpace = _dual("Box", gymnasium.spaces.Box, _LEGACY)
DiscreteSpace = _dual("Discrete", gymnasium.spaces.Discrete, _LEGACY)


def Box(low, high, shape=None, dtype=None, seed=None):  # noqa: N802  (gym's constructor name)
    """``gymnasium.spaces.Box(...)``, also an instance of ``gym.spaces.Box`` when gym is installed."""
    import numpy as np
    return BoxSpace(low, high, shape=shape, dtype=np.float32 if dtype is None else dtype, seed=seed)


def Discrete(n, seed=None, start=0):  # noqa: N802
    """``gymnasium.spaces.Discrete(n)``, also an instance of ``gym.spaces.Discrete`` when gym is installed."""
    return DiscreteSpace(n, seed=seed, start=start)
