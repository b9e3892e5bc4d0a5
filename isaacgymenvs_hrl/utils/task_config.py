"""A task's config composed from the project's YAML files, for code paths that build tasks
without a CLI (reports, benchmarks): the same composition ``hrl-train task=<name>`` does."""
from __future__ import annotations


def load_task_config(task_name: str, overrides: list | None = None) -> dict:
    """The resolved ``task`` node of ``config.yaml`` with ``task=<task_name>`` (plain dict)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ..paths import CFG_DIR
    from .config import register_resolvers, to_dict

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base="1.1"):
        cfg = compose(config_name="config", overrides=[f"task={task_name}", *(overrides or [])])
    return to_dict(cfg.task)
