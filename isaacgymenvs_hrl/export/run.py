"""A trained run, rebuilt from what ``hrl-train`` leaves on disk: ``runs/<run>/nn/<ckpt>.pth`` and
``runs/<run>/config.yaml`` (the resolved Hydra config) beside ``nn/``.

``load_run`` rebuilds one env of the task (for the observation layout, action meaning and rate),
the rl-games network with the checkpoint's weights (read with ``weights_only=True``), and for a
hierarchical run the frozen LLC named by ``task.env.llc.checkpoint``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ..errors import UserError


class ExportError(UserError, ValueError):
    """A run or an exported policy that cannot be used; the message names the file and the fix."""


@dataclass
class TrainedRun:
    checkpoint: Path
    config: dict                      # the run's resolved config.yaml
    task: object                      # one env of the task (VecTask)
    env: object                       # the env rl-games trained on: the task or a LatentSkillEnv
    net: torch.nn.Module              # rl-games model network (eval mode)
    discrete: bool
    llc: object | None = None         # LowLevelController for hierarchical runs
    llc_path: Path | None = None
    mode: str | None = None
    steps: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def hierarchical(self) -> bool:
        return self.llc is not None


def run_config_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).resolve().parent.parent / "config.yaml"


def read_run_config(checkpoint: str | Path) -> dict:
    cfg_path = run_config_path(checkpoint)
    if not cfg_path.is_file():
        raise ExportError(f"{cfg_path} not found: checkpoint={checkpoint} must sit in the nn/ folder of an "
                          "hrl-train run, whose config.yaml (written next to nn/) says how the network and "
                          "the task were built")
    try:
        cfg = yaml.safe_load(cfg_path.read_text())
    except yaml.YAMLError as exc:
        raise ExportError(f"{cfg_path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    for key in ("task", "train", "task_name"):
        if not isinstance(cfg, dict) or key not in cfg:
            raise ExportError(f"{cfg_path} lacks the key '{key}': it is not a config.yaml written by hrl-train")
    return cfg


def build_task(cfg: dict, num_envs: int = 1, physics_engine: str | None = None, device: str = "cpu",
               task_overrides: dict | None = None, auto_reset: bool | None = None):
    """The run's task with ``num_envs`` envs (optionally on another backend / with config changes)."""
    from ..tasks import isaacgym_task_map

    name = cfg["task_name"]
    if name not in isaacgym_task_map:
        raise ExportError(f"the run's task '{name}' has no implementation here; available: "
                          f"{', '.join(sorted(isaacgym_task_map))}")
    task_cfg = copy.deepcopy(cfg["task"])
    _merge(task_cfg, task_overrides or {})
    task_cfg["env"]["numEnvs"] = int(num_envs)
    if physics_engine is not None:
        task_cfg["physics_engine"] = physics_engine
    hierarchical = bool((task_cfg["env"].get("llc") or {}).get("checkpoint"))
    if auto_reset is None:
        auto_reset = not hierarchical
    kwargs = {"auto_reset": auto_reset}
    return isaacgym_task_map[name](cfg=task_cfg, rl_device=device, sim_device=device,
                                   graphics_device_id=-1, headless=True, **kwargs)


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def wrap_hierarchical(task, cfg: dict, llc=None):
    """(env, llc, llc_path, mode, steps): the LatentSkillEnv the run trained on, or the task itself."""
    llc_cfg = cfg["task"]["env"].get("llc") or {}
    if not llc_cfg.get("checkpoint"):
        return task, None, None, None, 1
    from ..hrl import LatentSkillEnv, load_llc

    from ..hrl.library import resolve
    llc_path = resolve(llc_cfg["checkpoint"], kind="llc")      # a skill library name: its verified file
    if not llc_path.is_file():
        raise ExportError(f"the run's LLC checkpoint task.env.llc.checkpoint={llc_path} is not found; the "
                          "export bundles the frozen LLC, so restore that file (or run hrl-export from the "
                          "folder hrl-train ran in, if the path is relative)")
    # the run's own trust setting: a TorchScript LLC it was trained with only loads where it said so
    llc = llc if llc is not None else load_llc(llc_path, trust_code=llc_cfg.get("trust_code") is True)
    steps = llc.spec["default_steps"] if llc_cfg.get("steps") in (None, "") else int(llc_cfg["steps"])
    mode = llc_cfg.get("mode", "continuous")
    env = LatentSkillEnv(task, llc, mode=mode, steps=steps, hl_obs=llc_cfg.get("hl_obs") or None,
                         reward=llc_cfg.get("reward", "mean"), llc_gamma=float(llc_cfg.get("gamma", 0.99)))
    return env, llc, llc_path, mode, int(steps)


def build_network(params: dict, num_obs: int, num_actions: int, weights: dict, checkpoint) -> torch.nn.Module:
    """rl-games' network from the train config, with the checkpoint's ``model`` weights."""
    from rl_games.algos_torch.model_builder import ModelBuilder

    from ..learning.checkpoints import check_fits

    net = ModelBuilder().load(params).build({
        "actions_num": num_actions, "input_shape": (num_obs,), "num_seqs": 1, "value_size": 1,
        "normalize_value": params["config"].get("normalize_value", False),
        "normalize_input": params["config"].get("normalize_input", False)})
    if net.is_rnn():
        raise ExportError(f"checkpoint={checkpoint}: recurrent rl-games networks are not exported (their "
                          "hidden state would be another state input); train with an MLP network")
    check_fits(net, weights, checkpoint, "model")
    net.load_state_dict(weights)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_run(checkpoint: str | Path, llc=None) -> TrainedRun:
    from ..learning.checkpoints import load_checkpoint, require_parts

    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    require_parts(state, ["model"], checkpoint)
    cfg = read_run_config(checkpoint)
    params = cfg["train"]["params"]
    if params["model"]["name"] == "discrete_prior_a2c":
        raise ExportError(f"checkpoint={checkpoint}: a high level anchored to the skill prior "
                          "(train=HRLPriorPPO) reads the prior's log-probabilities given each env's previous "
                          "skill, a state the exported graph does not carry yet; export is not supported for it "
                          "(hrl-eval and hrl-train test=True run it)")
    task = build_task(cfg)
    env, llc, llc_path, mode, steps = wrap_hierarchical(task, cfg, llc)
    discrete = params["model"]["name"] in ("discrete_a2c", "multi_discrete_a2c")
    space = env.action_space
    num_actions = int(space.n) if discrete else int(space.shape[0])
    net = build_network(params, int(env.num_obs), num_actions, state["model"], checkpoint)
    return TrainedRun(checkpoint=checkpoint, config=cfg, task=task, env=env, net=net, discrete=discrete,
                      llc=llc, llc_path=llc_path, mode=mode, steps=steps,
                      extra={"epoch": state.get("epoch"), "frame": state.get("frame")})


def policy_from_run(run: TrainedRun):
    """The torch reference of the exported policy: rl-games' deterministic player action.

    Returns ``hl_obs (B, O) -> action``; continuous: clamp(mu, -1, 1), discrete: argmax."""
    net, discrete = run.net, run.discrete

    @torch.no_grad()
    def act(obs):
        res = net({"is_train": False, "prev_actions": None, "obs": obs, "rnn_states": None})
        if discrete:
            return res["logits"].argmax(-1)
        return res["mus"].clamp(-1.0, 1.0)
    return act
