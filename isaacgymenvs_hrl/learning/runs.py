"""A trained policy as ``hrl-train`` leaves it: ``runs/<run>/nn/<name>.pth`` with the run's resolved
``config.yaml`` beside ``nn/`` (a skill library policy keeps it as ``<name>.yaml`` beside itself),
and the rl-games network that config describes.

Every reader of a run (hrl-export, hrl-eval, hrl-collect's policies, eval_summary, the check that a
replay or resume runs over the run's own LLC) finds the config and rebuilds the network here, so
they agree on both.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import yaml

from ..errors import UserError
from ..hrl.library import resolve
from .checkpoints import CheckpointError, check_fits, load_checkpoint, require_parts


def run_config_path(checkpoint: str | os.PathLike) -> Path:
    """``<name>.yaml`` beside a skill library policy, else the run's ``config.yaml``: beside ``nn/``
    for its checkpoints, beside the file for the run's ``start_weights.pth``."""
    checkpoint = Path(checkpoint)
    beside = checkpoint.with_suffix(".yaml")
    if beside.is_file():
        return beside
    folder = checkpoint.resolve().parent
    return folder / "config.yaml" if (folder / "config.yaml").is_file() else folder.parent / "config.yaml"


def read_run_config(checkpoint: str | os.PathLike, error: type[UserError] = UserError) -> dict:
    """The config a checkpoint was trained with (plain dicts); a missing or foreign file is one
    ``error`` line."""
    path = run_config_path(checkpoint)
    if not path.is_file():
        raise error(f"{path} not found: checkpoint={checkpoint} must sit in the nn/ folder of an hrl-train run, "
                    "whose config.yaml (written next to nn/) says how the network and the task were built")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    for key in ("task", "train", "task_name"):
        if not isinstance(cfg, dict) or key not in cfg:
            raise error(f"{path} lacks the key '{key}': it is not a config.yaml written by hrl-train")
    return cfg


def env_sizes(env) -> tuple[int, int, bool]:
    """(observations, actions, discrete) of an env as rl-games' network sees them (a discrete action
    space's size is its number of choices)."""
    discrete = getattr(env.action_space, "n", None) is not None
    num_actions = int(env.action_space.n) if discrete else int(env.action_space.shape[0])
    return int(env.observation_space.shape[0]), num_actions, discrete


def build_network(params: dict, num_obs: int, num_actions: int) -> torch.nn.Module:
    """The rl-games actor-critic of a train config's ``params``, freshly initialised."""
    from rl_games.algos_torch.model_builder import ModelBuilder

    from .prior_agent import register
    register()                                   # the prior-anchored high level's model and network
    return ModelBuilder().load(params).build({
        "actions_num": num_actions, "input_shape": (num_obs,), "num_seqs": 1, "value_size": 1,
        "normalize_value": params["config"].get("normalize_value", False),
        "normalize_input": params["config"].get("normalize_input", False)})


def load_network(params: dict, num_obs: int, num_actions: int, checkpoint: str | os.PathLike,
                 key: str = "checkpoint", device: str = "cpu", state: dict | None = None) -> torch.nn.Module:
    """The network of ``params`` with the checkpoint's ``model`` weights (read weights-only, checked
    layer by layer against the task's sizes), frozen in eval mode on ``device``. ``state``: the
    checkpoint already loaded."""
    net = build_network(params, num_obs, num_actions)
    state = load_checkpoint(checkpoint, key=key) if state is None else state
    require_parts(state, ("model",), checkpoint, key=key)
    weights = state["model"]
    if isinstance(weights, dict):                                 # torch.compile'd runs prefix every key
        weights = {str(k).replace("_orig_mod.", ""): v for k, v in weights.items()}
    check_fits(net, weights, checkpoint, "model", key=key,
               hint=f"; this task has {num_obs} observations and {num_actions} actions")
    net.load_state_dict(weights)
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def deterministic_actor(net):
    """obs -> the actor's mean (continuous) or logits (discrete), without gradients."""
    net.eval()

    @torch.no_grad()
    def act(obs):
        out = net({"is_train": False, "prev_actions": None, "obs": obs, "rnn_states": None})
        return out["mus"] if "mus" in out else out["logits"]          # continuous / discrete actor
    return act


def check_run_llc(checkpoint: str | os.PathLike, llc_checkpoint: str) -> None:
    """Replaying or resuming a run needs the LLC it was trained over: its high level's actions mean
    nothing to another one (and differ in size between most). The run's ``config.yaml`` (beside
    ``nn/``) records it; a checkpoint without one is not checked."""
    config = run_config_path(checkpoint)
    if not config.is_file():
        return
    try:
        saved = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return
    env = ((saved or {}).get("task") or {}).get("env") or {}
    trained = str((env.get("llc") or {}).get("checkpoint") or "")
    if _same_llc(trained, str(llc_checkpoint or "")):
        return
    what = lambda llc: f"the LLC {llc}" if llc else "no LLC (the flat task)"
    fix = f"task.env.llc.checkpoint={trained}" if trained else "task.env.llc.checkpoint=''"
    raise CheckpointError(f"checkpoint={checkpoint} was trained over {what(trained)} (its run's config.yaml), "
                          f"but this run uses {what(llc_checkpoint)}; set {fix} to replay or resume it, or "
                          "train a new high level over the other LLC")


def _same_llc(a: str, b: str) -> bool:
    if a == b:
        return True
    if not a or not b:
        return False
    try:
        pa, pb = Path(resolve(a, kind="llc")), Path(resolve(b, kind="llc"))
    except UserError:
        return False
    return pa.is_file() and pb.is_file() and pa.resolve() == pb.resolve()


def load_rlgames_policy(checkpoint: str | os.PathLike, num_obs: int, num_actions: int, device: str = "cpu"):
    """obs -> (mu, sigma) of a checkpoint's rl-games actor (a run's, or a skill library policy's), its
    network described by the config found with ``run_config_path``."""
    if not Path(checkpoint).is_file():
        raise UserError(f"policy checkpoint not found: {checkpoint}")
    params = read_run_config(checkpoint)["train"]["params"]
    net = load_network(params, num_obs, num_actions, checkpoint, key="policy", device=device)

    @torch.no_grad()
    def act(obs):
        res = net({"is_train": False, "prev_actions": None, "obs": obs, "rnn_states": None})
        return res["mus"], res["sigmas"]
    return act
