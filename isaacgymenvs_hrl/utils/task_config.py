"""The project's config composed as ``hrl-train`` composes it, for code paths without a CLI
(``make()``, reports, benchmarks, tests): one place that drives Hydra's compose API."""
from __future__ import annotations

# Hydra's current behaviour for every CLI and compose call: jobs run in the directory they were started
# from (multirun outputs land in ./runs like single runs) and no 1.1-compatibility warnings are printed.
HYDRA_VERSION_BASE = "1.3"


def compose_config(overrides: list | None = None):
    """``config.yaml`` of the project's cfg/ with Hydra ``overrides`` (an OmegaConf DictConfig)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ..paths import CFG_DIR
    from .config import register_resolvers

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CFG_DIR), version_base=HYDRA_VERSION_BASE):
        return compose(config_name="config", overrides=list(overrides or []))


def load_task_config(task_name: str, overrides: list | None = None) -> dict:
    """The resolved ``task`` node of ``config.yaml`` with ``task=<task_name>`` (plain dict)."""
    from .config import to_dict
    return to_dict(compose_config([f"task={task_name}", *(overrides or [])]).task)
