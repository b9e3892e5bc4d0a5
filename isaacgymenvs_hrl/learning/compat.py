"""IsaacGymEnvs train configs on rl-games here: value checks, limits, and what is not available.

IsaacGymEnvs' own train.py registers extra agents and networks (AMP, custom builders) and its files
leave some limits to that script; users bring those files unchanged. This module checks a train
config once (``check_train_cfg``), bounds it as the user asked (``prepare_rlgames_config``) and warns
about ``+``-added keys nothing reads (``warn_unknown_added_keys``).
"""
from __future__ import annotations

import difflib
import functools
import inspect
import re
from pathlib import Path

from ..errors import UserError
from ..utils.config import as_float, as_int

# algorithms registered by registry.register_agents (each with our checkpoint handling)
ALGORITHMS = ("a2c_continuous", "a2c_discrete", "sac", "hrl_mixture", "hrl_prior_discrete",
              "hrl_prior_continuous")

# names IsaacGymEnvs (or its forks) register in their train.py, with what to use here instead
NOT_HERE = {
    "amp_continuous": "IsaacGymEnvs' AMP agent (adversarial motion priors: a motion-capture discriminator "
                      "and its replay buffer) is not implemented here; train with "
                      "train.params.algo.name=a2c_continuous (e.g. train=HumanoidLocomotionPPO), or learn "
                      "skills from motion data with hrl-skills and train a high level over them",
    "continuous_amp": "the AMP model belongs to IsaacGymEnvs' AMP agent, which is not implemented here; use "
                      "train.params.model.name=continuous_a2c_logstd with algo a2c_continuous",
    "amp": "the AMP network builder belongs to IsaacGymEnvs' AMP agent, which is not implemented here; use "
           "train.params.network.name=actor_critic",
}

# a test=True games_num this large, from a file, means "until stopped" there; it is bounded here
PLAY_FOREVER = 100000

# numeric settings of rl-games' PPO and SAC: key -> (kind, low, low_open, high)
NUMERIC = {
    "learning_rate": ("float", 0.0, True, None), "gamma": ("float", 0.0, False, 1.0),
    "tau": ("float", 0.0, False, 1.0), "e_clip": ("float", 0.0, True, None),
    "kl_threshold": ("float", 0.0, True, None), "entropy_coef": ("float", None, False, None),
    "critic_coef": ("float", 0.0, False, None), "grad_norm": ("float", 0.0, True, None),
    "bounds_loss_coef": ("float", 0.0, False, None), "actor_lr": ("float", 0.0, True, None),
    "critic_lr": ("float", 0.0, True, None), "alpha_lr": ("float", 0.0, True, None),
    "critic_tau": ("float", 0.0, False, 1.0), "init_alpha": ("float", 0.0, True, None),
    "horizon_length": ("int", 1, False, None), "minibatch_size": ("int", 1, False, None),
    "minibatch_size_per_env": ("int", 1, False, None), "mini_epochs": ("int", 1, False, None),
    "seq_length": ("int", 1, False, None), "save_frequency": ("int", 0, False, None),
    "save_best_after": ("int", 0, False, None), "batch_size": ("int", 1, False, None),
    "num_steps_per_episode": ("int", 1, False, None), "replay_buffer_size": ("int", 1, False, None),
    "num_warmup_steps": ("int", 0, False, None), "num_actors": ("int", 1, False, None),
    "games_to_track": ("int", 1, False, None),
}


@functools.lru_cache(maxsize=1)
def _registered_models_and_networks() -> tuple[frozenset, frozenset]:
    from rl_games.algos_torch.model_builder import ModelBuilder

    from .prior_agent import register
    register()                                  # this project's own model and network names
    builder = ModelBuilder()
    return (frozenset(builder.model_factory._builders),
            frozenset(builder.network_builder.network_factory._builders))


def _check_name(kind: str, key: str, name, available) -> None:
    if name in available:
        return
    if name in NOT_HERE:
        raise UserError(f"{key}={name}: {NOT_HERE[name]}")
    near = difflib.get_close_matches(str(name), sorted(available), n=1, cutoff=0.8)
    default = {"algorithm": "a2c_continuous (PPO) or sac", "model": "continuous_a2c_logstd",
               "network": "actor_critic"}[kind]
    raise UserError(f"{key}={name}: no such rl-games {kind} here (IsaacGymEnvs' train.py or your own code "
                    f"registers it); use {key}={near[0] if near else default} (available: "
                    f"{', '.join(sorted(available))})")


