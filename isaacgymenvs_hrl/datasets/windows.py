"""Cutting datasets into fixed-length windows that never cross an episode boundary.

Datasets store episodes one after another (see ``datasets.hdf5``); an episode ends at a step whose
terminal or timeout flag is set. Every skill-learning algorithm here trains on windows of
consecutive steps (segments of H steps, sequences for filtering, lookahead states), and a window
that spans two episodes would glue unrelated motions together, so all windows are cut here.
"""
from __future__ import annotations

import numpy as np

from .hdf5 import DatasetError, episode_ids


def episode_last_index(ep_ids: np.ndarray) -> np.ndarray:
    """Index of the last step of each step's episode, (T,) int64. ``ep_ids`` is non-decreasing."""
    ep_ids = np.asarray(ep_ids)
    if len(ep_ids) and np.any(np.diff(ep_ids) < 0):
        raise ValueError("episode ids must be non-decreasing (episodes stored one after another)")
    last_of_episode = np.searchsorted(ep_ids, ep_ids, side="right") - 1
    return last_of_episode.astype(np.int64)


def window_starts(ep_ids: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """Start indices t of every window [t, t + length) lying inside one episode, (W,) int64.

    Within each episode the starts are 0, stride, 2*stride, ... counted from the episode's first step.
    """
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    ep_ids = np.asarray(ep_ids)
    last = episode_last_index(ep_ids)
    first = np.searchsorted(ep_ids, ep_ids, side="left")
    t = np.arange(len(ep_ids))
    ok = (t + length - 1 <= last) & ((t - first) % stride == 0)
    return t[ok].astype(np.int64)


def window_indices(starts: np.ndarray, length: int) -> np.ndarray:
    """(W, length) step indices of the windows starting at ``starts``."""
    return np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]


def lookahead_indices(ep_ids: np.ndarray, index: np.ndarray, steps: int) -> np.ndarray:
    """Indices t+1 .. t+steps for every t in ``index`` (any shape), clamped to the end of t's episode.

    Near the end of an episode the last state is repeated rather than reading into the next one.
    Shape: index.shape + (steps,).
    """
    last = episode_last_index(ep_ids)
    index = np.asarray(index, dtype=np.int64)
    ahead = index[..., None] + np.arange(1, steps + 1, dtype=np.int64)
    return np.minimum(ahead, last[index][..., None])


def require_windows(starts: np.ndarray, length: int, data: dict, what: str, fix: str) -> None:
    """A clear error when a dataset has no episode long enough for windows of ``length`` steps."""
    if len(starts) == 0:
        lengths = np.bincount(episode_ids(data)) if len(data["actions"]) else np.zeros(1, int)
        raise DatasetError(f"{what}: no episode is long enough for windows of {length} steps (the "
                         f"longest has {int(lengths.max())} steps); {fix}")
