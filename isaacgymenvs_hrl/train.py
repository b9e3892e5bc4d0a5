"""``hrl-train`` / ``python -m isaacgymenvs_hrl.train``: IsaacGymEnvs' train.py grammar on MuJoCo.

    hrl-train task=HumanoidLocomotion num_envs=64 headless=True max_iterations=100
    hrl-train task=HumanoidLocomotion test=True checkpoint=runs/.../nn/HumanoidLocomotion.pth
    hrl-train hydra.searchpath=[file:///path/to/isaacgymenvs/cfg] train=HumanoidPPO ...

Hydra is read here, once; library code gets plain dicts and arguments.
"""
from __future__ import annotations

import os
from datetime import datetime

import isaacgymenvs_hrl  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from isaacgymenvs_hrl.errors import UserError, exit_on_user_error
from isaacgymenvs_hrl.paths import CFG_DIR
from isaacgymenvs_hrl.sim import ENGINES, ISAAC_GYM_ENGINES
from isaacgymenvs_hrl.utils.config import register_resolvers, to_dict

register_resolvers()


def validate(cfg: DictConfig) -> None:
    """Catch bad settings before anything is built, with the key and the fix in the message."""
    from isaacgymenvs_hrl.tasks import isaacgym_task_map

    if cfg.task_name not in isaacgym_task_map:
        raise UserError(f"task '{cfg.task_name}' has no implementation here; available: "
                        f"{', '.join(sorted(isaacgym_task_map))}")
    engine = cfg.physics_engine
    if engine in ISAAC_GYM_ENGINES:
        raise UserError(f"physics_engine={engine} needs Isaac Gym, which is not supported (Python 3.6-3.8 "
                        "only, on no package registry). Use physics_engine=mujoco (default, CPU) or "
                        "physics_engine=mjwarp (MuJoCo Warp, GPU).")
    if engine not in ENGINES:
        raise UserError(f"unknown physics_engine '{engine}': choose one of {', '.join(ENGINES)}")
    num_envs = cfg.task.env.numEnvs
    if not isinstance(num_envs, int) or num_envs <= 0:
        raise UserError(f"num_envs must be a positive integer, got {num_envs!r}")
    for key in ("sim_device", "rl_device"):
        if str(cfg[key]).startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"{key}={cfg[key]} but no CUDA device is available; use {key}=cpu")
    if cfg.multi_gpu and torch.cuda.device_count() < 1:
        raise UserError("multi_gpu=True follows rl-games (torchrun, one GPU per process, NCCL) and needs "
                        "CUDA GPUs; none are available here. Drop multi_gpu=True, or on a GPU machine run "
                        "torchrun --standalone --nproc_per_node=NUM_GPUS -m isaacgymenvs_hrl.train multi_gpu=True ...")
    if cfg.test and not cfg.checkpoint:
        raise UserError("test=True plays a trained policy: give it with checkpoint=PATH/TO/model.pth")
    if cfg.checkpoint and not os.path.isfile(cfg.checkpoint):
        raise UserError(f"checkpoint file not found: {cfg.checkpoint}")
    llc_cfg = cfg.task.env.get("llc") or {}
    if llc_cfg.get("checkpoint"):
        from isaacgymenvs_hrl.hrl import MODES
        mode, algo = llc_cfg.get("mode", "continuous"), cfg.train.params.algo.name
        if mode not in MODES:
            raise UserError(f"task.env.llc.mode must be one of {', '.join(MODES)}, got '{mode}'")
        needed = {"discrete": "a2c_discrete", "mixture": "hrl_mixture"}.get(mode, "a2c_continuous")
        if algo != needed and not (mode == "mixture" and algo == "a2c_continuous"):
            raise UserError(f"task.env.llc.mode={mode} needs train.params.algo.name={needed}, the train "
                            f"config has {algo}; pick a matching train config (e.g. train=HRLDiscretePPO "
                            "for discrete skills, train=HRLMixturePPO for mixtures)")
    conf = cfg.train.params.config
    if not cfg.test and "minibatch_size" in conf:
        batch = num_envs * int(conf.horizon_length) * int(cfg.task.env.get("numAgents", 1))
        if batch % int(conf.minibatch_size) != 0:
            raise UserError(
                f"rl-games needs num_envs * horizon_length ({num_envs} * {conf.horizon_length} = {batch}) "
                f"to be a multiple of train.params.config.minibatch_size ({conf.minibatch_size}); change "
                f"num_envs or set train.params.config.minibatch_size to a divisor of {batch}")