def check_train_cfg(train: dict, num_envs: int, num_agents: int = 1, test: bool = False) -> None:
    """Names (algorithm, model, network) and numbers of an rl-games train config, before any build."""
    params = train.get("params") if isinstance(train, dict) else None
    if not isinstance(params, dict) or not isinstance(params.get("config"), dict):
        raise UserError("train config has no params.config section; is train=<file> an rl-games config?")
    for part in ("algo", "model", "network"):
        if not isinstance(params.get(part), dict) or "name" not in params[part]:
            raise UserError(f"train.params.{part}.name is missing from the train config")
    models, networks = _registered_models_and_networks()
    _check_name("algorithm", "train.params.algo.name", params["algo"]["name"], ALGORITHMS)
    _check_name("model", "train.params.model.name", params["model"]["name"], models)
    _check_name("network", "train.params.network.name", params["network"]["name"], networks)
    conf = params["config"]
    for key in ("name", "env_name"):
        if key not in conf:
            raise UserError(f"train.params.config.{key} is missing from the train config")
    if conf["env_name"] != "rlgpu":
        raise UserError(f"train.params.config.env_name={conf['env_name']}: tasks here are served as rl-games' "
                        "'rlgpu' env (as in IsaacGymEnvs); set train.params.config.env_name=rlgpu")
    _check_numbers(conf, "train.params.config")
    for key in ("max_epochs", "max_frames"):
        if key in conf and conf[key] not in ("", None):
            value = as_int(conf[key], f"train.params.config.{key}", low=-1, hint=" (-1 = no limit)")
            if value == 0:
                raise UserError(f"train.params.config.{key} must be >= 1 or -1 (no limit), got 0")
    shaper = conf.get("reward_shaper") or {}
    if isinstance(shaper, dict):
        for key in ("scale_value", "shift_value", "min_val", "max_val"):
            if key in shaper:
                as_float(shaper[key], f"train.params.config.reward_shaper.{key}")
    player = conf.get("player") or {}
    if isinstance(player, dict) and "games_num" in player:
        as_int(player["games_num"], "train.params.config.player.games_num", low=1)
    cv = conf.get("central_value_config")
    if cv is not None:
        if not isinstance(cv, dict) or not isinstance(cv.get("network"), dict):
            raise UserError("train.params.config.central_value_config needs a network section (as in "
                            "IsaacGymEnvs' *PPOAsymm.yaml)")
        _check_name("network", "train.params.config.central_value_config.network.name",
                    cv["network"].get("name", "actor_critic"), networks)
        _check_numbers(cv, "train.params.config.central_value_config")
    if test or params["algo"]["name"] == "sac":
        return
    if "horizon_length" not in conf:
        raise UserError("train.params.config.horizon_length is missing from the PPO train config")
    batch = num_envs * int(conf["horizon_length"]) * num_agents
    seq = int(conf.get("seq_length", 4)) if "rnn" in params["network"] else 1
    minibatch = _configured_minibatch(conf, num_envs)
    if minibatch is not None:                       # what prepare_rlgames_config will run with
        minibatch = fit_minibatch(batch, minibatch, seq)
    if "rnn" in params["network"]:                  # rl-games cuts the rollout into sequences
        for what, size in (("num_envs * horizon_length", batch), ("minibatch_size", minibatch)):
            if size is not None and int(size) % seq != 0:
                fit = max(d for d in range(1, seq + 1) if batch % d == 0 and int(minibatch or batch) % d == 0)
                raise UserError(f"an RNN network needs {what} ({size}) to be a multiple of "
                                f"train.params.config.seq_length ({seq}); set ++train.params.config.seq_length="
                                f"{fit} (or change num_envs / horizon_length)")


def _configured_minibatch(conf: dict, num_envs: int) -> int | None:
    if conf.get("minibatch_size") is not None:
        return int(conf["minibatch_size"])
    if conf.get("minibatch_size_per_env") is not None:
        return int(conf["minibatch_size_per_env"]) * num_envs
    return None


