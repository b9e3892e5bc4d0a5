"""``hrl-train`` / ``python -m isaacgymenvs_hrl.train``: IsaacGymEnvs' train.py grammar on MuJoCo.

    hrl-train task=HumanoidLocomotion num_envs=64 headless=True max_iterations=100
    hrl-train task=HumanoidLocomotion test=True checkpoint=runs/.../nn/HumanoidLocomotion.pth
    hrl-train hydra.searchpath=[file:///path/to/isaacgymenvs/cfg] train=HumanoidPPO ...

Hydra is read here, once: ``validate`` resolves the config into plain dicts and checks every value
before anything is built; library code gets plain dicts and arguments.
"""
from __future__ import annotations

import filecmp
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

import isaacgymenvs_hrl  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.utils.task_config import HYDRA_VERSION_BASE
from isaacgymenvs_hrl.sim import ENGINES, ISAAC_GYM_ENGINES
from isaacgymenvs_hrl.utils.config import (as_bool, as_float, as_int, check_device, check_run_name, check_seed,
                                           check_task_cfg, register_resolvers, resolve)

register_resolvers()

BOOL_KEYS = ("test", "headless", "multi_gpu", "capture_video", "torch_deterministic", "wandb_activate",
             "force_render", "eval_summary")


def keep_start(init_actor, path: Path):
    """``init_actor`` that also writes the network it fitted (rl-games' checkpoint layout, weights only)."""
    from isaacgymenvs_hrl.learning.checkpoints import atomic_torch_save

    def init_and_keep(algo) -> None:
        init_actor(algo)
        atomic_torch_save({"model": algo.model.state_dict()}, path)
    return init_and_keep


