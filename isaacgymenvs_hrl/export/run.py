"""A trained run, rebuilt from what ``hrl-train`` leaves on disk: ``runs/<run>/nn/<ckpt>.pth`` and
``runs/<run>/config.yaml`` (the resolved Hydra config) beside ``nn/``.

``load_run`` rebuilds one env of the task through the env factory (for the observation layout, action
meaning and rate), the rl-games network with the checkpoint's weights (``learning.runs``, read with
``weights_only=True``), and for a hierarchical run the frozen LLC named by ``task.env.llc.checkpoint``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import UserError
from ..utils.config import as_bool
from ..hrl import env_factory
from ..hrl.env_factory import is_hierarchical, llc_settings, load_task_llc, wrap_task
from ..hrl.library import resolve
from ..learning import runs
from ..learning.checkpoints import load_checkpoint


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


def read_run_config(checkpoint: str | Path) -> dict:
    return runs.read_run_config(checkpoint, ExportError)


def run_task_config(cfg: dict, num_envs: int = 1, physics_engine: str | None = None,
                    task_overrides: dict | None = None) -> dict:
    """The run's task config with ``num_envs`` envs (optionally on another backend / with changes)."""
    task_cfg = copy.deepcopy(cfg["task"])
    _merge(task_cfg, task_overrides or {})
    task_cfg["env"]["numEnvs"] = int(num_envs)
    if physics_engine is not None:
        task_cfg["physics_engine"] = physics_engine
    return task_cfg


def build_task(cfg: dict, num_envs: int = 1, physics_engine: str | None = None, device: str = "cpu",
               task_overrides: dict | None = None, auto_reset: bool | None = None):
    """The run's bare task (``auto_reset`` off for a hierarchical run, whose wrapper resets it)."""
    task_cfg = run_task_config(cfg, num_envs, physics_engine, task_overrides)
    if auto_reset is None:
        auto_reset = not is_hierarchical(task_cfg)
    return env_factory.build_task(task_cfg, device, device, auto_reset=auto_reset)


def _merge(base: dict, over: dict) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def wrap_hierarchical(task, cfg: dict, llc=None):
    """(env, llc, llc_path, mode, steps): the LatentSkillEnv the run trained on, or the task itself."""
    llc_cfg = llc_settings(cfg["task"])
    if not llc_cfg.get("checkpoint"):
        return task, None, None, None, 1
    llc_path = resolve(llc_cfg["checkpoint"], kind="llc")      # a skill library name: its verified file
    if not llc_path.is_file():
        raise ExportError(f"the run's LLC checkpoint task.env.llc.checkpoint={llc_path} is not found; the "
                          "export bundles the frozen LLC, so restore that file (or run hrl-export from the "
                          "folder hrl-train ran in, if the path is relative)")
    # the run's own trust setting: a TorchScript LLC it was trained with only loads where it said so
    if llc is None:
        llc, steps = load_task_llc(cfg["task"])
    else:
        steps = llc.decision_steps(llc_cfg.get("steps"))
    env = wrap_task(task, cfg["task"], llc, steps)
    return env, llc, llc_path, llc_cfg.get("mode", "continuous"), env.steps


def build_network(params: dict, num_obs: int, num_actions: int, checkpoint, state: dict) -> torch.nn.Module:
    """rl-games' network from the train config, with the checkpoint's ``model`` weights, frozen."""
    net = runs.load_network(params, num_obs, num_actions, checkpoint, state=state)
    if net.is_rnn():
        raise ExportError(f"checkpoint={checkpoint}: recurrent rl-games networks are not exported (their "
                          "hidden state would be another state input); train with an MLP network")
    return net


def load_run(checkpoint: str | Path, llc=None) -> TrainedRun:
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    cfg = read_run_config(checkpoint)
    params = cfg["train"]["params"]
    llc_cfg = llc_settings(cfg["task"])
    if params["model"]["name"] in ("discrete_prior_a2c", "continuous_prior_a2c") or \
            as_bool(llc_cfg.get("prior", False), "task.env.llc.prior"):
        raise ExportError(f"checkpoint={checkpoint}: a high level anchored to the LLC's prior "
                          "(task.env.llc.prior=True) reads the prior's choice given each env's previous skill, "
                          "a state the exported graph does not carry yet; export is not supported for it "
                          "(hrl-eval and hrl-train test=True run it)")
    if str(llc_cfg.get("head", "") or "") not in ("", "None"):
        raise ExportError(f"checkpoint={checkpoint}: the run fixes the multires head "
                          f"(task.env.llc.head={llc_cfg['head']}) outside the high level, which the exported graph "
                          "does not carry yet; export is not supported for it (hrl-eval runs it)")
    task = build_task(cfg)
    env, llc, llc_path, mode, steps = wrap_hierarchical(task, cfg, llc)
    discrete = params["model"]["name"] in ("discrete_a2c", "multi_discrete_a2c")
    space = env.action_space
    num_actions = int(space.n) if discrete else int(space.shape[0])
    net = build_network(params, int(env.num_obs), num_actions, checkpoint, state)
    return TrainedRun(checkpoint=checkpoint, config=cfg, task=task, env=env, net=net, discrete=discrete,
                      llc=llc, llc_path=llc_path, mode=mode, steps=steps,
                      extra={"epoch": state.get("epoch"), "frame": state.get("frame")})


def policy_from_run(run: TrainedRun):
    """The torch reference of the exported policy: rl-games' deterministic player action.

    Returns ``hl_obs (B, O) -> action``; continuous: clamp(mu, -1, 1), discrete: argmax."""
    actor = runs.deterministic_actor(run.net)
    if run.discrete:
        return lambda obs: actor(obs).argmax(-1)
    return lambda obs: actor(obs).clamp(-1.0, 1.0)
