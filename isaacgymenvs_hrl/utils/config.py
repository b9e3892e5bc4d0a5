"""Config handling at the edge: IsaacGymEnvs' OmegaConf resolvers and dict conversion."""
from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf


def register_resolvers() -> None:
    """The four resolvers IsaacGymEnvs registers, so its YAML files resolve unchanged."""
    resolvers = {
        "eq": lambda x, y: str(x).lower() == str(y).lower(),
        "contains": lambda x, y: str(x).lower() in str(y).lower(),
        "if": lambda pred, a, b: a if pred else b,
        # '' means "not given on the command line": fall back to the file's default
        "resolve_default": lambda default, arg: default if arg == "" else arg,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def to_dict(cfg) -> dict:
    """Resolved plain dict/list tree of an OmegaConf node (what library code receives)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


register_resolvers()