def run(cfg: DictConfig) -> None:
    from rl_games.common.algo_observer import IsaacAlgoObserver
    from rl_games.torch_runner import Runner

    from isaacgymenvs_hrl.learning.rlgames_env import register_agents, register_env
    from isaacgymenvs_hrl.tasks import isaacgym_task_map
    from isaacgymenvs_hrl.utils.seeding import set_seed

    validate(cfg)
    rank = int(os.getenv("LOCAL_RANK", "0"))
    if cfg.multi_gpu:
        cfg.sim_device = cfg.rl_device = f"cuda:{rank}"
    cfg.seed = set_seed(cfg.seed, torch_deterministic=cfg.torch_deterministic, rank=rank)
    if int(cfg.get("torch_threads", 0) or 0) > 0:
        torch.set_num_threads(int(cfg.torch_threads))

    name = cfg.train.params.config.name
    run_name = f"{name}_{datetime.now():%Y-%m-%d_%H-%M-%S}"
    cfg.train.params.config.full_experiment_name = run_name
    run_dir = os.path.join(cfg.train.params.config.get("train_dir", "runs"), run_name)

    task_cfg = to_dict(cfg.task)
    task_class = isaacgym_task_map[cfg.task_name]
    rlg_config = to_dict(cfg.train)
    llc_cfg = task_cfg["env"].get("llc") or {}
    llc = None
    if llc_cfg.get("checkpoint"):
        from isaacgymenvs_hrl.hrl import LatentSkillEnv, load_llc
        llc = load_llc(llc_cfg["checkpoint"])
        steps = llc.spec["default_steps"] if llc_cfg.get("steps") in (None, "") else int(llc_cfg["steps"])
        if llc_cfg.get("reward", "mean") == "smdp":
            gamma = float(llc_cfg.get("gamma", 0.99)) ** steps
            print(f"SMDP rewards: high-level gamma = {llc_cfg.get('gamma', 0.99)}^{steps} = {gamma:.5f}")
            rlg_config["params"]["config"]["gamma"] = gamma

    def make_env():
        env = task_class(cfg=task_cfg, rl_device=cfg.rl_device, sim_device=cfg.sim_device,
                         graphics_device_id=cfg.graphics_device_id, headless=cfg.headless,
                         virtual_screen_capture=False, force_render=False)
        if llc is not None:
            env = LatentSkillEnv(env, llc, mode=llc_cfg.get("mode", "continuous"), steps=steps,
                                 hl_obs=llc_cfg.get("hl_obs") or None, reward=llc_cfg.get("reward", "mean"),
                                 llc_gamma=float(llc_cfg.get("gamma", 0.99)))
        if cfg.capture_video:
            from isaacgymenvs_hrl.utils.video import VideoRecorder
            env = VideoRecorder(env, os.path.join(run_dir, "videos"), cfg.capture_video_freq,
                                cfg.capture_video_len)
        return env

    # Build the first env now: a bad task or LLC fails here, before any run folder is written.
    first_env = [make_env()]

    def create_env(**kwargs):
        return first_env.pop() if first_env else make_env()

    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(cfg, resolve=True))
    register_env(create_env)
    if cfg.wandb_activate and rank == 0:
        try:
            import wandb
        except ImportError:
            raise UserError("wandb_activate=True needs the wandb package: pip install wandb") from None
        wandb.init(project=cfg.wandb_project, entity=cfg.wandb_entity or None, group=cfg.wandb_group or None,
                   name=run_name, tags=list(cfg.wandb_tags), sync_tensorboard=True,
                   config=OmegaConf.to_container(cfg, resolve=True))

    if int(cfg.get("torch_threads", 0) or 0) > 0:
        rlg_config["params"].setdefault("torch_threads", int(cfg.torch_threads))   # rl-games sets its own
    rlg_config["params"]["config"]["device"] = cfg.rl_device
    rlg_config["params"]["config"]["device_name"] = cfg.rl_device
    # torch.compile costs minutes of compile time for small CPU MLPs; opt in with ...config.torch_compile=True
    rlg_config["params"]["config"].setdefault("torch_compile", not str(cfg.rl_device).startswith("cpu"))
    runner = Runner(IsaacAlgoObserver())
    register_agents(runner)
    runner.load(rlg_config)
    runner.reset()
    runner.run({"train": not cfg.test, "play": cfg.test, "checkpoint": cfg.checkpoint or None,
                "sigma": cfg.sigma if cfg.sigma != "" else None})


@hydra.main(version_base="1.1", config_name="config", config_path=str(CFG_DIR))
@exit_on_user_error
def launch_rlg_hydra(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    launch_rlg_hydra()


if __name__ == "__main__":
    main()