def fit_minibatch(batch: int, minibatch: int, multiple_of: int = 1) -> int:
    """The largest divisor of ``batch`` not above ``minibatch`` (and a multiple of ``multiple_of``,
    an RNN's seq_length); ``minibatch`` itself where it divides.

    rl-games asserts that the rollout (num_envs * horizon_length) splits into whole minibatches, and
    IsaacGymEnvs' files size their minibatch for thousands of envs: rather than refuse every small
    num_envs, the minibatch shrinks to the nearest size that splits the rollout. It never grows, so an
    epoch takes at least the gradient steps the file asks for."""
    for size in range(min(minibatch, batch), 0, -1):
        if batch % size == 0 and size % multiple_of == 0:
            return size
    return batch


def _fit_minibatches(params: dict, num_envs: int, num_agents: int, log) -> None:
    """Apply ``fit_minibatch`` to the PPO config and its central value critic, one line per change."""
    conf = params["config"]
    if "horizon_length" not in conf or params["algo"]["name"] == "sac":
        return
    batch = num_envs * int(conf["horizon_length"]) * num_agents
    seq = int(conf.get("seq_length", 4)) if "rnn" in params.get("network", {}) else 1
    for prefix, node, configured in (
            ("train.params.config", conf, _configured_minibatch(conf, num_envs)),
            ("train.params.config.central_value_config", conf.get("central_value_config") or {},
             (conf.get("central_value_config") or {}).get("minibatch_size"))):
        if configured is None:
            continue
        size = fit_minibatch(batch, int(configured), seq)
        if size != int(configured):
            log(f"{prefix}.minibatch_size {configured} -> {size}: num_envs * horizon_length ({num_envs} * "
                f"{conf['horizon_length']} = {batch}) must be a multiple of it (rl-games); {size} is its largest "
                f"divisor not above {configured} (set {prefix}.minibatch_size to choose another)")
        node["minibatch_size"] = size


def _check_numbers(conf: dict, prefix: str) -> None:
    for key, (kind, low, low_open, high) in NUMERIC.items():
        if key not in conf:
            continue
        if kind == "int":
            as_int(conf[key], f"{prefix}.{key}", low=low)
        else:
            as_float(conf[key], f"{prefix}.{key}", low=low, high=high, low_open=low_open)


def prepare_rlgames_config(train: dict, run_name: str, seed: int, rl_device: str, max_iterations,
                           test: bool, num_envs: int, torch_threads: int = 0, games_from_cli: bool = False,
                           log=print, num_agents: int = 1) -> dict:
    """Fill in what IsaacGymEnvs' train.py sets, and apply max_iterations to every algorithm (in place)."""
    params = train["params"]
    conf = params["config"]
    params["seed"] = seed
    conf["full_experiment_name"] = run_name
    conf["device"] = conf["device_name"] = rl_device
    # torch.compile costs minutes of compile time for small CPU MLPs; opt in with ...config.torch_compile=True
    conf.setdefault("torch_compile", not str(rl_device).startswith("cpu"))
    if torch_threads > 0:
        params.setdefault("torch_threads", torch_threads)       # rl-games sets its own otherwise
    for key in NUMERIC:                     # numeric strings ('3e-4' from YAML 1.1) as numbers for rl-games
        if isinstance(conf.get(key), str):
            conf[key] = float(conf[key]) if NUMERIC[key][0] == "float" else int(conf[key])
    if not test:
        _fit_minibatches(params, num_envs, num_agents, log)
    if max_iterations is not None:
        # IsaacGymEnvs' PPO files read max_iterations through ${resolve_default:...}; SAC files and some
        # PPO files (LSTM) fix max_epochs or leave it out: max_iterations bounds them all the same
        if conf.get("max_epochs") != max_iterations:
            log(f"max_iterations={max_iterations}: train.params.config.max_epochs "
                f"{conf.get('max_epochs', '(not set)')} -> {max_iterations}")
        conf["max_epochs"] = max_iterations
    elif params["algo"]["name"] == "sac" and conf.get("max_epochs", -1) in (-1, None) \
            and conf.get("max_frames", -1) in (-1, None):
        log("warning: this SAC config sets neither max_epochs nor max_frames; it trains until stopped "
            "(set max_iterations=N)")
    if test:
        player = conf.get("player") or {}
        conf["player"] = player
        asked = player.get("games_num")
        if asked is None:                   # rl-games' default is 1e9 games
            player["games_num"] = num_envs
        elif int(asked) >= PLAY_FOREVER and not games_from_cli:
            # IsaacGymEnvs' files say 100000-1000000 games for "play until stopped" (with a viewer)
            player["games_num"] = num_envs
            log(f"test=True: the train config asks for {asked} games (play until stopped); playing "
                f"{num_envs} instead (set train.params.config.player.games_num=N on the command line)")
        log(f"test=True: playing {player['games_num']} games (train.params.config.player.games_num)")
    return train