def validate(cfg: DictConfig) -> dict:
    """Check every setting before anything is built; returns the resolved config as plain dicts.

    Each bad value raises one ``UserError`` naming the key, the value and what is allowed."""
    from isaacgymenvs_hrl.learning.compat import check_train_cfg
    from isaacgymenvs_hrl.tasks import isaacgym_task_map

    for key in ("task", "train"):
        if key not in cfg or cfg[key] is None:
            raise UserError(f"the config has no '{key}' section; pick one with {key}=<name>")
    # top-level keys first, so that e.g. max_iterations=abc is named as such (not as max_epochs)
    for key in BOOL_KEYS:
        if key in cfg:
            as_bool(cfg[key], key)
    check_seed(cfg.get("seed", 42))
    as_int(cfg.get("max_iterations", ""), "max_iterations", low=1, allow_empty=True,
           hint=" ('' = the train config's max_epochs)")
    as_int(cfg.get("num_envs", ""), "num_envs", low=1, allow_empty=True)
    if cfg.get("max_time", "") != "":
        as_float(cfg.max_time, "max_time", low=0.0, low_open=True, hint=" (seconds of training; '' = no limit)")
    for key in ("num_threads", "torch_threads"):
        as_int(cfg.get(key, 0), key, low=0)
    for key in ("capture_video_freq", "capture_video_len"):
        as_int(cfg.get(key, 1), key, low=1)
    as_int(cfg.get("graphics_device_id", 0), "graphics_device_id", low=-1)
    if cfg.get("wandb_activate", False):
        import importlib.util
        if importlib.util.find_spec("wandb") is None:
            raise UserError("wandb_activate=True needs the wandb package, which is not installed: "
                            "pip install 'isaacgymenvs_hrl[track]' (or drop wandb_activate=True)")
    if cfg.get("sigma", "") != "":
        as_float(cfg.sigma, "sigma", hint=" (the log-std to set on a restored fixed-sigma network)")
    pbt = cfg.get("pbt") or {}
    if isinstance(pbt, DictConfig) and pbt.get("enabled", False):
        raise UserError("pbt.enabled=True: IsaacGymEnvs' population-based training is not implemented here; "
                        "drop pbt=... (or set pbt.enabled=False) and run one hrl-train per configuration")
    engine = cfg.get("physics_engine", "mujoco")
    if engine in ISAAC_GYM_ENGINES:
        raise UserError(f"physics_engine={engine} needs Isaac Gym, which is not supported (Python 3.6-3.8 "
                        "only, on no package registry). Use physics_engine=mujoco (default, CPU) or "
                        "physics_engine=mjwarp (MuJoCo Warp, GPU).")
    if engine not in ENGINES:
        raise UserError(f"unknown physics_engine '{engine}': choose one of {', '.join(ENGINES)}")
    for key in ("sim_device", "rl_device"):
        check_device(cfg.get(key, "cpu"), key)
    from isaacgymenvs_hrl.learning.distributed import check_launch
    check_launch(as_bool(cfg.get("multi_gpu", False), "multi_gpu"), as_bool(cfg.get("test", False), "test"),
                 cfg.get("rl_device", "cpu"), cfg.get("sim_device", "cpu"), cfg.get("dist_backend", "") or "")

    c = resolve(cfg)
    task_name = c["task"].get("name") if isinstance(c["task"], dict) else None
    if task_name not in isaacgym_task_map:
        raise UserError(f"task '{task_name}' has no implementation here; available: "
                        f"{', '.join(sorted(isaacgym_task_map))}")
    check_task_cfg(c["task"])
    if c.get("experiment", ""):                   # names a folder under the runs folder: never a path
        check_run_name(c["experiment"], "experiment")
    train_name = ((c["train"].get("params") or {}).get("config") or {}).get("name")
    if train_name is not None:
        check_run_name(train_name, "train.params.config.name")

    if c["test"] and not c["checkpoint"]:
        raise UserError("test=True plays a trained policy: give it with checkpoint=PATH/TO/model.pth")
    if c["checkpoint"]:
        if not os.path.isfile(c["checkpoint"]):
            raise UserError(f"checkpoint file not found: {c['checkpoint']}")
        from isaacgymenvs_hrl.learning.checkpoints import load_checkpoint
        from isaacgymenvs_hrl.learning.runs import check_run_llc
        load_checkpoint(c["checkpoint"])                  # weights only: a payload is refused here
        check_run_llc(c["checkpoint"], (c["task"]["env"].get("llc") or {}).get("checkpoint", ""))
    llc_cfg = c["task"]["env"].get("llc") or {}
    algo = ((c["train"].get("params") or {}).get("algo") or {}).get("name")
    if c.get("bc_init", ""):
        if llc_cfg.get("checkpoint"):
            raise UserError("bc_init starts a flat actor from demonstrations; a high level over an LLC starts "
                            "from its skills with task.env.llc.match_init=DATASET instead")
        if c["checkpoint"]:
            raise UserError("bc_init and checkpoint both set the actor's start: give one of them")
        if not os.path.isfile(c["bc_init"]):
            raise UserError(f"bc_init: dataset not found: {c['bc_init']} (hrl-collect writes one)")
        as_int(c.get("bc_epochs", 20), "bc_epochs", low=1)
        as_int(c.get("bc_warmup", 0), "bc_warmup", low=0)
    if llc_cfg.get("checkpoint"):
        from isaacgymenvs_hrl.hrl import MODES
        mode = llc_cfg.get("mode", "continuous")
        if mode not in MODES:
            raise UserError(f"task.env.llc.mode must be one of {', '.join(MODES)}, got '{mode}'")
        prior = as_bool(llc_cfg.get("prior", False), "task.env.llc.prior")
        needed = {"discrete": "a2c_discrete", "mixture": "hrl_mixture"}.get(mode, "a2c_continuous")
        if prior:
            needed = "hrl_prior_discrete" if mode == "discrete" else "hrl_prior_continuous"
        if algo in ("hrl_prior_discrete", "hrl_prior_continuous") and not prior:
            raise UserError(f"train.params.algo.name={algo} anchors the high level to the LLC's learned prior, "
                            "which reaches it only with task.env.llc.prior=True; set it, or pick a plain train "
                            "config (train=HRLDiscretePPO for discrete skills, FrankaStackPPO for continuous)")
        if algo != needed and not (mode == "mixture" and algo == "a2c_continuous"):
            raise UserError(f"task.env.llc.mode={mode} needs train.params.algo.name={needed}, the train "
                            f"config has {algo}; pick a matching train config (e.g. train=HRLDiscretePPO "
                            "for discrete skills, train=HRLPriorPPO for discrete skills anchored to the prior "
                            "(task.env.llc.prior=True), train=HRLPriorContinuousPPO for a continuous high level anchored to "
                            "the latent prior (task.env.llc.prior=True), train=HRLMixturePPO for mixtures)")
    num_agents = as_int(c["task"]["env"].get("numAgents", 1), "task.env.numAgents", low=1)
    check_train_cfg(c["train"], num_envs=int(c["task"]["env"]["numEnvs"]), num_agents=num_agents,
                    test=c["test"])
    return c


def _override_keys(overrides: list) -> list:
    """The keys set on the command line (``key=value``, ``+key=value``, ``++key=value``)."""
    return [str(o).lstrip("+~").split("=", 1)[0] for o in overrides if "=" in str(o)]


