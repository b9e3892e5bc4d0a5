"""What ``hrl-eval`` (``cli/evaluate.py``) runs: a run's deterministic policy, the run config with
``--override`` settings on it, and the one-line result."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..learning.runs import deterministic_actor, env_sizes, load_network


def apply_overrides(cfg: dict, overrides: list) -> dict:
    """``task.env.episodeLength=100`` style settings on the run's config (plain dicts)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.create(cfg), OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as exc:
        raise UserError(f"--override {' '.join(overrides)}: {str(exc).splitlines()[0]}") from None
    return OmegaConf.to_container(merged, resolve=False)


def load_policy(checkpoint: Path, params: dict, env):
    """(act, discrete): obs -> deterministic action of the checkpoint's rl-games network."""
    num_obs, num_actions, discrete = env_sizes(env)
    actor = deterministic_actor(load_network(params, num_obs, num_actions, checkpoint, device=env.rl_device))
    return ((lambda obs: actor(obs).argmax(-1)) if discrete else actor), discrete


def format_result(result: dict, label: str) -> str:
    parts = [f"{result['episodes']} episodes of {label}:"]
    if "success" in result:
        parts.append(f"success {result['success']:.3f}")
    if "targets_reached" in result:
        parts.append(f"targets reached {result['targets_reached']:.2f} per episode")
    parts.append(f"failed {result['failed']:.3f}, return {result['return']:.2f}, "
                 f"length {result['length']:.1f} env steps")
    return " ".join(parts[:1]) + " " + ", ".join(parts[1:])