# ---- '+'-added keys that nothing reads ----------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def rlgames_config_keys() -> frozenset:
    """Every key rl-games reads from a config dict (found in its source, so it follows its version)."""
    import rl_games
    keys = set()
    pattern = re.compile(r"config(?:\.get\(|\[)\s*['\"](\w+)['\"]")
    for path in Path(rl_games.__file__).parent.rglob("*.py"):
        keys |= set(pattern.findall(path.read_text(errors="ignore")))
    from rl_games.common.tr_helpers import DefaultRewardsShaper    # reward_shaper is passed as **kwargs
    return frozenset(keys | set(inspect.signature(DefaultRewardsShaper).parameters))


@functools.lru_cache(maxsize=16)
def _task_literals(task_class) -> frozenset:
    """String literals in the task's class hierarchy: the config keys its code can read."""
    words = set()
    for cls in inspect.getmro(task_class):
        try:
            words |= set(re.findall(r"[\"'](\w+)[\"']", inspect.getsource(inspect.getmodule(cls))))
        except (OSError, TypeError):
            pass
    return frozenset(words)


def _node(tree: dict, path: list):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def warn_unknown_added_keys(overrides: list, cfg: dict, task_class) -> list[str]:
    """Warnings for ``+task.env...`` / ``+train.params.config...`` keys that nothing reads, with near matches."""
    lines = []
    for item in overrides:
        item = str(item)
        if not item.startswith("+") or "=" not in item:
            continue
        key = item.lstrip("+").split("=", 1)[0]
        parts = key.split(".")
        if parts[:2] == ["task", "env"] and len(parts) >= 3:
            known = _task_literals(task_class)
        elif parts[:3] == ["train", "params", "config"] and len(parts) >= 4:
            known = rlgames_config_keys()
        else:
            continue
        leaf = parts[-1]
        if leaf in known:
            continue
        siblings = _node(cfg, parts[:-1])
        siblings = sorted(set(siblings) - {leaf}) if isinstance(siblings, dict) else []
        near = difflib.get_close_matches(leaf, siblings, n=3, cutoff=0.7) or \
            difflib.get_close_matches(leaf, sorted(known), n=3, cutoff=0.7)
        lines.append(f"+{key} was added, but nothing reads '{leaf}' under {'.'.join(parts[:-1])}"
                     + (f"; did you mean {' or '.join(near)}?" if near else ""))
    return lines


# ---- IsaacGymEnvs' config names ---------------------------------------------------------------------
# IsaacGymEnvs' names with a config of another name here. They are not shipped as files of their own:
# Hydra reads this package's cfg/ before a user's hydra.searchpath, so a cfg/task/Humanoid.yaml here
# would silently replace IsaacGymEnvs' own file for users who point at it.
CONFIG_ALIASES = {("task", "Humanoid"): "HumanoidRun", ("train", "HumanoidPPO"): "HumanoidRunPPO"}


def apply_config_aliases(overrides: list) -> tuple[list, list[str]]:
    """``task=Humanoid`` -> ``task=HumanoidRun`` (and ``train=HumanoidPPO`` -> ``train=HumanoidRunPPO``)
    unless a folder on the command line's ``hydra.searchpath`` has that file; returns the overrides
    and one line per rewrite."""
    folders = []
    for item in overrides:
        if str(item).startswith("hydra.searchpath="):
            folders += [p.strip().strip("'\"") for p in str(item).split("=", 1)[1].strip("[]").split(",")]
    folders = [Path(p[len("file://"):]) for p in folders if p.startswith("file://")]
    out, lines = [], []
    for item in overrides:
        group, _, value = str(item).partition("=")
        target = CONFIG_ALIASES.get((group, value))
        if target is None or any((folder / group / f"{value}.yaml").is_file() for folder in folders):
            out.append(item)
            continue
        out.append(f"{group}={target}")
        lines.append(f"{group}={value}: IsaacGymEnvs' {value} is {group}={target} here; using it")
    return out, lines