def _multirun_job_suffix() -> str:
    """``_<job number>`` inside ``hrl-train -m``: its jobs start within the same second."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        hc = HydraConfig.get()
        return f"_{hc.job.num}" if hc.mode == RunMode.MULTIRUN else ""
    except Exception:             # composed outside @hydra.main (tests, scripts)
        return ""


def _hydra_overrides() -> list:
    try:
        from hydra.core.hydra_config import HydraConfig
        return list(HydraConfig.get().overrides.task)
    except Exception:             # composed outside @hydra.main (tests, scripts)
        return []


def run(cfg: DictConfig, overrides: list | None = None) -> None:
    from rl_games.torch_runner import Runner

    from isaacgymenvs_hrl.hrl.env_factory import build_env, display_available, ignored_settings, load_task_llc
    from isaacgymenvs_hrl.learning.checkpoints import finish_checkpoints, run_names
    from isaacgymenvs_hrl.learning import distributed
    from isaacgymenvs_hrl.learning.compat import prepare_rlgames_config, warn_unknown_added_keys
    from isaacgymenvs_hrl.learning.observer import HealthObserver
    from isaacgymenvs_hrl.learning.registry import register_agents
    from isaacgymenvs_hrl.learning.rlgames_env import register_env
    from isaacgymenvs_hrl.tasks import isaacgym_task_map
    from isaacgymenvs_hrl.utils.atomic import remove_stale_tmp
    from isaacgymenvs_hrl.utils.seeding import set_seed

    c = validate(cfg)
    ranks = distributed.start(c) if c["multi_gpu"] else distributed.current()
    task_cfg = c["task"]
    task_class = isaacgym_task_map[task_cfg["name"]]
    overrides = overrides if overrides is not None else _hydra_overrides()
    for line in warn_unknown_added_keys(overrides, c, task_class):
        print(f"warning: {line}")
    given = {key: c[key] for key in _override_keys(overrides) if key in c}
    for line in ignored_settings(given):
        print(line)
    viewer = not c["headless"] and display_available()
    rank = ranks.rank                   # 0 in one process; under torchrun (multi_gpu) the global rank
    sim_device, rl_device = distributed.rank_device(c["sim_device"]), distributed.rank_device(c["rl_device"])
    seed = c["seed"]
    if ranks.active and int(seed) == -1:        # one draw for the job: rank r seeds it + r
        seed = distributed.from_rank0(set_seed(-1, torch_deterministic=c["torch_deterministic"]))
    seed = set_seed(seed, torch_deterministic=c["torch_deterministic"], rank=rank)
    c["seed"] = seed
    if int(c.get("torch_threads", 0) or 0) > 0:
        torch.set_num_threads(int(c["torch_threads"]))

    rlg_config = c["train"]
    conf = rlg_config["params"]["config"]
    llc_cfg = task_cfg["env"].get("llc") or {}
    name, run_name = run_names(conf["name"], task_cfg["name"], llc_cfg.get("checkpoint", ""), c.get("experiment", ""),
                               f"{datetime.now():%Y-%m-%d_%H-%M-%S}{_multirun_job_suffix()}")
    conf["name"] = name
    run_dir = Path(conf.get("train_dir", "runs")) / run_name
    # with train.params.config.multi_gpu set, rl-games' Runner adds the rank to the seed itself
    prepare_rlgames_config(rlg_config, run_name=run_name, seed=seed - rank if conf.get("multi_gpu") else seed,
                           rl_device=rl_device,
                           max_iterations=as_int(c["max_iterations"], "max_iterations", low=1, allow_empty=True),
                           test=c["test"], num_envs=int(task_cfg["env"]["numEnvs"]),
                           torch_threads=int(c.get("torch_threads", 0) or 0),
                           games_from_cli=any("player.games_num=" in str(o) for o in overrides),
                           num_agents=int(task_cfg["env"].get("numAgents", 1)))
    if c["checkpoint"]:
        remove_stale_tmp(Path(c["checkpoint"]).parent)

    llc, steps = load_task_llc(task_cfg)
    if llc is not None:
        if llc_cfg.get("reward", "mean") == "smdp":
            gamma = float(llc_cfg.get("gamma", 0.99)) ** steps
            print(f"SMDP rewards: high-level gamma = {llc_cfg.get('gamma', 0.99)}^{steps} = {gamma:.5f}")
            conf["gamma"] = gamma

    def make_env():
        env = build_env(task_cfg, rl_device, sim_device, llc=llc, steps=steps,
                        graphics_device_id=c["graphics_device_id"], viewer=viewer)
        if c["capture_video"] and rank == 0:
            from isaacgymenvs_hrl.utils.video import VideoRecorder
            env = VideoRecorder(env, str(run_dir / "videos"), c["capture_video_freq"], c["capture_video_len"])
        return env

    # Build the first env now: a bad task or LLC fails here, before any run folder is written.
    first_env = [make_env()]
    if "central_value_config" in conf and getattr(first_env[0], "num_states", 0) <= 0:
        raise UserError(f"train.params.config.central_value_config asks for an asymmetric critic, but task "
                        f"{task_cfg['name']}{' (with an LLC)' if llc is not None else ''} provides no "
                        "privileged states (num_states=0); drop central_value_config or use a task with states")

    def create_env(**kwargs):
        return first_env.pop() if first_env else make_env()

    # skill matching (LDSE), the skill prior (HeLMS) or BC labels the data now: a bad dataset fails before any run folder
    # (validate() checked bc_epochs and bc_warmup); actor_warmup: epochs after the fit in which only the value head learns
    init_actor, actor_warmup = None, 0
    if c.get("bc_init", ""):
        from isaacgymenvs_hrl.learning.actor_init import bc_init
        init_actor = bc_init(c["bc_init"], int(c.get("bc_epochs", 20)), seed)
        actor_warmup = int(c.get("bc_warmup", 0))
    if llc is not None and llc_cfg.get("match_init"):
        from isaacgymenvs_hrl.learning.actor_init import skill_matching_init
        init_actor = skill_matching_init(llc_cfg["match_init"], llc_cfg.get("match_encoder", ""), llc,
                                         first_env[0].hl_obs_names, steps,
                                         as_int(llc_cfg.get("match_epochs", 200), "task.env.llc.match_epochs", low=1),
                                         seed, llc_cfg.get("mode", "continuous"))
        actor_warmup = as_int(llc_cfg.get("match_warmup", 0), "task.env.llc.match_warmup", low=0)

    # a run that fails before its first checkpoint leaves no run folder behind (test runs write none)
    keep_dir = (not c["test"] or c["capture_video"]) and rank == 0       # rank 0 writes for a multi-rank run
    created = keep_dir
    if created:                   # exclusively: a run of the same name and second gets <name>_2
        from isaacgymenvs_hrl.utils.atomic import new_dir, write_text
        claimed = new_dir(run_dir)
        if claimed != run_dir:
            run_dir, run_name = claimed, claimed.name
            conf["full_experiment_name"] = run_name
            if c["capture_video"]:              # its recorder points at the other run's folder
                first_env.pop().close()
        write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(c)))
    if init_actor is not None and created:      # the fitted start, for eval_summary's "untrained" column
        from isaacgymenvs_hrl.learning.evaluation import START_WEIGHTS
        init_actor = keep_start(init_actor, run_dir / START_WEIGHTS)
    register_env(create_env)
    observer = HealthObserver(actions_per_step=steps if llc is not None else 1,
                              max_seconds=float(c["max_time"]) if c.get("max_time", "") != "" else None,
                              init_actor=init_actor, actor_warmup=actor_warmup)
    try:
        if c["wandb_activate"] and rank == 0:
            try:
                import wandb
            except ImportError:
                raise UserError("wandb_activate=True needs the wandb package: pip install wandb") from None
            wandb.init(project=c["wandb_project"], entity=c["wandb_entity"] or None,
                       group=c["wandb_group"] or None, name=run_name, tags=list(c["wandb_tags"]),
                       sync_tensorboard=True, config=c)
        runner = Runner(observer)
        register_agents(runner)
        runner.load(rlg_config)
        runner.reset()
        runner.run({"train": not c["test"], "play": c["test"], "checkpoint": c["checkpoint"] or None,
                    "sigma": c["sigma"] if c["sigma"] != "" else None})
    except BaseException:
        observer.close()
        if created and not list(run_dir.glob("nn/*.pth")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    observer.close()
    if not c["test"] and rank == 0:
        finished = finish_checkpoints(run_dir / "nn", name)
        if finished is not None:
            best, final = finished
            same = filecmp.cmp(best, final, shallow=False)
            print(f"checkpoint: {best} " + (f"(the final network, also {final.name})" if same else
                                             f"(rl-games' best mean reward; the final network is {final.name})"))
    if not c["test"]:
        summary = observer.summary()            # summed over the ranks: every rank takes part
        if rank == 0:
            print(summary)
    distributed.stop()
    if not c["test"] and rank == 0:
        if c.get("eval_summary"):
            from isaacgymenvs_hrl.learning.evaluation import summarize_run
            summarize_run(make_env, rlg_config["params"], str(run_dir), seed)


@hydra.main(version_base=HYDRA_VERSION_BASE, config_name="config", config_path=str(CFG_DIR))
@exit_on_user_error
def launch_rlg_hydra(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    from isaacgymenvs_hrl.learning.compat import apply_config_aliases
    args, lines = apply_config_aliases(sys.argv[1:])
    for line in lines:
        print(line)
    sys.argv[1:] = args
    launch_rlg_hydra()


if __name__ == "__main__":
    main()
